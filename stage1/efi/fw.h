/*
 * fw: stage 1's view of the firmware and the machine.
 *
 * Everything that calls UEFI or executes a privileged instruction lives in
 * stage1/efi/ behind this header; EFI types and EFI_STATUS stop there. main.c
 * sees plain C types and one status enum, so the boot flow reads as a sequence
 * of steps rather than protocol plumbing.
 *
 * Boot services are usable from efi_main until fw_exit_boot_services succeeds;
 * after that only the console (COM1 by port I/O), the CPU helpers,
 * fw_fault_phase, fw_fault_tables and fw_fatal_after_exit may be called.
 */
#ifndef STAGE1_EFI_FW_H
#define STAGE1_EFI_FW_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <canopy/bootinfo.h>
#include <canopy/compiler.h>

enum fw_status {
    FW_OK = 0,
    FW_NOT_FOUND,   /* no such file, protocol or table */
    FW_EMPTY,       /* the file has zero bytes */
    FW_TOO_BIG,     /* larger than the caller allows */
    FW_IS_DIR,      /* the path names a directory */
    FW_NOMEM,       /* an allocation failed */
    FW_IO,          /* a read failed or came up short */
    FW_UNSUPPORTED, /* the firmware lacks something stage 1 needs */
    FW_FAILED,      /* any other firmware error */
    FW_REFUSED,     /* a file failed its hash check (Secure Boot or a pinned configuration) */
};

/* A short English description of a status. */
const char *fw_status_str(enum fw_status st);

/* ---- the boot flow (main.c) ------------------------------------------------ */

/*
 * Loads and starts the kernel. Returns only when the boot fails while boot
 * services still live, after the reason was shown; efi_main hands the status
 * back to the firmware.
 */
MUST_CHECK enum fw_status stage1_main(void);

/* ---- console (console.c) -------------------------------------------------- */

/*
 * Prints formatted text. Before ExitBootServices it goes to ConOut (OVMF
 * mirrors that to the serial port); afterwards to COM1 if serial output is
 * enabled. Every wait on the UART is bounded.
 */
void con_printf(const char *fmt, ...) PRINTF_LIKE(1, 2);
void con_vprintf(const char *fmt, va_list ap);

/* Whether COM1 is written after ExitBootServices (the config's serial=). */
void con_set_serial(bool on);

/* Switches output to COM1; called once boot services are gone. */
void con_after_exit(void);

/*
 * Waits up to `us` microseconds for a key on ConIn (the keyboard, and the
 * serial console where the firmware reads it) or on COM1 directly; keys
 * typed before the call do not count. True if one came. Boot services alive.
 */
bool con_wait_key(uint64_t us);

/* ---- time and CPU (cpu.c) -------------------------------------------------- */

struct fw_exit;

struct cpu_info {
    bool nx;      /* CPUID.80000001h:EDX[20] */
    bool pdpe1gb; /* CPUID.80000001h:EDX[26] */
    bool la57;    /* CR4.LA57 is set: the firmware runs 5-level paging */
    bool pat;     /* CPUID.1:EDX[16]: IA32_PAT exists */
    unsigned phys_bits;
};

void cpu_identify(struct cpu_info *out);
uint64_t cpu_tsc(void);
/*
 * Writes IA32_PAT (the kernel's memory types, CANOPY_PAT). Entries the
 * firmware's tables use (0-3: it never sets the PAT bit) keep their meaning,
 * so this is safe on the firmware's tables and needs no cache flush.
 * => cpu->pat; interrupts off.
 */
void cpu_set_pat(uint64_t pat);
/* Waits about `us` microseconds by the TSC (tsc_hz from fw_tsc_hz). Bounded. */
void cpu_delay_us(uint64_t tsc_hz, uint64_t us);
/*
 * Calls fn(ex) on a stack inside stage 1's image and never comes back. After
 * ExitBootServices the firmware's stack is nobody's: its map may call it free
 * memory (U-Boot does), and the PMM would hand it out under our feet.
 * => ex itself must not live on the firmware's stack either.
 */
_Noreturn void cpu_run_on_own_stack(void (*fn)(const struct fw_exit *), const struct fw_exit *ex);

/* ---- firmware services while boot services live ---------------------------- */

/* file.c: reads a whole file from the volume stage 1 was loaded from into LoaderData pages. */
MUST_CHECK enum fw_status fw_read_file(const char *path, uint64_t max_bytes, void **data,
                                       uint64_t *size);
