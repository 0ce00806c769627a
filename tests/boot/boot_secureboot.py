#!/usr/bin/env python3
"""Boot tests under OVMF with Secure Boot enforced (Debian's snakeoil build,
whose db trusts the key canopy-sb.img is signed with in a test build).

Cases:
  ready      canopy-sb.img reaches `canopy: ready`; stage 1 says Secure Boot is
             on and the configuration pinned, checks the kernel's hash, and the
             kernel's banner and `boottime` say `secure boot: on, kernel
             verified: yes`.
  unsigned   the unsigned canopy.img is refused by the firmware (`Access
             Denied`) and stage 1 never prints a line.
  refusals   three disks in one machine, each the signed image with one thing
             wrong; OVMF's boot manager tries each in turn when stage 1 hands
             it back an error: one byte of the kernel changed, one byte of
             canopy.cfg changed (in a comment: it would parse the same), and the
             kernel as the build left it, with its debug sections (a valid ELF,
             another hash). Each disk must give exactly its own refusal line
             (file, pinned hash, the hash of that disk's file), and no disk may
             enter a kernel.
  debug      a signed stage 1 pinning a configuration with debug_fault= and
             debug_smash= (either would stop stage 1 if it counted): stage 1
             says it ignores both and the boot reaches `canopy: ready`.
"""

import hashlib
import os
import re
import subprocess

import harness
import shell

BOOT_S = 120  # to stage 1 under SMM emulation, with room for a loaded machine
READY_S = 90


def sha256_file(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def sb_machine(args, image, name, **kw):
    code, variables = harness.qemu_args.secure_boot_pair("snakeoil", args.ovmf_dir)
    return harness.Machine(image, ovmf_code=code, ovmf_vars=variables, secure_boot=True,
                           mem=args.mem, cpu=args.cpu, log_dir=args.workdir, name=name,
                           echo=not args.quiet, **kw)


def mkimage(args, out, efi, kernel, cfg):
    cmd = [args.mkimage, "--out", out, "--efi", efi, "--kernel", kernel, "--cfg", cfg,
           "--no-strip", "--quiet"]
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=120)
    if r.returncode != 0:
        raise harness.BootTestError(f"mkimage failed: {r.stdout.decode(errors='replace')}")
    return out


def pinned_kernel_hash(cfg):
    with open(cfg) as f:
        m = re.search(r"^kernel_sha256=([0-9a-f]{64})$", f.read(), re.MULTILINE)
    if not m:
        raise harness.BootTestError(f"{cfg} pins no kernel")
    return m.group(1)


def case_ready(args):
    sb = args.sb_dir
    kernel_hash = sha256_file(os.path.join(sb, "kernel.elf"))
    if pinned_kernel_hash(os.path.join(sb, "canopy.cfg")) != kernel_hash:
        raise harness.BootTestError("the image's canopy.cfg does not pin its kernel.elf")
    with sb_machine(args, args.sb_image, "sb-ready") as vm:
        vm.wait_for_line(r"BdsDxe: starting Boot\d+", BOOT_S, "OVMF starting the signed stage 1",
                         fail_if=r"Access Denied|Security Violation")
        vm.wait_for(r"^canopy: stage 1\n", 30, "stage 1's banner")
        line = vm.wait_for_line(r"^canopy: secure boot: ", 10, "stage 1's Secure Boot line")
        if line.group(0).strip() != "canopy: secure boot: on, configuration pinned":
            raise harness.BootTestError(f"stage 1 says {line.group(0).strip()!r}")
        print(f"\n[check] stage 1: {line.group(0).strip()!r}")
        want = f"canopy: /canopy/kernel.elf: sha256 {kernel_hash} as pinned; kernel verified: yes"
        vm.wait_for(r"^" + re.escape(want) + r"\n", 30, "stage 1's kernel hash line",
                    fail_if=r"refused")
        print(f"[check] {want!r}")
        vm.wait_for(r"^canopy: kernel entered\n", 60, "the kernel", fail_if=harness.BOOT_FAILURE)
        vm.wait_for(r"^secure boot: on, kernel verified: yes\n", 30, "the kernel's banner line",
                    fail_if=harness.BOOT_FAILURE + r"|^secure boot: ")
        print("[check] the kernel's banner: 'secure boot: on, kernel verified: yes'")
        sh = shell.Shell(vm)
        sh.wait_ready(READY_S)
        print(f"[check] `canopy: ready` after {vm.elapsed():.1f} s")
        out = sh.run("boottime")
        if not re.search(r"^secure boot: on, kernel verified: yes$", out, re.MULTILINE):
            raise harness.BootTestError(f"boottime does not say it:\n{out}")
        print("[check] boottime: 'secure boot: on, kernel verified: yes'")


