#!/usr/bin/env python3
"""The QEMU command line that boots a Canopy disk image, under OVMF or U-Boot.

The one home of the machine Canopy boots on: which firmware files (OVMF, or
U-Boot's UEFI implementation), how the firmware, its variable store and the
image are attached, and the devices every boot has. scripts/run.sh boots with
it, the boot tests' harness (tests/boot/harness.py) and matrix
(tests/boot/matrix.py) build their machines with it, and tests/CMakeLists.txt
asks it for the default firmware.

As a program (standard library only):

  qemu_args.py ovmf [BUILD]        the code and the variable store of an OVMF
                                   build (4m, the default, or 2m; snakeoil or
                                   ms: the Secure Boot ones), one a line
  qemu_args.py uboot               U-Boot's ROM for QEMU's x86-64 machines
  qemu_args.py vars-for CODE       the variable store that goes with CODE
  qemu_args.py print OPTIONS [-- QEMU ARGS]
                                   the command line, one argument a line
  qemu_args.py exec OPTIONS [-- QEMU ARGS]
                                   runs it: QEMU replaces this process, so
                                   its exit status is the caller's
"""

import argparse
import os
import re
import sys

QEMU = "qemu-system-x86_64"

# Debian's ovmf package: the 4 MB build (OVMF_CODE_4M.fd) is what Canopy boots
# by default; the 2 MB build (OVMF_CODE.fd) is the other one the matrix tries.
OVMF_DIR = "/usr/share/OVMF"
OVMF_BUILDS = {
    "4m": ("OVMF_CODE_4M.fd", "OVMF_VARS_4M.fd"),
    "2m": ("OVMF_CODE.fd", "OVMF_VARS.fd"),
}
DEFAULT_OVMF = "4m"
# The Secure Boot builds (the same 4 MB code, enforcing when its variable
# store holds keys): "snakeoil" trusts Debian's test key
# (/usr/share/ovmf/PkKek-1-snakeoil.pem), "ms" Microsoft's keys, as PCs ship.
# Both need SMM and a secure flash (command_line's secure_boot).
SECURE_BOOT_OVMF = {
    "snakeoil": ("OVMF_CODE_4M.snakeoil.fd", "OVMF_VARS_4M.snakeoil.fd"),
    "ms": ("OVMF_CODE_4M.ms.fd", "OVMF_VARS_4M.ms.fd"),
}

# The display adapters a machine can have, by name. None (the default) adds
# nothing and leaves QEMU's own choice: one standard VGA on q35 and pc.
#   std     one standard VGA, named
#   two     a standard VGA and a second adapter: EDK2's console splitter then
#           owns ConsoleOutHandle, and its GOP is blit only
#   virtio  only virtio-gpu, whose GOP is blit only by design
#   none    no display adapter at all: no GOP
GRAPHICS = {
    "std": ("-vga", "std"),
    "two": ("-vga", "std", "-device", "secondary-vga"),
    "virtio": ("-vga", "none", "-device", "virtio-gpu-pci"),
    "none": ("-vga", "none"),
}

# Debian's u-boot-qemu: U-Boot with its own UEFI implementation (no EDK2
# code), for QEMU's q35 and pc machines. It is the whole firmware (-bios) and
# keeps its UEFI variables in a file on the ESP (ubootefi.var), not in flash.
UBOOT_ROM = "/usr/lib/u-boot/qemu-x86_64/u-boot.rom"
FIRMWARES = ("ovmf", "uboot")


def ovmf_pair(build=DEFAULT_OVMF, directory=OVMF_DIR):
    """The (code, variable store) paths of an OVMF build in directory."""
    code, variables = OVMF_BUILDS[build]
    return os.path.join(directory, code), os.path.join(directory, variables)


def secure_boot_pair(keys, directory=OVMF_DIR):
    """The (code, variable store) paths of a Secure Boot OVMF build: "snakeoil" or "ms"."""
    code, variables = SECURE_BOOT_OVMF[keys]
    return os.path.join(directory, code), os.path.join(directory, variables)


def vars_for(code):
    """The variable store that goes with a firmware code file, beside it:
    OVMF_CODE_4M.fd with OVMF_VARS_4M.fd, OVMF_CODE.fd with OVMF_VARS.fd, and
    the Secure Boot variants (OVMF_CODE_4M.ms.fd, .secboot., .snakeoil.) with
    the plain store of their size."""
    directory, name = os.path.split(code)
    name = name.replace("CODE", "VARS", 1)
    name = re.sub(r"\.(ms|secboot|snakeoil)\.", ".", name, count=1)
    return os.path.join(directory, name)


