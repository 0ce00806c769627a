/*
 * reset: the end of a boot that failed after ExitBootServices: one line on
 * the screen and on serial, a record for the next boot, a pause, a reset.
 * With boot services gone, the runtime services' ResetSystem goes first and
 * the resets that need no firmware follow (include/canopy/x86/reset.h).
 *
 * Called by main.c (FATAL), exit.c, entry.c and fault.c.
 */
#include <canopy/fmt.h>
#include <canopy/x86/reset.h>

#include "fw_efi.h"

_Noreturn void fw_reset(void)
{
    uint64_t hz = fw_tsc_hz_known();
    fw_rt->ResetSystem(EfiResetCold, EFI_LOAD_ERROR, 0, NULL);
    /* ResetSystem must not return; if it does, the keyboard controller and port 0xcf9. */
    arch_i8042_pulse_reset();
    cpu_delay_us(hz, 100000);
    arch_rst_cnt_reset();
    cpu_delay_us(hz, 100000);
    arch_triple_fault(); /* the last resort */
}

_Noreturn void fw_fatal_after_exit(uint64_t tsc_hz, const char *fmt, ...)
{
    char line[160];
    va_list ap;
    if (tsc_hz == 0)
        tsc_hz = fw_tsc_hz_known();
    va_start(ap, fmt);
    fmt_vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    /* The screen too (a PC may have no serial port), and a record the next boot shows. */
    char shown[170], unrecorded[120];
    fmt_snprintf(shown, sizeof(shown), "canopy: %s", line);
    const char *why = fault_record_fatal(line);
    if (why)
        fmt_snprintf(unrecorded, sizeof(unrecorded), "canopy: not recorded for the next boot (%s)",
                     why);
    fbtext_line(shown);
    if (why)
        fbtext_line(unrecorded);
    fbtext_line("canopy: resetting in 5 seconds");
    con_set_serial(true);
    con_after_exit();
    con_printf("%s\n", shown);
    if (why)
        con_printf("%s\n", unrecorded);
    con_printf("canopy: resetting in 5 seconds\n");
    cpu_delay_us(tsc_hz, 5000000);
    fw_reset();
}
