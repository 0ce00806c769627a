/*
 * serial: polled 16550 UART output and input.
 *
 * Presence: firmware may leave no UART at 0x3f8 (reads then float to 0xff)
 * or one that never drains. The probe writes two patterns to the scratch
 * register and sends one byte through the internal loopback; only a port
 * that passes both is used. After that, every wait for the transmitter is
 * bounded; a port that stays busy several times in a row is declared gone,
 * so output can slow down but never hang.
 *
 * Called by the console layer (core/console.c); single CPU, no locking.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <arch/cpu.h>
#include <kernel/serial.h>

/* Register offsets from the base port. */
#define UART_DATA 0 /* RBR/THR; divisor low with DLAB */
#define UART_IER  1 /* interrupt enable; divisor high with DLAB */
#define UART_FCR  2
#define UART_LCR  3
#define UART_MCR  4
#define UART_LSR  5
#define UART_SCR  7

#define LCR_8N1             0x03
#define LCR_DLAB            0x80
#define FCR_ENABLE_CLEAR_14 0xc7 /* FIFOs on, both cleared, receive trigger at 14 bytes */
#define MCR_NORMAL          0x0b /* DTR, RTS, OUT2 */
#define MCR_LOOPBACK        0x1e /* loopback with RTS, OUT1, OUT2 */
#define IER_RX_DATA         0x01 /* received data available (and the FIFO timeout) */
#define LSR_DATA_READY      0x01
#define LSR_THR_EMPTY       0x20

#define UART_CLOCK_DIVISOR 1 /* 115200 baud from the 1.8432 MHz clock */

/*
 * One character at 115200 baud takes about 87 us; each status read costs
 * roughly a microsecond on real hardware. 20,000 reads therefore leave a
 * healthy UART ample time while bounding a dead one to a few milliseconds.
 */
#define TX_SPIN_LIMIT        20000
#define LOOPBACK_SPIN_LIMIT  20000
#define TIMEOUTS_BEFORE_GONE 3

static uint16_t base;
static bool present;
static unsigned consecutive_timeouts;

/* A UART keeps what is written to its scratch register; an empty bus reads 0xff. */
static bool serial_scratch_ok(uint16_t port)
{
    arch_outb(port + UART_SCR, 0x5a);
    if (arch_inb(port + UART_SCR) != 0x5a)
        return false;
    arch_outb(port + UART_SCR, 0xa5);
    return arch_inb(port + UART_SCR) == 0xa5;
}

static bool serial_loopback_ok(uint16_t port)
{
    /* Loopback: what we send must come straight back. */
    arch_outb(port + UART_MCR, MCR_LOOPBACK);
    for (int i = 0; i < 32 && (arch_inb(port + UART_LSR) & LSR_DATA_READY); i++)
        (void)arch_inb(port + UART_DATA); /* drain stale input */
    arch_outb(port + UART_DATA, 0xae);
    bool echoed = false;
    for (int i = 0; i < LOOPBACK_SPIN_LIMIT; i++) {
        if (arch_inb(port + UART_LSR) & LSR_DATA_READY) {
            echoed = arch_inb(port + UART_DATA) == 0xae;
            break;
        }
        arch_pause();
    }
    arch_outb(port + UART_MCR, MCR_NORMAL);
    return echoed;
}

bool serial_init(uint16_t port)
{
    present = false;
    if (!serial_scratch_ok(port))
        return false;
    arch_outb(port + UART_IER, 0x00);
    arch_outb(port + UART_LCR, LCR_DLAB);
    arch_outb(port + UART_DATA, UART_CLOCK_DIVISOR & 0xff);
    arch_outb(port + UART_IER, UART_CLOCK_DIVISOR >> 8);
    arch_outb(port + UART_LCR, LCR_8N1);
    arch_outb(port + UART_FCR, FCR_ENABLE_CLEAR_14);
    if (!serial_loopback_ok(port))
        return false;
    base = port;
    present = true;
    consecutive_timeouts = 0;
    return true;
}

bool serial_is_present(void)
{
    return present;
}

static void serial_put(uint8_t c)
{
    for (int i = 0; i < TX_SPIN_LIMIT; i++) {
        if (arch_inb(base + UART_LSR) & LSR_THR_EMPTY) {
            arch_outb(base + UART_DATA, c);
            consecutive_timeouts = 0;
            return;
        }
        arch_pause();
    }
    if (++consecutive_timeouts >= TIMEOUTS_BEFORE_GONE)
        present = false;
}

void serial_write(const char *s, size_t n)
{
    for (size_t i = 0; i < n && present; i++) {
        if (s[i] == '\n')
            serial_put('\r');
        serial_put((uint8_t)s[i]);
    }
}

bool serial_enable_rx_interrupt(void)
{
    if (!present)
        return false;
    arch_outb(base + UART_IER, IER_RX_DATA); /* MCR's OUT2 (set in MCR_NORMAL) gates the line */
    return true;
}

int serial_getc(void)
{
    if (!present || !(arch_inb(base + UART_LSR) & LSR_DATA_READY))
        return -1;
    return arch_inb(base + UART_DATA);
}
