#!/usr/bin/env python3
"""Boot test: the kernel powers the machine off and resets it.

The image's command line carries `power=WORD`, which the kernel acts on right
after `canopy: ready` (the shell's `poweroff` and `reboot` call the same
functions). Each case checks three things no one can fake from inside the
guest:

  - the console names the method that was tried, and no method failed (or
    was skipped) before it but the ones the case expects (so the UEFI
    ResetSystem cases prove the firmware call worked, and the fallback cases
    prove their method works on its own);
  - QEMU's own account over QMP: a SHUTDOWN event with reason
    `guest-shutdown` (ACPI S5, directly or from the firmware) or
    `guest-reset` (a reset that -no-reboot turns into an exit);
  - QEMU's exit status: 0 (isa-debug-exit, the last resort, would give 3).

Cases under OVMF:
  off            power=off: UEFI ResetSystem(EfiResetShutdown)
  off-acpi       power=off-acpi: ACPI S5 from the FADT and the DSDT's \\_S5
  reboot         power=reboot: UEFI ResetSystem(EfiResetCold), -no-reboot
  reboot-acpi    the FADT's reset register
  reboot-8042    the keyboard controller's reset line
  reboot-triple  a triple fault
  reboot-again   power=reboot without -no-reboot: a RESET event, and the
                 firmware boots the kernel a second time

Cases under U-Boot's UEFI, whose ResetSystem the kernel does not call (no
memory attributes table: its runtime code would have to be mapped W+X; and
on x86 it resets the machine when asked to power it off), so the kernel says
it skips it and goes on with ACPI (docs/stage1.md, "Firmware other than EDK2"):
  uboot-reboot     q35: the FADT's reset register (port 0xcf9)
  uboot-reboot-pc  pc: U-Boot's FADT there has no reset register (revision 1),
                   so the 8042 reset line
  uboot-off-pc     pc: ACPI S5
  uboot-off        q35: nothing can power the machine off: U-Boot never sets
                   the ICH9 power-management base, so its FADT's PM1a
                   control block is port 0x4 and S5 does nothing there; its
                   DSDT lies in boot-services code, read at boot before the
                   kernel reuses that memory. Without isa-debug-exit QEMU's
                   device cannot either: the kernel says so in one line and halts. QEMU
                   keeps running; `info registers` shows the CPU halted
                   (HLT=1) with interrupts off.
"""

import os
import re
import time

import harness

READY_TIMEOUT_S = {"ovmf": 60, "uboot": 120}  # U-Boot: a countdown and AHCI timeouts first
EXIT_AFTER_READY_S = 5  # "within a few seconds" of `canopy: ready`

TRIED = r"^power: trying (.*)\n"
FAILED = r"^power: .* failed: .*$|^power: skipping .*$|^power: nothing could.*$"

class Case:
    def __init__(self, cmdline, method, reason, firmware="ovmf", machine="q35",
                 failures=(), debug_exit=True):
        self.cmdline = cmdline      # the word after power=
        self.method = method        # the method tried (a regex), or the methods in order (a tuple)
        self.reason = reason        # QEMU's SHUTDOWN reason, or None: QEMU keeps running
        self.firmware = firmware
        self.machine = machine
        self.failures = failures    # the failed or skipped methods' lines this case expects
        self.debug_exit = debug_exit


