#!/usr/bin/env python3
"""Boot test: the stack protector and UBSan report what they catch.

Cases:
  stack-smash  cmdline `fault=stack-smash` on the normal image. The kernel must
               seed its canary from a random source (the line `stack protector:
               canary from ...`, never the TSC fallback under `-cpu max`),
               reach `canopy: ready` with `pt check: OK`, then overrun a local
               array. The report must be one panic line naming an address that
               kernel.elf's symbol table places in the overrunning function
               (smash_stack), followed by the halt; the function must never
               return ("did not fault").
  stage1-smash canopy.cfg's `debug_smash=PHASE` (a test aid, docs/stage1.md)
               makes stage 1 overrun a local array in fw_smash_stack. Booted
               twice: at config-read (boot services alive) the report must be
               one line, `canopy: stack protector: ... containing 0x...;
               BOOTX64.EFI is at 0x...`, whose address BOOTX64.EFI's symbols
               place in fw_smash_stack, then the boot manager's `Security
               Violation` for the option; at pmm-ready (after
               ExitBootServices) the same line on serial, the reset notice,
               and the reset (QEMU exits under -no-reboot, status 0 and QMP's
               SHUTDOWN event with reason guest-reset). Neither boot may
               reach the kernel.
  ubsan        builds stage 1 and the kernel with -DCANOPY_UBSAN=ON in its own
               build directory, boots them with `fault=ubsan`. Stage 1 and the
               kernel's whole boot must print no UBSan report (`pt check: OK`,
               `canopy: ready`); then exactly one report for the deliberate
               signed overflow, at the file, line and column of the marked
               expression in kernel/core/faultdemo.c, and the kernel carries on.
"""

import os
import re
import struct
import subprocess

import harness

READY_TIMEOUT_S = 60
BUILD_TIMEOUT_S = 420


def variant_image(args, name, cmdline, efi=None, kernel=None):
    with open(args.cfg) as f:
        lines = [l for l in f.read().splitlines() if not l.strip().startswith("cmdline=")]
    lines.append(f"cmdline={cmdline}")
    os.makedirs(args.workdir, exist_ok=True)
    cfg = os.path.join(args.workdir, f"{name}.cfg")
    with open(cfg, "w") as f:
        f.write("\n".join(lines) + "\n")
    if efi:
        args.efi = efi
    return harness.make_image(args, os.path.join(args.workdir, f"{name}.img"), kernel=kernel,
                              cfg=cfg)


