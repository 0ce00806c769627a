#!/usr/bin/env python3
"""boot_timeline: the boot phases of the disk image under QEMU + OVMF.

Boots the image --boots times (each a fresh QEMU and a fresh copy of the
OVMF variables), waits for the shell, runs `boottime` and reads its table:
the time of each phase since stage 1's entry and the step from the phase
before, from the TSC stamps stage 1 and the kernel took, and the page-table
frames stage 1's builder took against the fewest its mappings need.

With --json FILE it writes one JSON object per line per boot, in the form
scripts/bench.sh collects:
  {"bench": "boot_phase", "impl": "canopy", "n": 1, "phase": "kernel-entry",
   "ns_per_op": <ns since stage 1's entry>, "step_ns": <ns since the phase before>}
  {"bench": "boot_pt_frames", "impl": "canopy", "n": 1,
   "frames_used": <frames>, "frames_minimum": <frames>}

The check before anything is recorded: every phase is present, in order,
with the TSC rate known, and the page-table line is there. A boot that fails
or a table that does not parse ends the program with status 1. Whether the
frames equal the minimum is a target (scripts/bench.sh), not a failure here;
the boot test boot_shell_commands fails on it.

Under TCG every guest cycle is emulated, so these are the emulated machine's
times, not a real PC's.

Usage: boot_timeline.py --image IMG [--boots N] [--quick] [--json FILE]
                        [the boot tests' options: --mem, --cpu, --ovmf-code, ...]
  --quick  one boot (the test suite's smoke run)
"""

import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "boot"))

import harness  # noqa: E402
import shell  # noqa: E402

def main():
    p = harness.arg_parser(__doc__)
    p.add_argument("--boots", type=int, default=1)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--json", help="also write JSON lines here")
    args = p.parse_args()
    if not args.image:
        raise harness.BootTestError("--image is needed")
    boots = 1 if args.quick else args.boots
    records = []
    for b in range(boots):
        with harness.machine_from_args(args, name=f"boot_timeline_{b}") as vm:
            sh = shell.Shell(vm)
            sh.wait_ready()
            phases, (used, minimum) = shell.parse_boottime(sh.run("boottime"))
        for name, since, step in phases:
            records.append({"bench": "boot_phase", "impl": "canopy", "n": 1, "phase": name,
                            "ns_per_op": since, "step_ns": step})
        records.append({"bench": "boot_pt_frames", "impl": "canopy", "n": 1,
                        "frames_used": used, "frames_minimum": minimum})
        print(f"boot {b + 1}/{boots}: shell ready at {phases[-1][1] / 1e6:.1f} ms, "
              f"{used} page-table frames, minimum {minimum}", flush=True)
    print(f"\n{'phase':<26} {'since start':>14} {'step':>14}   (last boot)")
    for name, since, step in phases:
        print(f"{name:<26} {since / 1e6:>11.3f} ms {step / 1e6:>11.3f} ms")
    if args.json:
        with open(args.json, "w") as f:
            for r in records:
                f.write(json.dumps(r) + "\n")


if __name__ == "__main__":
    harness.run(main)
