/*
 * power: turning the machine off and resetting it.
 *
 * Each function tries its methods in order, with one line per failed or
 * skipped method:
 *
 *   power_off     UEFI ResetSystem(EfiResetShutdown), ACPI S5, then QEMU's
 *                 isa-debug-exit (QEMU then exits with status 3, not 0)
 *   power_reboot  UEFI ResetSystem(EfiResetCold), the ACPI reset register,
 *                 the 8042 reset line, then a triple fault
 *
 * Each method says on the console that it is being tried, so a log shows
 * which one ended the machine. If none did, one line says so and the CPU
 * halts: power_off and power_reboot never return.
 */
#ifndef KERNEL_POWER_H
#define KERNEL_POWER_H

#include <canopy/bootinfo.h>

/* Methods, for the *_using variants (tests force the fallbacks with them). */
#define POWER_EFI       0x01u /* UEFI ResetSystem */
#define POWER_ACPI      0x02u /* off: ACPI S5; reboot: the FADT reset register */
#define POWER_KBC       0x04u /* reboot: the 8042 keyboard controller's reset line */
#define POWER_TRIPLE    0x08u /* reboot: a triple fault */
#define POWER_QEMU_EXIT 0x10u /* off: QEMU's isa-debug-exit device */
#define POWER_ALL       0x1fu

/*
 * Records the boot info the power functions read, checks the UEFI runtime
 * tables (efirt_init) and reads the ACPI power facts (acpi_power_read): both
 * copy what reclaim would free. Prints the firmware's name and one line
 * saying whether ResetSystem will be used. Allocates nothing.
 * => after kmm_adopt() and before kmm_reclaim(); bi stays valid.
 */
void power_init(const struct canopy_bootinfo *bi);

/*
 * Acts on the command line word `power=` (boot tests use it; the shell calls
 * power_off()/power_reboot()):
 *   off, reboot            power_off(), power_reboot()
 *   off-acpi, reboot-acpi  the same without UEFI ResetSystem
 *   reboot-8042            the 8042 reset line, then a triple fault
 *   reboot-triple          a triple fault only
 * => after power_init().
 */
void power_cmdline(const char *cmdline);

/*
 * Powers the machine off. Does not return: if every method failed, it says
 * so in one line and halts the CPU. => after power_init().
 */
_Noreturn void power_off(void);

/*
 * Resets the machine. Does not return: its last method, a triple fault,
 * cannot fail to reset the CPU (and if it did: one line and a halt).
 * => after power_init().
 */
_Noreturn void power_reboot(void);

/*
 * power_off()/power_reboot() with only the POWER_* methods in `methods`;
 * they return only if every method in it failed (POWER_TRIPLE never does).
 */
void power_off_using(unsigned methods);
void power_reboot_using(unsigned methods);

#endif
