#!/usr/bin/env python3
"""Checks scripts/qemu_args.py, the QEMU command line run.sh and the boot tests
share, without starting QEMU: the OVMF file pairs, the variable store that goes
with each code file Debian's ovmf package installs, U-Boot's ROM, and what a
boot test's and run.sh's command lines contain under either firmware."""

import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPT = os.path.join(HERE, os.pardir, os.pardir, "scripts", "qemu_args.py")
sys.path.insert(0, os.path.dirname(SCRIPT))
import qemu_args  # noqa: E402

failures = []


def check(ok, what):
    if not ok:
        failures.append(what)
        print(f"FAIL {what}", flush=True)


def option(args, name):
    """The values that follow each occurrence of option name."""
    return [args[i + 1] for i, a in enumerate(args[:-1]) if a == name]


def main():
    code, variables = qemu_args.ovmf_pair()
    check((code, variables) == ("/usr/share/OVMF/OVMF_CODE_4M.fd",
                                "/usr/share/OVMF/OVMF_VARS_4M.fd"), f"default pair {code} {variables}")
    check(qemu_args.ovmf_pair("2m", "/fw") == ("/fw/OVMF_CODE.fd", "/fw/OVMF_VARS.fd"), "2m pair")
    check(qemu_args.secure_boot_pair("snakeoil") ==
          ("/usr/share/OVMF/OVMF_CODE_4M.snakeoil.fd", "/usr/share/OVMF/OVMF_VARS_4M.snakeoil.fd"),
          "snakeoil pair")
    sb = qemu_args.command_line("i.img", "c.fd", "v.fd", secure_boot=True)
    check(option(sb, "-machine") == ["q35,smm=on"], f"secure boot machine {option(sb, '-machine')}")
    check(option(sb, "-global") == ["driver=cfi.pflash01,property=secure,value=on"],
          f"secure boot flash {option(sb, '-global')}")
    plain = qemu_args.command_line("i.img", "c.fd", "v.fd")
    check(option(plain, "-machine") == ["q35"] and not option(plain, "-global"),
          "no SMM or secure flash without secure_boot")
    for build in qemu_args.OVMF_BUILDS:
        c, v = qemu_args.ovmf_pair(build)
        check(qemu_args.vars_for(c) == v, f"vars_for agrees with the {build} pair")
    for c, v in [("/d/OVMF_CODE_4M.ms.fd", "/d/OVMF_VARS_4M.fd"),
                 ("/d/OVMF_CODE_4M.secboot.fd", "/d/OVMF_VARS_4M.fd"),
                 ("/d/OVMF_CODE_4M.snakeoil.fd", "/d/OVMF_VARS_4M.fd"),
                 ("/d/OVMF_CODE.secboot.fd", "/d/OVMF_VARS.fd"),
                 ("OVMF_CODE.fd", "OVMF_VARS.fd")]:
        check(qemu_args.vars_for(c) == v, f"vars_for({c}) = {qemu_args.vars_for(c)}, want {v}")

    # A boot test's machine: snapshot, no monitor but QMP, no reboot, its serial port.
    t = qemu_args.command_line("img", "code.fd", "vars.fd", cpu="qemu64", mem="2G", smp=4,
                               qmp="/s/qmp.sock", snapshot=True, extra=["-vga", "std"])
    check(t[0] == "qemu-system-x86_64", "QEMU first")
    check(option(t, "-drive") == ["if=pflash,format=raw,unit=0,readonly=on,file=code.fd",
                                  "if=pflash,format=raw,unit=1,file=vars.fd",
                                  "format=raw,file=img,if=ide,index=0,snapshot=on"],
          f"drives {option(t, '-drive')}")
    check(option(t, "-cpu") == ["qemu64"] and option(t, "-m") == ["2G"] and
          option(t, "-smp") == ["4"] and option(t, "-machine") == ["q35"], "machine options")
    check(option(t, "-monitor") == ["none"] and option(t, "-display") == ["none"], "headless")
    check(option(t, "-qmp") == ["unix:/s/qmp.sock,server=on,wait=off"], "qmp")
    check("-no-reboot" in t and "-accel" not in t, "no reboot, default accelerator")
    check(option(t, "-device") == ["isa-debug-exit,iobase=0xf4,iosize=4"], "isa-debug-exit")
    check(option(t, "-serial") == ["stdio"], "serial on stdio")
    check(t[-2:] == ["-vga", "std"], "extra arguments last")
    check(option(qemu_args.command_line("i", "c", "v", serial=None), "-serial") == ["none"],
          "no serial port")
    check(option(qemu_args.command_line("i", "c", "v", debug_exit=False), "-device") == [],
          "no isa-debug-exit when asked")

    # U-Boot's UEFI: the ROM as the whole firmware, no pflash, the rest the same.
    u = qemu_args.command_line("img", None, None, machine="pc", firmware="uboot", snapshot=True)
    check(option(u, "-bios") == [qemu_args.UBOOT_ROM] and
          qemu_args.UBOOT_ROM == "/usr/lib/u-boot/qemu-x86_64/u-boot.rom", f"U-Boot's ROM {u}")
    check(option(u, "-drive") == ["format=raw,file=img,if=ide,index=0,snapshot=on"],
          f"U-Boot: the image only, no pflash {option(u, '-drive')}")
    check(option(u, "-machine") == ["pc"] and "-no-reboot" in u and
          option(u, "-device") == ["isa-debug-exit,iobase=0xf4,iosize=4"], "U-Boot's machine")
    try:
        qemu_args.command_line("i", "c", "v", firmware="seabios")
        check(False, "an unknown firmware is refused")
    except ValueError:
        pass

    # The display setups: each adds its adapters, the default none.
    check("-vga" not in t[:-2], "QEMU's default display adapter unless asked")
    g = qemu_args.command_line("i", "c", "v", graphics="two")
    check(option(g, "-vga") == ["std"] and "secondary-vga" in option(g, "-device"),
          "two adapters: a standard VGA and a secondary one")
    g = qemu_args.command_line("i", "c", "v", graphics="virtio")
    check(option(g, "-vga") == ["none"] and "virtio-gpu-pci" in option(g, "-device"),
          "virtio-gpu only")
    g = qemu_args.command_line("i", "c", "v", graphics="none")
    check(option(g, "-vga") == ["none"] and option(g, "-device") == [
        "isa-debug-exit,iobase=0xf4,iosize=4"], "no display adapter")
    try:
        qemu_args.command_line("i", "c", "v", graphics="cga")
        check(False, "an unknown graphics setup is refused")
    except ValueError:
        pass

    # run.sh's machine, through the program as run.sh calls it.
    r = subprocess.run([sys.executable, SCRIPT, "print", "--image", "b/canopy.img", "--vars",
                        "b/OVMF_VARS.fd", "--accel", "kvm", "--serial", "mon:stdio",
                        "--display", "gtk", "--graphics", "two", "--", "-gdb", "tcp:localhost:1234", "-S"],
                       stdout=subprocess.PIPE, text=True, check=True)
    a = r.stdout.splitlines()
    check(option(a, "-drive")[0].endswith(f"file={code}"), "run.sh's default firmware")
    check(option(a, "-drive")[2] == "format=raw,file=b/canopy.img,if=ide,index=0",
          "run.sh's image is written to")
    check(option(a, "-accel") == ["kvm"] and option(a, "-serial") == ["mon:stdio"] and
          option(a, "-display") == ["gtk"], "run.sh's accelerator, console and window")
    check("-monitor" not in a and "-no-reboot" not in a, "QEMU's own monitor; reboots allowed")
    check("secondary-vga" in option(a, "-device"), "run.sh's --graphics")
    check(a[-3:] == ["-gdb", "tcp:localhost:1234", "-S"], "run.sh's extra arguments last")
    r = subprocess.run([sys.executable, SCRIPT, "print", "--image", "b/uboot-disk.img",
                        "--firmware", "uboot"], stdout=subprocess.PIPE, text=True, check=True)
    a = r.stdout.splitlines()
    check(option(a, "-bios") == [qemu_args.UBOOT_ROM] and
          option(a, "-drive") == ["format=raw,file=b/uboot-disk.img,if=ide,index=0"],
          f"run.sh --uboot's machine {a}")
    r = subprocess.run([sys.executable, SCRIPT, "uboot"], stdout=subprocess.PIPE, text=True,
                       check=True)
    check(r.stdout.strip() == qemu_args.UBOOT_ROM, "qemu_args.py uboot names the ROM")
    r = subprocess.run([sys.executable, SCRIPT, "print", "--image", "i"], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True)
    check(r.returncode == 2 and "--vars is needed with OVMF" in r.stderr,
          "OVMF without a variable store is refused")
    r = subprocess.run([sys.executable, SCRIPT, "ovmf", "9m"], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True)
    check(r.returncode == 2 and "no OVMF build '9m'" in r.stderr, "an unknown build is refused")

    print(f"qemu_args: {'FAIL' if failures else 'PASS'} ({len(failures)} failed)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
