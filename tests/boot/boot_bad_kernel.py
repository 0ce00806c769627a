#!/usr/bin/env python3
"""Boot test: a missing or corrupt kernel gives stage 1's one error line
(`canopy: <kernel path>: <problem>`) and a return to the firmware, whose boot
manager then reports the failure and moves on.

Cases: missing (no /canopy/kernel.elf), truncated (the ELF cut inside its
segments), badmagic (the first byte changed).
"""

import os
import re

import harness

CASES = ("missing", "truncated", "badmagic")


def make_variant(args, case):
    out = os.path.join(args.workdir, f"bad-kernel-{case}.img")
    if case == "missing":
        return harness.make_image(args, out, no_kernel=True)
    with open(args.kernel, "rb") as f:
        data = bytearray(f.read())
    if case == "truncated":
        # Keep the headers, lose most of the segments' bytes.
        data = data[:max(4096, len(data) // 3)]
    elif case == "badmagic":
        data[0] = 0x7E
    bad = os.path.join(args.workdir, f"kernel-{case}.elf")
    with open(bad, "wb") as f:
        f.write(data)
    return harness.make_image(args, out, kernel=bad)


def main():
    p = harness.arg_parser(__doc__)
    p.add_argument("--case", choices=CASES, required=True)
    args = p.parse_args()
    os.makedirs(args.workdir, exist_ok=True)
    image = make_variant(args, args.case)
    print(f"[setup] {os.path.basename(image)}: kernel {args.case}")
    with harness.machine_from_args(args, image=image, name=f"bad-kernel-{args.case}") as vm:
        vm.wait_for(r"BdsDxe: starting Boot\d+", 30, "OVMF starting the disk")
        start = vm.cursor()
        m = vm.wait_for(r"^canopy: \S*kernel\.elf: .+$", 30, "stage 1's error line",
                        fail_if=r"^canopy: ready")
        line = m.group(0).strip()
        print(f"\n[check] stage 1 reported: {line!r} after {vm.elapsed():.1f} s")
        # Stage 1 returns to the firmware; OVMF's boot manager says the option
        # failed and goes on to the next one.
        m = vm.wait_for(r"BdsDxe: (failed to start Boot\d+.*|loading Boot\d+.*|starting Boot\d+.*)",
                        30, "OVMF's boot manager taking over again")
        print(f"\n[check] back in the firmware: {m.group(0).strip()!r} "
              f"after {vm.elapsed():.1f} s")
        out = vm.output()
        errors = [l for l in out[start:].split("\n") if re.match(r"canopy: \S*kernel\.elf: ", l)]
        if len(errors) != 1:
            raise harness.BootTestError(f"expected one kernel error line, got {errors}")
        print("[check] exactly one kernel error line, and no `canopy: ready`")
        vm.expect_absent(r"^canopy: ready", start)


if __name__ == "__main__":
    harness.run(main)