def case_unsigned(args):
    with sb_machine(args, args.image, "sb-unsigned") as vm:
        m = vm.wait_for_line(r"BdsDxe: failed to load Boot\d+ \"UEFI QEMU HARDDISK[^\n]*: "
                             r"Access Denied", BOOT_S, "the firmware refusing the unsigned image",
                             fail_if=r"^canopy: ")
        print(f"\n[check] {m.group(0).strip()!r} after {vm.elapsed():.1f} s")
        # The boot manager moves on to what is left (its shell, unsigned too).
        vm.wait_for_line(r"BdsDxe: (No bootable option|failed to (load|start) Boot\d+ \"EFI "
                         r"Internal Shell)", 60, "the boot manager moving past the disk",
                         fail_if=r"^canopy: ")
        vm.expect_absent(r"^canopy: ")
        print("[check] not one line from stage 1")


def flip_byte(src, dst, offset):
    with open(src, "rb") as f:
        data = bytearray(f.read())
    data[offset] ^= 0x01
    with open(dst, "wb") as f:
        f.write(data)
    return dst


def case_refusals(args):
    sb = args.sb_dir
    efi = os.path.join(sb, "BOOTX64.EFI")
    kernel = os.path.join(sb, "kernel.elf")
    cfg = os.path.join(sb, "canopy.cfg")
    pin = sha256_file(cfg)
    kernel_pin = pinned_kernel_hash(cfg)
    work = args.workdir
    os.makedirs(work, exist_ok=True)

    with open(cfg, "rb") as f:
        text = f.read()
    comment = text.index(b"#") + 2  # a letter of the first comment: parses the same
    bad_kernel = flip_byte(kernel, os.path.join(work, "sb-kernel-byte.elf"),
                           os.path.getsize(kernel) // 2)
    bad_cfg = flip_byte(cfg, os.path.join(work, "sb-cfg-byte.cfg"), comment)
    other = args.kernel  # the build's kernel with its debug sections: an ELF, another hash
    with open(other, "rb") as f:
        if f.read(4) != b"\x7fELF":
            raise harness.BootTestError(f"{other} is not an ELF file")
    if sha256_file(other) == kernel_pin:
        raise harness.BootTestError("the other kernel has the pinned hash")

    # Each case: (its disk's SATA port, what to build, the one line it must give).
    k = "/canopy/kernel.elf"
    c = "/canopy/canopy.cfg"
    cases = {
        0: ("kernel-byte", (efi, bad_kernel, cfg),
            f"canopy: {k}: refused: sha256 expected {kernel_pin}, found {sha256_file(bad_kernel)}"),
        1: ("cfg-byte", (efi, kernel, bad_cfg),
            f"canopy: {c}: refused: sha256 expected {pin}, found {sha256_file(bad_cfg)}"),
        3: ("other-kernel", (efi, other, cfg),
            f"canopy: {k}: refused: sha256 expected {kernel_pin}, found {sha256_file(other)}"),
    }
    images = {}
    for port, (name, files, line) in cases.items():
        images[port] = mkimage(args, os.path.join(work, f"sb-{name}.img"), *files)
        print(f"[setup] SATA port {port}: sb-{name}.img, expecting {line!r}")
    # Port 2 is QEMU's CD-ROM on q35; the first disk is the harness's (port 0).
    extra = []
    for port in (1, 3):
        extra += ["-drive", f"format=raw,file={images[port]},if=ide,index={port},snapshot=on"]

    seen = {}
    with sb_machine(args, images[0], "sb-refusals", extra_args=extra) as vm:
        for _ in cases:
            m = vm.wait_for_line(r"BdsDxe: starting Boot\d+ \"UEFI QEMU HARDDISK[^\n]*"
                                 r"Sata\(0x([0-9A-F]+),", BOOT_S, "OVMF starting the next disk",
                                 fail_if=r"Access Denied")
            port = int(re.search(r"Sata\(0x([0-9A-F]+),", m.group(0)).group(1), 16)
            if port not in cases or port in seen:
                raise harness.BootTestError(f"unexpected boot of SATA port {port}: {m.group(0)}")
            start = vm.cursor()
            back = vm.wait_for_line(r"BdsDxe: failed to start Boot\d+", 60,
                                    f"stage 1 handing disk {port} back to the firmware",
                                    fail_if=r"^canopy: kernel entered|entering the kernel")
            lines = [l for l in vm.output()[start:back.start()].split("\n")
                     if l.startswith("canopy: ")]
            name, _files, want = cases[port]
            refusals = [l for l in lines if "refused" in l]
            if refusals != [want]:
                raise harness.BootTestError(f"disk {port} ({name}): stage 1 said {lines!r}, "
                                            f"wanted exactly one refusal {want!r}")
            if not back.group(0).rstrip().endswith("Security Violation"):
                raise harness.BootTestError(f"disk {port}: {back.group(0).strip()!r}")
            seen[port] = want
            print(f"\n[check] disk {port} ({name}): {want!r}, and the firmware got "
                  "Security Violation back")
        vm.expect_absent(r"^canopy: kernel entered|entering the kernel")
    print(f"[check] all {len(seen)} disks refused, each with its own line; no kernel entered")


def case_debug(args):
    work = args.workdir
    os.makedirs(work, exist_ok=True)
    with open(args.cfg) as f:
        text = f.read()
    cfg = os.path.join(work, "sb-debug.cfg")
    with open(cfg, "w") as f:
        f.write(text + "\n# Each would stop stage 1 if a verified configuration took it.\n"
                "debug_fault=validated\ndebug_smash=config-read\n")
    out_dir = os.path.join(work, "sb-debug")
    image = os.path.join(work, "sb-debug.img")
    r = subprocess.run([args.sb_image_script, "--key", args.sb_key, "--cert", args.sb_cert,
                        "--efi", args.efi, "--kernel", args.kernel, "--cfg", cfg, "--dir", out_dir,
                        "--out", image], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       timeout=120)
    if r.returncode != 0:
        raise harness.BootTestError(f"sb-image.sh failed: {r.stdout.decode(errors='replace')}")
    with sb_machine(args, image, "sb-debug") as vm:
        vm.wait_for(r"^canopy: secure boot: on, configuration pinned\n", BOOT_S,
                    "stage 1's Secure Boot line")
        m = vm.wait_for_line(r"^canopy: canopy\.cfg: 2 debug_\* lines ignored: the configuration "
                             r"is verified", 10, "stage 1 ignoring the two debug lines")
        print(f"\n[check] {m.group(0).strip()!r}")
        vm.wait_for(r"^canopy: ready\n", READY_S, "`canopy: ready`",
                    fail_if=harness.BOOT_FAILURE + r"|^canopy: CPU exception|stack smash")
        print(f"[check] `canopy: ready` after {vm.elapsed():.1f} s, no fault or smash report")


CASES = {"ready": case_ready, "unsigned": case_unsigned, "refusals": case_refusals,
         "debug": case_debug}


def main():
    p = harness.arg_parser(__doc__)
    p.add_argument("--case", choices=sorted(CASES), required=True)
    p.add_argument("--sb-image", help="canopy-sb.img")
    p.add_argument("--sb-dir", help="the files canopy-sb.img holds (build/secureboot)")
    p.add_argument("--sb-key", help="the key the build signs with")
    p.add_argument("--sb-cert", help="its certificate")
    p.add_argument("--sb-image-script", help="scripts/sb-image.sh")
    p.add_argument("--ovmf-dir", default=harness.qemu_args.OVMF_DIR)
    args = p.parse_args()
    CASES[args.case](args)


if __name__ == "__main__":
    harness.run(main)
