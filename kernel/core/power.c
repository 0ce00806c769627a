/*
 * power: power_off and power_reboot, each a list of methods tried in order.
 *
 *   off:    UEFI ResetSystem(Shutdown) -> ACPI S5 -> QEMU isa-debug-exit
 *   reboot: UEFI ResetSystem(Cold) -> FADT RESET_REG -> 8042 pulse -> triple fault
 *
 * The firmware knows its board best, so ResetSystem goes first (efirt.c
 * runs it on its own address space), unless efirt found at boot that it
 * cannot or must not be used (then one line says it is skipped). The
 * fallbacks use what power_init read from the ACPI tables (acpi.c) at boot,
 * before the kernel reclaims boot-services memory: some firmware (U-Boot)
 * keeps its DSDT there, and once that memory is reused the table is gone.
 * Every wait is bounded by the TSC; a method that returns is reported in one
 * line and the next one is tried. When every method failed, one line says
 * so and the CPU halts with interrupts off: a machine that cannot be turned
 * off or reset is left stopped, never hanging without a word. The *_using
 * variants that tests use with fewer methods return instead.
 * Called by the shell's `poweroff`/`reboot` and by power_cmdline for `power=`;
 * power_init runs at boot, before the kernel reclaims boot-services memory.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <arch/cpu.h>
#include <arch/power.h>
#include <canopy/fmt.h>
#include <canopy/str.h>
#include <kernel/acpi.h>
#include <kernel/cmdline.h>
#include <kernel/console.h>
#include <kernel/efirt.h>
#include <kernel/kmm.h>
#include <kernel/power.h>
#include <kernel/vm.h>

#define TSC_HZ_UNKNOWN 4000000000ull /* an upper bound: waits are at least as long as asked */
#define SETTLE_MS      1000u         /* how long a method gets to take the machine down */
#define KBC_WAIT_MS    100u
#define SCI_WAIT_MS    300u

#define PM1_SCI_EN        0x0001u
#define PM1_SLP_TYP_SHIFT 10
#define PM1_SLP_TYP_MASK  (7u << PM1_SLP_TYP_SHIFT)
#define PM1_SLP_EN        (1u << 13)

#define PCI_CONFIG_ADDR 0xcf8
#define PCI_CONFIG_DATA 0xcfc
#define QEMU_EXIT_CODE  1u /* QEMU exits with (1 << 1) | 1 = 3 */

static const struct canopy_bootinfo *power_bi;
static struct acpi_power acpi; /* read by power_init */

static uint64_t tsc_after_ms(unsigned ms)
{
    uint64_t hz = power_bi != NULL && power_bi->tsc_hz != 0 ? power_bi->tsc_hz : TSC_HZ_UNKNOWN;
    return arch_rdtsc() + hz / 1000 * ms;
}

static bool tsc_passed(uint64_t deadline)
{
    return (int64_t)(arch_rdtsc() - deadline) >= 0;
}

/* Gives a method that should already have taken the machine down time to do so. */
static void settle(unsigned ms)
{
    uint64_t deadline = tsc_after_ms(ms);
    while (!tsc_passed(deadline))
        arch_pause();
}

/*
 * ACPI tables at boot, before the kernel address space exists: the direct
 * map holds those in RAM (ACPI or boot-services memory), early maps the
 * rest (the RSDP in the BIOS area, tables in reserved memory).
 */
static const void *acpi_boot_map(void *ctx, uint64_t phys, uint64_t len)
{
    (void)ctx;
    return kmm_boot_view(phys, len);
}

