#!/usr/bin/env python3
"""scripts/sb-pin.py against the linked stage 1 and against what it must
refuse: it finds the reserved .cfgpin section by the PE section table, writes
the pin where stage 1's struct stage1_pin (stage1/load/pin.h) has it, reads it
back, and refuses (changing nothing) a file already pinned, a bad hash, a
file without the section and one whose marker is damaged.
"""

import argparse
import os
import shutil
import subprocess
import sys

failures = []
passed = []


def check(ok, what):
    print(("ok   " if ok else "FAIL ") + what, flush=True)
    (passed if ok else failures).append(what)


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--efi", required=True)
    p.add_argument("--pin-script", required=True)
    p.add_argument("--workdir", required=True)
    a = p.parse_args()
    os.makedirs(a.workdir, exist_ok=True)

    def pin(*args):
        return subprocess.run([sys.executable, a.pin_script, *args], stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, timeout=30)

    def content(path):
        with open(path, "rb") as f:
            return f.read()

    copy = os.path.join(a.workdir, "pin.efi")
    shutil.copyfile(a.efi, copy)
    before = content(copy)
    hexdigest = "00112233445566778899aabbccddeeff" * 2
    r = pin(copy, hexdigest)
    check(r.returncode == 0, f"pins a fresh copy: {r.stdout.decode().strip()}")
    after = content(copy)
    diff = [i for i in range(len(before)) if before[i] != after[i]]
    off = before.find(b"CANOPY-CFG-PIN/1")
    check(len(after) == len(before) and diff and min(diff) >= off + 16 and max(diff) < off + 56,
          "only the pin's bytes changed, right after the marker")
    check(after[off + 16:off + 20] == b"\x01\0\0\0" and after[off + 24:off + 56].hex() == hexdigest,
          "pinned = 1 and the hash at offset 24 of the struct")
    check(pin("--show", copy).stdout.decode().strip() == f"pinned {hexdigest}", "--show reads it back")

    for args, what in [((copy, "ff" * 32), "an already pinned file"),
                       ((a.efi + ".missing", hexdigest), "a missing file")]:
        r = pin(*args)
        check(r.returncode == 1 and r.stdout.decode().startswith("sb-pin.py: "),
              f"refuses {what} with one line: {r.stdout.decode().strip()}")
    check(content(copy) == after, "the pinned file is unchanged by the refusal")

    fresh = os.path.join(a.workdir, "fresh.efi")
    for mutate, what in [(lambda d: d, "a hash of 63 digits"),
                         (lambda d: d.replace(b".cfgpin", b".cfgpix", 1), "a file without .cfgpin"),
                         (lambda d: d.replace(b"CANOPY-CFG-PIN/1", b"CANOPY-CFG-PIN/2", 1),
                          "a damaged marker"),
                         (lambda d: b"NOTPE" + d[5:], "a file that is not PE")]:
        data = mutate(before)
        with open(fresh, "wb") as f:
            f.write(data)
        digest = hexdigest[:63] if what.startswith("a hash") else hexdigest
        r = pin(fresh, digest)
        check(r.returncode == 1 and content(fresh) == data,
              f"refuses {what}, file unchanged: {r.stdout.decode().strip()}")
    print(f"{len(passed)} passed, {len(failures)} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
