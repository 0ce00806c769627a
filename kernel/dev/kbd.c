/*
 * kbd: the polled i8042 PS/2 keyboard.
 *
 * Setup: a controller that is not there reads 0xff on its status port (an
 * undriven ISA bus), and one that never drains its buffers is treated the
 * same. Otherwise both ports are disabled while the command byte is changed
 * (interrupts off, because the kernel polls; translation on, so every keyboard
 * delivers set 1), the keyboard port is enabled again and the keyboard asked
 * to scan (0xf4). The controller self-test (0xaa) is left out: on some
 * machines it resets the controller and the firmware's USB legacy emulation.
 *
 * Decoding: set 1 make codes index two tables (plain and shifted); a byte with
 * bit 7 set is a release and only matters for modifiers. 0xe0 marks the next
 * byte as an extended key (the fake shifts around Print Screen are among them,
 * so they never reach the shift state); 0xe1 starts the six-byte Pause
 * sequence, whose two-byte halves are dropped. Keypad keys give digits and
 * operators whatever Num Lock says: this is a console for typing addresses.
 *
 * Called by the kernel's main loop (kbd_poll) and the host tests.
 */
#include <kernel/kbd.h>

#include <stddef.h>

/* Controller commands (written to the status port). */
#define CMD_READ_CONFIG  0x20
#define CMD_WRITE_CONFIG 0x60
#define CMD_DISABLE_AUX  0xa7
#define CMD_DISABLE_KBD  0xad
#define CMD_ENABLE_KBD   0xae

/* Command byte bits. */
#define CONFIG_KBD_IRQ       0x01
#define CONFIG_AUX_IRQ       0x02
#define CONFIG_KBD_CLOCK_OFF 0x10
#define CONFIG_TRANSLATE     0x40

/* Keyboard commands and replies. */
#define KEYBOARD_ENABLE_SCAN 0xf4
#define KEYBOARD_ACK         0xfa
#define KEYBOARD_RESEND      0xfe
#define KEYBOARD_TRIES       3

#define FLUSH_MAX 32 /* stale bytes drained at most: the buffer is one byte, plus keys typed */

/* Set 1 make codes. */
#define SC_CTRL        0x1d
#define SC_SHIFT_LEFT  0x2a
#define SC_SHIFT_RIGHT 0x36
#define SC_CAPS_LOCK   0x3a
#define SC_ENTER       0x1c
#define SC_SLASH       0x35
#define SC_RELEASE     0x80
#define SC_EXTENDED    0xe0
#define SC_PAUSE       0xe1

/* Characters of set 1 make codes 0x00..0x58, without and with shift; 0 for none. */
static const char plain[0x59] = {
    0,   0x1b, '1', '2', '3',  '4', '5', '6',  '7', '8', '9',  '0', '-', '=', 0x08, '\t', 'q', 'w',
    'e', 'r',  't', 'y', 'u',  'i', 'o', 'p',  '[', ']', '\n', 0,   'a', 's', 'd',  'f',  'g', 'h',
    'j', 'k',  'l', ';', '\'', '`', 0,   '\\', 'z', 'x', 'c',  'v', 'b', 'n', 'm',  ',',  '.', '/',
    0,   '*',  0,   ' ', 0,    0,   0,   0,    0,   0,   0,    0,   0,   0,   0,    0,    0,   '7',
    '8', '9',  '-', '4', '5',  '6', '+', '1',  '2', '3', '0',  '.', 0,   0,   '<',  0,    0,
};
static const char shifted[0x59] = {
    0,   0x1b, '!', '@', '#', '$', '%', '^', '&', '*', '(',  ')', '_', '+', 0x08, '\t', 'Q', 'W',
    'E', 'R',  'T', 'Y', 'U', 'I', 'O', 'P', '{', '}', '\n', 0,   'A', 'S', 'D',  'F',  'G', 'H',
    'J', 'K',  'L', ':', '"', '~', 0,   '|', 'Z', 'X', 'C',  'V', 'B', 'N', 'M',  '<',  '>', '?',
    0,   '*',  0,   ' ', 0,   0,   0,   0,   0,   0,   0,    0,   0,   0,   0,    0,    0,   '7',
    '8', '9',  '-', '4', '5', '6', '+', '1', '2', '3', '0',  '.', 0,   0,   '>',  0,    0,
};

const char *kbd_status_str(enum kbd_status st)
{
    switch (st) {
    case KBD_OK:
        return "ok";
    case KBD_ERR_ABSENT:
        return "no PS/2 controller";
    case KBD_ERR_CONTROLLER:
        return "the PS/2 controller does not answer";
    case KBD_ERR_NO_KEYBOARD:
        return "no keyboard answered on the PS/2 port";
    }
    return "unknown status";
}

static uint8_t status(struct kbd *k)
{
    return k->io.in8(k->io.ctx, I8042_STATUS);
}

/* Waits until the controller can take a byte; false after KBD_WAIT_POLLS reads. */
static bool wait_writable(struct kbd *k)
{
    for (uint32_t i = 0; i < KBD_WAIT_POLLS; i++)
        if (!(status(k) & I8042_STATUS_INPUT_FULL))
            return true;
    return false;
}

/* Waits for a byte at the data port and reads it; false after KBD_WAIT_POLLS reads. */
static bool read_data(struct kbd *k, uint8_t *out)
{
    for (uint32_t i = 0; i < KBD_WAIT_POLLS; i++) {
        if (status(k) & I8042_STATUS_OUTPUT_FULL) {
            *out = k->io.in8(k->io.ctx, I8042_DATA);
            return true;
        }
    }
    return false;
}