/* A register access through a GAS; false if its memory is not mapped. */
static bool gas_access(const struct acpi_gas *g, bool write, uint32_t *v)
{
    unsigned bytes = g->bit_width / 8u;
    if (g->space == ACPI_SPACE_IO) {
        uint16_t port = (uint16_t)g->address;
        if (g->address > 0xffff)
            return false;
        if (write)
            bytes == 1   ? arch_outb(port, (uint8_t)*v)
            : bytes == 2 ? arch_outw(port, (uint16_t)*v)
                         : arch_outl(port, *v);
        else
            *v = bytes == 1 ? arch_inb(port) : bytes == 2 ? arch_inw(port) : arch_inl(port);
        return true;
    }
    if (g->space == ACPI_SPACE_PCI) {
        /* Bus 0; the address holds device (bits 47-32), function (31-16), offset (15-0). */
        uint32_t dev = (uint32_t)(g->address >> 32) & 0x1f, fn = (uint32_t)(g->address >> 16) & 7;
        uint32_t off = (uint32_t)g->address & 0xff;
        if (!write || bytes != 1)
            return false;
        arch_outl(PCI_CONFIG_ADDR, 0x80000000u | dev << 11 | fn << 8 | (off & 0xfcu));
        arch_outb((uint16_t)(PCI_CONFIG_DATA + (off & 3u)), (uint8_t)*v);
        return true;
    }
    /* A register in memory space: device memory, mapped on request (uncached as MMIO is). */
    volatile void *p =
        (volatile void *)(uintptr_t)vm_phys_view(g->address, bytes, true, "acpi registers");
    if (p == NULL)
        return false;
    if (write)
        bytes == 1   ? (void)(*(volatile uint8_t *)p = (uint8_t)*v)
        : bytes == 2 ? (void)(*(volatile uint16_t *)p = (uint16_t)*v)
                     : (void)(*(volatile uint32_t *)p = *v);
    else
        *v = bytes == 1   ? *(volatile uint8_t *)p
             : bytes == 2 ? *(volatile uint16_t *)p
                          : *(volatile uint32_t *)p;
    return true;
}

static const char *gas_name(const struct acpi_gas *g)
{
    return g->space == ACPI_SPACE_IO ? "port" : g->space == ACPI_SPACE_PCI ? "pci" : "mmio";
}

static void report_failed(const char *method, const char *why)
{
    kprintf("power: %s failed: %s\n", method, why);
}

/* The methods that can run: the firmware's tables are unknown before power_init. */
static unsigned usable_methods(unsigned methods)
{
    if (power_bi != NULL)
        return methods;
    if (methods & (POWER_EFI | POWER_ACPI))
        report_failed("UEFI ResetSystem and ACPI", "power_init was not called");
    return methods & ~(POWER_EFI | POWER_ACPI);
}

static void try_efi(enum efirt_reset_type type, const char *what)
{
    const char *why = efirt_reset_problem(type);
    if (why != NULL) {
        kprintf("power: skipping UEFI ResetSystem(%s): %s\n", what, why);
        return;
    }
    why = efirt_prepare();
    if (why == NULL) {
        kprintf("power: trying UEFI ResetSystem(%s)\n", what);
        why = efirt_reset(type);
    }
    report_failed("UEFI ResetSystem", why);
}

/* Switches the chipset to ACPI mode (SCI_EN) if it is not in it; some ignore SLP_EN otherwise. */
static void acpi_enable_mode(const struct acpi_power *a)
{
    uint32_t v = 0;
    if (a->smi_cmd == 0 || !gas_access(&a->pm1a_cnt, false, &v) || (v & PM1_SCI_EN))
        return;
    arch_outb(a->smi_cmd, a->acpi_enable);
    uint64_t deadline = tsc_after_ms(SCI_WAIT_MS);
    while (gas_access(&a->pm1a_cnt, false, &v) && !(v & PM1_SCI_EN) && !tsc_passed(deadline))
        arch_pause();
}

static bool pm1_write_slp(const struct acpi_gas *g, uint8_t typ, uint32_t en)
{
    uint32_t v = 0;
    if (!gas_access(g, false, &v))
        return false;
    v = (v & ~(PM1_SLP_TYP_MASK | PM1_SLP_EN)) | (uint32_t)typ << PM1_SLP_TYP_SHIFT | en;
    return gas_access(g, true, &v);
}

