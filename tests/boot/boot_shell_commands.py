#!/usr/bin/env python3
"""Boot test: the shell's inspection commands over the serial console, each
checked against something known independently of the kernel.

- `walk`: the first page of each kernel.elf PT_LOAD resolves with the
  segment's permissions; an address in the empty lower half stops at PML4.
- `peek`: the bytes at each read-only segment's start equal kernel.elf's bytes
  there; page 0 is reported unmapped; a read running past the end of the last
  segment prints what it could and then reports the first unmapped address.
- `mem`: the counters add up and nothing is pointed out as inconsistent.
- `memmap`: as many rows as it announces, sorted, with usable memory.
- `boottime`: every phase up to the shell recorded, in order; stage 1 built
  the page tables from exactly the minimum number of frames.
- `vmas`: every area and hole, the segments with their permissions.
- `pt`, `pt START END`, `pt check`: the sections in order, the segments with
  their permissions, no W+X, the manifest matching the live tables; `pt check`
  lists the direct map's runs (RAM only, each inside RAM-like memory of
  `memmap`), and `pt check efi` passes over the EFI runtime tables.
- the direct map holds RAM only: `walk` of HHDM + 0xb0000000 (PCIe
  configuration space) and HHDM + 0xffc00000 (the flash) finds nothing, and the
  direct-map alias of `.text`'s first frame is read-only and NX.
- bad arguments: one error line each.
- the PS/2 keyboard: a line typed with QMP's send-key is echoed and answered.
"""

import re

import directmap
import harness
import shell
from shell import expect, expect_absent

PAGE = 0x1000
HHDM = harness.HHDM_START


def perms_text(seg):
    return "r" + ("w" if seg.writable else "-") + ("x" if seg.executable else "-")


def check_walk(sh, segments):
    for s in segments:
        out = sh.run(f"walk {s.start:x}")
        expect(out, rf"^walk {s.start:016x}: cr3 [0-9a-f]{{16}}, 4-level paging$", "walk header")
        expect(out, r"^  PML4\[511\] = [0-9a-f]{16}  P W", f"walk {s.start:x}: PML4 entry")
        expect(out, rf"^  -> phys [0-9a-f]{{16}} \(4K page at [0-9a-f]{{16}}\), effective "
                    rf"{perms_text(s)} kernel$", f"walk {s.start:x}: the segment's permissions")
    out = sh.run("walk 1000")
    expect(out, r"^  PML4\[  0\] = 0000000000000000  \(empty\)$", "walk 1000: empty PML4 entry")
    expect(out, r"^  not mapped: the PML4 entry is not present$", "walk 1000")
    out = sh.run("walk ffff800000000000")
    expect(out, r"^  -> phys 0000000000000000 \((1G|2M|4K) page at 0000000000000000\), "
                r"effective rw- kernel$", "walk of the HHDM's first page")
    print("[check] walk: each segment's first page with its permissions; page 1 unmapped at "
          "PML4; the HHDM maps physical 0")


def check_direct_map_walks(sh, segments):
    """No device memory in the direct map; .text's frames read-only there."""
    for pa, what in ((0xb0000000, "PCIe configuration space"), (0xffc00000, "the flash")):
        out = sh.run(f"walk {HHDM + pa:x}")
        expect(out, r"^  not mapped", f"walk HHDM + {pa:#x} ({what})")
        expect_absent(out, r"-> phys", f"walk HHDM + {pa:#x} ({what})")
    text = next(s for s in segments if s.executable)
    out = sh.run(f"walk {text.start:x}")
    pa = int(expect(out, r"^  -> phys ([0-9a-f]{16}) ", "walk .text").group(1), 16)
    out = sh.run(f"walk {HHDM + pa:x}")
    expect(out, rf"^  -> phys {pa:016x} \(4K page at {pa:016x}\), effective r-- kernel$",
           f"the direct map's alias of .text (phys {pa:x})")
    leaf = out.strip().splitlines()[-2]
    if not re.search(r"\bNX\b", leaf) or re.search(r"  P W\b", leaf):
        raise harness.BootTestError(f"the alias of .text: leaf entry not read-only NX:\n{out}")
    print(f"[check] walk: HHDM + 0xb0000000 and HHDM + 0xffc00000 not mapped; .text's frame "
          f"{pa:#x} read-only, NX, 4K in the direct map")


