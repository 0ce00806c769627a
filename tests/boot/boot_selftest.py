#!/usr/bin/env python3
"""Boot test: the kernel's memory-manager self-test, run from the command line.

Cases:
  selftest          cmdline `selftest`: 100,000 random operations on the kernel
                    address space and the heap; the run must end with
                    `selftest: N passed, 0 failed` (N > 0), no FAIL line, a clean
                    PMM audit, and no panic or exception report.
  kstack-overflow   cmdline `selftest=kstack-overflow`: a kernel stack from the
                    dynamic area is overflowed; the page-fault report must say
                    "stack overflow", name the stack's area ("selftest stack"),
                    and the faulting address (CR2) must lie in the unmapped page
                    just below the stack the kernel announced.
"""

import os
import re

import harness

READY_TIMEOUT_S = 60
SELFTEST_TIMEOUT_S = 150  # about 10 s under TCG alone; generous for a loaded machine
CASES = {"selftest": "selftest", "kstack-overflow": "selftest=kstack-overflow"}


def variant_image(args, case):
    with open(args.cfg) as f:
        lines = f.read().splitlines()
    out_lines = [l for l in lines if not l.strip().startswith("cmdline=")]
    out_lines.append(f"cmdline={CASES[case]}")
    os.makedirs(args.workdir, exist_ok=True)
    cfg = os.path.join(args.workdir, f"selftest-{case}.cfg")
    with open(cfg, "w") as f:
        f.write("\n".join(out_lines) + "\n")
    return harness.make_image(args, os.path.join(args.workdir, f"selftest-{case}.img"), cfg=cfg)


def run_selftest(vm):
    vm.wait_for_line(r"^vm: kernel address space: \d+ areas", READY_TIMEOUT_S,
                     "the kernel address space being set up", fail_if=harness.BOOT_FAILURE)
    vm.wait_for(r"^canopy: ready\n", READY_TIMEOUT_S, "`canopy: ready`",
                fail_if=harness.BOOT_FAILURE)
    start = vm.cursor()
    m = vm.wait_for(r"^selftest: (\d+) passed, (\d+) failed\n", SELFTEST_TIMEOUT_S,
                    "the self-test's final line", fail_if=harness.BOOT_FAILURE)
    passed, failed = int(m.group(1)), int(m.group(2))
    text = vm.output()[start:m.end()]
    fails = re.findall(r"^selftest: FAIL.*$", text, re.MULTILINE)
    if failed != 0 or fails:
        raise harness.BootTestError(f"the self-test reports {failed} failures:\n  "
                                    + "\n  ".join(fails))
    if passed == 0:
        raise harness.BootTestError("the self-test passed no checks at all")
    ops = re.search(r"^selftest: (\d+) operations", text, re.MULTILINE)
    if not ops or int(ops.group(1)) != 100000:
        raise harness.BootTestError("the self-test did not announce 100000 operations")
    if not re.search(r"^pmm audit: OK", text, re.MULTILINE):
        raise harness.BootTestError("no `pmm audit: OK` from the self-test's final audit")
    took = re.search(r"^selftest: took (\d+) ms", text, re.MULTILINE)
    print(f"\n[check] `selftest: {passed} passed, 0 failed` after {vm.elapsed():.1f} s"
          + (f" (the kernel measured {int(took.group(1)) / 1000:.1f} s)" if took else ""))


def run_overflow(vm):
    vm.wait_for(r"^canopy: ready\n", READY_TIMEOUT_S, "`canopy: ready`",
                fail_if=harness.BOOT_FAILURE)
    m = vm.wait_for_line(r"^selftest: overflowing the selftest stack "
                         r"\(0x([0-9a-f]{16})-0x([0-9a-f]{16}), guard page below\)", 30,
                         "the announcement of the overflow", fail_if=harness.BOOT_FAILURE)
    low = int(re.search(r"\(0x([0-9a-f]{16})-", m.group(0)).group(1), 16)
    guard = (low - 4096, low)
    m = vm.wait_for(r"^stack overflow: 0x([0-9a-f]{16}) is in the guard page of the "
                    r"selftest stack \[0x([0-9a-f]{16}), 0x([0-9a-f]{16})\)\n", 30,
                    "a stack overflow report naming the selftest stack",
                    fail_if=r"^panic: |BdsDxe: failed to start")
    addr, g_lo, g_hi = (int(m.group(i), 16) for i in (1, 2, 3))
    if (g_lo, g_hi) != guard:
        raise harness.BootTestError(f"the guard reported is [{g_lo:#x}, {g_hi:#x}), but the "
                                    f"stack starts at {low:#x}: expected [{guard[0]:#x}, "
                                    f"{guard[1]:#x})")
    if not guard[0] <= addr < guard[1]:
        raise harness.BootTestError(f"the faulting address {addr:#x} is not in the guard page")
    cr2 = re.search(r"CR2 ([0-9a-f]{16})", vm.output())
    if not cr2 or int(cr2.group(1), 16) != addr:
        raise harness.BootTestError("the register dump's CR2 differs from the reported address")
    vm.wait_for(r"^\*\*\* system halted\n", 10, "the halt after the report")
    print(f"\n[check] write at {addr:#x} in the guard page [{guard[0]:#x}, {guard[1]:#x}) "
          "reported as a stack overflow of the selftest stack; system halted")


def main():
    p = harness.arg_parser(__doc__)
    p.add_argument("--case", choices=sorted(CASES), required=True)
    args = p.parse_args()
    image = variant_image(args, args.case)
    print(f"[setup] {os.path.basename(image)}: cmdline={CASES[args.case]}")
    with harness.machine_from_args(args, image=image, name=f"selftest-{args.case}") as vm:
        if args.case == "selftest":
            run_selftest(vm)
        else:
            run_overflow(vm)


if __name__ == "__main__":
    harness.run(main)
