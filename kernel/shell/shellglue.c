/*
 * shellglue: the debug shell's callbacks over the live machine, and the
 * kernel's idle loop that feeds it.
 *
 * The shell (shell.c) formats; this file only hands over data: the PMM,
 * the boot memory map, walks of the live page tables (CR3 read afresh each
 * time, so a dump shows what the MMU uses), guarded memory reads for `peek`,
 * the boot timestamps, and the page-table dumps of vmm/src/ptdump.c with section
 * markers and labels. `pt check` compares the live tables with the mapping
 * manifest (mm/manifest.c) and applies the frame and direct-map rules
 * (mm/ptcheck.c); `pt check efi` applies the frame rules to the EFI runtime
 * tables as a call sees them.
 *
 * Input: COM1 and the PS/2 keyboard are polled from one loop. The UART's
 * receive interrupt (IRQ 4) is enabled only to wake the halted CPU; its
 * handler does nothing, the loop reads every waiting byte before it halts
 * again, so the line always drops and the next byte raises a fresh edge.
 * Output goes to serial at once and to the screen at most every SCREEN_TICKS
 * timer ticks (the tick wakes the loop to draw what is left), so a burst of
 * pasted lines costs a few repaints, not one per echoed byte.
 *
 * Called by kernel_main: shellglue_start, then shellglue_run.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <arch/cpu.h>
#include <arch/irq.h>
#include <canopy/bootinfo.h>
#include <canopy/page.h>
#include <canopy/vaddr.h>
#include <kernel/console.h>
#include <kernel/efirt.h>
#include <kernel/kbd.h>
#include <kernel/kmalloc.h>
#include <kernel/kmm.h>
#include <kernel/kselftest.h>
#include <kernel/manifest.h>
#include <kernel/power.h>
#include <kernel/ptcheck.h>
#include <kernel/serial.h>
#include <kernel/shell.h>
#include <kernel/shellglue.h>
#include <kernel/vm.h>
#include <vmm/ptdump.h>

#define IRQ_COM1     4
#define CHECK_LINES  32  /* frame-rule lines `pt check` prints before it only counts */
#define SERIAL_BURST 256 /* bytes read per loop turn before the keyboard gets its turn */
#define KBD_POLLS    16  /* keyboard status reads per loop turn */
#define SCREEN_TICKS 3   /* timer ticks between repaints while input streams in */

#define EFI_MEMORY_MAPPED_IO      11
#define EFI_MEMORY_MAPPED_IO_PORT 12

static struct shell sh;
static struct kbd kbd;
static struct shell_ops ops;
static bool screen_dirty;
static uint64_t screen_tick;

/* ---- the live page tables ------------------------------------------------------------------ */

/* The kernel's hierarchy as the MMU sees it now: the adopted pt, rooted at CR3. */
static struct pt live_pt(void)
{
    struct pt v = *kmm_pt();
    v.root = arch_read_cr3() & ARCH_CR3_ADDR;
    if (v.table_count == 0)
        v.table_count = 1; /* a live hierarchy has at least its root */
    return v;
}

/* A VMA's name, or its kind's when it has none. */
static const char *vma_name(const struct vmm_vma *v)
{
    return v->attrs.name ? v->attrs.name : vm_kind_name(v->attrs.kind);
}

/*
 * The label of the page at va: the VMA tree's name for it, else a kernel
 * segment, the boot stack or the manifest's owner (before the tree exists).
 */
static const char *label_of(void *ctx, uint64_t va)
{
    const struct canopy_bootinfo *bi = ctx;
    const struct vmm_vma *v = vm_lookup(va);
    if (v)
        return vma_name(v);
    for (uint32_t i = 0; i < bi->segment_count && i < CANOPY_MAX_SEGMENTS; i++) {
        const struct canopy_segment *s = &bi->segments[i];
        if (va >= s->vaddr && va - s->vaddr < s->page_count * PAGE_SIZE)
            return canopy_segment_name(s->flags);
    }
    uint64_t stack_low = bi->stack_top_va - CANOPY_BOOT_STACK_SIZE;
    if (va >= stack_low && va < bi->stack_top_va)
        return "boot stack";
    const struct manifest *m = manifest_kernel();
    const struct canopy_mapping *e = m ? manifest_lookup(m, va) : NULL;
    return e ? pmm_owner_name(e->owner) : NULL;
}

/* One part of an address space the frame rules look at. */
struct check_view {
    const struct pt *pt;
    uint64_t first, last;
};