static void try_acpi_s5(void)
{
    const struct acpi_power *a = &acpi; /* ACPI methods run only after power_init */
    if (a->s5_problem[0] != '\0') {
        report_failed("ACPI S5", a->s5_problem);
        return;
    }
    kprintf("power: trying ACPI S5 (PM1a_CNT %s 0x%llx, SLP_TYPa %u, SLP_TYPb %u)\n",
            gas_name(&a->pm1a_cnt), (unsigned long long)a->pm1a_cnt.address, a->slp_typ_a,
            a->slp_typ_b);
    acpi_enable_mode(a);
    bool b = a->pm1b_cnt.address != 0;
    /* SLP_TYP first, then SLP_EN with it, as the ACPI spec's sleep sequence does. */
    bool ok = pm1_write_slp(&a->pm1a_cnt, a->slp_typ_a, 0) &&
              (!b || pm1_write_slp(&a->pm1b_cnt, a->slp_typ_b, 0)) &&
              pm1_write_slp(&a->pm1a_cnt, a->slp_typ_a, PM1_SLP_EN) &&
              (!b || pm1_write_slp(&a->pm1b_cnt, a->slp_typ_b, PM1_SLP_EN));
    if (!ok) {
        report_failed("ACPI S5", "a PM1 control register is not accessible");
        return;
    }
    settle(SETTLE_MS);
    report_failed("ACPI S5", "the machine is still running 1 s after SLP_EN");
}

static void try_qemu_exit(void)
{
    kprintf("power: trying QEMU's isa-debug-exit (QEMU exits with status %u, not 0)\n",
            (QEMU_EXIT_CODE << 1) | 1u);
    arch_qemu_exit(QEMU_EXIT_CODE);
    settle(SETTLE_MS / 10);
    report_failed("QEMU isa-debug-exit", "no such device (not QEMU, or not configured)");
}

static void try_acpi_reset(void)
{
    const struct acpi_power *a = &acpi; /* ACPI methods run only after power_init */
    if (a->reset_problem[0] != '\0') {
        report_failed("ACPI reset register", a->reset_problem);
        return;
    }
    kprintf("power: trying the ACPI reset register (%s 0x%llx <- 0x%02x)\n",
            gas_name(&a->reset_reg), (unsigned long long)a->reset_reg.address, a->reset_value);
    uint32_t v = a->reset_value;
    if (!gas_access(&a->reset_reg, true, &v)) {
        report_failed("ACPI reset register", "the register is not accessible");
        return;
    }
    settle(SETTLE_MS);
    report_failed("ACPI reset register", "the machine is still running 1 s after the write");
}

static bool kbc_input_empty(void)
{
    uint64_t deadline = tsc_after_ms(KBC_WAIT_MS);
    while (arch_i8042_input_full())
        if (tsc_passed(deadline))
            return false;
    return true;
}

static void try_kbc(void)
{
    kprintf("power: trying the 8042 reset line (0x%02x to port 0x%x)\n", I8042_CMD_PULSE_RESET,
            I8042_STATUS);
    if (!kbc_input_empty()) {
        report_failed("8042 reset", "the controller's input buffer stays full (no 8042?)");
        return;
    }
    arch_i8042_pulse_reset();
    settle(SETTLE_MS);
    report_failed("8042 reset", "the machine is still running 1 s after the pulse");
}

/* Tries the off methods in order; returns only if each of them failed. */
static void off_methods(unsigned methods)
{
    kprintf("power: powering off\n");
    methods = usable_methods(methods);
    if (methods & POWER_EFI)
        try_efi(EFIRT_RESET_SHUTDOWN, "EfiResetShutdown");
    if (methods & POWER_ACPI)
        try_acpi_s5();
    if (methods & POWER_QEMU_EXIT)
        try_qemu_exit();
}

