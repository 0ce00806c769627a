#!/usr/bin/env python3
"""Checks canopy.img without booting it: the GPT (protective MBR, one EF00
partition, the fixed GUIDs), a FAT32 file system with enough clusters, the
three files with the built binaries' contents, timestamps from
SOURCE_DATE_EPOCH, and that mkimage.sh makes the same bytes again from another
directory at another time.

usage: image_test.py --image IMG --efi EFI --kernel ELF --cfg CFG --mkimage SH --workdir DIR
"""

import argparse
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import time

SECTOR = 512
ESP_TYPE = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"
DISK_GUID = "5C4E0E5A-7A1B-4C1F-9B0E-43414E4F5059"
ESP_GUID = "8F3A2C61-0D4B-4E7A-A5C2-43414E4F5031"

results = []


def check(name, ok, detail=""):
    results.append(ok)
    print(f"{'ok  ' if ok else 'FAIL'} {name}{': ' + detail if detail else ''}")


def run(cmd, env=None):
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60,
                       env=env)
    return r.returncode, r.stdout.decode(errors="replace")


def guid(raw):
    a, b, c = struct.unpack_from("<IHH", raw)
    return f"{a:08X}-{b:04X}-{c:04X}-{raw[8:10].hex().upper()}-{raw[10:16].hex().upper()}"


def check_gpt(data):
    # Protective MBR: one partition of type 0xEE covering the disk.
    check("MBR boot signature 55AA", data[510:512] == b"\x55\xaa")
    ptype = data[446 + 4]
    check("protective MBR entry of type 0xEE", ptype == 0xEE, f"type 0x{ptype:02x}")
    hdr = data[SECTOR:2 * SECTOR]
    check("GPT header signature", hdr[:8] == b"EFI PART")
    disk_guid = guid(hdr[56:72])
    check("fixed disk GUID", disk_guid == DISK_GUID, disk_guid)
    entries_lba, count, size = struct.unpack_from("<QII", hdr, 72)
    parts = []
    for i in range(count):
        e = data[entries_lba * SECTOR + i * size:entries_lba * SECTOR + (i + 1) * size]
        if e[:16] != bytes(16):
            first, last = struct.unpack_from("<QQ", e, 32)
            parts.append((guid(e[:16]), guid(e[16:32]), first, last))
    check("exactly one partition", len(parts) == 1, str(len(parts)))
    if not parts:
        return None
    ptype, pguid, first, last = parts[0]
    check("partition type EF00 (EFI System)", ptype == ESP_TYPE, ptype)
    check("fixed partition GUID", pguid == ESP_GUID, pguid)
    check("partition starts at 1 MiB", first == 2048, str(first))
    return first, last


def check_fat(data, first, last):
    bpb = data[first * SECTOR:(first + 1) * SECTOR]
    bytes_per_sector, spc, reserved, fats = struct.unpack_from("<HBHB", bpb, 11)
    hidden, total = struct.unpack_from("<II", bpb, 28)
    fat_size, = struct.unpack_from("<I", bpb, 36)
    serial, = struct.unpack_from("<I", bpb, 67)
    label = bpb[71:82].decode("ascii", "replace")
    fstype = bpb[82:90].decode("ascii", "replace")
    check("FAT32 file system", fstype == "FAT32   ", repr(fstype))
    clusters = (total - reserved - fats * fat_size) // spc
    check("at least 65525 clusters (FAT32's minimum)", clusters >= 65525, str(clusters))
    check("file system fills the partition", total == last - first + 1,
          f"{total} of {last - first + 1} sectors")
    check("hidden sectors = partition start", hidden == first, str(hidden))
    check("fixed volume id", serial == 0xCA90B001, f"{serial:08X}")
    check("volume label CANOPY", label == "CANOPY     ", repr(label))