def hex_dump_bytes(out):
    """The bytes of `peek` lines ("VA: xx xx ...  |...|")."""
    data = bytearray()
    for line in out.splitlines():
        m = re.match(r"^[0-9a-f]{16}:((?: {1,2}[0-9a-f]{2})+) ", line)
        if m:
            data += bytes(int(x, 16) for x in m.group(1).split())
    return bytes(data)


def check_peek(sh, kernel, segments):
    with open(kernel, "rb") as f:
        elf = f.read()
    for s in segments:
        if s.filesz < 48 or s.writable:  # writable data changes as the kernel runs
            continue
        want = elf[s.offset:s.offset + 48]
        out = sh.run(f"peek {s.vaddr:x} 48")
        got = hex_dump_bytes(out)
        if got != want:
            raise harness.BootTestError(f"peek {s.vaddr:x} 48 shows {got.hex()}, kernel.elf has "
                                        f"{want.hex()} there:\n{out}")
        expect(out, rf"^{s.vaddr:016x}: ", "peek's first address")
    out = sh.run("peek 0")
    expect(out, r"^peek: 0000000000000000 is not mapped$", "peek 0")
    end = max(s.end for s in segments)
    out = sh.run(f"peek {end - 16:x} 64")
    if len(hex_dump_bytes(out)) != 16:
        raise harness.BootTestError(f"peek across the image's end: want 16 bytes, got:\n{out}")
    expect(out, rf"^peek: {end:016x} is not mapped$", "peek across the image's end")
    print("[check] peek: read-only segment bytes equal kernel.elf's; page 0 and the page after the image "
          "reported unmapped")


def check_mem(sh):
    out = sh.run("mem")
    m = expect(out, r"^mem: (\d+) frames tracked", "mem header")
    total = int(m.group(1))
    counts = {k: int(expect(out, rf"^  {k} +(\d+) frames", f"mem {k}").group(1))
              for k in ("free", "used", "reclaimable", "reserved")}
    if sum(counts.values()) != total or counts["free"] == 0:
        raise harness.BootTestError(f"mem: {counts} do not add up to {total}:\n{out}")
    expect_absent(out, r"add up to|hold \d+ frames", "mem")
    expect(out, r"^  free blocks per order:$", "mem: per-order table")
    print(f"[check] mem: {total} frames = {counts}")


def check_memmap(sh):
    """Returns the map as directmap.parse_memmap reads it."""
    out = sh.run("memmap")
    n = int(expect(out, r"^memmap: (\d+) ranges$", "memmap header").group(1))
    rows = re.findall(r"^  ([0-9a-f]{16})-([0-9a-f]{16}) +\S+ (\S+) +(\S+) +0x[0-9a-f]+$", out,
                      re.MULTILINE)
    if len(rows) != n or n == 0:
        raise harness.BootTestError(f"memmap announces {n} ranges but lists {len(rows)}:\n{out}")
    starts = [int(r[0], 16) for r in rows]
    if starts != sorted(starts):
        raise harness.BootTestError("memmap rows are not sorted")
    if not any(r[2] == "usable" and r[3] == "conventional" for r in rows):
        raise harness.BootTestError("memmap has no usable conventional memory")
    expect(out, r"^  totals: .*usable \d+[KMG]", "memmap totals")
    print(f"[check] memmap: {n} ranges, sorted, with usable memory")
    return directmap.parse_memmap(out)


def check_boottime(sh):
    phases, (used, minimum) = shell.parse_boottime(sh.run("boottime"))
    if used != minimum:
        raise harness.BootTestError(f"boottime: {used} page-table frames, minimum {minimum}")
    print(f"[check] boottime: every phase to the shell recorded in order, "
          f"{phases[-1][1] / 1e6:.1f} ms; {used} page-table frames, the minimum")


