#!/usr/bin/env python3
"""canopy-sb.img's chain of hashes, checked without booting and with tools
that are not Canopy's: sbverify accepts BOOTX64.EFI with the certificate;
the pin in its .cfgpin section is sha256 of canopy.cfg; canopy.cfg's
kernel_sha256= is sha256 of kernel.elf; and the image's ESP (read with
mtools) holds exactly those three files. The linked, unsigned stage 1 pins
nothing. Standard library, sbverify and mtools.
"""

import argparse
import hashlib
import os
import re
import subprocess
import sys
import tempfile

failures = []
passed = []


def check(ok, what):
    print(("ok   " if ok else "FAIL ") + what, flush=True)
    (passed if ok else failures).append(what)


def sha256(data):
    return hashlib.sha256(data).hexdigest()


def run(cmd, **kw):
    return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60, **kw)


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--image", required=True)
    p.add_argument("--dir", required=True, help="the signed image's files")
    p.add_argument("--cert", required=True)
    p.add_argument("--efi", required=True, help="stage 1 as linked")
    p.add_argument("--pin-script", required=True)
    a = p.parse_args()

    efi = os.path.join(a.dir, "BOOTX64.EFI")
    r = run(["sbverify", "--cert", a.cert, efi])
    check(r.returncode == 0, f"sbverify --cert accepts BOOTX64.EFI: {r.stdout.decode().strip()}")
    # A byte of the signed file changed: sbverify must refuse it.
    with open(efi, "rb") as f:
        signed = f.read()
    with tempfile.TemporaryDirectory() as tmp:
        bad = os.path.join(tmp, "bad.efi")
        with open(bad, "wb") as f:
            f.write(signed[:0x400] + bytes([signed[0x400] ^ 1]) + signed[0x401:])
        check(run(["sbverify", "--cert", a.cert, bad]).returncode != 0,
              "sbverify refuses it with one byte of a section changed")

        with open(os.path.join(a.dir, "canopy.cfg"), "rb") as f:
            cfg = f.read()
        with open(os.path.join(a.dir, "kernel.elf"), "rb") as f:
            kernel = f.read()
        shown = run([sys.executable, a.pin_script, "--show", efi]).stdout.decode().strip()
        check(shown == f"pinned {sha256(cfg)}", f"the pin is sha256(canopy.cfg): {shown}")
        plain = run([sys.executable, a.pin_script, "--show", a.efi]).stdout.decode().strip()
        check(plain == "not pinned", f"the linked stage 1 pins nothing: {plain}")
        pins = re.findall(rb"^kernel_sha256=([0-9a-f]{64})$", cfg, re.MULTILINE)
        check(pins == [sha256(kernel).encode()],
              f"canopy.cfg pins sha256(kernel.elf) once: {pins}")
        check(kernel[:4] == b"\x7fELF" and b".debug_info" not in kernel,
              "kernel.elf is an ELF without debug sections")

        env = dict(os.environ, MTOOLSRC="/dev/null", MTOOLS_SKIP_CHECK="1")
        part = f"{a.image}@@1M"
        for path, want in [("EFI/BOOT/BOOTX64.EFI", signed), ("canopy/canopy.cfg", cfg),
                           ("canopy/kernel.elf", kernel)]:
            out = os.path.join(tmp, os.path.basename(path))
            r = run(["mcopy", "-n", "-i", part, "::/" + path, out], env=env)
            got = open(out, "rb").read() if r.returncode == 0 else None
            check(got == want, f"the image's /{path} is the file in {os.path.basename(a.dir)}/")
    print(f"{len(passed)} passed, {len(failures)} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
