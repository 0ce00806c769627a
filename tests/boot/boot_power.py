#!/usr/bin/env python3
"""Boot test: the kernel powers the machine off and resets it.

The image's command line carries `power=CASE`, which the kernel acts on right
after `canopy: ready` (the shell's `poweroff` and `reboot` call the same
functions). Each case checks three things no one can fake from inside the
guest:

  - the console names the method that was tried, and no method failed before
    it (so the UEFI ResetSystem cases prove the firmware call worked, and the
    fallback cases prove their method works on its own);
  - QEMU's own account over QMP: a SHUTDOWN event with reason
    `guest-shutdown` (ACPI S5, directly or from the firmware) or
    `guest-reset` (a reset that -no-reboot turns into an exit);
  - QEMU's exit status: 0 (isa-debug-exit, the last resort, would give 3).

Cases:
  off            power=off: UEFI ResetSystem(EfiResetShutdown)
  off-acpi       power=off-acpi: ACPI S5 from the FADT and the DSDT's \\_S5
  reboot         power=reboot: UEFI ResetSystem(EfiResetCold), -no-reboot
  reboot-acpi    the FADT's reset register
  reboot-8042    the keyboard controller's reset line
  reboot-triple  a triple fault
  reboot-again   power=reboot without -no-reboot: a RESET event, and the
                 firmware boots the kernel a second time
"""

import json
import os
import re
import socket
import time

import harness

READY_TIMEOUT_S = 60
EXIT_AFTER_READY_S = 5  # "within a few seconds" of `canopy: ready`

TRIED = r"^power: trying (.*)\n"
FAILED = r"^power: .* failed: .*$|^power: the machine could not"

CASES = {
    "off": ("off", r"UEFI ResetSystem\(EfiResetShutdown\)", "guest-shutdown"),
    "off-acpi": ("off-acpi", r"ACPI S5 \(PM1a_CNT port 0x[0-9a-f]+, SLP_TYPa \d", "guest-shutdown"),
    "reboot": ("reboot", r"UEFI ResetSystem\(EfiResetCold\)", "guest-reset"),
    "reboot-acpi": ("reboot-acpi", r"the ACPI reset register \(port 0x[0-9a-f]+ <- 0x",
                    "guest-reset"),
    "reboot-8042": ("reboot-8042", r"the 8042 reset line", "guest-reset"),
    "reboot-triple": ("reboot-triple", r"a triple fault", "guest-reset"),
    "reboot-again": ("reboot", r"UEFI ResetSystem\(EfiResetCold\)", "guest-reset"),
}


class RebootingMachine(harness.Machine):
    """A Machine without -no-reboot: a guest reset starts the firmware again."""

    def command_line(self):
        return [a for a in super().command_line() if a != "-no-reboot"]


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


def qmp_events(vm, timeout):
    """Every QMP event QEMU sends until it closes the socket (it exits) or
    `timeout` seconds pass."""
    events = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        vm.qmp_sock.settimeout(max(0.1, deadline - time.monotonic()))
        try:
            line = vm._qmp_file.readline()  # the harness's QMP stream, after negotiation
        except (socket.timeout, OSError):
            break
        if not line:
            break
        msg = json.loads(line)
        if "event" in msg:
            events.append(msg)
    return events


def check_methods(vm, since, method):
    """The console after `since`: exactly one method tried, `method`, and no failure."""
    text = vm.output()[since:]
    tried = re.findall(TRIED, text, re.MULTILINE)
    if not tried or not re.match(method, tried[0]):
        raise harness.BootTestError(f"expected the first method tried to match {method!r}, "
                                    f"got {tried!r}; the console ended with:\n" + vm.tail())
    if len(tried) != 1:
        raise harness.BootTestError(f"more than one method tried: {tried!r}")
    failed = re.search(FAILED, text, re.MULTILINE)
    if failed:
        raise harness.BootTestError(f"a method failed: {failed.group(0)!r}")
    print(f"\n[check] the only method tried: {tried[0]}, and nothing failed")


def check_event(events, reason):
    wanted = "SHUTDOWN" if reason == "guest-shutdown" else None
    shutdowns = [e for e in events if e["event"] in ("SHUTDOWN", "RESET")]
    if not shutdowns:
        raise harness.BootTestError(f"no SHUTDOWN or RESET event from QEMU (events: {events})")
    e = shutdowns[0]
    data = e.get("data", {})
    if data.get("reason") != reason or not data.get("guest") or \
            (wanted and e["event"] != wanted):
        raise harness.BootTestError(f"QEMU reported {e['event']} {data}, expected reason "
                                    f"{reason!r} caused by the guest")
    print(f"\n[check] QEMU reported {e['event']} with reason {data['reason']} (guest: true)")


def run_case(args, case):
    cmdline, method, reason = CASES[case]
    image = variant_image(args, case, cmdline)
    again = case == "reboot-again"
    if again:
        vm = RebootingMachine(image, ovmf_code=args.ovmf_code, ovmf_vars=args.ovmf_vars,
                              machine=args.machine, mem=args.mem, smp=args.smp, cpu=args.cpu,
                              log_dir=args.workdir, name=f"power-{case}", echo=not args.quiet)
    else:
        vm = harness.machine_from_args(args, image=image, name=f"power-{case}")
    with vm:
        vm.qmp("query-status")  # QMP up before anything happens, so no event is missed
        vm.wait_for_line(r"^power: UEFI (runtime services look usable|ResetSystem will not)",
                         READY_TIMEOUT_S, "the boot's UEFI runtime line",
                         fail_if=harness.BOOT_FAILURE)
        vm.expect_absent(r"^power: UEFI ResetSystem will not be used")
        vm.wait_for(r"^canopy: ready\n", READY_TIMEOUT_S, "`canopy: ready`",
                    fail_if=harness.BOOT_FAILURE)
        ready_at = vm.elapsed()
        since = vm.cursor()
        vm.wait_for_line(r"^power: the command line asks for power=" + re.escape(cmdline) + "$",
                         10, "the kernel acting on power=")
        if again:
            check_again(vm, since, method)
            return
        status = vm.wait_exit(EXIT_AFTER_READY_S + 5)
        took = vm.elapsed() - ready_at
        events = qmp_events(vm, 5)
        print(f"\n[check] QEMU exited with status {status}, {took:.1f} s after `canopy: ready`")
        if status != 0:
            raise harness.BootTestError(f"QEMU exit status {status}, expected 0")
        if took > EXIT_AFTER_READY_S:
            raise harness.BootTestError(f"QEMU ended {took:.1f} s after `canopy: ready`, "
                                        f"expected within {EXIT_AFTER_READY_S} s")
        check_methods(vm, since, method)
        check_event(events, reason)


def check_again(vm, since, method):
    """Without -no-reboot: the reset is a RESET event and the firmware runs again."""
    vm.wait_for_line(r"^power: trying " + method, 10, "the reset method")
    check_methods(vm, since, method)
    vm.wait_for_line(r"BdsDxe: starting Boot\d+", 60, "OVMF starting the disk a second time")
    events = qmp_events(vm, 1)
    check_event(events, "guest-reset")
    vm.wait_for(r"^canopy: ready\n", READY_TIMEOUT_S, "`canopy: ready` a second time",
                fail_if=harness.BOOT_FAILURE)
    print("\n[check] the firmware booted the kernel to `canopy: ready` a second time")


def main():
    p = harness.arg_parser(__doc__)
    p.add_argument("--case", choices=sorted(CASES), required=True)
    args = p.parse_args()
    run_case(args, args.case)


if __name__ == "__main__":
    harness.run(main)
