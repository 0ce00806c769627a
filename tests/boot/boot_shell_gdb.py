#!/usr/bin/env python3
"""Boot test: scripts/gdb/canopy.py's `pt` prints what the kernel's `pt` prints.

The guest boots to the shell with QEMU's gdbstub on a unix socket; the shell's
`pt`, `pt START END` and `mem` are read over serial. Then GDB attaches (which
stops the guest where it idles), loads kernel.elf's symbols with the helper
and runs the same two `pt` commands, walking the page tables through the
gdbstub: both outputs, from `--- pt begin ---` to `--- pt end ---`, must be
equal byte for byte. With the guest still stopped, `pt tlb`, `pt qemu` and
`pt` are checked against QEMU's `info tlb` and `info mem` (gdb_pt.check_stop),
and the owner names GDB found through the kernel's DWARF must include every
owner `mem` names; the VMA kinds' names it reads from vm_kind_name's table
must name every enumerator of `enum vm_kind`. A second GDB without symbols
(no labels, and a note that says why) must show the same ranges with the same
columns once the labels no longer split them.
"""

import ast
import os
import re

import gdb_pt
import harness
import shell

RANGE = ("ffff800000000000", "ffff800000400000")
COMMANDS = ("pt", f"pt {RANGE[0]} {RANGE[1]}")


def gdb_session(args, vm, sock, with_symbols):
    """Attaches GDB, runs COMMANDS; returns (notes, dumps, owner names or None,
    (vm_kind_name's table, enum vm_kind's values) as GDB prints them, or None)."""
    name = "shell_gdb" if with_symbols else "shell_gdb.nosyms"
    # A directory without build/: the helper must not find a kernel.elf by itself.
    with gdb_pt.Gdb(args.gdb, args.workdir, os.path.join(args.workdir, f"{name}.gdb.log")) as g:
        g.cli(f"source {args.gdb_script}")
        if with_symbols:
            g.cli(f"canopy-kernel {args.kernel}")
        g.attach(vm, sock)
        notes, dumps = [], []
        for command in COMMANDS:
            note, dump = gdb_pt.cut_dump(g.cli(command, 120), command)
            notes.append(note)
            dumps.append(dump)
        owners = kinds = None
        if with_symbols:
            gdb_pt.check_stop(vm, g, "the shell's prompt", args.workdir, name)
            owners = g.cli("python print(owner_names(kernel_objfile()))").strip()
            kinds = g.cli("python print((name_table(kernel_objfile(), 'vm_kind_name'), "
                          "sorted(enum_names('enum vm_kind', 'VM_KIND_'))))").strip()
        g.mi("-target-detach")  # the guest runs on
    return notes, dumps, owners, kinds


def check_kind_names(kinds):
    """GDB read vm_kind_name's table, and it names every kind the enum has."""
    try:
        table, values = ast.literal_eval(kinds)
    except (ValueError, SyntaxError):
        raise harness.BootTestError(f"GDB's VMA-kind names do not parse: {kinds!r}")
    if table is None or not values or any(v >= len(table) or not table[v] for v in values):
        raise harness.BootTestError(f"GDB did not read a name for every VMA kind (values "
                                    f"{values}) from vm_kind_name's table: {table}")
    print(f"[check] GDB reads vm_kind_name's table: {', '.join(table[v] for v in values)}")


LINE = re.compile(r"^([0-9a-f]{16})-([0-9a-f]{16}) +\S+ +(?:[0-9a-f]{16}|not contiguous) +"
                  r"(\S+) x\d+ +(\S+ \S+ \S+ \S+)", re.MULTILINE)


def ranges_without_labels(dump):
    """The dump's ranges merged where only a label (or the physical
    contiguity that goes with it) separated them: [(start, end, page size,
    "perms user G cache")]."""
    out = []
    for m in LINE.finditer(dump):
        start, end, size, cols = int(m.group(1), 16), int(m.group(2), 16), m.group(3), m.group(4)
        if out and out[-1][1] == start and out[-1][2:] == (size, cols):
            out[-1] = (out[-1][0], end, size, cols)
        else:
            out.append((start, end, size, cols))
    return out


def mem_owners(out):
    """The owner names in `mem`'s "used frames per owner" list."""
    part = out.split("used frames per owner:\n", 1)
    if len(part) != 2:
        raise harness.BootTestError(f"`mem` has no owner list:\n{out}")
    return re.findall(r"^  (\S(?:.*?\S)?) +\d+ +\S+$", part[1], re.MULTILINE)


def main():
    args = gdb_pt.parse_args(__doc__)
    sockets = gdb_pt.socket_dir()
    sock = os.path.join(sockets, "gdb.sock")
    try:
        with harness.machine_from_args(args, name="shell_gdb", extra_args=[
                "-gdb", f"unix:{sock},server=on,wait=off"]) as vm:
            sh = shell.Shell(vm)
            sh.wait_ready()
            ours = [sh.dump(c) for c in COMMANDS]
            owners_in_mem = mem_owners(sh.run("mem"))
            print(f"\n[check] the kernel's pt: {ours[0].count(chr(10))} lines")
            notes, theirs, owners, kinds = gdb_session(args, vm, sock, True)
            plain_notes, plain, _, _ = gdb_session(args, vm, sock, False)
    finally:
        gdb_pt.remove_socket_dir(sockets)
    for i, what in enumerate(COMMANDS):
        with open(os.path.join(args.workdir, f"shell_gdb.{i}.gdb.txt"), "w") as f:
            f.write(theirs[i])
        if notes[i] or theirs[i] != ours[i]:
            raise harness.BootTestError(f"GDB's `{what}` differs from the kernel's:\nkernel:\n"
                                        f"{ours[i]}gdb:\n{notes[i]}{theirs[i]}")
        if ranges_without_labels(plain[i]) != ranges_without_labels(ours[i]) or \
                not ranges_without_labels(ours[i]):
            raise harness.BootTestError(f"GDB's `{what}` without symbols (no labels) "
                                        f"maps other ranges:\n{plain[i]}")
        if not plain_notes[i].startswith("pt: no labels: no kernel symbols"):
            raise harness.BootTestError(f"GDB's `{what}` without symbols did not say why it "
                                        f"has no labels: {plain_notes[i]!r}")
    if not re.search(r" R-X kernel . WB +\.text$", theirs[0], re.MULTILINE):
        raise harness.BootTestError("GDB's dump has no .text range")
    print("[check] GDB's `pt` and `pt START END` equal the kernel's byte for byte; without "
          "symbols the same ranges, unlabelled, after a note")
    missing = [o for o in owners_in_mem if repr(o) not in owners]
    if not owners_in_mem or missing:
        raise harness.BootTestError(f"`mem` names owners {owners_in_mem}; GDB's names from "
                                    f"the kernel's DWARF are {owners}")
    print(f"[check] GDB's owner names include all of `mem`'s: {', '.join(owners_in_mem)}")
    check_kind_names(kinds)


if __name__ == "__main__":
    harness.run(main)
