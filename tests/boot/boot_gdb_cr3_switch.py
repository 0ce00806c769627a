#!/usr/bin/env python3
"""Boot test: the GDT and the IDT are mapped in whichever page tables are live
at every instruction of stage 1's CR3 switch, so an NMI or exception there
finds both (docs/stage1.md, "After the CR3 switch").

The trampoline (stage1/efi/trampoline.S) loads GDTR and IDTR with the tables'
identity addresses, writes CR3, then loads them again through the direct map.
Three stops, on stage 1's own instructions, found in BOOTX64.EFI's code:

  1. the `mov ..., %cr3`: the firmware's tables, GDTR/IDTR at the identity
     addresses;
  2. the instruction right after it: the kernel's tables, GDTR/IDTR still at
     the identity addresses. This is the stop that proves the point: were the
     pages holding the GDT or the IDT not mapped at their identity address in
     the new tables, `info tlb` would list no leaf for them here and the test
     fails (a fault or NMI at this instruction would then triple-fault);
  3. the instruction after the second `lidt`: the kernel's tables, GDTR/IDTR
     at the direct-map aliases.

At each stop QEMU's `info registers` gives GDTR, IDTR and CR3, and `info tlb`
(with `info mem` to size large pages) the live tables' present leaves: every
page of [base, base + limit] of both tables must lie in a present leaf, at
the identity physical address in stops 1 and 2 and at that same physical
address in stop 3. Stop 2's CR3 must be the value stop 1 was about to load
(%rcx there) and differ from stop 1's, so the stops straddle the switch.

Stage 1 runs wherever OVMF loads it, the same place in every boot with the
same image and options (docs/debugging.md): boot A stops at kernel_main and
finds stage 1's symbol offset with `canopy-stage1`; boot B sets hardware
breakpoints on the three instructions at that offset before the firmware
runs.
"""

import bisect
import os
import re
import subprocess

import gdb_pt
import harness

PAGE = 0x1000
MASK64 = (1 << 64) - 1
_INSN = re.compile(r"^\s*0x([0-9a-f]+) <[^>]*>:\s+(\S+)\s*(.*)$")
_DESC = re.compile(r"^(GDT|IDT)=\s+([0-9a-f]{16}) ([0-9a-f]{8})\s*$", re.MULTILINE)
_CR3 = re.compile(r"\bCR3=([0-9a-f]{16})\b")


def switch_instructions(gdb, efi):
    """Link-time addresses in trampoline_enter: the first write of CR3, the
    instruction after it, and the one after the first `lidt` that follows."""
    out = subprocess.run([gdb, "-q", "-nx", "-batch", efi, "-ex", "x/48i trampoline_enter"],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                         timeout=60).stdout
    insns = [(int(m.group(1), 16), m.group(2), m.group(3))
             for m in map(_INSN.match, out.splitlines()) if m]
    cr3 = next((i for i, (_, op, arg) in enumerate(insns)
                if op.startswith("mov") and arg.endswith(",%cr3")), None)
    if cr3 is None or cr3 + 1 >= len(insns):
        raise harness.BootTestError(f"no write of CR3 in trampoline_enter:\n{out[-3000:]}")
    lidt = next((i for i in range(cr3 + 1, len(insns)) if insns[i][1].startswith("lidt")), None)
    if lidt is None or lidt + 1 >= len(insns):
        raise harness.BootTestError(f"no lidt after the CR3 write in trampoline_enter:\n"
                                    f"{out[-3000:]}")
    return insns[cr3][0], insns[cr3 + 1][0], insns[lidt + 1][0]


def stage1_offset(args, sock):
    """Boot A: the offset of stage 1's symbols, found at kernel_main."""
    with harness.machine_from_args(args, name="cr3_switch_a", extra_args=[
            "-S", "-gdb", f"unix:{sock},server=on,wait=off"]) as vm, \
            gdb_pt.Gdb(args.gdb, args.workdir,
                       os.path.join(args.workdir, "cr3_switch_a.gdb.log")) as g:
        g.cli(f"source {args.gdb_script}")
        g.cli(f"canopy-kernel {args.kernel}")
        g.attach(vm, sock)
        g.cli("hbreak kernel_main")
        stop = g.cont(120, "kernel_main", lambda: vm.expect_absent(r"^canopy: ready", since=0))
        if stop.get("reason") != "breakpoint-hit" or stop.get("func") != "kernel_main":
            raise harness.BootTestError(f"expected the breakpoint in kernel_main, the guest "
                                        f"stopped with {stop}")
        g.cli(f"source {args.stage1_script}")
        out = g.cli(f"canopy-stage1 {args.efi}")
        m = re.search(r"offset by (0x[0-9a-f]+)", out)
        if not m:
            raise harness.BootTestError(f"canopy-stage1 printed no offset:\n{out}")
        print(f"[check] boot A: stage 1's symbols are offset by {m.group(1)}", flush=True)
        return int(m.group(1), 16)


def registers(vm):
    """{"GDT": (base, limit), "IDT": (base, limit)} and CR3, from `info registers`."""
    text = vm.hmp("info registers")
    tables = {m.group(1): (int(m.group(2), 16), int(m.group(3), 16))
              for m in _DESC.finditer(text)}
    cr3 = _CR3.search(text)
    if set(tables) != {"GDT", "IDT"} or not cr3:
        raise harness.BootTestError(f"`info registers` shows no GDT, IDT or CR3:\n{text}")
    return tables, int(cr3.group(1), 16)


