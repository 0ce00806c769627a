/*
 * kstack: kernel stacks as dynamic-area allocations with a guard.
 *
 *   base               base + 4 KiB                       top
 *   | guard (unmapped) | stack pages (RW, NX) ...         |
 *   '- VM_KIND_GUARD --'- VM_KIND_STACK -----------------'
 *
 * Both areas carry the stack's name, so a fault in the guard is reported as
 * that stack's overflow. The stack grows down towards the guard; one page is
 * enough because kernel code never moves the stack pointer by a page at once
 * without touching what lies between (no alloca, no large frames).
 *
 * Called by whoever needs a stack (the self-test today; threads later).
 */
#include <stdint.h>

#include <canopy/page.h>
#include <kernel/kstack.h>
#include <kernel/vm.h>

enum vm_status kstack_alloc(uint64_t size, const char *name, uint64_t *top)
{
    uint64_t va;
    enum vm_status st = vm_alloc(size, PAGE_SIZE, VM_W | VM_GUARD, name, &va);
    if (st != VM_OK)
        return st;
    *top = va + page_up(size);
    return VM_OK;
}

enum vm_status kstack_free(uint64_t top)
{
    const struct vmm_vma *stack = vm_lookup(top - 1);
    if (stack == NULL || stack->attrs.kind != VM_KIND_STACK || vmm_vma_last(stack) != top - 1)
        return VM_ERR_NOT_MAPPED;
    uint64_t start = vmm_vma_start(stack);
    const struct vmm_vma *guard = vm_lookup(start - PAGE_SIZE);
    if (guard == NULL || guard->attrs.kind != VM_KIND_GUARD)
        return VM_ERR_NOT_MAPPED;
    return vm_free(start - PAGE_SIZE, top - start + PAGE_SIZE);
}

void kstack_call(uint64_t top, void (*fn)(void *), void *arg)
{
    /*
     * rbx (callee-saved, so fn keeps it) holds the old stack pointer; at fn's
     * entry rsp is top - 8, as after any call from a 16-byte aligned stack.
     */
    __asm__ volatile("mov %%rsp, %%rbx\n\t"
                     "mov %[top], %%rsp\n\t"
                     "call *%[fn]\n\t"
                     "mov %%rbx, %%rsp"
                     : "+D"(arg)
                     : [top] "r"(top), [fn] "r"(fn)
                     : "rbx", "rax", "rcx", "rdx", "rsi", "r8", "r9", "r10", "r11", "memory", "cc");
}
