#!/usr/bin/env python3
"""Boot test: QEMU's own view of the page tables (QMP `info tlb`, `info mem`,
`xp`) once the kernel is ready.

Checks that each PT_LOAD segment of kernel.elf is mapped with exactly its ELF
permissions (writable iff PF_W, executable iff PF_X) and nothing else in the top
2 GiB, that the HHDM is NX everywhere, that no page is writable and executable,
and that the lower half is empty. Then, against the memory map the shell's
`memmap` prints (the firmware's, normalised): every HHDM leaf maps RAM-like
memory at its direct-map address, write-back, and is the largest page that
covers nothing else; and the framebuffer's leaves, at the address the banner
names, carry the write-combining encoding (PWT without PCD in `info tlb`, the
PAT bit in the entries read from guest memory).
"""

import os

import directmap
import harness
import shell


def main():
    args = harness.arg_parser(__doc__).parse_args()
    segments = harness.elf_load_segments(args.kernel)
    print("kernel.elf PT_LOAD segments:")
    for s in segments:
        print(f"  {s}")
    with harness.machine_from_args(args, name="pagetables") as vm:
        sh = shell.Shell(vm)
        sh.wait_ready()
        print(f"\n[check] `canopy: ready` after {vm.elapsed():.1f} s")
        memmap = directmap.parse_memmap(sh.run("memmap"))
        fb = directmap.framebuffer_of(vm.output())
        max_page = directmap.max_page_of(vm.output())
        tramp = directmap.trampoline_of(vm.output())
        if fb is None:
            raise harness.BootTestError("the banner names no write-combining framebuffer mapping")
        vm.qmp("stop")  # freeze the guest: one consistent snapshot
        tlb = vm.hmp("info tlb")
        mem = vm.hmp("info mem")
        mem_ranges = harness.parse_info_mem(mem)
        leaves = harness.parse_info_tlb(tlb, mem_ranges)
        fb_report = directmap.check_framebuffer(vm, leaves, fb)
    with open(os.path.join(args.workdir, "pagetables.info-tlb.txt"), "w") as f:
        f.write(tlb)
    with open(os.path.join(args.workdir, "pagetables.info-mem.txt"), "w") as f:
        f.write(mem)
    print(f"[check] `info tlb`: {len(leaves)} leaves; `info mem`: {len(mem_ranges)} ranges")
    for line in harness.check_address_space(segments, leaves, mem_ranges):
        print(f"[check] {line}")
    print(f"[check] {directmap.check_ram_only(leaves, memmap)}")
    exempt = [tramp] if tramp is not None else []
    print(f"[check] {directmap.check_largest_pages(leaves, memmap, max_page, exempt)}")
    print(f"[check] {fb_report}")


if __name__ == "__main__":
    harness.run(main)
