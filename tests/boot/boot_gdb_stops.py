#!/usr/bin/env python3
"""Boot test: GDB's `pt` (scripts/gdb/canopy.py) at every kind of stop before
the kernel's shell, with the kernel's symbols loaded, against QEMU's monitor.

Two boots of the same image with the same options, as docs/debugging.md
debugs stage 1 (OVMF loads every image at the same address each time); QEMU
starts paused (-S) with its gdbstub on a unix socket:

  A. 1. the reset vector (paging off);
     2. `kernel_main` (a hardware breakpoint), on stage 1's page tables.
        `canopy-stage1` then finds where OVMF loaded stage 1, and
        `canopy-images` the entry point of the first image OVMF lists (its
        DXE core).
  B. 3. OVMF: a hardware breakpoint on that entry point, reached with OVMF's
        first long-mode page tables;
     4. stage 1's entry, efi_main: its symbols added at the offset boot A
        found (add-symbol-file -o), then a hardware breakpoint on efi_main,
        which must stop inside the image boot A found.

At each stop `pt tlb`, `pt qemu` and `pt` are compared with `info tlb` and
`info mem` (tests/boot/gdb_pt.py says how). While the firmware or stage 1
runs, the kernel's symbols are loaded but its memory is not mapped: `pt` must
say it prints no labels, and still walk the tables.
"""

import os
import re

import gdb_pt
import harness

NO_LABELS_UNREADABLE = "pt: no labels: the kernel's memory is not mapped in this address space"


def start_gdb(args, name):
    """GDB with the helper and the kernel's symbols, as when it starts in the tree."""
    g = gdb_pt.Gdb(args.gdb, args.workdir, os.path.join(args.workdir, f"{name}.gdb.log"))
    try:
        g.cli(f"source {args.gdb_script}")
        g.cli(f"canopy-kernel {args.kernel}")
    except harness.BootTestError:
        g.close()
        raise
    return g


def expect_breakpoint(stop, function):
    if stop.get("reason") != "breakpoint-hit" or stop.get("func") != function:
        raise harness.BootTestError(f"expected the breakpoint in {function}, the guest stopped "
                                    f"with {stop}")


def expect_no_labels(notes, where):
    if NO_LABELS_UNREADABLE not in notes:
        raise harness.BootTestError(f"{where}: `pt` did not say why it has no labels; before "
                                    f"the dump it printed: {notes!r}")


def boot_a(args, sock):
    """Reset vector and kernel_main; returns what canopy-stage1 and
    canopy-images found: stage 1's load address, size and symbol offset, and
    the firmware's first image's entry point."""
    with harness.machine_from_args(args, name="gdb_stops_a", extra_args=[
            "-S", "-gdb", f"unix:{sock},server=on,wait=off"]) as vm, \
            start_gdb(args, "gdb_stops_a") as g:
        g.attach(vm, sock)
        gdb_pt.check_stop(vm, g, "reset vector", args.workdir, "gdb_stops.reset")

        g.cli("hbreak kernel_main")
        expect_breakpoint(g.cont(120, "kernel_main"), "kernel_main")
        notes, _ = gdb_pt.check_stop(vm, g, "kernel_main", args.workdir,
                                     "gdb_stops.kernel_main")
        if notes:  # the kernel's memory is mapped now: labels are read (none exist yet)
            raise harness.BootTestError(f"kernel_main: `pt` printed {notes!r} before its dump")

        g.cli(f"source {args.stage1_script}")
        out = g.cli(f"canopy-stage1 {args.efi}")
        m = re.search(r"loaded at 0x([0-9a-f]+), 0x([0-9a-f]+) bytes", out)
        off = re.search(r"offset by (0x[0-9a-f]+)", out)
        if not m or not off:
            raise harness.BootTestError(f"canopy-stage1 printed no load address:\n{out}")
        base, size = int(m.group(1), 16), int(m.group(2), 16)
        images = g.cli("canopy-images")
        first = re.match(r"0x([0-9a-f]+) 0x[0-9a-f]+ entry 0x([0-9a-f]+)", images)
        if not first or first.group(1) == m.group(1):
            raise harness.BootTestError(f"canopy-images lists no firmware image first:\n"
                                        f"{images[:2000]}")
        fw_entry = int(first.group(2), 16)
        print(f"[check] OVMF loaded stage 1 at 0x{base:x} (symbol offset {off.group(1)}); its "
              f"first image starts at 0x{fw_entry:x}", flush=True)
        return base, size, off.group(1), fw_entry


def boot_b(args, sock, base, size, offset, fw_entry):
    """OVMF's first image's entry and stage 1's entry, with stage 1's symbols
    at the offset boot A found."""
    with harness.machine_from_args(args, name="gdb_stops_b", extra_args=[
            "-S", "-gdb", f"unix:{sock},server=on,wait=off"]) as vm, \
            start_gdb(args, "gdb_stops_b") as g:
        g.cli(f"add-symbol-file {args.efi} -o {offset}")
        g.attach(vm, sock)
        g.cli(f"hbreak *0x{fw_entry:x}")
        g.cli("hbreak efi_main")

        def stage1_ran():
            vm.expect_absent(r"^canopy: stage 1", since=0)  # the breakpoints were missed

        stop = g.cont(120, "OVMF's first image", stage1_ran)
        if stop.get("reason") != "breakpoint-hit" or g.pc() != fw_entry:
            raise harness.BootTestError(f"expected the breakpoint at OVMF's 0x{fw_entry:x}, "
                                        f"the guest stopped with {stop}")
        notes, _ = gdb_pt.check_stop(vm, g, f"OVMF at 0x{fw_entry:x}", args.workdir,
                                     "gdb_stops.ovmf")
        expect_no_labels(notes, "OVMF")

        stop = g.cont(120, "efi_main", stage1_ran)
        expect_breakpoint(stop, "efi_main")
        entry = g.pc()
        if not base <= entry < base + size:
            raise harness.BootTestError(f"efi_main at 0x{entry:x} is not in the image OVMF "
                                        f"loaded at 0x{base:x} in boot A")
        notes, _ = gdb_pt.check_stop(vm, g, "stage 1's efi_main", args.workdir,
                                     "gdb_stops.stage1")
        expect_no_labels(notes, "stage 1")
        print(f"[check] stage 1 stopped in efi_main at 0x{entry:x}, inside the image boot A "
              "found", flush=True)


def main():
    args = gdb_pt.parse_args(__doc__)
    sockets = gdb_pt.socket_dir()
    try:
        found = boot_a(args, os.path.join(sockets, "a.sock"))
        boot_b(args, os.path.join(sockets, "b.sock"), *found)
    finally:
        gdb_pt.remove_socket_dir(sockets)
    print("[check] `pt` matched `info tlb` and `info mem` at the reset vector, at kernel_main, "
          "in OVMF and at stage 1's entry")


if __name__ == "__main__":
    harness.run(main)