def page_frames(leaves, base, limit, where, name):
    """The physical address of each page of [base, base + limit] in the
    tables whose present leaves `info tlb` listed; fails if a page lies in
    none of them."""
    starts = [leaf.va for leaf in leaves]
    frames = []
    for va in range(base & ~(PAGE - 1), base + limit + 1, PAGE):
        i = bisect.bisect_right(starts, va) - 1
        if i < 0 or not leaves[i].va <= va < leaves[i].end:
            raise harness.BootTestError(f"{where}: the {name}'s page 0x{va:x} ([0x{base:x}, "
                                        f"0x{base + limit:x}]) is not mapped in the live "
                                        f"tables (no present leaf in `info tlb`)")
        frames.append(leaves[i].pa + (va - leaves[i].va))
    return frames


def check_stop(vm, g, where, pc, identity):
    """GDTR, IDTR and CR3 at the stop at pc, and the frames of both tables."""
    if g.pc() != pc:
        raise harness.BootTestError(f"{where}: stopped at 0x{g.pc():x}, not 0x{pc:x}")
    tables, cr3 = registers(vm)
    leaves = harness.parse_info_tlb(vm.hmp("info tlb", 300),
                                    harness.parse_info_mem(vm.hmp("info mem", 300)))
    frames = {}
    for name, (base, limit) in sorted(tables.items()):
        frames[name] = page_frames(leaves, base, limit, where, name)
        first = base & ~(PAGE - 1)
        if identity and frames[name] != list(range(first, first + PAGE * len(frames[name]),
                                                   PAGE)):
            raise harness.BootTestError(f"{where}: the {name} at 0x{base:x} is not identity-"
                                        f"mapped: frames {[hex(f) for f in frames[name]]}")
    print(f"[check] {where}: CR3 0x{cr3:x}; " + "; ".join(
        f"{name} 0x{base:x} limit 0x{limit:x} in {len(frames[name])} mapped page(s)"
        for name, (base, limit) in sorted(tables.items())), flush=True)
    return tables, cr3, frames


def switch_stops(args, sock, offset, link):
    """Boot B: the three stops around the CR3 write."""
    before, after, reloaded = ((a + offset) & MASK64 for a in link)
    with harness.machine_from_args(args, name="cr3_switch_b", extra_args=[
            "-S", "-gdb", f"unix:{sock},server=on,wait=off"]) as vm, \
            gdb_pt.Gdb(args.gdb, args.workdir,
                       os.path.join(args.workdir, "cr3_switch_b.gdb.log")) as g:
        g.attach(vm, sock)
        for pc in (before, after, reloaded):
            g.cli(f"hbreak *0x{pc:x}")

        def not_past():
            vm.expect_absent(r"^canopy: ready", since=0)  # the breakpoints were missed

        def stop_at(pc, what):
            stop = g.cont(180, what, not_past)
            if stop.get("reason") != "breakpoint-hit":
                raise harness.BootTestError(f"expected the breakpoint {what}, the guest "
                                            f"stopped with {stop}")
            return check_stop(vm, g, what, pc, identity=pc != reloaded)

        t1, cr3_1, f1 = stop_at(before, "at the CR3 write")
        new_cr3 = int(g.mi('-data-evaluate-expression "(unsigned long long)$rcx"')[1]["value"])
        t2, cr3_2, f2 = stop_at(after, "right after the CR3 write")
        t3, cr3_3, f3 = stop_at(reloaded, "after the direct-map lgdt/lidt")

    if cr3_2 == cr3_1 or cr3_2 != new_cr3 or cr3_3 != cr3_2:
        raise harness.BootTestError(f"CR3 0x{cr3_1:x}, 0x{cr3_2:x}, 0x{cr3_3:x} at the three "
                                    f"stops; the trampoline was loading 0x{new_cr3:x}")
    if t2 != t1:
        raise harness.BootTestError(f"GDTR/IDTR changed across the CR3 write: {t1} -> {t2}")
    for name in ("GDT", "IDT"):
        if t3[name][1] != t1[name][1] or t3[name][0] == t1[name][0]:
            raise harness.BootTestError(f"the {name} after the reload is 0x{t3[name][0]:x} "
                                        f"limit 0x{t3[name][1]:x}; before, 0x{t1[name][0]:x} "
                                        f"limit 0x{t1[name][1]:x}: not an alias of it")
        if not f1[name] == f2[name] == f3[name]:
            raise harness.BootTestError(f"the {name}'s frames differ across the switch: "
                                        f"{f1[name]}, {f2[name]}, {f3[name]}")
    print("[check] GDT and IDT: every page mapped, present and at the same frames under the "
          "firmware's tables and the kernel's, at and right after the CR3 write and after "
          "the reload", flush=True)


def main():
    args = gdb_pt.parse_args(__doc__)
    link = switch_instructions(args.gdb, args.efi)
    sockets = gdb_pt.socket_dir()
    try:
        offset = stage1_offset(args, os.path.join(sockets, "a.sock"))
        switch_stops(args, os.path.join(sockets, "b.sock"), offset, link)
    finally:
        gdb_pt.remove_socket_dir(sockets)


if __name__ == "__main__":
    harness.run(main)
