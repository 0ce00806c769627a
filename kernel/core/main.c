/*
 * main: the kernel's initialisation, in the order the hardware and the
 * hand-off allow.
 *
 *   1. GDT, TSS and IDT first: stage 1 arrives on the firmware's GDT, and any
 *      fault before the IDT is loaded would triple-fault silently.
 *   2. The serial console (it needs nothing), then the boot info check.
 *   3. The framebuffer console (once the boot info says where it is).
 *   4. The PMM and the page tables, adopted from stage 1.
 *   5. The trampoline identity page dropped, loader and boot-services memory
 *      reclaimed, the PMM checked and audited.
 *   6. The banner, and `canopy: ready` as the last line of initialisation.
 *
 * Each phase's TSC stamp goes into the boot info beside stage 1's.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <arch/cpu.h>
#include <arch/gdt.h>
#include <arch/irq.h>
#include <arch/trap.h>
#include <canopy/bootinfo.h>
#include <canopy/page.h>
#include <canopy/hwrng.h>
#include <canopy/rt.h>
#include <kernel/bootinfo.h>
#include <kernel/console.h>
#include <kernel/efirt.h>
#include <kernel/serial.h>
#include <kernel/fault.h>
#include <kernel/faultdemo.h>
#include <kernel/kmm.h>
#include <kernel/kselftest.h>
#include <kernel/main.h>
#include <kernel/manifest.h>
#include <kernel/panic.h>
#include <kernel/power.h>
#include <kernel/shellglue.h>
#include <kernel/vm.h>

#ifndef CANOPY_VERSION
#define CANOPY_VERSION "0"
#endif

/* A boot info pointer we can dereference at all: canonical, higher half, aligned. */
static bool bootinfo_pointer_ok(const struct canopy_bootinfo *bi)
{
    uint64_t v = (uint64_t)(uintptr_t)bi;
    return v >= CANOPY_HHDM_BASE_5L && (v & 7) == 0 && v <= UINT64_MAX - sizeof(*bi);
}

static void check_bootinfo(struct canopy_bootinfo *bi)
{
    if (!bootinfo_pointer_ok(bi))
        panic("canopy: boot info pointer 0x%016llx is not a higher-half address; "
              "was this kernel started by Canopy's stage 1?",
              (unsigned long long)(uintptr_t)bi);
    struct bootinfo_cpu cpu = {
        .cr3_root = arch_read_cr3() & ARCH_CR3_ADDR,
        .la57 = (arch_read_cr4() & ARCH_CR4_LA57) != 0,
        .nxe = (arch_rdmsr(ARCH_MSR_EFER) & ARCH_EFER_NXE) != 0,
    };
    const char *why = bootinfo_problem(bi, &cpu);
    if (why != NULL)
        panic("canopy: bad boot info: %s", why);
    if ((uint64_t)(uintptr_t)bi < bi->hhdm_base)
        panic("canopy: bad boot info: its address 0x%016llx is not in the HHDM",
              (unsigned long long)(uintptr_t)bi);
}

static void start_fb_console(struct canopy_bootinfo *bi)
{
    const struct canopy_framebuffer *fb = &bi->fb;
    if (fb->format == CANOPY_FB_NONE) {
        kprintf("console: no framebuffer; serial only\n");
        return;
    }
    if (fb->size_bytes == 0 || bi->fb_va < CANOPY_DYNAMIC_BASE ||
        bi->fb_va > CANOPY_DYNAMIC_END - fb->size_bytes ||
        !kmm_range_is_mapped(bi->fb_va, fb->size_bytes, true)) {
        kprintf("console: framebuffer 0x%llx (%llu bytes) is not mapped writable at 0x%llx in "
                "the dynamic area; serial only\n",
                (unsigned long long)fb->base, (unsigned long long)fb->size_bytes,
                (unsigned long long)bi->fb_va);
        return;
    }
    console_init_fb(fb, bi->fb_va);
}

