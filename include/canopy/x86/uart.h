/*
 * x86/uart: the 16550 UART as stage 1 and the kernel drive it: one set of
 * register and bit names, the presence probe and the line set-up. What each
 * does with the port afterwards (how long to wait on the transmitter, whether
 * to read) stays with its own serial.c.
 *
 * Header-only and privileged (port I/O): included only by stage1/efi/serial.c,
 * the kernel's serial driver (kernel/dev/serial.c) and console
 * (kernel/core/console.c, which picks the port), which do port I/O through
 * arch/cpu.h anyway, and the test firmware layer's serial lines
 * (tests/faultfw/faultfw.c).
 */
#ifndef CANOPY_X86_UART_H
#define CANOPY_X86_UART_H

#include <stdbool.h>
#include <stdint.h>

#include <canopy/x86/cpu.h>

#define UART_COM1 0x3f8

/* Register offsets from the base port. */
#define UART_DATA 0 /* RBR/THR; divisor low with DLAB */
#define UART_IER  1 /* interrupt enable; divisor high with DLAB */
#define UART_FCR  2 /* FIFO control (write only) */
#define UART_LCR  3 /* line control */
#define UART_MCR  4 /* modem control */
#define UART_LSR  5 /* line status */
#define UART_SCR  7 /* scratch: keeps what is written, on a UART that exists */

#define UART_IER_RX_DATA         0x01 /* received data available (and the FIFO timeout) */
#define UART_FCR_ENABLE_CLEAR_14 0xc7 /* FIFOs on, both cleared, receive trigger at 14 bytes */
#define UART_LCR_8N1             0x03
#define UART_LCR_DLAB            0x80 /* DATA and IER address the divisor latch */
#define UART_MCR_DTR             0x01
#define UART_MCR_RTS             0x02
#define UART_MCR_OUT1            0x04
#define UART_MCR_OUT2            0x08 /* gates the interrupt line on a PC */
#define UART_MCR_LOOP            0x10 /* the transmitter feeds the receiver */
#define UART_LSR_DATA_READY      0x01
#define UART_LSR_THR_EMPTY       0x20

#define UART_DIVISOR_115200 1 /* 115200 baud from the 1.8432 MHz clock */

/*
 * Whether a UART answers at `port`: one keeps two patterns written to its
 * scratch register, while an empty bus reads back 0xff.
 */
static inline bool uart_scratch_ok(uint16_t port)
{
    arch_outb(port + UART_SCR, 0x5a);
    if (arch_inb(port + UART_SCR) != 0x5a)
        return false;
    arch_outb(port + UART_SCR, 0xa5);
    return arch_inb(port + UART_SCR) == 0xa5;
}

/*
 * Sets the line to `divisor` (of 115200 baud), 8N1, interrupts off, FIFOs on
 * and cleared. Leaves MCR to the caller.
 */
static inline void uart_program(uint16_t port, uint16_t divisor)
{
    arch_outb(port + UART_IER, 0x00);
    arch_outb(port + UART_LCR, UART_LCR_DLAB);
    arch_outb(port + UART_DATA, (uint8_t)(divisor & 0xff));
    arch_outb(port + UART_IER, (uint8_t)(divisor >> 8));
    arch_outb(port + UART_LCR, UART_LCR_8N1);
    arch_outb(port + UART_FCR, UART_FCR_ENABLE_CLEAR_14);
}

#endif
