#!/usr/bin/env python3
"""Boot test: a missing or corrupt kernel gives stage 1's one error line
(`canopy: <kernel path>: <problem>`) and a return to the firmware, whose boot
manager then reports the failed boot option and moves on.

Cases: missing (no /canopy/kernel.elf), truncated (the file ends in the middle
of its first loadable segment), badmagic (the first byte changed).

Under OVMF (the default) the boot manager says `BdsDxe: failed to start
Boot000N` and starts the next option. Under U-Boot (--firmware uboot) it says
`## Application failed, r = N` and `EFI LOAD FAILED: continuing...`, and
its boot script tries the other devices; for the missing kernel the test
also waits for U-Boot's own `=> ` prompt at the end of them, which shows the
firmware alive and in control again (on q35 that takes U-Boot another 30 s
of IDE and USB timeouts, so the other cases stop at the boot manager's line).
"""

import os
import re

import harness

# Each case and what its error line must say (loosely: the reason, not the wording).
CASES = {
    "missing": r"(?i)not found|no such file",
    "truncated": r"(?i)past the end|outside the file|too short|truncated",
    "badmagic": r"(?i)magic|not an ELF",
}


def make_variant(args, case):
    # Per firmware: the OVMF and U-Boot runs of a case may run side by side.
    out = os.path.join(args.workdir, f"bad-kernel-{case}-{args.firmware}.img")
    if case == "missing":
        return harness.make_image(args, out, no_kernel=True)
    with open(args.kernel, "rb") as f:
        data = bytearray(f.read())
    if case == "truncated":
        # Keep the headers; end the file halfway through the first segment
        # that has file bytes.
        seg = next(s for s in harness.elf_load_segments(args.kernel) if s.filesz > 0)
        data = data[:seg.offset + seg.filesz // 2]
    elif case == "badmagic":
        data[0] = 0x7E
    bad = os.path.join(args.workdir, f"kernel-{case}-{args.firmware}.elf")
    with open(bad, "wb") as f:
        f.write(data)
    print(f"[setup] {os.path.basename(bad)}: {len(data)} bytes")
    return harness.make_image(args, out, kernel=bad)


def main():
    p = harness.arg_parser(__doc__)
    p.add_argument("--case", choices=sorted(CASES), required=True)
    args = p.parse_args()
    os.makedirs(args.workdir, exist_ok=True)
    image = make_variant(args, args.case)
    print(f"[setup] {os.path.basename(image)}: kernel {args.case}")
    uboot = args.firmware == "uboot"
    with harness.machine_from_args(args, image=image,
                                   name=f"bad-kernel-{args.case}-{args.firmware}") as vm:
        vm.wait_for_line(vm.fw_line("start"), 90 if uboot else 30,
                         "the firmware starting the disk's boot loader")
        start = vm.cursor()
        # Stage 1 returns to the firmware; its boot manager says the boot
        # option failed and goes on to the next one.
        m = vm.wait_for_line(vm.fw_line("failed"), 45,
                             "the boot manager reporting the failed boot option",
                             fail_if=r"^canopy: (kernel entered|ready)")
        back = m.group(0).strip()
        # The last thing stage 1 printed before returning is the error line.
        lines = [l for l in vm.output()[start:m.start()].split("\n") if l.startswith("canopy: ")]
        if not lines:
            raise harness.BootTestError("stage 1 printed nothing before returning")
        error = lines[-1].strip()
        if not re.match(r"canopy: \S*kernel\.elf: .+", error):
            raise harness.BootTestError(f"stage 1's last line {error!r} does not name the "
                                        "kernel file")
        if not re.search(CASES[args.case], error):
            raise harness.BootTestError(f"stage 1's error line {error!r} does not give the "
                                        f"reason for a {args.case} kernel ({CASES[args.case]})")
        print(f"\n[check] stage 1's error line: {error!r}")
        print(f"[check] back in the firmware after {vm.elapsed():.1f} s: {back!r}")
        m = vm.wait_for_line(vm.fw_line("next"), 30,
                             "the boot manager moving on to the next option")
        print(f"[check] the boot manager moved on: {m.group(0).strip()!r}")
        if uboot and args.case == "missing":
            vm.wait_for(r"^=> ", 120, "U-Boot's prompt", partial=True)
            print(f"[check] U-Boot's prompt after {vm.elapsed():.1f} s")


if __name__ == "__main__":
    harness.run(main)
