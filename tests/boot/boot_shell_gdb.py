#!/usr/bin/env python3
"""Boot test: scripts/gdb/canopy.py's `pt` prints what the kernel's `pt` prints.

The guest boots to the shell with QEMU's gdbstub on a TCP port; the shell's
`pt` and `pt START END` are read over serial; then GDB in batch mode attaches
(which stops the guest), loads kernel.elf's symbols with the helper and runs
the same two commands, walking the page tables through the gdbstub. Both
outputs, from `--- pt begin ---` to `--- pt end ---`, must be equal byte for
byte. A third run without symbols (physical-memory mode, no labels) must show
the same ranges with the same columns once the labels no longer split them.
"""

import os
import re
import socket
import subprocess

import harness
import shell

HERE = os.path.dirname(os.path.abspath(__file__))
DUMP = re.compile(r"--- pt begin ---\n[\s\S]*?--- pt end ---\n")
RANGE = ("ffff800000000000", "ffff800000400000")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def gdb_dumps(args, port, with_symbols):
    cmd = [args.gdb, "-batch", "-nx", "-ex", f"source {args.gdb_script}"]
    if with_symbols:
        cmd += ["-ex", f"canopy-kernel {args.kernel}"]
    cmd += ["-ex", f"target remote 127.0.0.1:{port}", "-ex", "pt",
            "-ex", f"pt {RANGE[0]} {RANGE[1]}", "-ex", "detach"]
    # A directory without build/: the helper must not find a kernel.elf by itself.
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                       timeout=120, cwd=args.workdir)
    dumps = DUMP.findall(r.stdout)
    if r.returncode != 0 or len(dumps) != 2:
        raise harness.BootTestError(f"gdb (exit {r.returncode}) did not print two dumps:\n"
                                    + r.stdout[-3000:])
    return dumps


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


def main():
    p = harness.arg_parser(__doc__)
    p.add_argument("--gdb", default="gdb")
    p.add_argument("--gdb-script", default=os.path.join(HERE, "..", "..", "scripts", "gdb",
                                                          "canopy.py"))
    args = p.parse_args()
    args.gdb_script = os.path.abspath(args.gdb_script)
    args.kernel = os.path.abspath(args.kernel)
    port = free_port()
    with harness.machine_from_args(args, name="shell_gdb",
                                   extra_args=["-gdb", f"tcp:127.0.0.1:{port}"]) as vm:
        sh = shell.Shell(vm)
        sh.wait_ready()
        ours = ["--- pt begin ---\n" + sh.dump("pt") + "--- pt end ---\n",
                "--- pt begin ---\n" + sh.dump(f"pt {RANGE[0]} {RANGE[1]}") + "--- pt end ---\n"]
        print(f"\n[check] the kernel's pt: {ours[0].count(chr(10))} lines")
        theirs = gdb_dumps(args, port, True)
        plain = gdb_dumps(args, port, False)
    for i, what in enumerate(("pt", f"pt {RANGE[0]} {RANGE[1]}")):
        with open(os.path.join(args.workdir, f"shell_gdb.{i}.gdb.txt"), "w") as f:
            f.write(theirs[i])
        if theirs[i] != ours[i]:
            raise harness.BootTestError(f"GDB's `{what}` differs from the kernel's:\nkernel:\n"
                                        f"{ours[i]}gdb:\n{theirs[i]}")
        if ranges_without_labels(plain[i]) != ranges_without_labels(ours[i]) or \
                not ranges_without_labels(ours[i]):
            raise harness.BootTestError(f"GDB's `{what}` without symbols (physical memory) "
                                        f"maps other ranges:\n{plain[i]}")
    if not re.search(r" R-X kernel . WB +\.text$", theirs[0], re.MULTILINE):
        raise harness.BootTestError("GDB's dump has no .text range")
    print("[check] GDB's `pt` and `pt START END` equal the kernel's byte for byte; without "
          "symbols the same ranges, unlabelled")


if __name__ == "__main__":
    harness.run(main)