/*
 * The runs of the views' leaves in kmalloc'ed storage (counted first, then
 * collected; the tables do not change in between). Returns false, and says
 * so in a `pt check:` line, if there is no room for them.
 */
static bool collect_runs(const struct check_view *views, size_t n, struct ptcheck_runs *r,
                         fmt_sink sink, void *sink_ctx)
{
    uint64_t pat = kmm_pat();
    struct ptcheck_runs counting = {.pat = pat};
    for (size_t i = 0; i < n; i++)
        ptcheck_collect(&counting, views[i].pt, views[i].first, views[i].last);
    size_t cap = counting.needed ? counting.needed : 1;
    *r = (struct ptcheck_runs){
        .runs = kmalloc(cap * sizeof(struct ptcheck_run)), .cap = cap, .pat = pat};
    if (r->runs == NULL) {
        fmt_format(sink, sink_ctx, "pt check: no memory for the frame rules (%zu runs)\n", cap);
        return false;
    }
    for (size_t i = 0; i < n; i++)
        ptcheck_collect(r, views[i].pt, views[i].first, views[i].last);
    return true;
}

/*
 * `pt check`: the manifest against the live tables, then the direct map's
 * runs and rule, then the frame rules; one verdict for all of them.
 */
static void pt_check_kernel(const struct canopy_bootinfo *bi, bool list_runs, fmt_sink sink,
                            void *sink_ctx)
{
    struct pt v = live_pt();
    const struct manifest *m = manifest_kernel();
    uint64_t differences = 0;
    if (m)
        differences += manifest_set_diff(m, &v, sink, sink_ctx);
    else
        fmt_format(sink, sink_ctx, "pt check: no manifest\n");
    const struct check_view all = {&v, 0, UINT64_MAX};
    struct ptcheck_runs r;
    if (collect_runs(&all, 1, &r, sink, sink_ctx)) {
        differences += ptcheck_direct_map(
            r.runs, r.count, bi->hhdm_base, CANOPY_DYNAMIC_BASE - bi->hhdm_base,
            kmm_phys_to_virt(bi->mem_ranges), bi->mem_range_count, list_runs, sink, sink_ctx);
        differences += ptcheck_frames(r.runs, r.count, CHECK_LINES, sink, sink_ctx);
        kfree(r.runs);
    } else {
        differences++;
    }
    manifest_verdict(differences + (m == NULL), m ? m->count : 0, sink, sink_ctx);
}

/*
 * `pt check efi`: the EFI address space as ResetSystem runs on it (its own
 * lower half, the kernel's upper half), under the frame rules and W+X.
 */
static void pt_check_efi(const struct canopy_bootinfo *bi, fmt_sink sink, void *sink_ctx)
{
    const char *why = NULL;
    const struct pt *e = efirt_pt(&why);
    if (e == NULL) {
        fmt_format(sink, sink_ctx, "pt check: the EFI runtime tables are not built: %s\n",
                   why ? why : "unknown reason");
        manifest_verdict(1, 0, sink, sink_ctx);
        return;
    }
    struct pt v = live_pt();
    const struct check_view views[] = {
        {e, 0, va_lower_end(bi->paging_levels) - 1},
        {&v, va_upper_start(bi->paging_levels), UINT64_MAX},
    };
    struct ptcheck_runs r;
    uint64_t differences = 1;
    size_t lower = 0;
    if (collect_runs(views, 2, &r, sink, sink_ctx)) {
        while (lower < r.count && r.runs[lower].va < va_lower_end(bi->paging_levels))
            lower++;
        differences = ptcheck_wx(r.runs, r.count, sink, sink_ctx);
        differences += ptcheck_frames(r.runs, r.count, CHECK_LINES, sink, sink_ctx);
        kfree(r.runs);
    }
    if (differences == 0)
        fmt_format(sink, sink_ctx,
                   "pt check: OK (EFI runtime tables: %zu runs of identity maps, the kernel's "
                   "upper half)\n",
                   lower);
    else
        manifest_verdict(differences, 0, sink, sink_ctx);
}

