/*
 * console: stage 1's text output.
 *
 * Text is formatted into a line buffer and flushed at each newline (or when
 * the buffer fills): to ConOut as UCS-2 while boot services live (OVMF copies
 * ConOut to its serial console), to COM1 afterwards. Only printable ASCII
 * reaches the firmware; anything else becomes '?'. Input is only ever a key
 * to wait for (con_wait_key).
 */
#include <canopy/fmt.h>
#include <canopy/x86/cpu.h>

#include "fw_efi.h"

#define LINE_MAX 160

static struct {
    char line[LINE_MAX];
    size_t len;
    bool after_exit;
    bool serial_on;
} con = {.serial_on = true};

static void flush(bool newline)
{
    if (con.after_exit) {
        if (con.serial_on) {
            serial_write(con.line, con.len);
            if (newline)
                serial_write("\n", 1);
        }
    } else if (fw_st && fw_st->ConOut) {
        CHAR16 wide[LINE_MAX + 3];
        size_t n = 0;
        for (size_t i = 0; i < con.len; i++) {
            char c = con.line[i];
            wide[n++] = (c >= 0x20 && c <= 0x7e) ? (CHAR16)c : (CHAR16)'?';
        }
        if (newline) {
            wide[n++] = '\r';
            wide[n++] = '\n';
        }
        wide[n] = 0;
        fw_st->ConOut->OutputString(fw_st->ConOut, wide);
    }
    con.len = 0;
}

static void sink(void *ctx, const char *s, size_t n)
{
    (void)ctx;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '\n') {
            flush(true);
            continue;
        }
        if (s[i] == '\r')
            continue;
        if (con.len == LINE_MAX)
            flush(false);
        con.line[con.len++] = s[i];
    }
}

void con_vprintf(const char *fmt, va_list ap)
{
    fmt_vformat(sink, NULL, fmt, ap);
}

void con_printf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    con_vprintf(fmt, ap);
    va_end(ap);
}

void con_set_serial(bool on)
{
    con.serial_on = on;
}

void con_after_exit(void)
{
    con.after_exit = true; /* ConOut is gone: a pending partial line goes to COM1 */
    if (con.serial_on)
        serial_init();
    if (con.len)
        flush(false);
}

#define KEY_POLL_US 10000 /* ConIn and COM1 are polled every 10 ms */

bool con_wait_key(uint64_t us)
{
    SIMPLE_INPUT_INTERFACE *in = fw_st->ConIn;
    EFI_INPUT_KEY key;
    uint8_t byte;
    /* Only keys typed from now on: what is queued already is dropped. */
    if (in) {
        in->Reset(in, FALSE);
        for (int i = 0; i < 64 && !EFI_ERROR(in->ReadKeyStroke(in, &key)); i++)
            ;
    }
    for (int i = 0; i < 64 && serial_read(&byte); i++)
        ;
    /*
     * Bounded twice: by the TSC (the polls themselves take time, so a count of
     * Stalls alone runs long), and by that count, should the TSC not advance.
     */
    uint64_t hz = fw_tsc_hz(), start = arch_rdtsc();
    for (uint64_t waited = 0; waited < us; waited += KEY_POLL_US) {
        if (in && !EFI_ERROR(in->ReadKeyStroke(in, &key)))
            return true;
        if (serial_read(&byte))
            return true; /* a serial console the firmware does not read for ConIn */
        if (hz && arch_rdtsc() - start >= hz / 1000 * (us / 1000))
            break;
        fw_stall_us(KEY_POLL_US);
    }
    return false;
}
