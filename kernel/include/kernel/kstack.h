/*
 * kstack: kernel stacks from the dynamic area, each above an unmapped guard
 * page. A fault on the guard page is reported as a stack overflow naming the
 * stack (kernel/mm/fault.c finds the guard area through vm_lookup).
 */
#ifndef KERNEL_KSTACK_H
#define KERNEL_KSTACK_H

#include <stdint.h>

#include <kernel/vm.h>

/*
 * Allocates a stack of size bytes (rounded up to pages, mapped at once, RW NX)
 * named name, with a guard page below; *top gets the address above its last
 * byte (16-byte aligned, the initial stack pointer). => name outlives the stack.
 */
enum vm_status kstack_alloc(uint64_t size, const char *name, uint64_t *top) MUST_CHECK;

/* Frees the stack whose top kstack_alloc returned, with its guard page. */
enum vm_status kstack_free(uint64_t top) MUST_CHECK;

/*
 * Runs fn(arg) on the stack whose top is given and returns to the caller's
 * stack afterwards. => top 16-byte aligned and mapped below.
 */
void kstack_call(uint64_t top, void (*fn)(void *), void *arg);

#endif
