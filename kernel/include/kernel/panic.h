/*
 * panic: the end of the road for "cannot happen" and for boot data the
 * kernel cannot go on without.
 */
#ifndef KERNEL_PANIC_H
#define KERNEL_PANIC_H

#include <canopy/compiler.h>

/* Prints "panic: <message>" on every console and halts the CPU for good. */
_Noreturn void panic(const char *fmt, ...) PRINTF_LIKE(1, 2);

#endif
