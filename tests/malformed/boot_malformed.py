#!/usr/bin/env python3
"""Boot test: broken kernels from gen.py, each in its own image, booted one
after another under QEMU + OVMF (or U-Boot's UEFI, --firmware uboot). For
each, stage 1 must print one line naming the kernel file and the validator's
reason for that case (on the serial console and, under OVMF, on the screen),
pause, and return to the firmware, whose boot manager reports the failed
option and goes on to the next. Never the kernel, a hang or a CPU exception.

    boot_malformed.py <harness options> --cases NAME...
"""

import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bootcheck  # noqa: E402
import gen  # noqa: E402
from bootcheck import harness  # noqa: E402

KERNEL_PATH = "/canopy/kernel.elf"


def main():
    p = harness.arg_parser(__doc__)
    p.add_argument("--cases", nargs="+", required=True, help="gen.py case names")
    args = p.parse_args()
    os.makedirs(args.workdir, exist_ok=True)
    by_name = {c.name: c for c in gen.load(args.kernel)}
    unknown = [n for n in args.cases if n not in by_name]
    if unknown:
        raise harness.BootTestError(f"no such gen.py cases: {unknown}")

    # Its own file names per firmware: the OVMF and U-Boot runs may run side by side.
    prefix = "malformed-" if args.firmware == "ovmf" else f"malformed-{args.firmware}-"
    images = {}
    for name in args.cases:
        case = by_name[name]
        kernel = os.path.join(args.workdir, f"{prefix}{name}.elf")
        with open(kernel, "wb") as f:
            f.write(case.data)
        images[name] = bootcheck.make_image(args, f"{prefix}{name}", kernel=kernel)
        print(f"[setup] {prefix}{name}.img: {case.what} (expect {case.status})", flush=True)

    for name in args.cases:
        case = by_name[name]
        with harness.machine_from_args(args, image=images[name], name=f"{prefix}{name}") as vm:
            # The line is the path, then the validator's reason for this case.
            want = re.escape(KERNEL_PATH) + ": " + f"(?=.*(?:{case.reason_regex()})).*"
            bootcheck.expect_give_up(vm, f"{prefix}{name}", want, args.workdir)
    print(f"[check] {len(args.cases)} broken kernels, each refused with its reason")


if __name__ == "__main__":
    harness.run(main)
