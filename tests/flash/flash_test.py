#!/usr/bin/env python3
"""Tests for scripts/flash-usb.sh, run without any USB hardware.

Each test builds a throwaway world in a temporary directory: a fake sysfs laid
out like the kernel's (a disk under a USB or SATA controller, its partitions,
the /sys/block and /sys/class/block links), fake /proc mounts, mountinfo and
swaps, and a "device" that is a regular file full of random bytes. The script
is pointed at them with CANOPY_SYSFS, CANOPY_PROCFS and CANOPY_DEVFS.

Every refusal test asserts the exact one-line message on stderr, exit status
1, and that the target is byte for byte what it was. The write tests check the
result with tools the script does not control: sgdisk -v for the GPT, mtools
for the file system, and a byte comparison against the image.

The --shim tests (shim_*) take a signed Canopy image and its certificate,
which only a build with a signing key has; they are not in --list, and
tests/secureboot/tests.cmake registers them.

usage: flash_test.py [TEST ...]   (no names: run them all)
       flash_test.py --list         (the test names, one per line)
       flash_test.py --sb-image IMG --sb-cert CERT shim_TEST ...
"""

import hashlib
import os
import pty
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPT = os.path.normpath(os.path.join(HERE, "..", "..", "scripts", "flash-usb.sh"))

MIB = 1024 * 1024
SECTOR = 512
IMAGE_BYTES = 3 * MIB
TARGET_BYTES = 8 * MIB
HELLO = b"hello from the test image\n"

USB_PARENT = ("devices/pci0000:00/0000:00:14.0/usb2/2-1/2-1:1.0/host6/"
              "target6:0:0/6:0:0:0")
SATA_PARENT = "devices/pci0000:00/0000:00:17.0/ata1/host0/target0:0:0/0:0:0:0"

# The machine's own disk, in use as it would be on a real system: none of
# this may make the script refuse a stick.
BASE_MOUNTS = """\
/dev/nvme0n1p2 / ext4 rw,relatime 0 0
proc /proc proc rw,nosuid,nodev,noexec,relatime 0 0
tmpfs /run tmpfs rw,nosuid,nodev 0 0
/dev/nvme0n1p1 /boot/efi vfat rw,relatime 0 0
"""
BASE_MOUNTINFO = """\
22 1 259:2 / / rw,relatime shared:1 - ext4 /dev/nvme0n1p2 rw
23 22 0:21 / /proc rw,nosuid shared:12 - proc proc rw
24 22 0:23 / /run rw,nosuid shared:2 - tmpfs tmpfs rw
25 22 259:1 / /boot/efi rw,relatime shared:3 - vfat /dev/nvme0n1p1 rw
"""
BASE_SWAPS = """\
Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority
/dev/nvme0n1p3                          partition\t8388604\t\t0\t\t-2
"""


class TestFailure(Exception):
    pass


def check(cond, msg):
    if not cond:
        raise TestFailure(msg)


def sha256(data):
    return hashlib.sha256(data).hexdigest()


def read(path):
    with open(path, "rb") as f:
        return f.read()


def write(path, data, mode="w"):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, mode) as f:
        f.write(data)


_image_cache = {}


