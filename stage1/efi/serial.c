/*
 * serial: COM1 by port I/O, 115200 8N1, for the time after ExitBootServices.
 *
 * An absent UART reads back 0xff and never empties its transmitter, so the
 * port is probed through its scratch register first, and every wait for the
 * transmitter is bounded; a UART that times out once is not waited on again.
 * Output is never allowed to stall the boot.
 */
#include <canopy/x86/cpu.h>

#include "fw_efi.h"

#define COM1       0x3f8
#define REG_DATA   0
#define REG_IER    1
#define REG_FCR    2
#define REG_LCR    3
#define REG_MCR    4
#define REG_LSR    5
#define REG_SCR    7
#define LSR_THRE   0x20
#define THRE_POLLS 100000 /* about 100 ms of port reads: far beyond one byte at 115200 baud */

static enum { UNKNOWN, PRESENT, ABSENT } uart_state;

void serial_init(void)
{
    arch_outb(COM1 + REG_SCR, 0x5a);
    if (arch_inb(COM1 + REG_SCR) != 0x5a) {
        uart_state = ABSENT;
        return;
    }
    arch_outb(COM1 + REG_IER, 0x00); /* no interrupts */
    arch_outb(COM1 + REG_LCR, 0x80); /* divisor latch */
    arch_outb(COM1 + REG_DATA, 1);   /* 115200 / 1 */
    arch_outb(COM1 + REG_IER, 0);
    arch_outb(COM1 + REG_LCR, 0x03); /* 8N1 */
    arch_outb(COM1 + REG_FCR, 0xc7); /* FIFOs on and cleared */
    arch_outb(COM1 + REG_MCR, 0x03); /* DTR, RTS */
    uart_state = PRESENT;
}

static void put(char c)
{
    for (int i = 0; i < THRE_POLLS; i++) {
        if (arch_inb(COM1 + REG_LSR) & LSR_THRE) {
            arch_outb(COM1 + REG_DATA, (uint8_t)c);
            return;
        }
        arch_pause();
    }
    uart_state = ABSENT;
}

void serial_write(const char *s, size_t n)
{
    if (uart_state == UNKNOWN)
        serial_init();
    for (size_t i = 0; i < n && uart_state == PRESENT; i++) {
        if (s[i] == '\n')
            put('\r');
        put(s[i]);
    }
}
