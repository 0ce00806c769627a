#!/usr/bin/env python3
"""Checks ptdump's `info mem` / `info tlb` forms against QEMU's own monitor.

For 4- and 5-level paging: ptdump_qemu_gen builds page tables with pt.c and
writes what ptdump prints; QEMU boots ptdump_qemu_stub (multiboot) with the
tables loaded at 0x200000, the stub turns paging on and halts, and the monitor
is asked over QMP. `info mem` must match byte for byte; `info tlb` too, except
the D and A columns, which the CPU sets as it runs the stub.

Usage: ptdump_qemu_test.py GEN STUB WORKDIR
"""
import json
import os
import socket
import subprocess
import sys
import time

GEN, STUB, WORK = sys.argv[1], sys.argv[2], sys.argv[3]
QEMU = os.environ.get("QEMU", "qemu-system-x86_64")
passed = failed = 0


def check(ok, what, detail=""):
    global passed, failed
    if ok:
        passed += 1
        print(f"ok   {what}")
    else:
        failed += 1
        print(f"FAIL {what}\n{detail}")


class Qmp:
    def __init__(self, path, proc):
        deadline = time.time() + 30
        while True:
            try:
                self.sock = socket.socket(socket.AF_UNIX)
                self.sock.connect(path)
                break
            except OSError:
                self.sock.close()
                if time.time() > deadline or proc.poll() is not None:
                    raise RuntimeError("QEMU's QMP socket never came up")
                time.sleep(0.1)
        self.f = self.sock.makefile("rw")
        self.read()  # the greeting
        self.cmd("qmp_capabilities")

    def read(self):
        while True:
            line = self.f.readline()
            if not line:
                raise RuntimeError("QMP closed")
            msg = json.loads(line)
            if "event" not in msg:
                return msg

    def cmd(self, name, args=None):
        msg = {"execute": name}
        if args:
            msg["arguments"] = args
        self.f.write(json.dumps(msg) + "\n")
        self.f.flush()
        reply = self.read()
        if "error" in reply:
            raise RuntimeError(f"{name}: {reply['error']}")
        return reply.get("return")

    def hmp(self, line):
        return self.cmd("human-monitor-command", {"command-line": line}).replace("\r\n", "\n")


def mask_da(text):
    # "VA: PA XGPDACTUW": D and A are the 4th and 5th flag letters.
    out = []
    for line in text.splitlines():
        head, flags = line[:-9], line[-9:]
        out.append(head + flags[:3] + "??" + flags[5:])
    return "\n".join(out)


def run(levels):
    tables = os.path.join(WORK, f"pt{levels}.bin")
    mem_path = os.path.join(WORK, f"pt{levels}-mem.txt")
    tlb_path = os.path.join(WORK, f"pt{levels}-tlb.txt")
    subprocess.run([GEN, str(levels), tables, mem_path, tlb_path], check=True)
    want_mem = open(mem_path).read()
    want_tlb = open(tlb_path).read()
    sock = os.path.join(WORK, f"qmp{levels}.sock")
    if os.path.exists(sock):
        os.unlink(sock)
    cpu = "qemu64,+pdpe1gb" + (",+la57" if levels == 5 else "")
    proc = subprocess.Popen([QEMU, "-machine", "q35", "-cpu", cpu, "-m", "64M",
                             "-display", "none", "-serial", "none", "-monitor", "none",
                             "-nodefaults", "-kernel", STUB,
                             "-device", f"loader,file={tables},addr=0x200000,force-raw=on",
                             "-qmp", f"unix:{sock},server=on,wait=off"])
    try:
        q = Qmp(sock, proc)
        # Wait until the stub has turned paging on (CR0.PG), then freeze the CPU.
        deadline = time.time() + 30
        while True:
            regs = q.hmp("info registers")
            cr0 = int(regs.split("CR0=")[1].split()[0], 16)
            if cr0 & 0x80000000:
                break
            if time.time() > deadline:
                raise RuntimeError("the stub never enabled paging:\n" + regs)
            time.sleep(0.1)
        q.cmd("stop")
        got_mem = q.hmp("info mem")
        got_tlb = q.hmp("info tlb")
        q.cmd("quit")
    finally:
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
    check(got_mem == want_mem, f"{levels}-level info mem",
          f"--- QEMU ---\n{got_mem}--- ptdump ---\n{want_mem}")
    check(mask_da(got_tlb) == mask_da(want_tlb), f"{levels}-level info tlb (D/A masked)",
          f"--- QEMU ---\n{got_tlb}--- ptdump ---\n{want_tlb}")
    check(want_tlb.count("\n") > 10, f"{levels}-level layout has leaves")


for levels in (4, 5):
    run(levels)
print(f"{passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