def check_pt_check(sh, memmap):
    """`pt check`: the direct map's runs, each inside RAM, then the verdict;
    `pt check efi`: the EFI runtime tables pass the frame rules."""
    check = sh.dump("pt check")
    m = expect(check, r"^pt check: OK \((\d+) mappings\)$", "pt check")
    lines = check.splitlines()
    runs = [l for l in lines if l.startswith("direct map: ") and "-" in l.split()[2]]
    summary = expect(check, r"^direct map: (\d+) runs?, (\d+ MiB|\d+K)$",
                     "pt check: the direct map's summary")
    if len(lines) != len(runs) + 2 or int(summary.group(1)) != len(runs) or not runs:
        raise harness.BootTestError(f"pt check: expected the direct map's runs, its summary and "
                                    f"the verdict only:\n{check}")
    ram = directmap.ram_runs(memmap)
    for line in runs:
        f = line.split()
        lo, hi = (int(x, 16) for x in f[2].split("-"))
        if not directmap.in_ram(ram, lo, hi) or f[-1] != "WB" or f[-2] not in ("RW-", "R--"):
            raise harness.BootTestError(f"pt check: direct map run {line!r} is not RAM, "
                                        f"write-back, NX per `memmap`")
    ro = [l for l in runs if l.split()[-2] == "R--"]
    efi = sh.dump("pt check efi")
    e = expect(efi, r"^pt check: OK \(EFI runtime tables: (\d+) runs of identity maps",
               "pt check efi")
    if efi.count("\n") != 1:
        raise harness.BootTestError(f"pt check efi printed more than its verdict:\n{efi}")
    print(f"[check] pt check: OK with {m.group(1)} mappings; the direct map in {len(runs)} runs "
          f"({summary.group(2)}), all inside RAM-like memory, {len(ro)} read-only; pt check efi: "
          f"OK over {e.group(1)} runs")


def check_pt(sh, segments):
    dump = sh.dump("pt")
    order = [m.group(1) for m in re.finditer(r"^---\[ (.*) \]---$", dump, re.MULTILINE)]
    want = ["user space", "non-canonical hole", "HHDM", "dynamic area", "unused", "kernel image"]
    if order != want:
        raise harness.BootTestError(f"pt: sections {order}, expected {want}")
    expect(dump, r"^W\+X mappings: passed$", "pt: W+X summary")
    expect(dump, r"^ffff800000000000-\S+ +\S+ 0000000000000000 (1G|2M|4K) x\d+ +RW- kernel "
                 r". WB +hhdm$", "pt: the HHDM's first range")
    expect(dump, r"^\S+ +64K \S+ +4K x16 +RW- kernel . WB +boot stack$", "pt: the boot stack")
    for s in segments:
        perm = "R" + ("W" if s.writable else "-") + ("X" if s.executable else "-")
        expect(dump, rf"^{s.start:016x}-{s.end:016x} +\S+ [0-9a-f]{{16}} 4K x{(s.end - s.start) // PAGE}"
                     rf" +{perm} kernel . WB +\.(text|rodata|data)$", f"pt: segment {s}")
    text = segments[0]
    part = sh.dump(f"pt {text.start:x} {text.start + PAGE:x}")
    lines = [l for l in part.splitlines() if not l.startswith("---[")]
    if len(lines) != 2 or not re.match(rf"^{text.start:016x}-{text.start + PAGE:016x} +4K "
                                       r"[0-9a-f]{16} 4K x1 ", lines[0]):
        raise harness.BootTestError(f"pt START END: expected one 4K page and the summary:\n{part}")
    print("[check] pt: sections in order, segments with their permissions, no W+X; "
          "pt START END clips")