SKIP_EFI = r"^power: skipping UEFI ResetSystem\(\w+\): .+$"
CASES = {
    "off": Case("off", r"UEFI ResetSystem\(EfiResetShutdown\)", "guest-shutdown"),
    "off-acpi": Case("off-acpi", r"ACPI S5 \(PM1a_CNT port 0x[0-9a-f]+, SLP_TYPa \d",
                     "guest-shutdown"),
    "reboot": Case("reboot", r"UEFI ResetSystem\(EfiResetCold\)", "guest-reset"),
    "reboot-acpi": Case("reboot-acpi", r"the ACPI reset register \(port 0x[0-9a-f]+ <- 0x",
                        "guest-reset"),
    "reboot-8042": Case("reboot-8042", r"the 8042 reset line", "guest-reset"),
    "reboot-triple": Case("reboot-triple", r"a triple fault", "guest-reset"),
    "reboot-again": Case("reboot", r"UEFI ResetSystem\(EfiResetCold\)", "guest-reset"),
    "uboot-reboot": Case("reboot", r"the ACPI reset register \(port 0xcf9 <- 0x",
                         "guest-reset", firmware="uboot", failures=[SKIP_EFI]),
    "uboot-reboot-pc": Case("reboot", r"the 8042 reset line", "guest-reset", firmware="uboot",
                            machine="pc",
                            failures=[SKIP_EFI, r"^power: ACPI reset register failed: FADT "
                                      r"revision \d+ has no reset register$"]),
    "uboot-off-pc": Case("off", r"ACPI S5 \(PM1a_CNT port 0x[0-9a-f]+, SLP_TYPa \d",
                         "guest-shutdown", firmware="uboot", machine="pc", failures=[SKIP_EFI]),
    "uboot-off": Case("off", (r"ACPI S5 \(PM1a_CNT port 0x4, SLP_TYPa 0",
                              r"QEMU's isa-debug-exit"), None, firmware="uboot", debug_exit=False,
                      failures=[SKIP_EFI, r"^power: ACPI S5 failed: the machine is still running "
                                r"1 s after SLP_EN$",
                                r"^power: QEMU isa-debug-exit failed: no such device.*$",
                                r"^power: nothing could power the machine off; halted: turn it "
                                r"off by hand$"]),
}


def variant_image(args, case, cmdline):
    """The image with `cmdline=power=...` in its canopy.cfg."""
    with open(args.cfg) as f:
        text = f.read()
    if not re.search(r"^cmdline=.*$", text, re.MULTILINE):
        raise harness.BootTestError(f"{args.cfg} has no cmdline= line to replace")
    text = re.sub(r"^cmdline=.*$", f"cmdline=power={cmdline}", text, flags=re.MULTILINE)
    os.makedirs(args.workdir, exist_ok=True)
    cfg = os.path.join(args.workdir, f"power-{case}.cfg")
    with open(cfg, "w") as f:
        f.write(text)
    return harness.make_image(args, os.path.join(args.workdir, f"power-{case}.img"), cfg=cfg)


def check_methods(vm, since, method, failures=()):
    """The console after `since`: exactly the methods tried that `method` names
    (one regex, or a tuple of them in order), and no failure or skipped method
    but those in `failures`, each exactly once."""
    text = vm.output()[since:]
    tried = re.findall(TRIED, text, re.MULTILINE)
    methods = method if isinstance(method, tuple) else (method,)
    if not tried or not re.match(methods[0], tried[0]):
        raise harness.BootTestError(f"expected the first method tried to match {methods[0]!r}, "
                                    f"got {tried!r}; the console ended with:\n" + vm.tail())
    if len(tried) != len(methods) or not all(re.match(m, t) for m, t in zip(methods, tried)):
        raise harness.BootTestError(f"expected the methods {methods!r} in order, tried {tried!r}")
    for f in failures:
        seen = re.findall(f, text, re.MULTILINE)
        if len(seen) != 1:
            raise harness.BootTestError(f"expected one line matching {f!r}, got {seen!r}")
        print(f"[check] as expected: {seen[0]!r}")
    for m in re.finditer(FAILED, text, re.MULTILINE):
        if not any(re.fullmatch(f.strip("^$"), m.group(0)) for f in failures):
            raise harness.BootTestError(f"a method failed: {m.group(0)!r}")
    print(f"\n[check] the methods tried: {', '.join(tried)}, and nothing else failed")