static void print_banner(const struct canopy_bootinfo *bi)
{
    struct pmm_counts c;
    pmm_counts(kmm_pmm(), &c);
    uint64_t usable = c.free + c.used + c.reclaimable;
    kprintf("\nCanopy %s (x86_64)\n", CANOPY_VERSION);
    kprintf("memory: %llu MiB usable, %llu MiB free, %llu KiB in use\n",
            (unsigned long long)pages_to_mib(usable), (unsigned long long)pages_to_mib(c.free),
            (unsigned long long)pages_to_kib(c.used));
    kprintf("paging: %u levels, HHDM at 0x%016llx%s\n", bi->paging_levels,
            (unsigned long long)bi->hhdm_base,
            (bi->cpu_flags & CANOPY_CPU_PDPE1G) ? " (1 GiB pages)" : " (2 MiB pages)");
    kprintf("kernel segments:\n");
    for (uint32_t i = 0; i < bi->segment_count; i++) {
        const struct canopy_segment *s = &bi->segments[i];
        uint64_t size = s->page_count * PAGE_SIZE;
        kprintf("  %-8s 0x%016llx-0x%016llx -> phys 0x%012llx %6llu KiB %c%c%c\n",
                canopy_segment_name(s->flags), (unsigned long long)s->vaddr,
                (unsigned long long)(s->vaddr + size - 1), (unsigned long long)s->paddr,
                (unsigned long long)bytes_to_kib(size), (s->flags & CANOPY_SEG_R) ? 'R' : '-',
                (s->flags & CANOPY_SEG_W) ? 'W' : '-', (s->flags & CANOPY_SEG_X) ? 'X' : '-');
    }
    kprintf("boot stack: 0x%016llx-0x%016llx (guard page below)\n",
            (unsigned long long)(bi->stack_top_va - CANOPY_BOOT_STACK_SIZE),
            (unsigned long long)(bi->stack_top_va - 1));
    if (bi->fb.format != CANOPY_FB_NONE)
        kprintf("framebuffer: %ux%u, pitch %u, %u bpp at phys 0x%llx (%llu KiB), mapped at "
                "0x%016llx %s%s\n",
                bi->fb.width, bi->fb.height, bi->fb.pitch_bytes, bi->fb.bpp,
                (unsigned long long)bi->fb.base,
                (unsigned long long)bytes_to_kib(bi->fb.size_bytes), (unsigned long long)bi->fb_va,
                (bi->cpu_flags & CANOPY_CPU_PAT) ? "write-combining" : "uncached",
                console_has_fb() ? "" : " (console off)");
    kprintf("secure boot: %s, kernel verified: %s\n",
            (bi->boot_flags & CANOPY_BOOT_SECURE_BOOT) ? "on" : "off",
            (bi->boot_flags & CANOPY_BOOT_KERNEL_VERIFIED) ? "yes" : "no");
    if (bi->cmdline[0] != '\0')
        kprintf("command line: %s\n", bi->cmdline);
    if (bi->tsc_hz != 0 && bi->phase_tsc[CANOPY_PHASE_STAGE1_ENTRY] != 0) {
        uint64_t ticks = arch_rdtsc() - bi->phase_tsc[CANOPY_PHASE_STAGE1_ENTRY];
        kprintf("boot time: %llu ms from stage 1 entry\n",
                (unsigned long long)(ticks / (bi->tsc_hz / 1000 ? bi->tsc_hz / 1000 : 1)));
    }
}

#define TIMER_HZ 100
/* How long to wait for the first timer ticks: 0.2 s, or 2^29 cycles if the TSC rate is unknown. */
#define TIMER_CHECK_CYCLES(tsc_hz) ((tsc_hz) ? (tsc_hz) / 5 : (1ull << 29))

static void start_timer(const struct canopy_bootinfo *bi)
{
    if (arch_timer_start(TIMER_HZ, TIMER_CHECK_CYCLES(bi->tsc_hz)))
        kprintf("timer: PIT at %u Hz through the 8259; the CPU halts when idle\n", TIMER_HZ);
    else
        kprintf("timer: no PIT ticks through the 8259; idling by polling\n");
}

/* Unprotected: the stack canary changes while it runs (the functions it calls are protected). */
RT_NO_STACK_PROTECTOR void kernel_main(struct canopy_bootinfo *bi)
{
    arch_gdt_init();
    arch_idt_init();
    console_init_serial();
    kprintf("canopy: kernel entered\n");

    check_bootinfo(bi);
    serial_set_tsc_hz(bi->tsc_hz); /* serial waits in time, not status reads */
    rt_set_sinks(kprintf, panic);  /* smashed canaries panic; UBSan reports print */
    struct hwrng_result hw;
    enum rt_seed seed = rt_canary_seed(bi->random_seed, bi->random_seed != 0, &hw);
    char seed_from[160];
    rt_seed_describe(seed, &hw, seed_from, sizeof(seed_from));
    kprintf("stack protector: canary from %s\n", seed_from);
    kmm_early_init(bi);
    fault_init(bi->hhdm_base, bi->paging_levels);
    uint64_t stack_low = bi->stack_top_va - CANOPY_BOOT_STACK_SIZE;
    fault_add_guard(stack_low - PAGE_SIZE, PAGE_SIZE, "boot stack");
    start_fb_console(bi);
    bi->phase_tsc[CANOPY_PHASE_CONSOLES_UP] = arch_rdtsc();
    kprintf("console: serial %s, framebuffer %s\n", console_has_serial() ? "on" : "off",
            console_has_fb() ? "on" : "off");

    kmm_adopt(bi);
    manifest_init(bi);
    kmm_drop_identity();
    power_init(bi); /* before reclaim: the firmware's memory attributes table is there */
    kmm_reclaim();
    char msg[160];
    if (pmm_check(kmm_pmm(), msg, sizeof(msg)) != PMM_OK)
        panic("pmm_check failed after reclaim: %s", msg);
    bi->phase_tsc[CANOPY_PHASE_PMM_RECLAIM] = arch_rdtsc();
    vm_init(bi); /* the kernel address space and kmalloc */
    kmm_audit();
    start_timer(bi);

    print_banner(bi);
    shellglue_start(bi);        /* ends with `canopy: ready` */
    efirt_fault_record_clear(); /* a record of failed boots before this one, if any */
    kselftest_boot(bi);         /* selftest[=...] (boot tests) */
    faultdemo_run(bi->cmdline);
    power_cmdline(bi->cmdline); /* power=off|reboot|... for boot tests */
    shellglue_run();
}