def check_vmas(sh, segments):
    out = sh.run("vmas")
    expect(out, r"^vmas: kernel address space ffff800000000000-ffffffffffffffff$", "vmas header")
    rows = re.findall(r"^  [0-9a-f]{16}-[0-9a-f]{16} +\S+  (?:r..  \S.*|---  \(hole\))$", out,
                      re.MULTILINE)
    n = int(expect(out, r"^  (\d+) VMAs$", "vmas count").group(1))
    if len(rows) != out.count("\n") - 2 or n != sum(1 for r in rows if "(hole)" not in r):
        raise harness.BootTestError(f"vmas: {n} VMAs announced, rows do not match:\n{out}")
    for s in segments:
        expect(out, rf"^  {s.start:016x}-{s.end - 1:016x} +\S+  {perms_text(s)}  "
                    r"\.(text|rodata|data)$", f"vmas: segment {s}")
    expect(out, r"^  [0-9a-f]{16}-[0-9a-f]{16} +64K  rw-  boot stack$", "vmas: the boot stack")
    hhdm = re.findall(r"^  (ffff8[0-9a-f]{11})-([0-9a-f]{16}) +\S+  (r..)  (hhdm.*)$", out,
                      re.MULTILINE)
    if not any(name == "hhdm: .text" and perm == "r--" for _a, _b, perm, name in hhdm):
        raise harness.BootTestError(f"vmas: no direct-map runs with a read-only .text alias:"
                                    f"\n{out}")
    expect(out, r"^  ffffc[0-9a-f]{11}-[0-9a-f]{16} +\S+  rw-  framebuffer$",
           "vmas: the framebuffer")
    print(f"[check] vmas: {n} areas and the holes between them, the segments with their "
          f"permissions, {len(hhdm)} direct-map runs (the .text alias read-only), the "
          "framebuffer in the dynamic area")


def check_keyboard(vm):
    """Types `walk 0` on the PS/2 keyboard (QMP send-key): the shell echoes and answers
    on serial as for serial input."""
    for key in ["w", "a", "l", "k", "spc", "1", "0", "0", "0", "ret"]:
        vm.send_key(key)
    vm.wait_for(r"walk 1000\n", 30, "the keyboard's line echoed")
    out = shell.until_prompt(vm, 30, "the prompt after typed keys")
    expect(out, r"^  not mapped: the PML4 entry is not present$", "walk typed on the keyboard")
    print("[check] keyboard: `walk 1000` typed with QMP send-key was echoed and answered")


def check_errors(sh):
    cases = [
        ("walk zz", r"^walk: VA 'zz' is not a 64-bit hex number$"),
        ("walk", r"^walk: missing VA \(usage: walk VA\)$"),
        ("walk 800000000000", r"^walk: VA 0000800000000000 is not canonical \(48-bit addresses\)$"),
        ("peek 0 0", r"^peek: LEN 0 is out of range \(1 to 4096\)$"),
        ("pt 2000 1000", r"^pt: END 0000000000001000 is not above START 0000000000002000$"),
        ("pt sideways", r"^pt: unknown mode 'sideways'"),
        ("frobnicate", r"^error: unknown command 'frobnicate', type help for the list$"),
    ]
    for line, pattern in cases:
        out = sh.run(line)
        expect(out, pattern, line)
        if out.count("\n") != 1:
            raise harness.BootTestError(f"{line!r}: more than one line:\n{out}")
    print(f"[check] {len(cases)} bad command lines: one error line each")


def main():
    args = harness.arg_parser(__doc__).parse_args()
    segments = sorted(harness.elf_load_segments(args.kernel), key=lambda s: s.vaddr)
    with harness.machine_from_args(args, name="shell_commands") as vm:
        sh = shell.Shell(vm)
        line = sh.wait_ready()
        expect(line, r"^pt check: OK \(\d+ mappings\)$", "the boot's pt check")
        print(f"\n[check] boot: {line.strip()}; prompt after {vm.elapsed():.1f} s")
        check_walk(sh, segments)
        check_direct_map_walks(sh, segments)
        check_peek(sh, args.kernel, segments)
        check_mem(sh)
        memmap = check_memmap(sh)
        check_boottime(sh)
        check_pt(sh, segments)
        check_pt_check(sh, memmap)
        check_vmas(sh, segments)
        check_errors(sh)
        check_keyboard(vm)


if __name__ == "__main__":
    harness.run(main)
