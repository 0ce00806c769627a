/*
 * serial: polled 16550 UART output and input.
 *
 * Presence: firmware may leave no UART at 0x3f8 (reads then float to 0xff)
 * or one that never drains. The probe writes two patterns to the scratch
 * register and sends one byte through the internal loopback; only a port
 * that passes both is used.
 *
 * Stalls: a real 16550 empties its holding register within a character time,
 * but a virtual one holds it busy while its host side is not read (QEMU's
 * serial chardev when the pipe behind it is full), for as long as the reader
 * on the host is descheduled. So every wait for the transmitter is bounded in
 * time, not in status reads (under emulation a read costs far less than on
 * hardware): a byte waits up to TX_WAIT_MS. A port that stays busy for
 * several bytes in a row is marked stalled and output is dropped, so printing
 * can slow down but never hang; each later write looks at the port once and
 * resumes output as soon as the transmitter drains again, starting with a
 * line that says how many bytes were lost.
 *
 * Called by the console layer (core/console.c); single CPU, no locking.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <arch/cpu.h>
#include <canopy/x86/uart.h>
#include <kernel/serial.h>

#define MCR_NORMAL   (UART_MCR_DTR | UART_MCR_RTS | UART_MCR_OUT2) /* OUT2: receive interrupts */
#define MCR_LOOPBACK (UART_MCR_RTS | UART_MCR_OUT1 | UART_MCR_OUT2 | UART_MCR_LOOP)

/*
 * One character at 115200 baud takes about 87 us, so a healthy UART never
 * comes near TX_WAIT_MS; a second per byte rides out a host that pauses its
 * reader for less than that without losing output. Until the boot info
 * gives the TSC rate, the wait assumes 4 GHz, an upper bound, so it is at
 * least as long as asked.
 */
#define TX_WAIT_MS            1000u
#define TSC_HZ_UPPER_BOUND    4000000000ull
#define TIMEOUTS_BEFORE_STALL 3
/* The loopback byte comes back within a character time on any real UART. */
#define LOOPBACK_SPIN_LIMIT 20000

static uint16_t base;
static bool present;
static bool stalled;
static uint64_t dropped; /* bytes not sent since the port stalled */
static unsigned consecutive_timeouts;
static uint64_t tx_wait_cycles = TSC_HZ_UPPER_BOUND / 1000 * TX_WAIT_MS;

static bool serial_loopback_ok(uint16_t port)
{
    /* Loopback: what we send must come straight back. */
    arch_outb(port + UART_MCR, MCR_LOOPBACK);
    for (int i = 0; i < 32 && (arch_inb(port + UART_LSR) & UART_LSR_DATA_READY); i++)
        (void)arch_inb(port + UART_DATA); /* drain stale input */
    arch_outb(port + UART_DATA, 0xae);
    bool echoed = false;
    for (int i = 0; i < LOOPBACK_SPIN_LIMIT; i++) {
        if (arch_inb(port + UART_LSR) & UART_LSR_DATA_READY) {
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
    if (!uart_scratch_ok(port))
        return false;
    uart_program(port, UART_DIVISOR_115200);
    if (!serial_loopback_ok(port))
        return false;
    base = port;
    present = true;
    stalled = false;
    consecutive_timeouts = 0;
    return true;
}

void serial_set_tsc_hz(uint64_t tsc_hz)
{
    if (tsc_hz >= 1000000) /* anything slower is not a TSC rate */
        tx_wait_cycles = tsc_hz / 1000 * TX_WAIT_MS;
}

bool serial_is_present(void)
{
    return present;
}

static void serial_put(uint8_t c)
{
    uint64_t start = arch_rdtsc();
    do {
        if (arch_inb(base + UART_LSR) & UART_LSR_THR_EMPTY) {
            arch_outb(base + UART_DATA, c);
            consecutive_timeouts = 0;
            return;
        }
        arch_pause();
    } while (arch_rdtsc() - start < tx_wait_cycles);
    dropped++;
    if (++consecutive_timeouts >= TIMEOUTS_BEFORE_STALL)
        stalled = true;
}

/* "\r\n[serial: N bytes dropped]\r\n", with the count in decimal. */
static void serial_say_dropped(void)
{
    static const char head[] = "\r\n[serial: ", tail[] = " bytes dropped]\r\n";
    char digits[20];
    int nd = 0;
    uint64_t v = dropped;
    do {
        digits[nd++] = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    dropped = 0;
    for (size_t i = 0; i < sizeof(head) - 1 && !stalled; i++)
        serial_put((uint8_t)head[i]);
    while (nd > 0 && !stalled)
        serial_put((uint8_t)digits[--nd]);
    for (size_t i = 0; i < sizeof(tail) - 1 && !stalled; i++)
        serial_put((uint8_t)tail[i]);
}

void serial_write(const char *s, size_t n)
{
    if (!present)
        return;
    if (stalled) {
        if (!(arch_inb(base + UART_LSR) & UART_LSR_THR_EMPTY)) {
            dropped += n; /* still busy: the next write looks again */
            return;
        }
        stalled = false;
        consecutive_timeouts = 0;
        serial_say_dropped();
    }
    for (size_t i = 0; i < n; i++) {
        if (stalled) {
            dropped += n - i;
            return;
        }
        if (s[i] == '\n')
            serial_put('\r');
        serial_put((uint8_t)s[i]);
    }
}

bool serial_enable_rx_interrupt(void)
{
    if (!present)
        return false;
    arch_outb(base + UART_IER,
              UART_IER_RX_DATA); /* MCR's OUT2 (set in MCR_NORMAL) gates the line */
    return true;
}

int serial_getc(void)
{
    if (!present || !(arch_inb(base + UART_LSR) & UART_LSR_DATA_READY))
        return -1;
    return arch_inb(base + UART_DATA);
}