/* Gives back what fw_read_file returned (a failed boot leaves the firmware as it found it). */
void fw_free_file(void *data, uint64_t size);

/*
 * memmap.c: conventional memory above the first MiB in the current map (touching
 * descriptors merged), for the ELF check's bound on the kernel's size.
 */
MUST_CHECK enum fw_status fw_memory_summary(uint64_t *conventional_bytes);

/*
 * memmap.c: allocates page_count pages at exactly pa (AllocateAddress) as loader
 * data: memory stage 1 will write after ExitBootServices, chosen by stage 1
 * from the memory map (load/claim.h). FW_NOT_FOUND: a page there is not free
 * (the map said otherwise, or it changed): choose another place. Anything else
 * is a failure to report.
 * => page aligned, page_count >= 1; boot services alive.
 */
MUST_CHECK enum fw_status fw_claim_pages(uint64_t pa, uint64_t page_count);
/* memmap.c: gives back what fw_claim_pages took (a boot that stops before the exit). */
void fw_release_pages(uint64_t pa, uint64_t page_count);

/*
 * gop.c: fills *fb from the GOP stage 1 draws on (a console device's with a
 * linear framebuffer first, then any physical one's; the post-mortem screen
 * uses the same): switches to width x height first if asked (0, 0: keep the
 * current mode). *note gets a short remark when something was not as asked
 * (NULL if all went as asked). FW_NOT_FOUND: no GOP at all; FW_UNSUPPORTED
 * (with *note): none with a linear framebuffer.
 */
MUST_CHECK enum fw_status fw_framebuffer(uint32_t width, uint32_t height,
                                         struct canopy_framebuffer *fb, const char **note);

/* acpi.c: the ACPI RSDP (2.0 preferred, else 1.0), 0 if the firmware has none. */
uint64_t fw_rsdp(void);
/* acpi.c: the EFI system table's address. */
uint64_t fw_system_table(void);
/* time.c: TSC ticks per second: CPUID 15h/16h if they say, else measured against Stall. */
uint64_t fw_tsc_hz(void);
/* rng.c: a random value from the EFI RNG protocol; false if it is missing or fails. */
bool fw_random(uint64_t *out);
/* secboot.c: whether the firmware enforces Secure Boot (SecureBoot is 1; missing: no). */
bool fw_secure_boot(void);
/* time.c: waits `us` microseconds with boot services. */
void fw_stall_us(uint64_t us);

/* ---- ExitBootServices (exit.c) and after it (reset.c) --------------------- */

/*
 * The map buffers: fw_exit_prepare fills them with the current map, to plan
 * with; fw_exit_boot_services with the final one, and the room to normalise it.
 */
struct fw_exit {
    const void *efi_map;   /* the raw map, in LoaderData */
    uint64_t efi_map_size; /* bytes used */
    uint64_t map_capacity; /* bytes the buffer holds: the final map is never larger */
    uint64_t desc_size;
    uint32_t desc_version;
    uint32_t range_capacity;         /* struct canopy_mem_range slots at ranges */
    struct canopy_mem_range *ranges; /* LoaderData, memmap_capacity_for(...) entries */
    void *scratch;                   /* extra LoaderData for the caller, scratch_bytes long */
    uint64_t scratch_bytes;
};

/*
 * Allocates the buffers for the final memory map (room for spare_descriptors
 * more than the map has now, as allocations until the exit split
 * descriptors), the normalised ranges and scratch_per_range bytes of scratch
 * per range slot plus scratch_fixed, and reads the current map into them.
 * => FW_OK: *out describes the map as it is now; fw_exit_boot_services or
 *    fw_exit_cancel must follow. FW_NOMEM, FW_UNSUPPORTED (a descriptor format
 *    stage 1 does not know) or FW_FAILED: nothing is left allocated.
 */
MUST_CHECK enum fw_status fw_exit_prepare(uint64_t spare_descriptors, uint64_t scratch_per_range,
                                          uint64_t scratch_fixed, struct fw_exit *out);

/* Frees what fw_exit_prepare allocated (a boot that stops before the exit). */
void fw_exit_cancel(struct fw_exit *ex);

/*
 * Reads the final memory map into ex's buffer and exits boot services, the
 * way the UEFI specification asks: nothing is allocated after that
 * GetMemoryMap; on a stale map key, GetMemoryMap again into the same buffer
 * and a retry, at most three calls in all.
 * => FW_OK: boot services are gone, interrupts are off, *ex holds the final map.
 * => before the first ExitBootServices call, with boot services alive:
 *    FW_TOO_BIG (the map outgrew the buffer), FW_UNSUPPORTED (its descriptor
 *    format changed) or FW_FAILED (GetMemoryMap failed); ex stays valid for
 *    fw_exit_cancel.
 * => if the retries fail as well, it does not return (fw_fatal_after_exit).
 */
