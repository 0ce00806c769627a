#!/usr/bin/env python3
"""Boot test: the shim layout (scripts/shim-image.sh, what `flash-usb.sh --shim`
writes) under OVMF with Microsoft's keys, as a PC ships, all the way.

1. Debian's Microsoft-signed shim starts; stage 1 (signed with the build's
   key, which no firmware db holds) fails shim's check, and stage 1 prints
   nothing: shim says `Verification failed` and, on a key, starts MokManager.
2. MokManager is driven on the serial console as a person would with the
   keyboard: any key, "Enroll key from disk", the volume, /canopy/,
   canopy.cer, "Continue", "Yes", "Reboot". Menu entries are found by their
   text, in the order MokManager draws them.
3. After the reset (same variable store), shim finds the key in MokList and
   starts stage 1, which verifies its pinned configuration and the kernel:
   `canopy: ready` with `secure boot: on, kernel verified: yes`.
"""

import os
import re
import subprocess
import time

import harness

BOOT_S = 120
STEP_S = 60
SETTLE_S = 1.5  # MokManager draws a screen in pieces; keys wait until it is whole

DOWN = "\x1b[B"
ENTER = "\r"


def screen_items(vm, start, names):
    """The names, ordered by where each is first drawn after offset start."""
    text = vm.output()[start:]
    where = {n: text.find(n) for n in names}
    missing = [n for n, at in where.items() if at < 0]
    if missing:
        raise harness.BootTestError(f"MokManager's screen lacks {missing}:\n" + vm.tail())
    return sorted(names, key=lambda n: where[n])


def choose(vm, wait_pattern, names, want, what):
    """Waits for a menu showing every one of names, then moves down to want
    and presses Enter."""
    start = vm.cursor()
    vm.wait_for(wait_pattern, STEP_S, what, partial=True)
    time.sleep(SETTLE_S)
    order = screen_items(vm, start, names)
    steps = order.index(want)
    print(f"\n[step] {what}: {order}, choosing {want!r} ({steps} down)")
    vm.send(DOWN * steps)
    time.sleep(0.5)
    vm.send(ENTER)


def main():
    p = harness.arg_parser(__doc__)
    p.add_argument("--sb-image", required=True)
    p.add_argument("--sb-cert", required=True)
    p.add_argument("--shim-image-script", required=True)
    p.add_argument("--ovmf-dir", default=harness.qemu_args.OVMF_DIR)
    args = p.parse_args()
    os.makedirs(args.workdir, exist_ok=True)
    image = os.path.join(args.workdir, "sb-shim.img")
    r = subprocess.run([args.shim_image_script, "--cert", args.sb_cert, args.sb_image, image],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=120)
    if r.returncode != 0:
        raise harness.BootTestError(f"shim-image.sh failed: {r.stdout.decode(errors='replace')}")
    print(f"[setup] {os.path.basename(image)}: shim, stage 1 as grubx64.efi, MokManager, "
          "canopy.cer")

    code, variables = harness.qemu_args.secure_boot_pair("ms", args.ovmf_dir)
    # no_reboot=False: MokManager's reboot must come back with the enrolled key.
    with harness.Machine(image, ovmf_code=code, ovmf_vars=variables, secure_boot=True,
                         no_reboot=False, mem=args.mem, cpu=args.cpu, log_dir=args.workdir,
                         name="sb-shim", echo=not args.quiet) as vm:
        m = vm.wait_for(r"Verification failed: \(0x1A\) Security Violation", BOOT_S,
                        "shim refusing the unenrolled stage 1", partial=True,
                        fail_if=r"^canopy: |Access Denied")
        print(f"\n[check] shim ran and refused stage 1: {m.group(0)!r} after {vm.elapsed():.1f} s")
        time.sleep(SETTLE_S)
        vm.send(ENTER)  # the error box's OK
        vm.wait_for(r"Press any key to perform MOK management", STEP_S, "MokManager's start",
                    partial=True)
        print(f"[check] MokManager started after {vm.elapsed():.1f} s")
        vm.send(" ")
        choose(vm, r"Enroll hash from disk", ["Continue boot", "Enroll key from disk",
                                              "Enroll hash from disk"],
               "Enroll key from disk", "the main menu")
        choose(vm, r"CANOPY", ["CANOPY"], "CANOPY", "the volumes")
        choose(vm, r"canopy/", ["EFI/", "canopy/"], "canopy/", "the volume's top directory")
        choose(vm, r"canopy\.cer", ["../", "kernel.elf", "canopy.cfg", "canopy.cer"],
               "canopy.cer", "/canopy/")
        choose(vm, r"Continue", ["View key 0", "Continue"], "Continue", "the key to enroll")
        choose(vm, r"Yes", ["No", "Yes"], "Yes", "'Enroll the key(s)?'")
        choose(vm, r"Reboot", ["Reboot"], "Reboot", "the end of MOK management")
        vm.expect_absent(r"^canopy: ")
        print("[check] stage 1 printed nothing before its key was enrolled")

        start = vm.cursor()
        vm.wait_for(r"^canopy: stage 1\n", BOOT_S, "stage 1 started by shim after the reset")
        if not re.search(r"BdsDxe: starting Boot", vm.output()[start:]):
            raise harness.BootTestError("no second boot between MokManager and stage 1")
        print(f"\n[check] after the reset shim started stage 1 ({vm.elapsed():.1f} s)")
        vm.wait_for(r"^canopy: secure boot: on, configuration pinned\n", 30,
                    "stage 1's Secure Boot line")
        vm.wait_for(r"^canopy: /canopy/kernel\.elf: sha256 [0-9a-f]{64} as pinned; kernel "
                    r"verified: yes\n", 30, "stage 1 verifying the kernel", fail_if="refused")
        vm.wait_for(r"^secure boot: on, kernel verified: yes\n", 60, "the kernel's banner",
                    fail_if=harness.BOOT_FAILURE)
        vm.wait_for(r"^canopy: ready\n", 90, "`canopy: ready`", fail_if=harness.BOOT_FAILURE)
        print(f"[check] the whole chain: firmware, shim, stage 1, kernel: `canopy: ready` after "
              f"{vm.elapsed():.1f} s, 'secure boot: on, kernel verified: yes'")


if __name__ == "__main__":
    harness.run(main)
