/*
 * Host tests for the PS/2 keyboard driver (kernel/dev/kbd.c): the set-1
 * decoder, and the controller handshake against a fake i8042 that can be
 * absent, slow to drain, deaf to commands or without a keyboard. Every wait
 * must end within its bound.
 */
#include <kernel/kbd.h>

#include <canopy/check.h>
#include <stdio.h>
#include <string.h>

unsigned check_passed, check_failed;

/* ---- a fake i8042 ---------------------------------------------------------- */

struct i8042 {
    bool absent;    /* the status port reads 0xff */
    bool in_stuck;  /* the input buffer never drains */
    bool out_stuck; /* the output buffer is always full */
    bool deaf;      /* commands are taken but never answered */
    bool keyboard;  /* a keyboard answers on port 1 */
    int resends;    /* the keyboard asks for this many resends first */
    uint8_t config;
    bool expect_config; /* the next data byte is the command byte */
    bool port1_enabled, port2_enabled, scanning;
    uint8_t queue[64];
    bool queue_aux[64];
    size_t head, tail;
    unsigned long reads; /* port reads, to bound the waits */
};

static void push(struct i8042 *c, uint8_t b, bool aux)
{
    c->queue[c->tail % 64] = b;
    c->queue_aux[c->tail % 64] = aux;
    c->tail++;
}

static uint8_t fake_in8(void *ctx, uint16_t port)
{
    struct i8042 *c = ctx;
    c->reads++;
    if (c->absent)
        return 0xff;
    bool full = c->out_stuck || c->head != c->tail;
    if (port == I8042_STATUS) {
        uint8_t st = 0x04; /* system flag */
        if (full)
            st |= I8042_STATUS_OUTPUT_FULL;
        if (c->in_stuck)
            st |= I8042_STATUS_INPUT_FULL;
        if (c->head != c->tail && c->queue_aux[c->head % 64])
            st |= I8042_STATUS_AUX;
        return st;
    }
    if (c->head == c->tail)
        return 0x5a; /* stale value */
    return c->queue[c->head++ % 64];
}

static void fake_out8(void *ctx, uint16_t port, uint8_t v)
{
    struct i8042 *c = ctx;
    if (c->deaf)
        return;
    if (port == I8042_STATUS) {
        switch (v) {
        case 0x20:
            push(c, c->config, false);
            break;
        case 0x60:
            c->expect_config = true;
            break;
        case 0xad:
            c->port1_enabled = false;
            break;
        case 0xa7:
            c->port2_enabled = false;
            break;
        case 0xae:
            c->port1_enabled = true;
            break;
        }
        return;
    }
    if (c->expect_config) {
        c->config = v;
        c->expect_config = false;
        return;
    }
    if (!c->keyboard)
        return;
    if (c->resends > 0) {
        c->resends--;
        push(c, 0xfe, false);
        return;
    }
    if (v == 0xf4)
        c->scanning = true;
    push(c, 0xfa, false);
}

static struct kbd_io io_for(struct i8042 *c)
{
    return (struct kbd_io){.in8 = fake_in8, .out8 = fake_out8, .ctx = c};
}

/* A working controller as firmware leaves it: IRQ 1 on, port 1 clock off, translation on. */
static void controller_default(struct i8042 *c)
{
    memset(c, 0, sizeof(*c));
    c->keyboard = true;
    c->config = 0x01 | 0x02 | 0x04 | 0x10 | 0x40;
    c->port1_enabled = c->port2_enabled = true;
}

/* Upper bound on status reads of one init: a handful of bounded waits. */
#define INIT_READ_BOUND (20ul * KBD_WAIT_POLLS)

static void test_init_prepares_controller_for_polling(void)
{
    struct i8042 c;
    controller_default(&c);
    push(&c, 0x1e, false); /* a stale key press from before the kernel */
    push(&c, 0x9e, false);
    struct kbd k;
    struct kbd_io io = io_for(&c);
    enum kbd_status st = kbd_init(&k, &io);
    CHECKF(st == KBD_OK, "status %s", kbd_status_str(st));
    CHECKF(k.present, "not present");
    CHECKF(c.config == (0x04 | 0x40), "config 0x%02x", c.config);
    CHECKF(c.port1_enabled && !c.port2_enabled, "ports %d %d", c.port1_enabled, c.port2_enabled);
    CHECKF(c.scanning, "scanning not enabled");
    char ch;
    CHECKF(!kbd_poll(&k, &ch), "a stale or reply byte was decoded as '%c'", ch);
}