static bool write_port(struct kbd *k, uint16_t port, uint8_t value)
{
    if (!wait_writable(k))
        return false;
    k->io.out8(k->io.ctx, port, value);
    return true;
}

/* Drops bytes waiting in the output buffer; false if it never empties. */
static bool flush(struct kbd *k)
{
    for (int i = 0; i < FLUSH_MAX; i++) {
        if (!(status(k) & I8042_STATUS_OUTPUT_FULL))
            return true;
        (void)k->io.in8(k->io.ctx, I8042_DATA);
    }
    return false;
}

/* Sends a byte to the keyboard and waits for its ACK, resending on 0xfe. */
static bool keyboard_command(struct kbd *k, uint8_t cmd)
{
    for (int tries = 0; tries < KEYBOARD_TRIES; tries++) {
        if (!write_port(k, I8042_DATA, cmd))
            return false;
        uint8_t reply;
        /* Keys typed meanwhile may come first: skip a few bytes looking for the answer. */
        for (int n = 0; n < FLUSH_MAX; n++) {
            if (!read_data(k, &reply))
                return false;
            if (reply == KEYBOARD_ACK)
                return true;
            if (reply == KEYBOARD_RESEND)
                break;
        }
    }
    return false;
}

enum kbd_status kbd_init(struct kbd *kbd, const struct kbd_io *io)
{
    *kbd = (struct kbd){.io = *io};
    if (status(kbd) == 0xff || !flush(kbd))
        return KBD_ERR_ABSENT;

    uint8_t config;
    if (!write_port(kbd, I8042_STATUS, CMD_DISABLE_KBD) ||
        !write_port(kbd, I8042_STATUS, CMD_DISABLE_AUX) || !flush(kbd) ||
        !write_port(kbd, I8042_STATUS, CMD_READ_CONFIG) || !read_data(kbd, &config))
        return KBD_ERR_CONTROLLER;

    config &= (uint8_t) ~(CONFIG_KBD_IRQ | CONFIG_AUX_IRQ | CONFIG_KBD_CLOCK_OFF);
    config |= CONFIG_TRANSLATE;
    if (!write_port(kbd, I8042_STATUS, CMD_WRITE_CONFIG) || !write_port(kbd, I8042_DATA, config) ||
        !write_port(kbd, I8042_STATUS, CMD_ENABLE_KBD))
        return KBD_ERR_CONTROLLER;

    kbd->present = true;
    if (!keyboard_command(kbd, KEYBOARD_ENABLE_SCAN))
        return KBD_ERR_NO_KEYBOARD;
    return KBD_OK;
}

bool kbd_decode(struct kbd *kbd, uint8_t code, char *out)
{
    if (kbd->skip) {
        kbd->skip--;
        return false;
    }
    if (code == SC_PAUSE) {
        kbd->skip = 2;
        kbd->extended = false;
        return false;
    }
    if (code == SC_EXTENDED) {
        kbd->extended = true;
        return false;
    }
    bool extended = kbd->extended;
    kbd->extended = false;
    bool release = code & SC_RELEASE;
    uint8_t key = code & (uint8_t)~SC_RELEASE;

    if (extended) {
        /* Right Ctrl, keypad Enter and keypad '/'; the rest (arrows, fake shifts, ...) is dropped.
         */
        if (key == SC_CTRL) {
            kbd->ctrl_right = !release;
            return false;
        }
        if (release || (key != SC_ENTER && key != SC_SLASH))
            return false;
        *out = key == SC_ENTER ? '\n' : '/';
        return true;
    }

    switch (key) {
    case SC_CTRL:
        kbd->ctrl_left = !release;
        return false;
    case SC_SHIFT_LEFT:
        kbd->shift_left = !release;
        return false;
    case SC_SHIFT_RIGHT:
        kbd->shift_right = !release;
        return false;
    case SC_CAPS_LOCK:
        if (!release && !kbd->caps_down)
            kbd->caps_lock = !kbd->caps_lock;
        kbd->caps_down = !release;
        return false;
    }
    if (release || key >= sizeof(plain))
        return false;

    bool shift = kbd->shift_left || kbd->shift_right;
    char c = shift ? shifted[key] : plain[key];
    if (c == 0)
        return false;
    bool letter = (plain[key] >= 'a' && plain[key] <= 'z');
    if (letter && kbd->caps_lock)
        c = shift ? plain[key] : shifted[key];
    if (kbd->ctrl_left || kbd->ctrl_right) {
        if (letter)
            c = (char)(plain[key] - 'a' + 1);
        else if (plain[key] == '[' || plain[key] == '\\' || plain[key] == ']')
            c = (char)(plain[key] - '[' + 0x1b);
    }
    *out = c;
    return true;
}

bool kbd_poll(struct kbd *kbd, char *out)
{
    if (!kbd->present)
        return false;
    uint8_t st = status(kbd);
    if (!(st & I8042_STATUS_OUTPUT_FULL))
        return false;
    uint8_t code = kbd->io.in8(kbd->io.ctx, I8042_DATA);
    if (st & (I8042_STATUS_AUX | I8042_STATUS_TIMEOUT | I8042_STATUS_PARITY))
        return false;
    return kbd_decode(kbd, code, out);
}
