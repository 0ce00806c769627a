#!/usr/bin/env python3
"""Boot test: the image boots under OVMF to `canopy: ready` on the serial console."""

import harness

READY_TIMEOUT_S = 45


def main():
    args = harness.arg_parser(__doc__).parse_args()
    with harness.machine_from_args(args, name="ready") as vm:
        vm.wait_for_line(r"BdsDxe: starting Boot\d+", 30, "OVMF starting the disk")
        print(f"\n[check] OVMF started the disk's boot loader after {vm.elapsed():.1f} s")
        # The kernel compares its page tables with the mapping manifest before it is ready.
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


if __name__ == "__main__":
    harness.run(main)