static void test_init_retries_on_resend(void)
{
    struct i8042 c;
    controller_default(&c);
    c.resends = 2;
    struct kbd k;
    struct kbd_io io = io_for(&c);
    CHECKF(kbd_init(&k, &io) == KBD_OK && c.scanning, "two resends were not retried");
    controller_default(&c);
    c.resends = 3;
    CHECKF(kbd_init(&k, &io) == KBD_ERR_NO_KEYBOARD, "endless resends accepted");
}

static void test_init_reports_absent_controller(void)
{
    struct i8042 c;
    controller_default(&c);
    c.absent = true;
    struct kbd k;
    struct kbd_io io = io_for(&c);
    CHECKF(kbd_init(&k, &io) == KBD_ERR_ABSENT, "0xff status not taken as absent");
    CHECKF(!k.present, "present");
    CHECKF(c.reads < 10, "%lu reads to notice an absent controller", c.reads);
    char ch;
    unsigned long reads = c.reads;
    CHECKF(!kbd_poll(&k, &ch) && c.reads == reads, "polling an absent controller touched ports");

    controller_default(&c);
    c.out_stuck = true;
    CHECKF(kbd_init(&k, &io) == KBD_ERR_ABSENT && !k.present, "a never-draining buffer accepted");
    CHECKF(c.reads < INIT_READ_BOUND, "%lu reads", c.reads);
}

static void test_init_waits_are_bounded(void)
{
    struct i8042 c;
    struct kbd k;
    struct kbd_io io = io_for(&c);

    controller_default(&c);
    c.in_stuck = true;
    CHECKF(kbd_init(&k, &io) == KBD_ERR_CONTROLLER && !k.present, "stuck input buffer accepted");
    CHECKF(c.reads <= INIT_READ_BOUND, "%lu reads", c.reads);

    controller_default(&c);
    c.deaf = true;
    CHECKF(kbd_init(&k, &io) == KBD_ERR_CONTROLLER && !k.present, "deaf controller accepted");
    CHECKF(c.reads <= INIT_READ_BOUND, "%lu reads", c.reads);

    controller_default(&c);
    c.keyboard = false;
    enum kbd_status st = kbd_init(&k, &io);
    CHECKF(st == KBD_ERR_NO_KEYBOARD, "status %s", kbd_status_str(st));
    CHECKF(k.present, "a working controller without keyboard is still polled (hot plug)");
    CHECKF(c.reads <= INIT_READ_BOUND, "%lu reads", c.reads);
}

/* ---- decoding ------------------------------------------------------------ */

/* Decodes bytes and collects the characters. */
static void decode(struct kbd *k, const uint8_t *codes, size_t n, char *out, size_t cap)
{
    size_t len = 0;
    for (size_t i = 0; i < n; i++) {
        char c;
        if (kbd_decode(k, codes[i], &c) && len + 1 < cap)
            out[len++] = c;
    }
    out[len] = 0;
}

#define DECODES(k, want, ...)                                                                      \
    do {                                                                                           \
        const uint8_t codes_[] = {__VA_ARGS__};                                                    \
        char got_[64];                                                                             \
        decode((k), codes_, sizeof(codes_), got_, sizeof(got_));                                   \
        CHECKF(strcmp(got_, (want)) == 0, "got \"%s\" want \"%s\"", got_, (want));                 \
    } while (0)

static void test_decode_letters_digits_and_keys(void)
{
    struct kbd k = {0};
    /* h e l l o, each pressed and released. */
    DECODES(&k, "hello", 0x23, 0xa3, 0x12, 0x92, 0x26, 0xa6, 0x26, 0xa6, 0x18, 0x98);
    DECODES(&k, "1234567890-=", 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c,
            0x0d);
    DECODES(&k, "\n\b\t ", 0x1c, 0x0e, 0x0f, 0x39);
    DECODES(&k, "[];'`\\,./", 0x1a, 0x1b, 0x27, 0x28, 0x29, 0x2b, 0x33, 0x34, 0x35);
    DECODES(&k, "\x1b", 0x01);
    /* Keypad digits and operators. */
    DECODES(&k, "789-456+1230.*", 0x47, 0x48, 0x49, 0x4a, 0x4b, 0x4c, 0x4d, 0x4e, 0x4f, 0x50, 0x51,
            0x52, 0x53, 0x37);
    /* Function keys, Num Lock, Scroll Lock, Alt give nothing. */
    DECODES(&k, "", 0x3b, 0x44, 0x57, 0x58, 0x45, 0x46, 0x38, 0xb8);
    /* Typematic repeat: a held key repeats its make code. */
    DECODES(&k, "aaa", 0x1e, 0x1e, 0x1e, 0x9e);
}

