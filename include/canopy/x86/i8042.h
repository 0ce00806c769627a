/*
 * x86/i8042: the PS/2 controller's two ports and its status bits, as names
 * only (no instructions), so that the kernel's keyboard driver, which the
 * host tests run against a fake controller, and the 8042 reset (x86/reset.h)
 * say them once.
 */
#ifndef CANOPY_X86_I8042_H
#define CANOPY_X86_I8042_H

#define I8042_DATA   0x60u /* read: a byte from a device; write: a byte to the keyboard */
#define I8042_STATUS 0x64u /* read: status; write: controller command */

/* Status register bits. */
#define I8042_STATUS_OUTPUT_FULL 0x01 /* a byte waits at the data port */
#define I8042_STATUS_INPUT_FULL  0x02 /* the controller has not taken the last byte written */
#define I8042_STATUS_AUX         0x20 /* the waiting byte is from the mouse port */
#define I8042_STATUS_TIMEOUT     0x40
#define I8042_STATUS_PARITY      0x80

#endif
