/*
 * irq: legacy interrupt sources, just enough for the CPU to sleep between
 * polls: the 8259 PICs remapped to vectors 0x20-0x2f with everything masked
 * but the 8254 PIT's periodic tick.
 */
#ifndef ARCH_IRQ_H
#define ARCH_IRQ_H

#include <stdbool.h>
#include <stdint.h>

#define IRQ_VECTOR_BASE 0x20 /* IRQ n arrives on vector 0x20 + n */

/*
 * Remaps and masks the PICs, starts the PIT at `hz` and checks that ticks
 * arrive (within about tsc_budget TSC cycles). Returns true if they do; the
 * timer is then on and arch_idle() sleeps. Otherwise every source stays
 * masked, interrupts stay off and arch_idle() only pauses.
 * => after arch_idt_init(), interrupts off.
 */
bool arch_timer_start(uint32_t hz, uint64_t tsc_budget);

/*
 * Routes legacy IRQ `line` (1, 3-15) to handler and unmasks it; the PIC is
 * acknowledged after handler returns. Returns false (nothing changed) if the
 * timer is not on (the PICs are then left masked) or the line is not usable.
 * A device that keeps its line raised needs its cause removed before the next
 * edge can arrive (the 8259 is edge triggered).
 * => interrupts off; handler runs with interrupts off.
 */
bool arch_irq_enable(unsigned line, void (*handler)(void));

/* Timer ticks since arch_timer_start. */
uint64_t arch_timer_ticks(void);

/*
 * Waits a little: until the next interrupt if the timer ticks (sti; hlt with
 * no window for a lost wake-up), else one pause. Returns with interrupts off.
 */
void arch_idle(void);

#endif