static void test_decode_shift_and_caps_lock(void)
{
    struct kbd k = {0};
    DECODES(&k, "A!", 0x2a, 0x1e, 0x02, 0xaa);
    DECODES(&k, "a", 0x1e);
    DECODES(&k, "Z?", 0x36, 0x2c, 0x35, 0xb6);
    /* Both shifts: releasing one keeps the other. */
    DECODES(&k, "QQq", 0x2a, 0x36, 0x10, 0xaa, 0x10, 0xb6, 0x10);
    /* Caps Lock: letters only; with shift, lower case again. */
    DECODES(&k, "A1", 0x3a, 0xba, 0x1e, 0x02);
    DECODES(&k, "a!", 0x2a, 0x1e, 0x02, 0xaa);
    /* A held Caps Lock repeats its make code but toggles once. */
    DECODES(&k, "a", 0x3a, 0x3a, 0x3a, 0xba, 0x1e);
    DECODES(&k, "A", 0x3a, 0xba, 0x1e);
}

static void test_decode_ctrl(void)
{
    struct kbd k = {0};
    DECODES(&k, "\x03", 0x1d, 0x2e, 0x9d);
    DECODES(&k, "c", 0x2e);
    /* Right Ctrl is extended; Ctrl with [ gives ESC. */
    DECODES(&k, "\x15\x1b", 0xe0, 0x1d, 0x16, 0x1a, 0xe0, 0x9d);
    DECODES(&k, "u", 0x16);
    /* Ctrl leaves digits alone. */
    DECODES(&k, "1", 0x1d, 0x02, 0x9d);
}

static void test_decode_extended_and_pause(void)
{
    struct kbd k = {0};
    /* Keypad Enter and keypad '/'. */
    DECODES(&k, "\n/", 0xe0, 0x1c, 0xe0, 0x9c, 0xe0, 0x35, 0xe0, 0xb5);
    /* Arrows, Home, Delete: nothing, and they are not mistaken for keypad digits. */
    DECODES(&k, "", 0xe0, 0x48, 0xe0, 0xc8, 0xe0, 0x47, 0xe0, 0x53, 0xe0, 0x4b);
    /* Print Screen wraps itself in fake shifts (e0 2a ... e0 aa): no shift afterwards. */
    DECODES(&k, "a", 0xe0, 0x2a, 0xe0, 0x37, 0xe0, 0xb7, 0xe0, 0xaa, 0x1e);
    /* Arrow with Num Lock on: e0 2a e0 48; the next key is not shifted. */
    DECODES(&k, "b", 0xe0, 0x2a, 0xe0, 0x48, 0x30);
    /* Pause: e1 1d 45 e1 9d c5 gives nothing; 0x45 is not taken as Num Lock etc. */
    DECODES(&k, "x", 0xe1, 0x1d, 0x45, 0xe1, 0x9d, 0xc5, 0x2d);
    /* Controller and keyboard replies (ACK, resend, BAT, echo) give nothing. */
    DECODES(&k, "", 0xfa, 0xfe, 0xaa, 0xee, 0x00, 0xff);
    DECODES(&k, "q", 0x10);
}

static void test_poll_drops_mouse_bytes(void)
{
    struct i8042 c;
    controller_default(&c);
    struct kbd k;
    struct kbd_io io = io_for(&c);
    CHECKF(kbd_init(&k, &io) == KBD_OK, "init");
    push(&c, 0x1e, true); /* a mouse byte that happens to be 'a' */
    push(&c, 0x30, false);
    push(&c, 0xb0, false);
    char got[8] = {0};
    size_t n = 0;
    for (int i = 0; i < 10; i++) {
        char ch;
        if (kbd_poll(&k, &ch))
            got[n++] = ch;
    }
    CHECKF(strcmp(got, "b") == 0, "polled \"%s\"", got);
    CHECKF(c.head == c.tail, "bytes left unread");
}

int main(void)
{
    test_init_prepares_controller_for_polling();
    test_init_retries_on_resend();
    test_init_reports_absent_controller();
    test_init_waits_are_bounded();
    test_decode_letters_digits_and_keys();
    test_decode_shift_and_caps_lock();
    test_decode_ctrl();
    test_decode_extended_and_pause();
    test_poll_drops_mouse_bytes();
    return check_finish();
}
