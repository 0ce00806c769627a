/*
 * cpu: the out-of-line privileged helpers (halting, leaving QEMU). The inline
 * ones are in arch/cpu.h.
 */
#include <arch/cpu.h>

#define QEMU_DEBUG_EXIT_PORT 0xf4

_Noreturn void arch_halt_forever(void)
{
    for (;;)
        __asm__ volatile("cli; hlt" ::: "memory");
}

void arch_qemu_exit(uint32_t code)
{
    arch_outl(QEMU_DEBUG_EXIT_PORT, code);
}
