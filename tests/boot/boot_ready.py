#!/usr/bin/env python3
"""Boot test: the image boots to `canopy: ready` on the serial console, with the
kernel's boot-time `pt check: OK` and `pmm audit: OK`.

With --firmware uboot, under U-Boot's UEFI implementation instead of OVMF. It
lacks what EDK2 has (a GOP, variables after ExitBootServices, a memory
attributes table), and each of these must be said once, in one line, with
the boot going on: stage 1's `no graphics output` and `keeps no variables`
lines and the kernel's `UEFI ResetSystem will not be used` line.
"""

import re

import harness

START_TIMEOUT_S = {"ovmf": 30, "uboot": 90}  # U-Boot: a 2 s countdown, then AHCI link timeouts
READY_TIMEOUT_S = 45

# What U-Boot's UEFI lacks, and the one line that says so each (docs/stage1.md,
# "Firmware other than EDK2").
UBOOT_ONCE = {
    "no GOP": r"^canopy: no graphics output; serial console only$",
    "no variables after ExitBootServices":
        r"^canopy: this firmware keeps no variables after ExitBootServices: .*$",
    "no memory attributes table":
        r"^power: UEFI ResetSystem will not be used: .*no memory attributes table.*$",
}


def main():
    args = harness.arg_parser(__doc__).parse_args()
    with harness.machine_from_args(args, name=f"ready-{args.firmware}") as vm:
        vm.wait_for_line(vm.fw_line("start"), START_TIMEOUT_S[args.firmware],
                         "the firmware starting the disk's boot loader")
        print(f"\n[check] the firmware started the disk's boot loader after {vm.elapsed():.1f} s")
        start = vm.cursor()
        # The audit of every frame's owner, then the page tables against the manifest.
        audit = vm.wait_for(r"^pmm audit: .*\n", READY_TIMEOUT_S, "the boot's `pmm audit` line",
                            fail_if=harness.BOOT_FAILURE)
        if not audit.group(0).startswith("pmm audit: OK ("):
            raise harness.BootTestError(f"the PMM audit failed: {audit.group(0)}" + vm.tail())
        print(f"\n[check] {audit.group(0).strip()}")
        check = vm.wait_for(r"^pt check: .*\n", READY_TIMEOUT_S, "the boot's `pt check` line",
                            fail_if=harness.BOOT_FAILURE)
        if not check.group(0).startswith("pt check: OK ("):
            raise harness.BootTestError(f"page tables differ from the manifest: {check.group(0)}"
                                        + vm.tail())
        print(f"\n[check] {check.group(0).strip()}")
        # A panic, an exception report or a return to the firmware ends the wait.
        vm.wait_for(r"^canopy: ready\n", READY_TIMEOUT_S, "`canopy: ready`",
                    fail_if=harness.BOOT_FAILURE)
        print(f"\n[check] `canopy: ready` on serial after {vm.elapsed():.1f} s, "
              "with no panic, exception report or return to the firmware before it")
        if args.firmware == "uboot":
            text = vm.output()[start:vm.cursor()]
            for what, pattern in UBOOT_ONCE.items():
                lines = re.findall(pattern, text, re.MULTILINE)
                if len(lines) != 1:
                    raise harness.BootTestError(f"{what}: expected one line matching {pattern!r}, "
                                                f"got {lines!r}")
                print(f"[check] {what}, said once: {lines[0]!r}")


if __name__ == "__main__":
    harness.run(main)
