#!/usr/bin/env python3
"""Boot test: QEMU's own view of the page tables (QMP `info tlb`, `info mem`)
once the kernel is ready.

Checks that each PT_LOAD segment of kernel.elf is mapped with exactly its ELF
permissions (writable iff PF_W, executable iff PF_X) and nothing else in the top
2 GiB, that the HHDM is NX everywhere, that no page is writable and executable,
and that the lower half is empty.
"""

import os

import harness


def main():
    args = harness.arg_parser(__doc__).parse_args()
    segments = harness.elf_load_segments(args.kernel)
    print("kernel.elf PT_LOAD segments:")
    for s in segments:
        print(f"  {s}")
    with harness.machine_from_args(args, name="pagetables") as vm:
        vm.wait_for(r"^canopy: ready\n", 60, "`canopy: ready`",
                    fail_if=harness.BOOT_FAILURE)
        print(f"\n[check] `canopy: ready` after {vm.elapsed():.1f} s")
        vm.qmp("stop")  # freeze the guest: one consistent snapshot
        tlb = vm.hmp("info tlb")
        mem = vm.hmp("info mem")
    with open(os.path.join(args.workdir, "pagetables.info-tlb.txt"), "w") as f:
        f.write(tlb)
    with open(os.path.join(args.workdir, "pagetables.info-mem.txt"), "w") as f:
        f.write(mem)
    mem_ranges = harness.parse_info_mem(mem)
    leaves = harness.parse_info_tlb(tlb, mem_ranges)
    print(f"[check] `info tlb`: {len(leaves)} leaves; `info mem`: {len(mem_ranges)} ranges")
    for line in harness.check_address_space(segments, leaves, mem_ranges):
        print(f"[check] {line}")


if __name__ == "__main__":
    harness.run(main)