static void op_pt(void *ctx, enum shell_pt_mode mode, uint64_t start, uint64_t last, fmt_sink sink,
                  void *sink_ctx)
{
    const struct canopy_bootinfo *bi = ctx;
    struct pt v = live_pt();
    const struct ptdump_marker markers[] = {
        {0, "user space"},
        {va_lower_end(bi->paging_levels), "non-canonical hole"},
        {bi->hhdm_base, "HHDM"},
        {CANOPY_DYNAMIC_BASE, "dynamic area"},
        {CANOPY_DYNAMIC_END, "unused"},
        {CANOPY_KERNEL_BASE, "kernel image"},
    };
    uint64_t pat = kmm_pat();
    struct ptdump_options o = {
        .first = start,
        .last = last,
        .markers = markers,
        .marker_count = sizeof(markers) / sizeof(markers[0]),
        .label = label_of,
        .label_ctx = ctx,
        .pat = &pat,
    };
    switch (mode) {
    case SHELL_PT_HUMAN:
        (void)ptdump_human(&v, &o, sink, sink_ctx);
        break;
    case SHELL_PT_QEMU:
        ptdump_qemu_mem(&v, sink, sink_ctx);
        break;
    case SHELL_PT_TLB:
        ptdump_qemu_tlb(&v, sink, sink_ctx);
        break;
    case SHELL_PT_CHECK:
        pt_check_kernel(bi, true, sink, sink_ctx);
        break;
    case SHELL_PT_CHECK_EFI:
        pt_check_efi(bi, sink, sink_ctx);
        break;
    }
}

static void op_walk(void *ctx, uint64_t va, struct shell_walk *out)
{
    (void)ctx;
    struct pt v = live_pt();
    out->root = v.root;
    out->levels = v.levels;
    pt_walk(&v, va_init(va), &out->walk);
}

/* True if pa is memory (not a device) per the boot memory map. */
static bool phys_is_memory(const struct canopy_bootinfo *bi, uint64_t pa)
{
    const struct canopy_mem_range *r = kmm_phys_to_virt(bi->mem_ranges);
    for (uint32_t i = 0; i < bi->mem_range_count; i++) {
        if (pa < r[i].base || (pa - r[i].base) / PAGE_SIZE >= r[i].page_count)
            continue;
        switch (r[i].type) {
        case CANOPY_MEM_USABLE:
        case CANOPY_MEM_RECLAIMABLE:
        case CANOPY_MEM_ACPI_RECLAIM:
        case CANOPY_MEM_ACPI_NVS:
        case CANOPY_MEM_RUNTIME:
        case CANOPY_MEM_PERSISTENT:
            return r[i].efi_type != EFI_MEMORY_MAPPED_IO &&
                   r[i].efi_type != EFI_MEMORY_MAPPED_IO_PORT;
        default:
            return false;
        }
    }
    return false;
}

/*
 * Reads only through a present, cacheable leaf onto memory the map calls
 * memory: a read from a device (framebuffer, MMIO, flash) can have effects,
 * and those are refused as if unmapped.
 */
static bool op_peek(void *ctx, uint64_t va, void *buf, size_t len)
{
    const struct canopy_bootinfo *bi = ctx;
    struct pt v = live_pt();
    struct pt_leaf leaf;
    if (len == 0 || !kmm_range_is_mapped(va, len, false) ||
        pt_query(&v, va_init(va), &leaf) != PT_OK)
        return false;
    if ((leaf.attrs & PT_CACHE_MASK) != PT_CACHE_WB)
        return false;
    if (!phys_is_memory(bi, leaf.pa + (va - leaf.va)))
        return false;
    __builtin_memcpy(buf, (const void *)(uintptr_t)va, len);
    return true;
}

static void op_vma_bounds(void *ctx, uint64_t *start, uint64_t *last)
{
    (void)ctx;
    const struct vmm_space *s = vm_space();
    *start = s->start;
    *last = s->last;
}

static bool op_vma_next(void *ctx, uint64_t from, struct shell_vma *out)
{
    (void)ctx;
    /* The shell prints each VMA before asking for the next: one name buffer will do. */
    static char guard_name[64];
    const struct vmm_vma *v = vmm_space_first_from(vm_space(), from);
    if (!v)
        return false;
    const char *name = vma_name(v);
    if (v->attrs.kind == VM_KIND_GUARD) {
        fmt_snprintf(guard_name, sizeof(guard_name), "%s (guard page, never mapped)", name);
        name = guard_name;
    }
    *out = (struct shell_vma){.start = vmm_vma_start(v),
                              .last = vmm_vma_last(v),
                              .prot = v->attrs.prot & (PT_W | PT_X | PT_U),
                              .name = name};
    return true;
}

/* The memory manager's self-test prints on the consoles itself; sink stays unused. */
static bool op_selftest(void *ctx, fmt_sink sink, void *sink_ctx)
{
    (void)ctx;
    (void)sink;
    (void)sink_ctx;
    return kselftest_run() == 0;
}

static void op_reboot(void *ctx)
{
    (void)ctx;
    power_reboot();
}

