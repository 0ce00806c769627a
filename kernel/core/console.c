/*
 * console: every line the kernel prints goes through here, to the serial
 * port and the framebuffer console, whichever are up.
 *
 * kprintf formats with lib's fmt_vformat into a sink that forwards each
 * piece to both consoles; the framebuffer is flushed once per call, so a
 * multi-line message scrolls the screen once. Single CPU, interrupts off
 * while printing, so no locking yet.
 */
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

#include <canopy/fmt.h>
#include <canopy/x86/uart.h> /* UART_COM1 */
#include <kernel/console.h>
#include <kernel/fbcon.h>
#include <kernel/serial.h>

static bool serial_up;
static bool fb_up;

/*
 * What was printed before the framebuffer console came up (the boot info
 * check, say), replayed onto the screen when it does, so a machine without
 * a serial port shows it too. Later output does not go here.
 */
#define EARLY_LOG_SIZE 2048
static char early_log[EARLY_LOG_SIZE];
static size_t early_len;
static bool early_done;

bool console_init_serial(void)
{
    serial_up = serial_init(UART_COM1);
    return serial_up;
}

bool console_init_fb(const struct canopy_framebuffer *fb, uint64_t fb_va)
{
    const char *why = fbcon_init(fb, (void *)(uintptr_t)fb_va);
    fb_up = why == NULL;
    early_done = true;
    if (!fb_up) {
        kprintf("console: no framebuffer console: %s\n", why);
        return false;
    }
    fbcon_write(early_log, early_len);
    fbcon_flush();
    return true;
}

void console_disable_fb(void)
{
    fb_up = false;
}

bool console_has_serial(void)
{
    return serial_up && serial_is_present();
}

bool console_has_fb(void)
{
    return fb_up;
}

static void console_sink(void *ctx, const char *s, size_t n)
{
    (void)ctx;
    if (serial_up)
        serial_write(s, n);
    if (fb_up)
        fbcon_write(s, n);
    for (size_t i = 0; !early_done && i < n && early_len < EARLY_LOG_SIZE; i++)
        early_log[early_len++] = s[i];
}

void console_write(const char *s, size_t n)
{
    console_sink(NULL, s, n);
    if (fb_up)
        fbcon_flush();
}

void console_write_deferred(const char *s, size_t n)
{
    console_sink(NULL, s, n);
}

void console_flush(void)
{
    if (fb_up)
        fbcon_flush();
}

int console_poll_input(void)
{
    return serial_up ? serial_getc() : -1;
}

void kvprintf(const char *fmt, va_list ap)
{
    fmt_vformat(console_sink, NULL, fmt, ap);
    if (fb_up)
        fbcon_flush();
}

void kprintf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    kvprintf(fmt, ap);
    va_end(ap);
}
