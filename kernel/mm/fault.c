/*
 * fault: the page-fault handler.
 *
 * A not-present fault in a demand-zero area of the kernel address space is
 * resolved: vm_fault_demand maps a zeroed frame with the area's protection
 * and the access is retried. Every other page fault is fatal. The report
 * says what kind of access faulted and where, names the area of the kernel
 * address space holding the address (or says that none does), then walks the
 * live page tables from CR3 with vmm/pt's pt_walk and prints the walk as the
 * shell's `walk` does (vmm/ptdump's report): each level's entry and flags,
 * then either the level whose entry is not present or where the page lies. A fault in a guard area
 * (below the boot stack and every kernel stack from kstack_alloc) is called a stack overflow of
 * that area's name; before the address space exists, the guards registered with fault_add_guard
 * (the boot stack's) are used. The handler runs on its own IST stack (see arch/x86_64/idt.c), so a
 * stack overflow still gets a report.
 *
 * The walk reads the tables through the HHDM. It is only attempted once the
 * HHDM base and depth are known (fault_init), and a fault during the report
 * is caught by the trap layer's nested-fault guard.
 */
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <arch/cpu.h>
#include <arch/trap.h>
#include <canopy/compiler.h>
#include <canopy/fmt.h>
#include <canopy/vaddr.h>
#include <kernel/fault.h>
#include <kernel/vm.h>
#include <vmm/pt.h>
#include <vmm/ptdump.h>

#define GUARD_MAX 16

static struct {
    uint64_t va, size;
    const char *name;
} guards[GUARD_MAX];
static unsigned guard_count;

static uint64_t hhdm;
static unsigned levels;

static char detail[1536];
static size_t detail_len;

static void detail_sink(void *ctx, const char *s, size_t n)
{
    (void)ctx;
    for (size_t i = 0; i < n && detail_len + 1 < sizeof(detail); i++)
        detail[detail_len++] = s[i];
    detail[detail_len] = '\0';
}

PRINTF_LIKE(1, 2) static void detail_add(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fmt_vformat(detail_sink, NULL, fmt, ap);
    va_end(ap);
}

bool fault_add_guard(uint64_t va, uint64_t size, const char *name)
{
    if (guard_count == GUARD_MAX)
        return false;
    guards[guard_count].va = va;
    guards[guard_count].size = size;
    guards[guard_count].name = name;
    guard_count++;
    return true;
}

/* The walk of va through the live page tables (vmm/ptdump's report, as `walk` prints it). */
static void describe_walk(uint64_t va)
{
    struct pt view = {
        .root = arch_read_cr3() & ARCH_CR3_ADDR,
        .levels = levels,
        .nx = true,
        .virt_offset = hhdm,
        .table_count = 1, /* a live hierarchy: pt_walk skips an empty one */
    };
    if (!va_is_canonical(va, levels)) {
        detail_add("  0x%016llx is not canonical for %u-level paging\n", (unsigned long long)va,
                   levels);
        return;
    }
    struct pt_walk w;
    pt_walk(&view, va_init(va), &w);
    ptdump_walk(&w, va, levels, detail_sink, NULL);
}

static void fault_page(struct trap_frame *f)
{
    uint64_t va = arch_read_cr2();
    uint64_t err = f->error_code;
    detail_len = 0;
    detail[0] = '\0';

    const char *access = (err & PF_ERR_FETCH)   ? "instruction fetch"
                         : (err & PF_ERR_WRITE) ? "write"
                                                : "read";
    const char *cause = (err & PF_ERR_RSVD)      ? "a reserved bit set in a paging entry"
                        : (err & PF_ERR_PRESENT) ? "a protection violation"
                                                 : "a page that is not present";
    const char *demand_failed = NULL;
    if (!(err & (PF_ERR_PRESENT | PF_ERR_USER | PF_ERR_RSVD))) {
        enum vm_access how = (err & PF_ERR_FETCH)   ? VM_ACCESS_EXEC
                             : (err & PF_ERR_WRITE) ? VM_ACCESS_WRITE
                                                    : VM_ACCESS_READ;
        if (vm_fault_demand(va, how, &demand_failed))
            return; /* a zeroed frame is mapped: the access is retried */
    }
    detail_add("page fault: %s %s at 0x%016llx, %s\n", (err & PF_ERR_USER) ? "user" : "kernel",
               access, (unsigned long long)va, cause);

    const struct vmm_vma *v = vm_lookup(va);
    bool named = false;
    if (v != NULL && v->attrs.kind == VM_KIND_GUARD) {
        detail_add("stack overflow: 0x%016llx is in the guard page of the %s "
                   "[0x%016llx, 0x%016llx)\n",
                   (unsigned long long)va, v->attrs.name, (unsigned long long)vmm_vma_start(v),
                   (unsigned long long)(vmm_vma_last(v) + 1));
        named = true;
    } else if (v != NULL) {
        detail_add("  in the area \"%s\" [0x%016llx, 0x%016llx), %s, %c%c%c%s\n", v->attrs.name,
                   (unsigned long long)vmm_vma_start(v), (unsigned long long)(vmm_vma_last(v) + 1),
                   vm_kind_name(v->attrs.kind), 'r', (v->attrs.prot & VM_W) ? 'w' : '-',
                   (v->attrs.prot & VM_X) ? 'x' : '-',
                   (v->attrs.flags & VMA_DEMAND) ? ", demand-zero" : "");
    } else if (vm_ready()) {
        detail_add("  in no area of the kernel address space\n");
    }
    if (demand_failed != NULL)
        detail_add("  demand-zero fill refused: %s\n", demand_failed);

    for (unsigned i = 0; i < guard_count && !named; i++)
        if (va - guards[i].va < guards[i].size)
            detail_add("stack overflow: 0x%016llx is in the guard page of the %s "
                       "[0x%016llx, 0x%016llx)\n",
                       (unsigned long long)va, guards[i].name, (unsigned long long)guards[i].va,
                       (unsigned long long)(guards[i].va + guards[i].size));

    if (levels != 0)
        describe_walk(va);
    else
        detail_add("  (page tables not walked: the HHDM is not known yet)\n");
    arch_trap_fatal(f, detail);
}

void fault_init(uint64_t hhdm_base, unsigned paging_levels)
{
    hhdm = hhdm_base;
    levels = paging_levels;
    arch_trap_set_handler(TRAP_PAGE_FAULT, fault_page);
}