def elf_function_symbols(path):
    """(start, end, name) of every sized function symbol in an ELF64 file's .symtab."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:4] != b"\x7fELF" or data[4] != 2:
        raise harness.BootTestError(f"{path} is not an ELF64 file")
    shoff, = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum = struct.unpack_from("<HH", data, 0x3a)
    sections = [struct.unpack_from("<IIQQQQIIQQ", data, shoff + i * shentsize)
                for i in range(shnum)]
    out = []
    for sh in sections:
        if sh[1] != 2:  # SHT_SYMTAB
            continue
        strtab = sections[sh[6]]
        for off in range(sh[4], sh[4] + sh[5], 24):
            name_off, info, _other, _shndx, value, size = struct.unpack_from("<IBBHQQ", data, off)
            if info & 0xf == 2 and size:  # STT_FUNC
                start = strtab[4] + name_off
                name = data[start:data.index(b"\0", start)].decode()
                out.append((value, value + size, name))
    if not out:
        raise harness.BootTestError(f"{path} has no function symbols")
    return out


def wait_ready(vm):
    seed = vm.wait_for_line(r"^stack protector: canary from .*$", READY_TIMEOUT_S,
                            "the kernel seeding its stack canary", fail_if=harness.BOOT_FAILURE)
    if "TSC" in seed.group(0):
        raise harness.BootTestError(f"the canary fell back to the TSC: {seed.group(0)}")
    check = vm.wait_for(r"^pt check: .*\n", READY_TIMEOUT_S, "the boot's `pt check` line",
                        fail_if=harness.BOOT_FAILURE)
    if not check.group(0).startswith("pt check: OK ("):
        raise harness.BootTestError(f"page tables differ from the manifest: {check.group(0)}")
    vm.wait_for(r"^canopy: ready\n", READY_TIMEOUT_S, "`canopy: ready`",
                fail_if=harness.BOOT_FAILURE)
    print(f"\n[check] {seed.group(0).strip()}; {check.group(0).strip()}; "
          f"`canopy: ready` after {vm.elapsed():.1f} s")


def run_stack_smash(args):
    image = variant_image(args, "hardening-stack-smash", "fault=stack-smash")
    functions = elf_function_symbols(args.kernel)
    with harness.machine_from_args(args, image=image, name="hardening-stack-smash") as vm:
        wait_ready(vm)
        vm.wait_for_line(r'^faultdemo: triggering "stack-smash"', 10, "the fault announcement")
        start = vm.cursor()
        m = vm.wait_for(r"^panic: stack protector: canary overwritten in the function "
                        r"containing 0x([0-9a-f]{16})\n", 20, "the stack protector's report",
                        fail_if=r"did not fault|^\*\*\* |BdsDxe: failed to start")
        vm.wait_for(r"^\*\*\* system halted\n", 10, "the halt after the report")
        between = vm.output()[start:m.start()]
    if between.strip():
        raise harness.BootTestError(f"more than the report came out first:\n{between}")
    addr = int(m.group(1), 16)
    owners = [name for lo, hi, name in functions if lo <= addr < hi]
    if owners != ["smash_stack"]:
        raise harness.BootTestError(f"the report names {addr:#x}, which kernel.elf places in "
                                    f"{owners or 'no function'}, not smash_stack")
    print(f"[check] one panic line naming {addr:#x}, inside smash_stack per kernel.elf's "
          "symbols; system halted")


def pe_text_symbols(path):
    """(address as the PE links it, name) of BOOTX64.EFI's code symbols, sorted, and its ImageBase."""
    with open(path, "rb") as f:
        head = f.read(4096)
    pe, = struct.unpack_from("<I", head, 0x3c)
    if head[pe:pe + 4] != b"PE\0\0" or struct.unpack_from("<H", head, pe + 24)[0] != 0x20b:
        raise harness.BootTestError(f"{path} is not a PE32+ image")
    image_base, = struct.unpack_from("<Q", head, pe + 24 + 24)
    out = subprocess.run(["llvm-nm", path], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         check=True).stdout.decode()
    syms = sorted((int(a, 16), name) for a, kind, name in
                  (l.split(maxsplit=2) for l in out.splitlines() if len(l.split()) == 3)
                  if kind in "Tt")
    if not syms:
        raise harness.BootTestError(f"{path} has no code symbols")
    return image_base, syms


def run_stage1_smash(args):
    image_base, syms = pe_text_symbols(args.efi)
    with open(args.cfg) as f:
        base_cfg = f.read()
    for phase in ("config-read", "pmm-ready"):
        name = f"hardening-stage1-smash-{phase}"
        cfg = os.path.join(args.workdir, f"{name}.cfg")
        os.makedirs(args.workdir, exist_ok=True)
        with open(cfg, "w") as f:
            f.write(base_cfg + f"\ndebug_smash={phase}\n")
        image = harness.make_image(args, os.path.join(args.workdir, f"{name}.img"), cfg=cfg)
        with harness.machine_from_args(args, image=image, name=name) as vm:
            vm.qmp("query-status")  # QMP up from the start: the reset's event is seen
            m = vm.wait_for(r"^canopy: stack protector: canary overwritten in the function "
                            r"containing 0x([0-9a-f]+); BOOTX64\.EFI is at 0x([0-9a-f]+)\n",
                            READY_TIMEOUT_S, "stage 1's stack protector report",
                            fail_if=r"X64 Exception|CPU exception|^canopy: ready|"
                                    r"BdsDxe: failed to start|^kernel: ")
            if phase == "config-read":
                vm.wait_for(r"BdsDxe: failed to start Boot\d+ .*: Security Violation", 20,
                            "the boot manager giving up on the option",
                            fail_if=r"^canopy: ready|^kernel: ")
                outcome = "the firmware reported a Security Violation for the option"
            else:
                vm.wait_for_line(r"^canopy: resetting in 5 seconds", 5, "the reset notice")
                status = vm.wait_exit(20)
                harness.check_guest_reset(vm, status)
                outcome = f"the machine reset (QEMU status {status}, SHUTDOWN guest-reset)"
            if re.search(r"^canopy: ready|^kernel: ", vm.output(), re.MULTILINE):
                raise harness.BootTestError(f"{name}: the kernel ran after the report")
        addr, base = int(m.group(1), 16), int(m.group(2), 16)
        linked = addr - base + image_base
        owner = [n for a, n in syms if a <= linked][-1:]
        if owner != ["fw_smash_stack"]:
            raise harness.BootTestError(f"{name}: the report names {addr:#x}, BOOTX64.EFI+"
                                        f"{addr - base:#x}, which its symbols place in "
                                        f"{owner or 'no function'}, not fw_smash_stack")
        print(f"\n[check] {phase}: one report line naming BOOTX64.EFI+{addr - base:#x}, inside "
              f"fw_smash_stack; {outcome}", flush=True)


