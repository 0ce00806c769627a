#!/usr/bin/env python3
"""Boot test: the shell's `pt qemu` and `pt tlb` print what QEMU's own monitor
prints for the same page tables.

The guest runs both commands over the serial console; then, in the same run
with the guest stopped, QMP's `human-monitor-command` asks QEMU for `info mem`
and `info tlb`. `pt qemu` must equal `info mem` byte for byte, `pt tlb` must
equal `info tlb` with only the D and A columns masked (the CPU sets them as it
runs). Line ends are normalised ("\\r\\n" -> "\\n") on both sides.
"""

import difflib
import os

import harness
import shell

# `info tlb` columns: "VA: PA XGPDACTUW"; D and A are the 4th and 5th flags.
TLB_FLAGS_AT = len("0000000000000000: 0000000000000000 ")
D_COLUMN, A_COLUMN = TLB_FLAGS_AT + 3, TLB_FLAGS_AT + 4


def mask_da(text):
    out = []
    for line in text.splitlines():
        if len(line) > A_COLUMN:
            line = line[:D_COLUMN] + "??" + line[A_COLUMN + 1:]
        out.append(line)
    return "\n".join(out) + ("\n" if text.endswith("\n") else "")


def compare(name, ours, qemus):
    if ours == qemus:
        return
    diff = "".join(difflib.unified_diff(qemus.splitlines(True), ours.splitlines(True),
                                        f"QEMU {name}", f"shell {name}"))
    raise harness.BootTestError(f"the shell's {name} differs from QEMU's:\n{diff}")


def main():
    args = harness.arg_parser(__doc__).parse_args()
    with harness.machine_from_args(args, name="shell_qemu") as vm:
        sh = shell.Shell(vm)
        sh.wait_ready()
        print(f"\n[check] prompt after {vm.elapsed():.1f} s")
        ours_mem = sh.dump("pt qemu")
        ours_tlb = sh.dump("pt tlb")
        vm.qmp("stop")  # the guest sits at the prompt; stopping makes one snapshot
        qemu_mem = vm.hmp("info mem")
        qemu_tlb = vm.hmp("info tlb")
    for name, text in (("pt-qemu", ours_mem), ("pt-tlb", ours_tlb),
                       ("info-mem", qemu_mem), ("info-tlb", qemu_tlb)):
        with open(os.path.join(args.workdir, f"shell_qemu.{name}.txt"), "w") as f:
            f.write(text)

    # Something real to compare: the kernel image and the HHDM in both views.
    mem_ranges = harness.parse_info_mem(qemu_mem)
    leaves = harness.parse_info_tlb(qemu_tlb, mem_ranges)
    if not any(l.va >= harness.KERNEL_WINDOW for l in leaves) or \
            not any(harness.HHDM_START <= l.va < harness.HHDM_END for l in leaves):
        raise harness.BootTestError("QEMU's `info tlb` lacks the kernel image or the HHDM:\n"
                                    + qemu_tlb)
    compare("`pt qemu` / `info mem`", ours_mem, qemu_mem)
    print(f"[check] `pt qemu` equals `info mem` byte for byte ({len(mem_ranges)} ranges)")
    compare("`pt tlb` / `info tlb` (D and A masked)", mask_da(ours_tlb), mask_da(qemu_tlb))
    da = sum(a != b for a, b in zip(ours_tlb.splitlines(), qemu_tlb.splitlines()))
    print(f"[check] `pt tlb` equals `info tlb` with D/A masked ({len(leaves)} leaves, "
          f"{da} lines differ only in D/A)")


if __name__ == "__main__":
    harness.run(main)
