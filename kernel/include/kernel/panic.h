/*
 * panic: the end of the road for "cannot happen" and for boot data the
 * kernel cannot go on without.
 */
#ifndef KERNEL_PANIC_H
#define KERNEL_PANIC_H

/* Prints "panic: <message>" on every console and halts the CPU for good. */
_Noreturn void panic(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
