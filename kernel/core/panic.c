/*
 * panic: report and stop. Used for "cannot happen" and for boot data the
 * kernel cannot continue without (a PMM that fails its check, say). A panic
 * while panicking stops at once.
 */
#include <stdarg.h>

#include <arch/cpu.h>
#include <kernel/console.h>
#include <kernel/panic.h>

static volatile int panicking;

_Noreturn void panic(const char *fmt, ...)
{
    arch_cli();
    if (panicking++)
        arch_halt_forever();
    va_list ap;
    va_start(ap, fmt);
    kprintf("\npanic: ");
    kvprintf(fmt, ap);
    va_end(ap);
    kprintf("\n*** system halted\n");
    arch_halt_forever();
}