/* Tries the reset methods in order; returns only if each of them failed. */
static void reboot_methods(unsigned methods)
{
    kprintf("power: rebooting\n");
    methods = usable_methods(methods);
    if (methods & POWER_EFI)
        try_efi(EFIRT_RESET_COLD, "EfiResetCold");
    if (methods & POWER_ACPI)
        try_acpi_reset();
    if (methods & POWER_KBC)
        try_kbc();
    if (methods & POWER_TRIPLE) {
        kprintf("power: trying a triple fault\n");
        arch_triple_fault();
    }
}

void power_off_using(unsigned methods)
{
    uint64_t rflags = arch_read_rflags();
    arch_cli();
    off_methods(methods);
    kprintf("power: the machine could not be powered off\n");
    if (rflags & ARCH_RFLAGS_IF)
        arch_sti();
}

void power_reboot_using(unsigned methods)
{
    uint64_t rflags = arch_read_rflags();
    arch_cli();
    reboot_methods(methods);
    kprintf("power: the machine could not be reset\n");
    if (rflags & ARCH_RFLAGS_IF)
        arch_sti();
}

void power_off(void)
{
    arch_cli();
    off_methods(POWER_EFI | POWER_ACPI | POWER_QEMU_EXIT);
    kprintf("power: nothing could power the machine off; halted: turn it off by hand\n");
    arch_halt_forever();
}

void power_reboot(void)
{
    arch_cli();
    reboot_methods(POWER_EFI | POWER_ACPI | POWER_KBC | POWER_TRIPLE);
    kprintf("power: nothing could reset the machine; halted: reset it by hand\n");
    arch_halt_forever();
}

void power_init(const struct canopy_bootinfo *bi)
{
    power_bi = bi;
    const char *why = efirt_init(bi);
    acpi_power_read(bi->rsdp, acpi_boot_map, NULL, &acpi);
    kmm_early_unmap_all(); /* what was read is copied into `acpi` */
    uint32_t fw_rev, uefi_rev;
    const char *vendor = efirt_firmware(&fw_rev, &uefi_rev);
    /* The revision's low half is minor * 10 + the third number: 2.70 is 2.7, 2.31 is 2.3.1. */
    unsigned major = uefi_rev >> 16, minor = uefi_rev & 0xffffu;
    char uefi[24];
    if (minor % 10)
        fmt_snprintf(uefi, sizeof(uefi), "%u.%u.%u", major, minor / 10, minor % 10);
    else
        fmt_snprintf(uefi, sizeof(uefi), "%u.%u", major, minor / 10);
    kprintf("power: firmware \"%s\" revision 0x%x, UEFI %s\n", vendor, fw_rev, uefi);
    const char *off = efirt_reset_problem(EFIRT_RESET_SHUTDOWN);
    const char *cold = efirt_reset_problem(EFIRT_RESET_COLD);
    if (why == NULL && off == NULL && cold == NULL)
        kprintf("power: UEFI runtime services look usable for ResetSystem\n");
    else if (cold != NULL)
        kprintf("power: UEFI ResetSystem will not be used: %s\n", cold);
    else
        kprintf("power: UEFI ResetSystem will be used to reboot, not to power off: %s\n", off);
}

void power_cmdline(const char *cmdline)
{
    char v[24];
    if (power_bi == NULL || !cmdline_get(cmdline, "power", v, sizeof(v)))
        return;
    kprintf("power: the command line asks for power=%s\n", v);
    if (str_eq(v, "off"))
        power_off();
    else if (str_eq(v, "reboot"))
        power_reboot();
    else if (str_eq(v, "off-acpi"))
        power_off_using(POWER_ACPI | POWER_QEMU_EXIT);
    else if (str_eq(v, "reboot-acpi"))
        power_reboot_using(POWER_ACPI | POWER_KBC | POWER_TRIPLE);
    else if (str_eq(v, "reboot-8042"))
        power_reboot_using(POWER_KBC | POWER_TRIPLE);
    else if (str_eq(v, "reboot-triple"))
        power_reboot_using(POWER_TRIPLE);
    else
        kprintf("power: unknown power=%s (off, reboot, off-acpi, reboot-acpi, reboot-8042, "
                "reboot-triple)\n",
                v);
}
