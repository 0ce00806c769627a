#!/usr/bin/env python3
"""Boot test: the image boots under OVMF to `canopy: ready` on the serial console."""

import harness

READY_TIMEOUT_S = 45


def main():
    args = harness.arg_parser(__doc__).parse_args()
    with harness.machine_from_args(args, name="ready") as vm:
        vm.wait_for(r"BdsDxe: starting Boot\d+", 30, "OVMF starting the disk")
        print(f"\n[check] OVMF started the disk's boot loader after {vm.elapsed():.1f} s")
        vm.wait_for(r"^canopy: ready\s*$", READY_TIMEOUT_S, "`canopy: ready`",
                    fail_if=r"BdsDxe: failed to start")
        print(f"\n[check] `canopy: ready` on serial after {vm.elapsed():.1f} s")
        # Nothing the kernel printed before it may be an exception report or a panic.
        vm.expect_absent(r"(?i)\b(panic|exception|triple fault)\b.*")
        print("[check] no panic or exception report before it")


if __name__ == "__main__":
    harness.run(main)