def command_line(image, ovmf_code, vars_file, *, machine="q35", cpu="max", mem="512M", smp=1,
                 accel=None, serial="stdio", monitor="none", display="none", qmp=None,
                 snapshot=False, no_reboot=True, graphics=None, secure_boot=False,
                 firmware="ovmf", uboot_rom=UBOOT_ROM, debug_exit=True, extra=()):
    """The QEMU command line booting image under OVMF, or under U-Boot.

    firmware "ovmf": ovmf_code is the read-only code, vars_file a private,
    writable copy of the variable store (never the installed template).
    firmware "uboot": uboot_rom is the whole firmware (-bios); ovmf_code and
    vars_file are not used (U-Boot keeps its variables in the image).
    serial is QEMU's -serial backend ("stdio", "mon:stdio", or None for a
    machine without a serial port); monitor None leaves QEMU's default
    monitor. snapshot keeps the image file as built whatever the guest writes
    (for the whole run: a guest reset keeps what it wrote). graphics names
    the display adapters (GRAPHICS; None: QEMU's default). secure_boot adds
    what a Secure Boot OVMF build needs: SMM, and the variable flash writable
    only from SMM, so that the guest cannot rewrite db by writing the flash.
    debug_exit adds isa-debug-exit (port 0xf4), through which a guest ends
    QEMU with a status: (value << 1) | 1.
    """
    if firmware not in FIRMWARES:
        raise ValueError(f"unknown firmware {firmware!r} (known: {', '.join(FIRMWARES)})")
    args = [QEMU, "-machine", machine + (",smm=on" if secure_boot else "")]
    if accel:
        args += ["-accel", accel]
    drive = f"format=raw,file={image},if=ide,index=0" + (",snapshot=on" if snapshot else "")
    args += ["-cpu", cpu, "-m", str(mem), "-smp", str(smp)]
    if firmware == "uboot":
        args += ["-bios", uboot_rom]
    else:
        args += ["-drive", f"if=pflash,format=raw,unit=0,readonly=on,file={ovmf_code}",
                 "-drive", f"if=pflash,format=raw,unit=1,file={vars_file}"]
    args += [
        "-drive", drive,
        "-nic", "none",
        "-display", display,
    ]
    if graphics is not None:
        if graphics not in GRAPHICS:
            raise ValueError(f"no graphics setup '{graphics}' (known: {', '.join(GRAPHICS)})")
        args += GRAPHICS[graphics]
    if monitor:
        args += ["-monitor", monitor]
    if qmp:
        args += ["-qmp", f"unix:{qmp},server=on,wait=off"]
    if no_reboot:
        args.append("-no-reboot")
    if debug_exit:
        args += ["-device", "isa-debug-exit,iobase=0xf4,iosize=4"]
    args += ["-serial", serial or "none"]
    if secure_boot:
        args += ["-global", "driver=cfi.pflash01,property=secure,value=on"]
    return args + list(extra)


def _command_from(argv):
    p = argparse.ArgumentParser(prog="qemu_args.py print|exec")
    p.add_argument("--image", required=True)
    p.add_argument("--firmware", choices=FIRMWARES, default="ovmf")
    p.add_argument("--ovmf-code", default=ovmf_pair()[0])
    p.add_argument("--vars", help="the private copy of OVMF's variable store (OVMF only)")
    p.add_argument("--uboot-rom", default=UBOOT_ROM)
    p.add_argument("--machine", default="q35")
    p.add_argument("--cpu", default="max")
    p.add_argument("--mem", default="512M")
    p.add_argument("--smp", default="1")
    p.add_argument("--accel")
    p.add_argument("--serial", default="stdio", help="'none' for no serial port")
    p.add_argument("--monitor", help="QEMU's -monitor (default: QEMU's own)")
    p.add_argument("--display", default="none")
    p.add_argument("--graphics", choices=sorted(GRAPHICS),
                   help="the display adapters (default: QEMU's own, one standard VGA)")
    p.add_argument("--qmp", help="the QMP socket's path")
    p.add_argument("--snapshot", action="store_true")
    p.add_argument("--no-reboot", action="store_true")
    p.add_argument("--secure-boot", action="store_true",
                   help="SMM and a secure flash, for the Secure Boot OVMF builds")
    extra = []
    if "--" in argv:
        argv, extra = argv[:argv.index("--")], argv[argv.index("--") + 1:]
    a = p.parse_args(argv)
    if a.firmware == "ovmf" and not a.vars:
        p.error("--vars is needed with OVMF")
    return command_line(a.image, a.ovmf_code, a.vars, machine=a.machine, cpu=a.cpu, mem=a.mem,
                        smp=a.smp, accel=a.accel,
                        serial=None if a.serial == "none" else a.serial, monitor=a.monitor,
                        display=a.display, qmp=a.qmp, snapshot=a.snapshot,
                        no_reboot=a.no_reboot, graphics=a.graphics, secure_boot=a.secure_boot,
                        firmware=a.firmware, uboot_rom=a.uboot_rom, extra=extra)


def main(argv):
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__.strip())
        return 0 if argv else 2
    what, rest = argv[0], argv[1:]
    if what == "ovmf" and len(rest) <= 1:
        build = rest[0] if rest else DEFAULT_OVMF
        if build in SECURE_BOOT_OVMF:
            print("\n".join(secure_boot_pair(build)))
            return 0
        if build not in OVMF_BUILDS:
            print(f"qemu_args.py: no OVMF build '{build}' (known: {', '.join(OVMF_BUILDS)})",
                  file=sys.stderr)
            return 2
        print("\n".join(ovmf_pair(build)))
        return 0
    if what == "uboot" and not rest:
        print(UBOOT_ROM)
        return 0
    if what == "vars-for" and len(rest) == 1:
        print(vars_for(rest[0]))
        return 0
    if what in ("print", "exec"):
        args = _command_from(rest)
        if what == "print":
            print("\n".join(args))
            return 0
        try:
            os.execvp(args[0], args)
        except OSError as e:
            print(f"qemu_args.py: {args[0]}: {e.strerror} (package qemu-system-x86)",
                  file=sys.stderr)
            return 127
    print(f"qemu_args.py: bad arguments: {' '.join(argv)} (see --help)", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
