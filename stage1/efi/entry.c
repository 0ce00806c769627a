/*
 * entry: the PE entry point. Keeps the firmware's tables for the rest of
 * stage1/efi/, takes over CPU exceptions (fault.c), disables the watchdog,
 * seeds the stack canary, runs the boot flow (main.c) and turns
 * its status into the EFI_STATUS the firmware gets back when the boot fails
 * before ExitBootServices. An error status makes the boot manager go on to
 * its next boot option.
 */
#include <canopy/fmt.h>
#include <canopy/rt.h>

#include "fw_efi.h"

EFI_HANDLE fw_image;
EFI_SYSTEM_TABLE *fw_st;
EFI_BOOT_SERVICES *fw_bs;
EFI_RUNTIME_SERVICES *fw_rt;

const char *fw_status_str(enum fw_status st)
{
    switch (st) {
    case FW_OK:
        return "ok";
    case FW_NOT_FOUND:
        return "not found";
    case FW_EMPTY:
        return "empty";
    case FW_TOO_BIG:
        return "too big";
    case FW_IS_DIR:
        return "is a directory";
    case FW_NOMEM:
        return "out of memory";
    case FW_IO:
        return "read error";
    case FW_UNSUPPORTED:
        return "not supported by this firmware";
    case FW_FAILED:
        return "firmware error";
    case FW_REFUSED:
        return "refused by its hash check";
    }
    return "unknown error";
}

enum fw_status fw_from_efi(EFI_STATUS s)
{
    switch (s) {
    case EFI_SUCCESS:
        return FW_OK;
    case EFI_NOT_FOUND:
        return FW_NOT_FOUND;
    case EFI_OUT_OF_RESOURCES:
        return FW_NOMEM;
    case EFI_DEVICE_ERROR:
    case EFI_VOLUME_CORRUPTED:
    case EFI_NO_MEDIA:
    case EFI_MEDIA_CHANGED:
        return FW_IO;
    case EFI_UNSUPPORTED:
        return FW_UNSUPPORTED;
    default:
        return FW_FAILED;
    }
}

/*
 * A smashed stack canary (lib/src/rt.c): one line, then an error back to the
 * firmware while boot services live (the boot manager tries its next option),
 * else a reset. The line ends with where the firmware loaded stage 1, so an
 * address in it can be looked up in BOOTX64.EFI's symbols (docs/hardening.md).
 */
RT_NO_STACK_PROTECTOR _Noreturn PRINTF_LIKE(1, 2) static void stop(const char *fmt, ...)
{
    char line[160];
    va_list ap;
    va_start(ap, fmt);
    size_t n = fmt_vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    if (fw_image_base() && n < sizeof(line))
        fmt_snprintf(line + n, sizeof(line) - n, "; BOOTX64.EFI is at 0x%llx",
                     (unsigned long long)fw_image_base());
    if (fw_bs) {
        con_printf("canopy: %s\n", line);
        fw_stall_us(3000000);
        fw_fault_fini(); /* the firmware frees stage 1's image, and with it our IDT */
        fw_bs->Exit(fw_image, EFI_SECURITY_VIOLATION, 0, NULL);
    }
    fw_fatal_after_exit(0, "%s", line);
}

/*
 * The PE entry point (lld-link -entry:efi_main), MS x64 ABI like everything here.
 * Unprotected: it runs while the stack canary is set, and protected code starts below it.
 */
RT_NO_STACK_PROTECTOR EFI_STATUS EFIAPI efi_main(EFI_HANDLE image, EFI_SYSTEM_TABLE *st)
{
    fw_image = image;
    fw_st = st;
    fw_bs = st->BootServices;
    fw_rt = st->RuntimeServices;
    /*
     * Our exception handlers before anything that can fault, the firmware's
     * own calls included: some firmware's handlers print nothing and reset
     * (U-Boot's, on a fault in a UEFI application).
     */
    fw_fault_init();
    /* Firmware resets the machine after 5 minutes in a boot option unless told otherwise. */
    fw_bs->SetWatchdogTimer(0, 0, 0, NULL);
    rt_set_sinks(con_printf, stop);
    uint64_t fw_seed = 0;
    bool fw_seed_ok = fw_random(&fw_seed);
    if (rt_canary_seed(fw_seed, fw_seed_ok, NULL) == RT_SEED_TSC)
        con_printf("canopy: no RDSEED, RDRAND or firmware RNG: the stack canary comes from the "
                   "TSC only\n");

    enum fw_status s = stage1_main();
    /* stage1_main only returns on failure, with boot services still alive. */
    fw_fault_fini(); /* back to the firmware: its own exception handlers again */
    if (s == FW_REFUSED)
        return EFI_SECURITY_VIOLATION; /* what the firmware's own image check answers */
    return s == FW_NOT_FOUND ? EFI_NOT_FOUND : EFI_LOAD_ERROR;
}