def run_case(args, name):
    case = CASES[name]
    args.firmware, args.machine = case.firmware, case.machine
    image = variant_image(args, name, case.cmdline)
    again = name == "reboot-again"
    vm = harness.machine_from_args(args, image=image, name=f"power-{name}", no_reboot=not again,
                                   debug_exit=case.debug_exit)
    with vm:
        vm.qmp("query-status")  # QMP up before anything happens, so no event is missed
        vm.wait_for_line(r"^power: UEFI (runtime services look usable|ResetSystem will)",
                         READY_TIMEOUT_S[case.firmware], "the boot's UEFI runtime line",
                         fail_if=harness.BOOT_FAILURE)
        if case.firmware == "ovmf":
            vm.expect_absent(r"^power: UEFI ResetSystem will not be used")
        vm.wait_for(r"^canopy: ready\n", READY_TIMEOUT_S[case.firmware], "`canopy: ready`",
                    fail_if=harness.BOOT_FAILURE)
        ready_at = vm.elapsed()
        since = vm.cursor()
        vm.wait_for_line(r"^power: the command line asks for power=" + re.escape(case.cmdline)
                         + "$", 10, "the kernel acting on power=")
        if again:
            check_again(vm, since, case.method)
            return
        if case.reason is None:
            check_halted(vm, since, case)
            return
        status = vm.wait_exit(EXIT_AFTER_READY_S + 5)
        took = vm.elapsed() - ready_at
        events = harness.events_until_exit(vm, 5)
        print(f"\n[check] QEMU exited with status {status}, {took:.1f} s after `canopy: ready`")
        if status != 0:
            raise harness.BootTestError(f"QEMU exit status {status}, expected 0")
        if took > EXIT_AFTER_READY_S:
            raise harness.BootTestError(f"QEMU ended {took:.1f} s after `canopy: ready`, "
                                        f"expected within {EXIT_AFTER_READY_S} s")
        check_methods(vm, since, case.method, case.failures)
        harness.check_event(events, case.reason)  # -no-reboot: a reset is a SHUTDOWN too


def check_halted(vm, since, case):
    """Nothing could power the machine off: one line, then the CPU halted for
    good, with QEMU still running, no SHUTDOWN or RESET, and nothing more on
    the console."""
    m = vm.wait_for_line(r"^power: nothing could", 10, "the kernel saying nothing worked")
    check_methods(vm, since, case.method, case.failures)
    time.sleep(2)
    status = vm.qmp("query-status")
    regs = vm.hmp("info registers")
    events = [e for e in harness.events_until_exit(vm, 1) if e["event"] in ("SHUTDOWN", "RESET")]
    after = vm.output()[vm.cursor():].strip()
    hlt = re.search(r"\bHLT=(\d)", regs)
    rfl = re.search(r"\bRFL=([0-9a-f]+)", regs)
    halted = hlt and hlt.group(1) == "1" and rfl and not int(rfl.group(1), 16) & 0x200
    print(f"[check] {m.group(0).strip()!r}; then QEMU {status.get('status')}, the CPU "
          f"{'halted with interrupts off' if halted else 'not halted'} (`info registers`: "
          f"{hlt.group(0) if hlt else 'no HLT'}, {rfl.group(0) if rfl else 'no RFL'})")
    if status.get("status") != "running" or not halted or events or after:
        raise harness.BootTestError(f"expected a running QEMU with its CPU halted and "
                                    f"interrupts off, no shutdown and nothing more on the "
                                    f"console; got {status}, {events}, {after!r}, registers:\n"
                                    + regs)


def check_again(vm, since, method):
    """Without -no-reboot: the reset is a RESET event and the firmware runs again."""
    vm.wait_for_line(r"^power: trying " + method, 10, "the reset method")
    check_methods(vm, since, method)
    vm.wait_for_line(r"BdsDxe: starting Boot\d+", 60, "OVMF starting the disk a second time")
    events = harness.events_until_exit(vm, 1)
    harness.check_event(events, "guest-reset", event="RESET")
    vm.wait_for(r"^canopy: ready\n", READY_TIMEOUT_S["ovmf"], "`canopy: ready` a second time",
                fail_if=harness.BOOT_FAILURE)
    print("\n[check] the firmware booted the kernel to `canopy: ready` a second time")


def main():
    p = harness.arg_parser(__doc__)
    p.add_argument("--case", choices=sorted(CASES), required=True)
    args = p.parse_args()
    run_case(args, args.case)


if __name__ == "__main__":
    harness.run(main)