static void op_poweroff(void *ctx)
{
    (void)ctx;
    power_off();
}

static const struct pmm *op_pmm(void *ctx)
{
    (void)ctx;
    return kmm_pmm();
}

static const struct canopy_mem_range *op_memmap(void *ctx, size_t *count)
{
    const struct canopy_bootinfo *bi = ctx;
    *count = bi->mem_range_count;
    return kmm_phys_to_virt(bi->mem_ranges);
}

static void op_boottime(void *ctx, struct shell_boottime *out)
{
    const struct canopy_bootinfo *bi = ctx;
    out->tsc_hz = bi->tsc_hz;
    for (unsigned p = 0; p < CANOPY_PHASE_COUNT; p++)
        out->phase_tsc[p] = bi->phase_tsc[p];
    out->pt_frames_used = bi->pt_frames_used;
    out->pt_frames_minimum = bi->pt_frames_minimum;
    out->secure_boot = (bi->boot_flags & CANOPY_BOOT_SECURE_BOOT) != 0;
    out->kernel_verified = (bi->boot_flags & CANOPY_BOOT_KERNEL_VERIFIED) != 0;
}

static void op_write(void *ctx, const char *s, size_t n)
{
    (void)ctx;
    console_write_deferred(s, n);
    screen_dirty = true;
}

static void console_sink(void *ctx, const char *s, size_t n)
{
    (void)ctx;
    console_write(s, n);
}

/* ---- input ------------------------------------------------------------------------------------
 */

static uint8_t port_in8(void *ctx, uint16_t port)
{
    (void)ctx;
    return arch_inb(port);
}

static void port_out8(void *ctx, uint16_t port, uint8_t value)
{
    (void)ctx;
    arch_outb(port, value);
}

/* IRQ 4 only wakes the CPU; the loop reads the bytes (which lowers the line). */
static void serial_wake(void)
{
}

void shellglue_start(struct canopy_bootinfo *bi)
{
    ops = (struct shell_ops){
        .ctx = bi,
        .write = op_write,
        .paging_levels = bi->paging_levels,
        .pmm = op_pmm,
        .memmap = op_memmap,
        .pt = op_pt,
        .walk = op_walk,
        .peek = op_peek,
        .boottime = op_boottime,
        .reboot = op_reboot,
        .poweroff = op_poweroff,
    };
    if (vm_ready()) {
        ops.vma_bounds = op_vma_bounds;
        ops.vma_next = op_vma_next;
        ops.selftest = op_selftest;
    }
    shell_init(&sh, &ops);

    struct kbd_io io = {.in8 = port_in8, .out8 = port_out8, .ctx = NULL};
    enum kbd_status ks = kbd_init(&kbd, &io);
    kprintf("keyboard: %s%s\n", kbd_status_str(ks), kbd.present ? "" : "; serial input only");
    if (console_has_serial()) {
        bool woken = arch_irq_enable(IRQ_COM1, serial_wake) && serial_enable_rx_interrupt();
        kprintf("serial: input %s\n",
                woken ? "wakes the CPU (IRQ 4)" : "polled between timer ticks");
    }

    /* `pt check` once at every boot, so every boot log says whether the tables are sound. */
    pt_check_kernel(bi, false, console_sink, NULL); /* the runs: `pt check` at the prompt */
    bi->phase_tsc[CANOPY_PHASE_SHELL_READY] = arch_rdtsc();
    kprintf("canopy: ready\n");
}

/*
 * Repaints the screen if output is waiting, at most every SCREEN_TICKS ticks:
 * the timer wakes the loop, so what is held back is drawn within that time.
 * Without a timer (no ticks) it repaints whenever asked.
 */
static void screen_update(void)
{
    uint64_t now = arch_timer_ticks();
    if (!screen_dirty || (now != 0 && now - screen_tick < SCREEN_TICKS))
        return;
    console_flush();
    screen_dirty = false;
    screen_tick = now;
}

_Noreturn void shellglue_run(void)
{
    shell_prompt(&sh);
    for (;;) {
        bool busy = false;
        for (unsigned n = 0; n < SERIAL_BURST; n++) {
            int c = console_poll_input();
            if (c < 0)
                break;
            shell_input(&sh, (char)c);
            busy = true;
        }
        for (unsigned n = 0; n < KBD_POLLS; n++) {
            char c;
            if (kbd_poll(&kbd, &c)) {
                shell_input(&sh, c);
                busy = true;
            }
        }
        screen_update();
        if (!busy)
            arch_idle();
    }
}