def check_files(args, image, tmp):
    esp = f"{image}@@1M"
    for inside, built, strip in (("::/EFI/BOOT/BOOTX64.EFI", args.efi, True),
                                 ("::/canopy/kernel.elf", args.kernel, True),
                                 ("::/canopy/canopy.cfg", args.cfg, False)):
        out = os.path.join(tmp, os.path.basename(inside))
        rc, text = run(["mcopy", "-n", "-i", esp, inside, out])
        if rc != 0:
            check(f"{inside} present", False, text.strip())
            continue
        want = built
        if strip:
            want = os.path.join(tmp, "want-" + os.path.basename(inside))
            run(["llvm-objcopy", "--strip-debug", built, want])
        with open(out, "rb") as a, open(want, "rb") as b:
            check(f"{inside} is the built file", a.read() == b.read())


def check_timestamps(args, tmp):
    # An image made with a known epoch: every entry carries that date.
    img = os.path.join(tmp, "epoch.img")
    env = dict(os.environ, SOURCE_DATE_EPOCH="1000000000")  # 2001-09-09 01:46:40 UTC
    rc, text = run([args.mkimage, "--out", img, "--efi", args.efi, "--kernel", args.kernel,
                    "--cfg", args.cfg, "--quiet"], env)
    check("mkimage with SOURCE_DATE_EPOCH", rc == 0, text.strip())
    rc, listing = run(["mdir", "-i", f"{img}@@1M", "-/", "-a", "::"],
                      dict(os.environ, MTOOLSRC="/dev/null", TZ="UTC"))
    dates = re.findall(r"(\d{4}-\d\d-\d\d) +(\d+:\d\d)", listing)
    check("every entry dated SOURCE_DATE_EPOCH", bool(dates) and
          all(d == ("2001-09-09", "1:46") for d in dates),
          f"{len(dates)} entries, {sorted(set(dates))}")


def check_reproducible(args, tmp):
    # Twice, from different directories, at least a second apart, with one
    # epoch (the default, the last commit, can move while the tree is worked on).
    # Both runs must succeed and print a sum: two failures (or two runs that
    # print no sum) would otherwise compare equal.
    rcs, sums, texts = [], [], []
    for n in (1, 2):
        d = os.path.join(tmp, f"run{n}", "sub" * n)
        os.makedirs(d)
        out = os.path.join(d, "canopy.img")
        env = dict(os.environ, TMPDIR=d, SOURCE_DATE_EPOCH="1700000000")
        rc, text = run([args.mkimage, "--out", out, "--efi", args.efi, "--kernel", args.kernel,
                        "--cfg", args.cfg], env)
        m = re.search(r": sha256 ([0-9a-f]{64})$", text, re.MULTILINE)
        rcs.append(rc)
        sums.append(m.group(1) if m else None)
        texts.append(text.strip())
        if n == 1:
            time.sleep(1.1)
    ok = rcs == [0, 0] and None not in sums and sums[0] == sums[1]
    detail = " vs ".join(f"exit {rc}, sha256 {s}" for rc, s in zip(rcs, sums))
    if rcs != [0, 0] or None in sums:
        detail += "".join(f"\n  run {n}: {t}" for n, t in enumerate(texts, 1))
    check("same bytes from another directory at another time", ok, detail)


def main():
    p = argparse.ArgumentParser()
    for opt in ("--image", "--efi", "--kernel", "--cfg", "--mkimage", "--workdir"):
        p.add_argument(opt, required=True)
    args = p.parse_args()
    with open(args.image, "rb") as f:
        data = f.read()
    check("image is 64 MiB", len(data) == 64 << 20, str(len(data)))
    part = check_gpt(data)
    os.makedirs(args.workdir, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix="image-test-", dir=args.workdir)
    try:
        if part:
            check_fat(data, *part)
        check_files(args, args.image, tmp)
        check_timestamps(args, tmp)
        check_reproducible(args, tmp)
        rc, text = run(["sgdisk", "-v", args.image])
        check("sgdisk -v finds no problems", rc == 0 and "No problems found" in text,
              text.strip().splitlines()[0] if text.strip() else "")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    passed = sum(results)
    failed = len(results) - passed
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
