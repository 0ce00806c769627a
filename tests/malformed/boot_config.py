#!/usr/bin/env python3
"""Boot test: stage 1 with a missing or bad /canopy/canopy.cfg, and with a
config naming a kernel that is not there or is empty.

Cases (each one boot, in the order given):
  no-cfg            no canopy.cfg: one line saying the defaults are used, and
                    the default kernel boots to `canopy: ready`
  problems          a config in which nearly every line is wrong (unknown key,
                    overlong values, malformed lines, bad values, a repeated
                    key, an unprintable byte): one line each, with its line
                    number, in order and nothing else; the valid lines still
                    count and the kernel boots to `canopy: ready`
  kernel-not-found  kernel= names a file that does not exist: one line naming
                    it, and back to the firmware
  kernel-dir        kernel= names a directory: one line, back to the firmware
  kernel-empty      the kernel file is empty: one line, back to the firmware

    boot_config.py <harness options> --cases NAME...
"""

import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bootcheck  # noqa: E402
from bootcheck import harness  # noqa: E402

# The bad config and the lines stage 1 must print for each of its lines (none
# for a line that is fine; a repeated key is noted only when its later value
# is taken). Line numbers count from 1; the byte order mark some editors write
# is not part of the first line's key. The last cmdline= is valid and must
# reach the kernel, which prints it.
LONG = "x" * 300
CMDLINE = "from-the-config"  # the one valid cmdline= (line 16)
PROBLEMS = [
    ("\ufeff# Canopy test configuration: most lines below are wrong.", []),
    ("kernel=/canopy/kernel.elf", []),
    ("colour=green", ["unknown key 'colour'"]),
    (f"cmdline={LONG}", ["cmdline= value is too long (300 bytes, at most 255)"]),
    (f"kernel=/{LONG}", ["kernel= value is too long (301 bytes, at most 255)"]),
    ("this line has no equals sign",
     ["malformed line (expected key=value): 'this line has no equals sign'"]),
    ("= value without a key", ["malformed line (no key before '=')"]),
    ("kernel=canopy/kernel.elf", ["kernel= must be an absolute path starting with '/'"]),
    ("serial=maybe", ["serial= takes on or off, not 'maybe'"]),
    ("verbose=12", ["verbose= takes a number from 0 to 9, not '12'"]),
    ("resolution=big", ["resolution= takes WIDTHxHEIGHT or current, not 'big'"]),
    ("cmdline=bell\x07here", ["line holds characters that are not printable ASCII; ignored"]),
    ("   # an indented comment", []),
    ("", []),
    ("serial = on\r", ["serial= given again; the later value counts"]),
    (f"cmdline=  {CMDLINE}  ", ["cmdline= given again; the later value counts"]),
]

CASES = ("no-cfg", "problems", "kernel-not-found", "kernel-dir", "kernel-empty")


def write(path, data):
    with open(path, "wb") as f:
        f.write(data)
    return path


def boot_to_ready(vm, name, want_lines, kernel_says=None):
    """Waits for `canopy: stage 1`, then checks that stage 1's lines before it
    reads the kernel are exactly want_lines (after `canopy: `, in order), then
    waits for the kernel's line kernel_says (a regex) if given, and for
    `canopy: ready`."""
    vm.wait_for(r"BdsDxe: starting Boot\d+.*", bootcheck.BOOT_START_S, "OVMF starting the disk",
                fail_if=r"X64 Exception")
    vm.wait_for(r"^canopy: stage 1\s*$", bootcheck.STAGE1_LINE_S, "`canopy: stage 1`")
    start = vm.cursor()
    m = vm.wait_for(r"^canopy: /canopy/kernel\.elf: \d+ bytes[^\n]*\n", bootcheck.STAGE1_LINE_S,
                    "stage 1 reading the default kernel",
                    fail_if=r"BdsDxe: failed to start|X64 Exception")
    said = [l[len("canopy: "):].rstrip() for l in vm.output()[start:m.start()].split("\n")
            if l.startswith("canopy: ")]
    if said != want_lines:
        raise harness.BootTestError(
            f"{name}: stage 1's lines about the config were\n    "
            + "\n    ".join(map(repr, said)) + "\n  expected\n    "
            + "\n    ".join(map(repr, want_lines)))
    if kernel_says:
        vm.wait_for(kernel_says, bootcheck.READY_S, repr(kernel_says),
                    fail_if=r"^canopy: ready|X64 Exception")
    vm.wait_for(r"^canopy: ready\s*$", bootcheck.READY_S, "`canopy: ready`",
                fail_if=r"BdsDxe: failed to start|X64 Exception|(?i:\bpanic\b)")
    print(f"[check] {name}: {len(want_lines)} config line(s) as expected, then `canopy: ready` "
          f"after {vm.elapsed():.1f} s", flush=True)


def run_case(args, name):
    work = args.workdir
    if name == "no-cfg":
        image = bootcheck.make_image(args, "config-no-cfg", no_cfg=True)
        with harness.machine_from_args(args, image=image, name="config-no-cfg") as vm:
            boot_to_ready(vm, name, ["no /canopy/canopy.cfg; using the defaults"])
    elif name == "problems":
        text = "\n".join(line for line, _ in PROBLEMS) + "\n"
        cfg = write(os.path.join(work, "config-problems.cfg"), text.encode("utf-8"))
        want = [f"canopy.cfg:{n}: {msg}" for n, (_, msgs) in enumerate(PROBLEMS, 1)
                for msg in msgs]
        image = bootcheck.make_image(args, "config-problems", cfg=cfg)
        with harness.machine_from_args(args, image=image, name="config-problems") as vm:
            boot_to_ready(vm, name, want, rf"^command line: {CMDLINE}\s*$")
    elif name in ("kernel-not-found", "kernel-dir"):
        path, why = {"kernel-not-found": ("/canopy/missing.elf", "file not found"),
                     "kernel-dir": ("/canopy", "is a directory, not a kernel")}[name]
        cfg = write(os.path.join(work, f"config-{name}.cfg"), f"kernel={path}\n".encode())
        image = bootcheck.make_image(args, f"config-{name}", cfg=cfg)
        with harness.machine_from_args(args, image=image, name=f"config-{name}") as vm:
            bootcheck.expect_give_up(vm, f"config-{name}",
                                     re.escape(f"{path}: {why}"), work)
    elif name == "kernel-empty":
        kernel = write(os.path.join(work, "kernel-empty.elf"), b"")
        image = bootcheck.make_image(args, "config-kernel-empty", kernel=kernel)
        with harness.machine_from_args(args, image=image, name="config-kernel-empty") as vm:
            bootcheck.expect_give_up(vm, "config-kernel-empty",
                                     re.escape("/canopy/kernel.elf: the file is empty"), work)


def main():
    p = harness.arg_parser(__doc__)
    p.add_argument("--cases", nargs="+", choices=CASES, required=True)
    args = p.parse_args()
    os.makedirs(args.workdir, exist_ok=True)
    for name in args.cases:
        run_case(args, name)
    print(f"[check] {len(args.cases)} configuration boot(s) as expected")


if __name__ == "__main__":
    harness.run(main)
