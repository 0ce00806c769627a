/*
 * console: the kernel's output, multiplexed to every console that is up
 * (the COM1 serial port and the framebuffer console), and kprintf on top.
 * Either console may be missing; output then goes to the other one, or
 * nowhere, and never blocks.
 */
#ifndef KERNEL_CONSOLE_H
#define KERNEL_CONSOLE_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

#include <canopy/bootinfo.h>
#include <canopy/compiler.h>

/* Brings up COM1 (if a UART answers). Returns true if it did. */
bool console_init_serial(void);

/*
 * Brings up the framebuffer console on the GOP framebuffer, whose first byte
 * (physical fb->base) is mapped at fb_va. Returns false (and says why on
 * serial) if there is no framebuffer or its description is unusable.
 */
bool console_init_fb(const struct canopy_framebuffer *fb, uint64_t fb_va);

/* Writes n bytes to every console. */
void console_write(const char *s, size_t n);

/*
 * Writes n bytes to every console but leaves the screen to console_flush: a
 * burst of small writes (the shell echoing typed input) then repaints the
 * framebuffer once, not once per byte.
 */
void console_write_deferred(const char *s, size_t n);

/* Repaints the framebuffer console with everything written so far. */
void console_flush(void);

/* Stops using the framebuffer console (a fault while drawing, for instance). */
void console_disable_fb(void);

/* Which consoles are up. */
bool console_has_serial(void);
bool console_has_fb(void);

/* One byte of input from the serial console, or -1 if none is waiting. */
int console_poll_input(void);

/* Formatted output to every console (lib's fmt conversions). */
void kprintf(const char *fmt, ...) PRINTF_LIKE(1, 2);
void kvprintf(const char *fmt, va_list ap);

#endif