def build_image(workdir):
    """A small GPT disk: one EF00 partition at 1 MiB holding a FAT volume
    with one file, made with sgdisk and mtools like the real build."""
    if "path" in _image_cache:
        return _image_cache["path"]
    img = os.path.join(workdir, "test.img")
    subprocess.run(["truncate", "-s", str(IMAGE_BYTES), img], check=True)
    subprocess.run(["sgdisk", "-n", "1:2048:0", "-t", "1:ef00", img],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    env = dict(os.environ, MTOOLS_SKIP_CHECK="1", MTOOLSRC="/dev/null")
    subprocess.run(["mformat", "-i", img + "@@1M", "-v", "CANOPYT", "::"],
                   check=True, env=env, stdout=subprocess.DEVNULL)
    hello = os.path.join(workdir, "hello.txt")
    write(hello, HELLO, "wb")
    subprocess.run(["mcopy", "-i", img + "@@1M", hello, "::/HELLO.TXT"],
                   check=True, env=env)
    check(read(img)[SECTOR:SECTOR + 8] == b"EFI PART", "test image has no GPT")
    _image_cache["path"] = img
    return img


class World:
    """A fake sysfs/procfs/devfs with one candidate disk in it."""

    def __init__(self, tmp):
        self.root = tmp
        self.sys = os.path.join(tmp, "sys")
        self.proc = os.path.join(tmp, "proc")
        self.dev = os.path.join(tmp, "dev")
        for d in (self.sys, self.proc, self.dev):
            os.makedirs(d)
        write(os.path.join(self.proc, "self", "mounts"), BASE_MOUNTS)
        write(os.path.join(self.proc, "self", "mountinfo"), BASE_MOUNTINFO)
        write(os.path.join(self.proc, "swaps"), BASE_SWAPS)
        self.image = build_image(os.path.dirname(tmp))
        self.block_dir = None
        self.name = None

    def _link(self, link, target_rel_to_sys):
        os.makedirs(os.path.dirname(link), exist_ok=True)
        rel = os.path.relpath(os.path.join(self.sys, target_rel_to_sys),
                              os.path.dirname(link))
        os.symlink(rel, link)

    def add_disk(self, name="sdz", size=TARGET_BYTES, usb=True, removable=True,
                 partitions=(("sdz1", 2048, 4096), ("sdz2", 6144, 8192)),
                 vendor="SanDisk", model="Cruzer Blade", major=8, minor=240,
                 in_sysfs=True, sector_bytes=SECTOR):
        """Registers NAME in sysfs and makes its backing file of SIZE random bytes."""
        self.name = name
        parent = USB_PARENT if usb else SATA_PARENT
        bdir_rel = os.path.join(parent, "block", name)
        bdir = os.path.join(self.sys, bdir_rel)
        self.block_dir = bdir
        if in_sysfs:
            write(os.path.join(self.sys, parent, "vendor"), vendor.ljust(8) + "\n")
            write(os.path.join(self.sys, parent, "model"), model.ljust(16) + "\n")
            write(os.path.join(bdir, "size"), "%d\n" % (size // SECTOR))
            write(os.path.join(bdir, "removable"), "1\n" if removable else "0\n")
            write(os.path.join(bdir, "dev"), "%d:%d\n" % (major, minor))
            write(os.path.join(bdir, "queue", "logical_block_size"), "%d\n" % sector_bytes)
            os.makedirs(os.path.join(bdir, "holders"))
            os.symlink("../../../" + os.path.basename(parent), os.path.join(bdir, "device"))
            self._link(os.path.join(self.sys, "block", name), bdir_rel)
            self._link(os.path.join(self.sys, "class", "block", name), bdir_rel)
            for i, (pname, start, sectors) in enumerate(partitions, 1):
                pdir = os.path.join(bdir, pname)
                write(os.path.join(pdir, "partition"), "%d\n" % i)
                write(os.path.join(pdir, "start"), "%d\n" % start)
                write(os.path.join(pdir, "size"), "%d\n" % sectors)
                write(os.path.join(pdir, "dev"), "%d:%d\n" % (major, minor + i))
                os.makedirs(os.path.join(pdir, "holders"))
                self._link(os.path.join(self.sys, "class", "block", pname),
                           os.path.join(bdir_rel, pname))
        rnd = random_bytes(size, name)
        write(os.path.join(self.dev, name), rnd, "wb")
        for pname, start, sectors in partitions:
            write(os.path.join(self.dev, pname),
                  rnd[start * SECTOR:(start + sectors) * SECTOR], "wb")
        return os.path.join(self.dev, name)

    def add_mount(self, line):
        with open(os.path.join(self.proc, "self", "mounts"), "a") as f:
            f.write(line + "\n")

    def add_mountinfo(self, line):
        with open(os.path.join(self.proc, "self", "mountinfo"), "a") as f:
            f.write(line + "\n")

    def add_swap(self, line):
        with open(os.path.join(self.proc, "swaps"), "a") as f:
            f.write(line + "\n")

    def env(self, devfs=True):
        env = dict(os.environ, CANOPY_SYSFS=self.sys, CANOPY_PROCFS=self.proc,
                   LC_ALL="C")
        env.pop("CANOPY_DEVFS", None)
        if devfs:
            env["CANOPY_DEVFS"] = self.dev
        return env

    def snapshot(self):
        """The bytes of every file under dev/, to prove nothing was written."""
        return {n: read(os.path.join(self.dev, n)) for n in sorted(os.listdir(self.dev))}

    def run(self, *args, typed=None, devfs=True, path_prefix=None):
        """Runs the script; TYPED, if given, is typed on a terminal as stdin."""
        env = self.env(devfs)
        if path_prefix:
            env["PATH"] = path_prefix + os.pathsep + env["PATH"]
        cmd = [SCRIPT] + list(args)
        if typed is None:
            return subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, env=env, timeout=120,
                                  start_new_session=True)
        master, slave = pty.openpty()
        try:
            # The line sits in the terminal's input queue until the script reads it.
            os.write(master, typed.encode() + b"\n")
            return subprocess.run(cmd, stdin=slave, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, env=env, timeout=120,
                                  start_new_session=True)
        finally:
            os.close(slave)
            os.close(master)


def random_bytes(size, seed):
    """Deterministic non-zero-looking filler, different per name."""
    out = bytearray()
    block = hashlib.sha256(seed.encode()).digest()
    counter = 0
    while len(out) < size:
        out += hashlib.sha256(block + counter.to_bytes(8, "little")).digest() * 64
        counter += 1
    return bytes(out[:size])


def expect_refusal(world, result, before, reason):
    """Asserts exit 1, exactly the one refusal line, and untouched targets."""
    err = result.stderr.decode(errors="replace")
    out = result.stdout.decode(errors="replace")
    want = "flash-usb: refusing: " + reason
    check(result.returncode == 1,
          "exit status %d, want 1; stderr: %r" % (result.returncode, err))
    check(err.splitlines() == [want], "stderr %r, want exactly %r" % (err, want))
    check("Writing" not in out, "refused but printed %r" % out)
    check(world.snapshot() == before, "the target changed although the script refused")


# --- the tests -------------------------------------------------------------------

def test_refuses_device_not_in_sysfs_as_block_device(w):
    w.add_disk(in_sysfs=False)
    before = w.snapshot()
    r = w.run("--yes", w.image, "/dev/sdz")
    expect_refusal(w, r, before, "/dev/sdz is not a block device")


def test_refuses_regular_file_without_test_hooks(w):
    # No CANOPY_DEVFS: the real test (`-b`) on a real path decides.
    target = w.add_disk()
    before = w.snapshot()
    r = w.run("--yes", w.image, target, devfs=False)
    expect_refusal(w, r, before, "%s is not a block device" % target)


def test_refuses_missing_device(w):
    w.add_disk()
    before = w.snapshot()
    r = w.run("--yes", w.image, "/dev/sdy")
    expect_refusal(w, r, before, "/dev/sdy does not exist")


def test_refuses_partition(w):
    w.add_disk()
    before = w.snapshot()
    r = w.run("--yes", w.image, "/dev/sdz1")
    expect_refusal(w, r, before,
                   "/dev/sdz1 is a partition, not a whole disk (the whole disk is /dev/sdz)")


def test_refuses_internal_disk(w):
    w.add_disk(usb=False, removable=False)
    before = w.snapshot()
    r = w.run("--yes", w.image, "/dev/sdz")
    expect_refusal(w, r, before,
                   "/dev/sdz is neither removable nor on a USB bus (an internal disk?)")


def test_accepts_usb_disk_not_marked_removable(w):
    # USB SSDs often report removable=0; the USB path alone is enough. The
    # run stops at the confirmation, which comes after every device check.
    w.add_disk(usb=True, removable=False)
    before = w.snapshot()
    r = w.run(w.image, "/dev/sdz")
    expect_refusal(w, r, before,
                   "no terminal to confirm on; pass --yes to write without asking")
    check(b"Bus:     USB\n" in r.stdout, "bus line missing: %r" % r.stdout)


def test_accepts_removable_disk_off_usb(w):
    # A card in an SD slot: removable, not USB.
    w.add_disk(usb=False, removable=True)
    before = w.snapshot()
    r = w.run(w.image, "/dev/sdz")
    expect_refusal(w, r, before,
                   "no terminal to confirm on; pass --yes to write without asking")
    check(b"Bus:     removable\n" in r.stdout, "bus line missing: %r" % r.stdout)


def test_refuses_mounted_partition(w):
    w.add_disk()
    w.add_mount("/dev/sdz1 /media/user/MY\\040STICK vfat rw,nosuid,nodev 0 0")
    before = w.snapshot()
    r = w.run("--yes", w.image, "/dev/sdz")
    expect_refusal(w, r, before,
                   "/dev/sdz is mounted: /dev/sdz1 on /media/user/MY STICK (unmount it first)")


def test_refuses_mounted_whole_disk(w):
    w.add_disk(partitions=())
    w.add_mount("/dev/sdz /mnt vfat rw 0 0")
    before = w.snapshot()
    r = w.run("--yes", w.image, "/dev/sdz")
    expect_refusal(w, r, before, "/dev/sdz is mounted: /dev/sdz on /mnt (unmount it first)")


def test_refuses_root_filesystem(w):
    w.add_disk()
    # Root comes first in the message even when another partition is mounted too.
    w.add_mount("/dev/sdz1 /media/stick vfat rw 0 0")
    w.add_mount("/dev/sdz2 / ext4 rw,relatime 0 0")
    before = w.snapshot()
    r = w.run("--yes", w.image, "/dev/sdz")
    expect_refusal(w, r, before,
                   "/dev/sdz holds the running system: / is mounted from /dev/sdz2")


def test_refuses_root_named_dev_root(w):
    # Booted without an initramfs, /proc/mounts says /dev/root; only the
    # device number in mountinfo ties / to the stick.
    w.add_disk()
    for f in ("mounts", "mountinfo"):
        write(os.path.join(w.proc, "self", f), "")
    w.add_mount("/dev/root / ext4 rw 0 0")
    w.add_mountinfo("22 1 8:242 / / rw,relatime shared:1 - ext4 /dev/root rw")
    before = w.snapshot()
    r = w.run("--yes", w.image, "/dev/sdz")
    expect_refusal(w, r, before,
                   "/dev/sdz holds the running system: / is mounted from /dev/sdz2")


def test_refuses_swap(w):
    w.add_disk()
    w.add_swap("/dev/sdz2                               partition\t4194300\t\t0\t\t-3")
    before = w.snapshot()
    r = w.run("--yes", w.image, "/dev/sdz")
    expect_refusal(w, r, before,
                   "/dev/sdz holds the running system: /dev/sdz2 is in use as swap")


def test_refuses_partition_held_by_device_mapper(w):
    w.add_disk()
    os.symlink("../../../../../../../../../../virtual/block/dm-0",
               os.path.join(w.block_dir, "sdz1", "holders", "dm-0"))
    before = w.snapshot()
    r = w.run("--yes", w.image, "/dev/sdz")
    expect_refusal(w, r, before,
                   "/dev/sdz is in use: /dev/sdz1 is held by dm-0 (LVM, RAID or encryption)")


def test_refuses_device_smaller_than_image(w):
    w.add_disk(size=2 * MIB, partitions=(("sdz1", 2048, 2048),))
    before = w.snapshot()
    r = w.run("--yes", w.image, "/dev/sdz")
    expect_refusal(w, r, before,
                   "/dev/sdz (2.1 MB (2.0 MiB)) is smaller than the image (3.1 MB (3.0 MiB))")


def test_refuses_disk_with_4k_sectors(w):
    # sysfs sizes stay in 512-byte units whatever the sector size.
    w.add_disk(sector_bytes=4096)
    before = w.snapshot()
    r = w.run("--yes", w.image, "/dev/sdz")
    expect_refusal(w, r, before, "/dev/sdz has 4096-byte logical sectors; "
                   "the image is laid out for 512-byte sectors")


def test_refuses_missing_image(w):
    w.add_disk()
    before = w.snapshot()
    missing = os.path.join(w.root, "build", "canopy.img")
    r = w.run("--yes", missing, "/dev/sdz")
    expect_refusal(w, r, before, "image %s does not exist (build it first)" % missing)


def test_refuses_image_without_gpt(w):
    w.add_disk()
    junk = os.path.join(w.root, "junk.img")
    write(junk, b"\0" * MIB, "wb")
    before = w.snapshot()
    r = w.run("--yes", junk, "/dev/sdz")
    expect_refusal(w, r, before,
                   "image %s is not a GPT disk image (no GPT header at LBA 1)" % junk)


def test_refuses_without_terminal(w):
    w.add_disk()
    before = w.snapshot()
    r = w.run(w.image, "/dev/sdz")
    expect_refusal(w, r, before,
                   "no terminal to confirm on; pass --yes to write without asking")


def test_refuses_wrong_confirmation(w):
    w.add_disk()
    before = w.snapshot()
    r = w.run(w.image, "/dev/sdz", typed="sdy")
    expect_refusal(w, r, before, "typed 'sdy', which is not /dev/sdz; nothing written")
    check(b"Type the device name again (/dev/sdz)" in r.stdout,
          "no prompt shown: %r" % r.stdout)


def test_refuses_empty_confirmation(w):
    w.add_disk()
    before = w.snapshot()
    r = w.run(w.image, "/dev/sdz", typed="")
    expect_refusal(w, r, before, "no device name typed; nothing written")


def check_written(w, r, original):
    """The target holds the image, moved GPT and all, and nothing past it changed."""
    err = r.stderr.decode(errors="replace")
    out = r.stdout.decode(errors="replace")
    check(r.returncode == 0, "exit status %d; stderr: %s" % (r.returncode, err))
    img = read(w.image)
    tgt = read(os.path.join(w.dev, "sdz"))
    check(len(tgt) == TARGET_BYTES, "target size changed to %d" % len(tgt))
    check("Verified: sha256 %s" % sha256(img) in out, "no verification line: %s" % out)

    # What the user was shown before the write.
    for want in ("Device:  /dev/sdz", "Model:   SanDisk Cruzer Blade",
                 "Size:    8.4 MB (8.0 MiB)", "Bus:     USB, removable",
                 "Holds:   sdz1  2.1 MB (2.0 MiB)", "         sdz2  4.2 MB (4.0 MiB)"):
        check(want + "\n" in out, "missing %r in output:\n%s" % (want, out))

    # sgdisk -e rewrites the protective MBR's size and the primary header
    # (LBA 0 and 1); every byte after them is the image's.
    check(tgt[:446] == img[:446], "MBR boot code differs from the image")
    check(tgt[2 * SECTOR:len(img)] == img[2 * SECTOR:],
          "target differs from the image after LBA 1")
    check(tgt[450] == 0xEE, "protective MBR lost its 0xEE partition")
    # Past the image, only the relocated backup GPT (33 sectors) was written.
    backup = 33 * SECTOR
    check(tgt[len(img):-backup] == original[len(img):-backup],
          "bytes between the image and the backup GPT changed")
    check(tgt[-SECTOR:-SECTOR + 8] == b"EFI PART", "no backup GPT header in the last sector")

    v = subprocess.run(["sgdisk", "-v", os.path.join(w.dev, "sdz")],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    check(b"No problems found" in v.stdout, "sgdisk -v: %s" % v.stdout.decode())
    p = subprocess.run(["sgdisk", "-i", "1", os.path.join(w.dev, "sdz")],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    check(b"C12A7328-F81F-11D2-BA4B-00A0C93EC93B" in p.stdout,
          "partition 1 is not an EFI System Partition: %s" % p.stdout.decode())

    # The file system on it still reads.
    env = dict(os.environ, MTOOLS_SKIP_CHECK="1", MTOOLSRC="/dev/null")
    m = subprocess.run(["mtype", "-i", os.path.join(w.dev, "sdz") + "@@1M", "::/HELLO.TXT"],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    check(m.stdout == HELLO, "HELLO.TXT reads %r" % m.stdout)


def test_writes_and_verifies_with_yes(w):
    target = w.add_disk()
    original = read(target)
    r = w.run("--yes", w.image, "/dev/sdz")
    check_written(w, r, original)


def test_writes_after_typed_confirmation(w):
    target = w.add_disk()
    original = read(target)
    r = w.run(w.image, "/dev/sdz", typed="sdz")
    check_written(w, r, original)


def test_reports_corrupt_read_back(w):
    # A dd that corrupts one byte of what it writes, as a failing stick
    # would: the script must notice and stop before touching the GPT.
    target = w.add_disk()
    img = read(w.image)
    offset = MIB + 4 * SECTOR
    bad = img[offset] ^ 0xFF
    real_dd = shutil.which("dd")
    shim_dir = os.path.join(w.root, "shim")
    write(os.path.join(shim_dir, "dd"), """#!/bin/sh
"%s" "$@" || exit $?
for a in "$@"; do
    case "$a" in
    of=%s) printf '\\%03o' | "%s" of="%s" bs=1 seek=%d conv=notrunc status=none ;;
    esac
done
""" % (real_dd, target, bad, real_dd, target, offset))
    os.chmod(os.path.join(shim_dir, "dd"), 0o755)
    r = w.run("--yes", w.image, "/dev/sdz", path_prefix=shim_dir)
    err = r.stderr.decode(errors="replace")
    check(r.returncode == 3, "exit status %d, want 3; stderr: %s" % (r.returncode, err))
    check("flash-usb: error: verification failed: image sha256 %s" % sha256(img) in err,
          "no verification failure reported: %s" % err)
    check(read(target)[offset] == bad, "the shim did not corrupt the target")
    v = subprocess.run(["sgdisk", "-v", target], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT)
    check(b"No problems found" not in v.stdout,
          "sgdisk -e ran although verification failed")


# --- --shim (scripts/shim-image.sh behind the same checks) -----------------------

# Where scripts/shim-image.sh takes shim from (CTest sets it; scripts/shim-fetch.sh fills it).
SHIM_DIR = os.environ.get("CANOPY_SHIM_DIR", "build/shim")
SB = {}  # "image", "cert": from the command line


def esp_file(disk, path):
    env = dict(os.environ, MTOOLS_SKIP_CHECK="1", MTOOLSRC="/dev/null")
    m = subprocess.run(["mtype", "-i", disk + "@@1M", "::/" + path],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    return m.stdout if m.returncode == 0 else None


def test_shim_writes_the_shim_layout(w):
    image = SB["image"]
    target = w.add_disk(size=os.path.getsize(image) + 8 * MIB, partitions=())
    r = w.run("--yes", "--shim", "--cert", SB["cert"], image, "/dev/sdz")
    out = r.stdout.decode(errors="replace")
    check(r.returncode == 0, "exit status %d; stderr: %s" % (r.returncode, r.stderr.decode()))
    check("Image:   %s behind shim (MokManager and %s to enroll)" % (
        image, os.path.basename(SB["cert"])) in out, "no shim image line:\n%s" % out)
    check("Verified: sha256 " in out, "not verified:\n%s" % out)
    der = subprocess.run(["openssl", "x509", "-in", SB["cert"], "-outform", "DER"],
                         stdout=subprocess.PIPE, check=True).stdout
    want = {
        "EFI/BOOT/BOOTX64.EFI": read(os.path.join(SHIM_DIR, "shimx64.efi.signed")),
        "EFI/BOOT/mmx64.efi": read(os.path.join(SHIM_DIR, "mmx64.efi.signed")),
        "EFI/BOOT/grubx64.efi": esp_file(image, "EFI/BOOT/BOOTX64.EFI"),
        "canopy/kernel.elf": esp_file(image, "canopy/kernel.elf"),
        "canopy/canopy.cfg": esp_file(image, "canopy/canopy.cfg"),
        "canopy/canopy.cer": der,
    }
    for path, data in want.items():
        check(data is not None and esp_file(target, path) == data,
              "/%s on the stick is not what it should be" % path)
    check(esp_file(target, "EFI/BOOT/fbx64.efi") is None,
          "a fallback fbx64.efi would run instead of stage 1")
    v = subprocess.run(["sgdisk", "-v", target], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    check(b"No problems found" in v.stdout, "sgdisk -v: %s" % v.stdout.decode())


def test_shim_refuses_a_certificate_stage1_is_not_signed_with(w):
    w.add_disk(size=os.path.getsize(SB["image"]) + 8 * MIB, partitions=())
    key, cert = os.path.join(w.root, "other.key"), os.path.join(w.root, "other.crt")
    subprocess.run(["openssl", "req", "-new", "-x509", "-newkey", "rsa:2048", "-nodes",
                    "-subj", "/CN=not the signer/", "-keyout", key, "-out", cert],
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    before = w.snapshot()
    r = w.run("--yes", "--shim", "--cert", cert, SB["image"], "/dev/sdz")
    expect_refusal(w, r, before, "%s: its stage 1 is not signed with %s (build canopy-sb.img "
                   "with that key)" % (SB["image"], cert))


def test_shim_refuses_an_image_without_a_canopy_esp(w):
    w.add_disk(partitions=())
    before = w.snapshot()
    r = w.run("--yes", "--shim", "--cert", SB["cert"], w.image, "/dev/sdz")
    expect_refusal(w, r, before, "%s has no /EFI/BOOT/BOOTX64.EFI" % w.image)


def test_shim_wants_a_certificate(w):
    w.add_disk(partitions=())
    before = w.snapshot()
    r = w.run("--yes", "--shim", SB["image"], "/dev/sdz")
    err = r.stderr.decode(errors="replace")
    check(r.returncode == 2, "exit status %d, want 2 (usage)" % r.returncode)
    check("flash-usb: --shim needs --cert" in err, "stderr %r" % err)
    check(w.snapshot() == before, "the target changed")


def main(argv):
    argv = list(argv)
    for opt in ("--sb-image", "--sb-cert"):
        if opt in argv:
            i = argv.index(opt)
            SB[opt[5:]] = os.path.abspath(argv[i + 1])
            del argv[i:i + 2]
    every = {n[5:]: f for n, f in sorted(globals().items()) if n.startswith("test_")}
    tests = {n: f for n, f in every.items() if not n.startswith("shim_")}
    if argv[1:] == ["--list"]:
        print("\n".join(tests))
        return 0
    if len(SB) == 2:
        tests = every
    names = argv[1:] or list(tests)
    for n in names:
        if n not in tests:
            print("unknown test %s; known: %s" % (n, " ".join(tests)))
            return 2
    for tool in ("sgdisk", "mformat", "mcopy", "mtype", "truncate", "dd", "sha256sum"):
        if not shutil.which(tool):
            print("%s not found (install gdisk, mtools and coreutils)" % tool)
            return 2
    passed = failed = 0
    top = tempfile.mkdtemp(prefix="canopy-flash-")
    try:
        for i, n in enumerate(names):
            tmp = os.path.join(top, "t%02d" % i)
            os.makedirs(tmp)
            try:
                tests[n](World(tmp))
                print("ok   %s" % n)
                passed += 1
            except TestFailure as e:
                print("FAIL %s: %s" % (n, e))
                failed += 1
    finally:
        shutil.rmtree(top, ignore_errors=True)
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