def build_ubsan(args):
    """Configures and builds stage 1 and the kernel with CANOPY_UBSAN in workdir."""
    build = os.path.join(os.path.abspath(args.workdir), "ubsan-build")
    steps = []
    if not os.path.isfile(os.path.join(build, "CMakeCache.txt")):
        steps.append(["cmake", "-S", args.source, "-B", build, "-G", "Ninja", "-DCANOPY_UBSAN=ON"])
    steps.append(["cmake", "--build", build, "--target", "stage1", "kernel"])
    for cmd in steps:
        r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           timeout=BUILD_TIMEOUT_S)
        if r.returncode != 0:
            raise harness.BootTestError(f"{' '.join(cmd)} failed:\n"
                                        + r.stdout.decode(errors="replace")[-4000:])
    with open(os.path.join(build, "CMakeCache.txt")) as f:
        if not re.search(r"^CANOPY_UBSAN:BOOL=ON$", f.read(), re.MULTILINE):
            raise harness.BootTestError(f"{build} is not configured with CANOPY_UBSAN=ON")
    return (os.path.join(build, "stage1", "BOOTX64.EFI"),
            os.path.join(build, "kernel", "kernel.elf"))


def marked_line(source, marker):
    """(line, column) of the first '+' on the line of source holding marker."""
    with open(source) as f:
        for n, line in enumerate(f, 1):
            if marker in line:
                return n, line.index("+") + 1
    raise harness.BootTestError(f"no line with {marker!r} in {source}")


def run_ubsan(args):
    efi, kernel = build_ubsan(args)
    print(f"[setup] UBSan build: {efi}, {kernel}")
    image = variant_image(args, "hardening-ubsan", "fault=ubsan", efi=efi, kernel=kernel)
    line, column = marked_line(os.path.join(args.source, "kernel/core/faultdemo.c"),
                               "faultdemo-ubsan")
    with harness.machine_from_args(args, image=image, name="hardening-ubsan") as vm:
        wait_ready(vm)
        trigger = vm.wait_for_line(r'^faultdemo: triggering "ubsan"', 10,
                                   "the fault announcement")
        boot_text = vm.output()[:trigger.start()]
        m = vm.wait_for(r"^ubsan: (\S+):(\d+):(\d+): (.*)\n", 20, "the UBSan report",
                        fail_if=harness.BOOT_FAILURE)
        vm.wait_for_line(r'^faultdemo: "ubsan" did not fault', 10,
                         "the kernel carrying on after the report", fail_if=harness.BOOT_FAILURE)
        reports = re.findall(r"^ubsan: .*$", vm.output()[trigger.end():], re.MULTILINE)
    if len(reports) != 1:
        raise harness.BootTestError(f"{len(reports)} UBSan reports after the trigger, not one:"
                                    "\n  " + "\n  ".join(reports))
    early = re.findall(r"^ubsan: .*$", boot_text, re.MULTILINE)
    if early:
        raise harness.BootTestError("UBSan reports during the boot:\n  " + "\n  ".join(early))
    print("\n[check] no UBSan report from stage 1 or the kernel up to `canopy: ready`")
    where = (m.group(1), int(m.group(2)), int(m.group(3)))
    if where != ("kernel/core/faultdemo.c", line, column):
        raise harness.BootTestError(f"the report names {where}, not kernel/core/faultdemo.c:"
                                    f"{line}:{column}")
    if not m.group(4).startswith("signed integer overflow: 2147483647 + 1"):
        raise harness.BootTestError(f"the report says {m.group(4)!r}, not the signed overflow")
    print(f"[check] {m.group(0).strip()} (the marked expression); the kernel carried on")


def main():
    p = harness.arg_parser(__doc__)
    p.add_argument("--case", choices=["stack-smash", "stage1-smash", "ubsan"], required=True)
    p.add_argument("--source", help="the source tree (the ubsan case builds from it)")
    args = p.parse_args()
    if args.case == "stack-smash":
        run_stack_smash(args)
    elif args.case == "stage1-smash":
        run_stage1_smash(args)
    else:
        if not args.source:
            raise harness.BootTestError("the ubsan case needs --source")
        run_ubsan(args)


if __name__ == "__main__":
    harness.run(main)
