/*
 * serial: a polled 16550 UART driver (COM1 by default). Every wait is
 * bounded, and a port that does not answer the probe is never touched again,
 * so a machine without a serial port boots just the same.
 */
#ifndef KERNEL_SERIAL_H
#define KERNEL_SERIAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * Probes the UART at `port` (COM1 is UART_COM1 in canopy/x86/uart.h) with its
 * scratch register, then a loopback byte, and, if it answers, programs 115200
 * baud, 8N1, FIFOs on, interrupts off.
 * Returns true if the port is present and set up.
 */
bool serial_init(uint16_t port);

/*
 * Sets how long a byte may wait for the transmitter from the TSC rate (Hz);
 * until called, or for a rate of 0, the wait assumes a 4 GHz TSC.
 */
void serial_set_tsc_hz(uint64_t tsc_hz);

/* True once serial_init succeeded. */
bool serial_is_present(void);

/*
 * Writes n bytes, '\n' as "\r\n". Each byte waits a bounded time for the
 * transmitter; after several bytes in a row time out the port counts as
 * stalled and writes are dropped until it drains again, when a line
 * "[serial: N bytes dropped]" comes first.
 */
void serial_write(const char *s, size_t n);

/*
 * Lets the UART raise its interrupt line (COM1: IRQ 4) while received bytes
 * wait, so a halted CPU wakes for input. The line stays raised until they are
 * read with serial_getc. Returns false if there is no port.
 */
bool serial_enable_rx_interrupt(void);

/* One received byte, or -1 if none is waiting (or there is no port). */
int serial_getc(void);

#endif
