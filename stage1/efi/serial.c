/*
 * serial: COM1 by port I/O, 115200 8N1, for the time after ExitBootServices.
 *
 * An absent UART reads back 0xff and never empties its transmitter, so the
 * port is probed through its scratch register first, and every wait for the
 * transmitter is bounded; a UART that times out once is not waited on again.
 * Output is never allowed to stall the boot. serial_read takes a waiting
 * byte, for the one wait for a key (console.c).
 */
#include <canopy/x86/uart.h>

#include "fw_efi.h"

#define THRE_POLLS 100000 /* about 100 ms of port reads: far beyond one byte at 115200 baud */

static enum { UNKNOWN, PRESENT, ABSENT } uart_state;

void serial_init(void)
{
    if (!uart_scratch_ok(UART_COM1)) {
        uart_state = ABSENT;
        return;
    }
    uart_program(UART_COM1, UART_DIVISOR_115200);
    arch_outb(UART_COM1 + UART_MCR, UART_MCR_DTR | UART_MCR_RTS);
    uart_state = PRESENT;
}

static void put(char c)
{
    for (int i = 0; i < THRE_POLLS; i++) {
        if (arch_inb(UART_COM1 + UART_LSR) & UART_LSR_THR_EMPTY) {
            arch_outb(UART_COM1 + UART_DATA, (uint8_t)c);
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

bool serial_read(uint8_t *byte)
{
    /* Probed, not programmed: while boot services live, the firmware owns the UART's settings. */
    if (uart_state == ABSENT || (uart_state == UNKNOWN && !uart_scratch_ok(UART_COM1)))
        return false;
    if (!(arch_inb(UART_COM1 + UART_LSR) & UART_LSR_DATA_READY))
        return false;
    *byte = arch_inb(UART_COM1 + UART_DATA);
    return true;
}
