/*
 * kbd: a polled PS/2 keyboard on the i8042 controller (ports 0x60/0x64).
 *
 * Laptop keyboards and USB keyboards under the firmware's legacy emulation
 * present themselves the same way. The controller is left translating, so the
 * bytes read are scancode set 1 whatever the keyboard speaks. No interrupts:
 * the kernel's main loop calls kbd_poll.
 *
 * Port I/O comes in through struct kbd_io, so the decoder and the controller
 * handshake run unchanged against a fake controller in the host tests.
 */
#ifndef KERNEL_KBD_H
#define KERNEL_KBD_H

#include <stdbool.h>
#include <stdint.h>

#include <canopy/x86/i8042.h> /* the ports and status bits */

/* Status reads a wait may take before it gives up (each read is ~1 us on real hardware). */
#define KBD_WAIT_POLLS 100000u

enum kbd_status {
    KBD_OK = 0,
    KBD_ERR_ABSENT,      /* no controller answers (the status port reads 0xff or never drains) */
    KBD_ERR_CONTROLLER,  /* the controller did not answer a command in time */
    KBD_ERR_NO_KEYBOARD, /* the controller works but no keyboard acknowledged; polling still works
                          */
};

/* A short English name for a status. */
const char *kbd_status_str(enum kbd_status st);

/* Port access; the kernel passes wrappers around in/out instructions. */
struct kbd_io {
    uint8_t (*in8)(void *ctx, uint16_t port);
    void (*out8)(void *ctx, uint16_t port, uint8_t value);
    void *ctx;
};

/* Decoder state: modifiers and a pending prefix. Plain data. */
struct kbd {
    struct kbd_io io;
    bool present; /* kbd_init found a controller: kbd_poll reads it */
    bool shift_left, shift_right;
    bool ctrl_left, ctrl_right;
    bool caps_lock;
    bool caps_down; /* Caps Lock is held: its typematic repeats do not toggle */
    bool extended;  /* the previous byte was the 0xe0 prefix */
    uint8_t skip;   /* bytes of a 0xe1 (Pause) sequence still to drop */
};

/*
 * Finds the controller and prepares it for polling: ports disabled while it is
 * set up, its interrupts off, translation on, the keyboard port enabled and
 * scanning enabled. Every wait is bounded by KBD_WAIT_POLLS status reads.
 * => on KBD_OK and KBD_ERR_NO_KEYBOARD, kbd->present is true and kbd_poll reads
 *    keys; on the other errors it is false and kbd_poll returns false at once.
 */
enum kbd_status kbd_init(struct kbd *kbd, const struct kbd_io *io);

/*
 * Reads at most one byte from the controller and decodes it; true and *out set
 * when it completes a character. Mouse bytes and bytes with a parity or timeout
 * error are dropped. Never waits.
 */
bool kbd_poll(struct kbd *kbd, char *out);

/*
 * Decodes one set-1 byte: true and *out set when it is the press of a key that
 * gives a character ('\n' for Enter, 0x08 for Backspace, '\t', 0x1b for Esc;
 * Ctrl with a letter gives its control code). Releases only update modifiers;
 * 0xe0-prefixed keys other than keypad Enter and keypad '/' give nothing, as
 * does the Pause sequence.
 */
bool kbd_decode(struct kbd *kbd, uint8_t code, char *out);

#endif