MUST_CHECK enum fw_status fw_exit_boot_services(struct fw_exit *ex);

/*
 * After ExitBootServices: prints one line on serial and the screen, records
 * it for the next boot, waits about five seconds and resets the machine
 * through the runtime services (then the 8042, port 0xcf9 and a triple fault
 * if ResetSystem returns).
 */
_Noreturn void fw_fatal_after_exit(uint64_t tsc_hz, const char *fmt, ...) PRINTF_LIKE(2, 3);

/* ---- post-mortem (fault.c) ------------------------------------------------- */

/*
 * Takes over CPU exceptions (vectors 0-31) on a copy of the firmware's IDT:
 * from here until the kernel's lidt, an exception is reported on serial and
 * the framebuffer with the phase, recorded for the next boot, and the machine
 * resets. Our vectors are live before anything else here can fault; then it
 * learns what makes a report better (image base, TSC rate, a framebuffer)
 * and checks the trampoline page is executable.
 * => first thing in efi_main, boot services alive.
 */
void fw_fault_init(void);
/*
 * Puts the firmware's IDT and the trampoline page's memory attributes back;
 * call before handing control back to the firmware.
 */
void fw_fault_fini(void);
/*
 * What a previous boot recorded when it failed: prints it (nothing if there
 * is no record) and keeps it for the count of failed boots in a row, which
 * the kernel clears at `canopy: ready`. Says once if the firmware cannot keep
 * variables after ExitBootServices. After CANOPY_FAILED_BOOTS_MAX failed
 * boots it stops instead: the record, a wait for a key (which clears the
 * count) of at most a minute, and FW_FAILED, for the firmware's boot manager.
 * => boot services alive; FW_OK: go on booting.
 */
MUST_CHECK enum fw_status fw_fault_previous(void);
/* The failed boots in a row the record still in the store counts; 0 if none is left. */
uint32_t fw_fault_failed_boots(void);
/*
 * Notes the phase for reports (and in the volatile UEFI variable CanopyPhase
 * while boot services live). With inject, raises a page fault at once
 * (debug_fault=, a test and debug aid).
 */
void fw_fault_phase(enum canopy_phase p, bool inject);
/*
 * Overruns a local array by 48 bytes (debug_smash=, a test and debug aid):
 * the stack protector's check before the return reports it and never lets
 * the function return.
 */
void fw_smash_stack(void);
/* Where the firmware loaded BOOTX64.EFI; 0 until fw_fault_init has asked it. */
uint64_t fw_image_base(void);
/*
 * The identity address of the GDT and IDT pseudo-descriptors the trampoline
 * loads across the CR3 switch: through the HHDM at offsets 0 and 16, through
 * their identity addresses at 32 and 48 (all in loader memory, which the HHDM
 * maps). => after ExitBootServices; call once.
 */
uint64_t fw_fault_tables(uint64_t hhdm);
/*
 * The pages holding those tables (and the pseudo-descriptors): the kernel's
 * tables must map them at their identity address, RW (the stubs count nested
 * faults there), for the switch to have no instruction without its tables.
 */
void fw_fault_tables_pages(uint64_t *base, uint64_t *bytes);
/* An address no page table maps: a kernel entry there faults right after the CR3 switch. */
#define FW_FAULT_INJECT_VA 0x00007ffffffff000ull

/* ---- the CR3 switch (trampoline.S) ------------------------------------------ */

/*
 * Switches to the new page tables and jumps to the kernel. Runs from one page
 * that the new tables map at its own address.
 * Loads the GDT and IDT that tables_va (fw_fault_tables) describes through
 * their identity addresses right before the switch and through the HHDM
 * right after it.
 * => interrupts off; the page holding trampoline_start is identity-mapped R+X
 *    in cr3's tables, the fw_fault_tables_pages RW; stack_top is 16-byte
 *    aligned and mapped RW.
 */
_Noreturn void trampoline_enter(uint64_t cr3, uint64_t stack_top, uint64_t entry,
                                uint64_t bootinfo_va, uint64_t set_nxe, uint64_t tables_va);
extern const char trampoline_start[], trampoline_end[];

#endif
