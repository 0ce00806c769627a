#!/usr/bin/env python3
"""Boot matrix: the image boots to the shell across memory sizes, CPU models,
CPU counts, machine types, both OVMF builds, and with no serial port at all.

Every case must reach `canopy: ready` and the `canopy> ` prompt, with the
kernel's boot-time `pmm audit: OK (...)` and `pt check: OK (N mappings)`.
Each case then also checks, with QEMU as the judge:
  - QMP: the machine has the CPUs and RAM asked for, and (serial-less cases)
    no 16550 UART at all;
  - the banner's usable memory against -m (RAM above 4 GiB counted);
  - QMP `info tlb` / `info mem`: the kernel's address space as kernel.elf asks
    (harness.check_address_space), and the HHDM's large pages: with
    `-cpu qemu64` (no pdpe1gb) they are 2 MiB leaves (the P flag; `info tlb`
    masks addresses to the page size) and none is 1 GiB, every whole GiB of
    RAM being 512 of them; with `-cpu max` each whole GiB of RAM is one 1 GiB
    leaf. With RAM above 4 GiB, the HHDM maps physical memory above 4 GiB.
    Serial cases also hold QEMU's view against the shell's `memmap`
    (directmap.py): every HHDM leaf inside RAM-like memory, write-back, and
    the largest page that covers nothing else;
  - serial cases: the shell answers `pt check` and `memmap` (usable RAM above
    4 GiB where there is some); both stack canaries fall back to the TSC
    under `-cpu qemu64` (no RDRAND/RDSEED, so no firmware RNG either) and
    only there;
  - serial-less cases: everything is read off the screen (QMP `screendump`,
    cells compared with the console font's glyphs, see screen.py), and `help`
    typed through QMP `send-key` (the PS/2 keyboard) prints the command list.

Cases (a covering set, not the full product):

  case              memory  cpu     cpus  machine  OVMF  serial
  tiny-pc-2m        128M    qemu64  1     pc       2 MB  yes
  mid-q35-4m        512M    max     4     q35      4 MB  yes
  2g-q35-2m         2G      qemu64  4     q35      2 MB  yes
  4g-pc-4m          4G      max     1     pc       4 MB  yes
  8g-q35-4m         8G      max     4     q35      4 MB  yes
  noserial-q35-4m   512M    max     1     q35      4 MB  no
  noserial-pc-2m    512M    qemu64  4     pc       2 MB  no

  memory 128M: tiny-pc-2m; 512M: mid-q35-4m, noserial-*; 2G: 2g-q35-2m;
  4G (RAM above 4 GiB): 4g-pc-4m (pc: 3 GiB low, 1 GiB at 4 GiB);
  8G: 8g-q35-4m (q35: 2 GiB low, 6 GiB at 4 GiB);
  -cpu qemu64 (HHDM in 2 MiB pages, a whole GiB checked): 2g-q35-2m, also
  tiny-pc-2m and noserial-pc-2m; -cpu max (1 GiB pages checked): 4g-pc-4m,
  8g-q35-4m, also mid-q35-4m and noserial-q35-4m;
  1 CPU: tiny-pc-2m, 4g-pc-4m, noserial-q35-4m; 4 CPUs: mid-q35-4m, 2g-q35-2m,
  8g-q35-4m, noserial-pc-2m;
  q35: mid, 2g, 8g, noserial-q35-4m; pc: tiny, 4g, noserial-pc-2m;
  OVMF 2 MB (OVMF_CODE.fd + OVMF_VARS.fd): tiny, 2g, noserial-pc-2m;
  OVMF 4 MB (OVMF_CODE_4M.fd + OVMF_VARS_4M.fd): mid, 4g, 8g, noserial-q35-4m;
  no serial port: noserial-q35-4m, noserial-pc-2m.
`--check-coverage` (and every run) verifies this table covers every value.

No serial port means `-serial none` alone: QEMU then creates no isa-serial
device, so COM1 does not exist for OVMF or the kernel (checked through QMP
`info qtree`, and the kernel must say `console: serial off`). `-serial null`
would be a UART that discards output, which the kernel detects and uses; and
`-serial none -serial null` makes the null port COM2 (0x2f8), COM1 absent.
Both OVMF builds boot this way, on q35 and on pc, with std VGA (QEMU's
default display, named with `-vga std`): they need neither a serial port nor
the debug port 0x402 (Debian's release builds write nothing there; a
`-debugcon` capture stays empty). What does look like a firmware that never
gets going: `-serial none` with `-nographic` or `-display none` leaves the
terminal empty for the whole boot, though a screendump shows the kernel's
prompt; and with no display device either (`-vga none`, `-nodefaults`) the
kernel boots and runs (QMP `info registers`: RIP in the kernel) with nothing
shown anywhere.

Run one group (`--group NAME`, see --list) or cases (`--case NAME`).
"""

import os
import re
import sys
import time

import directmap
import harness
import screen
import shell

GIB = 1 << 30
MIB = 1 << 20
TWO_MIB = 2 * MIB

OVMF_START_S = 90    # QEMU started to OVMF starting the disk (5 s idle, 30 s seen loaded)
READY_S = 60         # OVMF starting the disk to the prompt
SCREEN_READY_S = 120  # serial-less: QEMU started to the prompt on screen
SCREEN_POLL_S = 1.0
KEY_ANSWER_S = 30    # `help` typed to its output and the next prompt on screen


class Case:
    def __init__(self, name, group, mem, cpu, smp, machine, firmware, serial=True):
        self.name = name
        self.group = group
        self.mem = mem
        self.cpu = cpu
        self.smp = smp
        self.machine = machine
        self.firmware = firmware
        self.serial = serial

    @property
    def mem_bytes(self):
        m = re.fullmatch(r"(\d+)([MG])", self.mem)
        return int(m.group(1)) << (20 if m.group(2) == "M" else 30)

    def describe(self):
        return (f"{self.name}: -m {self.mem} -cpu {self.cpu} -smp {self.smp} "
                f"-machine {self.machine}, OVMF {self.firmware[0]} MB, "
                f"{'serial on COM1' if self.serial else 'no serial port'}")


CASES = [
    Case("tiny-pc-2m", "small", "128M", "qemu64", 1, "pc", "2m"),
    Case("mid-q35-4m", "small", "512M", "max", 4, "q35", "4m"),
    Case("2g-q35-2m", "small", "2G", "qemu64", 4, "q35", "2m"),
    Case("4g-pc-4m", "large", "4G", "max", 1, "pc", "4m"),
    Case("8g-q35-4m", "large", "8G", "max", 4, "q35", "4m"),
    Case("noserial-q35-4m", "noserial", "512M", "max", 1, "q35", "4m", serial=False),
    Case("noserial-pc-2m", "noserial", "512M", "qemu64", 4, "pc", "2m", serial=False),
]

# Every value of every dimension the matrix must cover.
REQUIRED = {
    "mem": {"128M", "512M", "2G", "4G", "8G"},
    "cpu": {"qemu64", "max"},
    "smp": {1, 4},
    "machine": {"q35", "pc"},
    "firmware": {"2m", "4m"},
    "serial": {True, False},
}


def check_coverage(cases):
    """Fails unless every required value of every dimension is in some case,
    and qemu64 and max each meet a case with a whole GiB of RAM (so the page
    size checks have something to see)."""
    missing = []
    for dim, values in REQUIRED.items():
        seen = {getattr(c, dim) for c in cases}
        missing += [f"{dim}={v}" for v in sorted(values - seen, key=str)]
    for cpu in ("qemu64", "max"):
        if not any(c.cpu == cpu and c.mem_bytes >= 2 * GIB for c in cases):
            missing.append(f"cpu={cpu} with at least 2 GiB")
    if missing:
        raise harness.BootTestError("the matrix does not cover " + ", ".join(missing))


# ---- checks shared by both kinds of case -----------------------------------

def check_qemu_config(vm, case):
    """QEMU really has the CPUs and RAM asked for."""
    cpus = vm.qmp("query-cpus-fast")
    if len(cpus) != case.smp:
        raise harness.BootTestError(f"QMP query-cpus-fast lists {len(cpus)} CPUs, "
                                    f"-smp {case.smp} asked")
    base = vm.qmp("query-memory-size-summary")["base-memory"]
    if base != case.mem_bytes:
        raise harness.BootTestError(f"QMP reports {base} bytes of RAM, -m {case.mem} asked")
    serials = vm.hmp("info qtree").count("dev: isa-serial")
    want = 1 if case.serial else 0
    if serials != want:
        raise harness.BootTestError(f"`info qtree` shows {serials} isa-serial devices, "
                                    f"expected {want}")
    print(f"[check] QMP: {len(cpus)} CPUs, {base >> 20} MiB, {serials} UART"
          f"{'' if serials == 1 else 's'}")


def check_banner(text, case):
    """The banner's memory and paging lines fit the case."""
    m = re.search(r"^memory: (\d+) MiB usable, (\d+) MiB free", text, re.MULTILINE)
    if not m:
        raise harness.BootTestError("no `memory: N MiB usable` line in the banner")
    usable = int(m.group(1))
    asked = case.mem_bytes >> 20
    # OVMF keeps a few MiB (its runtime, ACPI tables, the legacy hole); RAM
    # above 4 GiB must be counted, so nearly all of -m is usable.
    floor = asked - max(24, asked // 32)
    if not floor <= usable <= asked:
        raise harness.BootTestError(f"the banner says {usable} MiB usable with -m {case.mem}; "
                                    f"expected {floor}..{asked}")
    want = "(1 GiB pages)" if case.cpu == "max" else "(2 MiB pages)"
    p = re.search(r"^paging: (\d) levels, HHDM at 0x([0-9a-f]{16}) (\(.*\))$", text,
                  re.MULTILINE)
    if not p or p.group(3) != want:
        raise harness.BootTestError(f"-cpu {case.cpu}: expected a `paging:` line ending in "
                                    f"{want}, got {p.group(0) if p else 'none'}")
    print(f"[check] banner: {usable} MiB usable of {asked} MiB (at least {floor}); "
          f"HHDM {want}")
    return usable


STAGE1_TSC_ONLY = ("canopy: no RDSEED, RDRAND or firmware RNG: the stack canary comes from the "
                   "TSC only")


def check_canary_source(text, case):
    """Both stack canaries' sources: the fallback exactly where the CPU has no RDRAND/RDSEED."""
    m = re.search(r"^stack protector: canary from (.*)$", text, re.MULTILINE)
    if not m:
        raise harness.BootTestError("the kernel did not say where its canary came from")
    stage1_tsc = STAGE1_TSC_ONLY in text
    if case.cpu == "qemu64":
        # No RDRAND or RDSEED, so OVMF installs no RNG protocol either: both fall back.
        want, ok = "the TSC fallback in both stages", (
            stage1_tsc and m.group(1).startswith("the TSC only ("))
    else:
        want, ok = "RDRAND (TCG has no RDSEED) and stage 1's seed, no fallback", (
            not stage1_tsc and m.group(1) == "RDRAND and the boot seed")
    if not ok:
        raise harness.BootTestError(f"-cpu {case.cpu}: expected {want}; stage 1's TSC notice "
                                    f"{'printed' if stage1_tsc else 'absent'}, the kernel: "
                                    f"{m.group(0)!r}")
    print(f"[check] -cpu {case.cpu}: {m.group(0)}"
          + ("; stage 1 said its canary is TSC only" if stage1_tsc else ""))


def check_page_tables(vm, case, segments, log_prefix, memmap=None):
    """QEMU's `info tlb`/`info mem` (guest stopped): the address space as
    kernel.elf asks, the HHDM's page sizes as the CPU model allows, and with
    the shell's memory map the direct map's RAM-only rule."""
    vm.qmp("stop")
    try:
        tlb = vm.hmp("info tlb")
        mem = vm.hmp("info mem")
    finally:
        vm.qmp("cont")
    with open(log_prefix + ".info-tlb.txt", "w") as f:
        f.write(tlb)
    with open(log_prefix + ".info-mem.txt", "w") as f:
        f.write(mem)
    ranges = harness.parse_info_mem(mem)
    leaves = harness.parse_info_tlb(tlb, ranges)
    for line in harness.check_address_space(segments, leaves, ranges):
        print(f"[check] {line}")
    tramp = directmap.trampoline_of(vm.output())
    exempt = [tramp] if tramp is not None else []
    check_hhdm_pages(case, leaves, ranges, exempt)
    if memmap is not None:
        print(f"[check] {directmap.check_ram_only(leaves, memmap)}")
        max_page = GIB if case.cpu == "max" else TWO_MIB
        print(f"[check] {directmap.check_largest_pages(leaves, memmap, max_page, exempt)}")


def hhdm_whole_gibs(leaves, ranges):
    """The GiBs of the HHDM that `info mem` shows mapped from end to end with
    one physically contiguous run (RAM, not a window into MMIO)."""
    gibs = []
    by_va = {l.va: l for l in leaves}
    for start, end, _u, _w in ranges:
        if start < harness.HHDM_START or end > harness.HHDM_END:
            continue
        va = (start + GIB - 1) // GIB * GIB
        while va + GIB <= end:
            first = by_va.get(va)
            if first is not None and first.pa == va - harness.HHDM_START:
                inside = [l for l in leaves if va <= l.va < va + GIB]
                if all(l.pa == l.va - harness.HHDM_START for l in inside):
                    gibs.append((va, inside))
            va += GIB
    return gibs


def check_hhdm_pages(case, leaves, ranges, exempt=()):
    """The HHDM's page sizes. A whole GiB that holds a physical address in
    `exempt` is not held to them: the trampoline frame's alias keeps the 4 KiB
    pages it had while read-only (directmap.check_largest_pages says why)."""
    hhdm = [l for l in leaves if harness.HHDM_START <= l.va < harness.HHDM_END]
    large = [l for l in hhdm if l.large]
    if not large:
        raise harness.BootTestError("no large (P) leaf in the HHDM")
    one_gib = [l for l in large if l.size == GIB]
    two_mib = [l for l in large if l.size == TWO_MIB]
    for l in large:
        if l.va % TWO_MIB or l.pa % TWO_MIB:
            raise harness.BootTestError(f"HHDM large leaf not 2 MiB aligned: {l}")
    # A GiB may hold no RAM-only stretch (q35 with 2 GiB: the legacy hole in the
    # first, OVMF's runtime ranges in the second); the largest-page check of
    # directmap.py covers every size where the memory map allows it.
    gibs = hhdm_whole_gibs(leaves, ranges)
    if case.mem_bytes > 3 * GIB and not gibs:
        raise harness.BootTestError(f"-m {case.mem}: no whole GiB of RAM mapped in the HHDM")
    kept = [(va, inside) for va, inside in gibs
            if not any(va <= harness.HHDM_START + pa < va + GIB for pa in exempt)]
    if len(kept) < len(gibs):
        print(f"[check] HHDM: {len(gibs) - len(kept)} whole GiB holds the trampoline frame "
              "(its 4 KiB pages stay); not held to the page size")
    gibs = kept
    if case.cpu == "qemu64":
        if one_gib:
            raise harness.BootTestError(f"-cpu qemu64 has no 1 GiB pages, but the HHDM has "
                                        f"{len(one_gib)} 1 GiB leaves, e.g. {one_gib[0]}")
        for va, inside in gibs:
            if len(inside) != 512 or any(l.size != TWO_MIB for l in inside):
                raise harness.BootTestError(f"-cpu qemu64: the HHDM's GiB at {va:016x} is "
                                            f"{len(inside)} leaves, not 512 of 2 MiB")
        print(f"[check] HHDM: {len(two_mib)} 2 MiB leaves (P flag, 2 MiB aligned), no 1 GiB "
              f"leaf; {len(gibs)} whole GiB of RAM each 512 x 2 MiB")
    else:
        for va, inside in gibs:
            if len(inside) != 1 or inside[0].size != GIB:
                raise harness.BootTestError(f"-cpu max: the HHDM's GiB at {va:016x} is "
                                            f"{len(inside)} leaves, not one 1 GiB page")
        print(f"[check] HHDM: {len(one_gib)} 1 GiB leaves, {len(two_mib)} 2 MiB leaves; "
              f"{len(gibs)} whole GiB of RAM each one 1 GiB page")
    if case.mem_bytes > 3 * GIB:
        above = sum(min(l.end, harness.HHDM_END) - max(l.va, harness.HHDM_START + 4 * GIB)
                    for l in hhdm if l.end > harness.HHDM_START + 4 * GIB)
        if above < GIB // 2:
            raise harness.BootTestError(f"-m {case.mem}: the HHDM maps only {above >> 20} MiB "
                                        "above physical 4 GiB")
        print(f"[check] HHDM: {above >> 20} MiB mapped above physical 4 GiB")


# ---- cases with a serial console ------------------------------------------

def run_serial_case(args, case, segments):
    with machine(args, case) as vm:
        vm.wait_for_line(r"BdsDxe: starting Boot\d+", OVMF_START_S, "OVMF starting the disk",
                         fail_if=harness.BOOT_FAILURE)
        t_ovmf = vm.elapsed()
        check_qemu_config(vm, case)
        audit = vm.wait_for(r"^pmm audit: .*\n", READY_S, "the boot's `pmm audit` line",
                            fail_if=harness.BOOT_FAILURE).group(0)
        if not audit.startswith("pmm audit: OK ("):
            raise harness.BootTestError(f"PMM audit failed: {audit.strip()}\n" + vm.tail())
        print(f"\n[check] {audit.strip()}")
        check = vm.wait_for(r"^pt check: .*\n", READY_S, "the boot's `pt check` line",
                            fail_if=harness.BOOT_FAILURE).group(0)
        if not check.startswith("pt check: OK ("):
            raise harness.BootTestError(f"page tables differ from the manifest: {check.strip()}"
                                        "\n" + vm.tail())
        print(f"[check] {check.strip()}")
        vm.wait_for(r"^canopy: ready\n", READY_S, "`canopy: ready`", fail_if=harness.BOOT_FAILURE)
        vm.wait_for(re.escape(shell.PROMPT), READY_S, "the first prompt",
                    fail_if=harness.BOOT_FAILURE, partial=True)
        t_ready = vm.elapsed()
        print(f"[check] prompt after {t_ready:.1f} s (OVMF started the disk at {t_ovmf:.1f} s)")
        check_banner(vm.output(), case)
        check_canary_source(vm.output(), case)
        sh = shell.Shell(vm)
        out = sh.run("pt check")
        shell.expect(out, r"^pt check: OK \(\d+ mappings\)$", "`pt check` in the shell")
        memmap = check_memmap(sh, case)
        check_page_tables(vm, case, segments, os.path.join(args.workdir, f"matrix-{case.name}"),
                          memmap)
        return t_ovmf, t_ready


def check_memmap(sh, case):
    out = sh.run("memmap")
    rows = re.findall(r"^  ([0-9a-f]{16})-([0-9a-f]{16}) +\S+ (\S+) ", out, re.MULTILINE)
    usable = [(int(a, 16), int(b, 16)) for a, b, kind in rows if kind == "usable"]
    if not usable:
        raise harness.BootTestError(f"memmap: no usable range:\n{out}")
    above = sum(b + 1 - max(a, 4 * GIB) for a, b in usable if b >= 4 * GIB)
    if case.mem_bytes > 3 * GIB and above < GIB // 2:
        raise harness.BootTestError(f"-m {case.mem}: memmap shows only {above >> 20} MiB usable "
                                    f"above 4 GiB:\n{out}")
    if case.mem_bytes <= 2 * GIB and above:
        raise harness.BootTestError(f"-m {case.mem}: memmap shows usable memory above 4 GiB")
    print(f"[check] memmap: {len(usable)} usable ranges, {above >> 20} MiB above 4 GiB")
    return directmap.parse_memmap(out)


# ---- cases without a serial port: the screen and the keyboard -------------

class ScreenReader:
    def __init__(self, vm, font, path):
        self.vm = vm
        self.font = font
        self.path = path
        self.last = None

    def read(self):
        w, h, px = self.vm.screendump(self.path)
        self.last = screen.read_screen(w, h, px, self.font, screen.kernel_scale(w, h))
        return self.last

    def wait(self, done, timeout, what):
        """Polls the screen until done(Screen) is true; returns the Screen."""
        deadline = time.monotonic() + timeout
        while True:
            if self.vm.proc.poll() is not None:
                raise harness.BootTestError(f"waiting for {what} on screen: QEMU exited with "
                                            f"status {self.vm.proc.returncode}")
            s = self.read()
            bad = re.search(r"^(panic: |\*\*\* ).*", s.text(), re.MULTILINE)
            if bad:
                raise harness.BootTestError(f"waiting for {what}: the screen shows "
                                            f"{bad.group(0)!r}:\n{indent(s.text())}")
            if done(s):
                return s
            if time.monotonic() >= deadline:
                raise harness.BootTestError(f"no {what} on screen after {timeout:.0f} s; it "
                                            f"shows:\n{indent(s.text())}")
            time.sleep(SCREEN_POLL_S)


def indent(text):
    return "\n".join("    | " + line for line in text.rstrip("\n").split("\n"))


def ready_with_prompt(s):
    i = s.find_row("canopy: ready")
    return i >= 0 and s.find_row(shell.PROMPT.rstrip(), i + 1) > i


def run_screen_case(args, case, segments, font):
    dump = os.path.join(args.workdir, f"matrix-{case.name}.ppm")
    with machine(args, case) as vm:
        check_qemu_config(vm, case)
        reader = ScreenReader(vm, font, dump)
        s = reader.wait(ready_with_prompt, SCREEN_READY_S, "`canopy: ready` and a prompt")
        t_ready = vm.elapsed()
        text = s.text()
        print(f"[check] `canopy: ready` and the prompt read off the screen after {t_ready:.1f} s "
              f"({s.lit_cells} lit cells, {s.unknown} not a glyph)")
        print(indent(text))
        ready_row = s.find_row("canopy: ready")
        prompt_row = s.find_row(shell.PROMPT.rstrip(), ready_row + 1)
        # The cursor bar is the only thing on screen that is not a glyph.
        if s.unknown != 1 or s.rows[prompt_row] != shell.PROMPT + screen.UNKNOWN:
            raise harness.BootTestError(f"expected every lit cell but the cursor after the "
                                        f"prompt to be a glyph; {s.unknown} are not")
        for want in ("console: serial off, framebuffer on", "pmm audit: OK (", "pt check: OK (",
                     "Canopy "):
            if s.find_row(want) < 0:
                raise harness.BootTestError(f"no row starting {want!r} on screen")
        audit = s.rows[s.find_row("pmm audit: ")]
        check = s.rows[s.find_row("pt check: ")]
        if not re.fullmatch(r"pt check: OK \(\d+ mappings\)", check):
            raise harness.BootTestError(f"screen: {check!r}")
        print(f"[check] on screen: the kernel saw no UART; {audit}; {check}")
        check_banner(text, case)

        # A keystroke through QMP reaches the shell: the PS/2 keyboard.
        for key in ("h", "e", "l", "p", "ret"):
            vm.send_key(key)
            time.sleep(0.05)
        answered = reader.wait(lambda s: help_answered(s) is not None, KEY_ANSWER_S,
                               "the answer to `help` typed through QMP send-key")
        names = help_answered(answered)
        print(f"[check] `help` typed with QMP send-key: the screen lists {len(names)} "
              f"commands ({', '.join(names)}) and a new prompt")
        check_page_tables(vm, case, segments, os.path.join(args.workdir, f"matrix-{case.name}"))
        return None, t_ready


def help_answered(s):
    """The command names `help` printed (with the echo `canopy> help` above,
    a new prompt below), or None while that is not all on screen."""
    echo = -1
    for i, row in enumerate(s.rows):
        if row == shell.PROMPT + "help":
            echo = i
    if echo < 0 or echo + 1 >= len(s.rows) or s.rows[echo + 1] != "commands:":
        return None
    names = []
    for row in s.rows[echo + 2:]:
        m = re.match(r"^  (\S+) .* \S", row)
        if not m:
            break
        names.append(m.group(1))
    end = echo + 2 + len(names)
    if end >= len(s.rows) or not s.rows[end].startswith(shell.PROMPT.rstrip()):
        return None
    for want in ("help", "mem", "pt", "poweroff"):
        if want not in names:
            return None
    return names


# ---- driver ---------------------------------------------------------------

def machine(args, case):
    # The OVMF build's files (scripts/qemu_args.py), from --ovmf-dir if given.
    code, variables = harness.qemu_args.ovmf_pair(
        case.firmware, args.ovmf_dir or harness.qemu_args.OVMF_DIR)
    print(f"\n=== {case.describe()}", flush=True)
    return harness.Machine(args.image, ovmf_code=code, ovmf_vars=variables,
                           machine=case.machine, mem=case.mem, smp=case.smp, cpu=case.cpu,
                           serial=case.serial, log_dir=args.workdir, name=f"matrix-{case.name}",
                           echo=not args.quiet,
                           # The default display, named: the serial-less cases need its GOP.
                           graphics="std")


def main():
    p = harness.arg_parser(__doc__)
    p.add_argument("--group", action="append", default=[],
                   help="run this group of cases (repeatable)")
    p.add_argument("--case", action="append", default=[], help="run this case (repeatable)")
    p.add_argument("--list", action="store_true", help="list the cases and their groups")
    p.add_argument("--check-coverage", action="store_true",
                   help="only check that the cases cover every value of every dimension")
    p.add_argument("--font", default=screen.DEFAULT_FONT,
                   help="the kernel's console font (PSF, gzipped or not)")
    p.add_argument("--ovmf-dir", help="where OVMF_CODE*.fd and OVMF_VARS*.fd are "
                   f"(default {harness.qemu_args.OVMF_DIR})")
    args = p.parse_args()
    check_coverage(CASES)
    if args.list:
        for c in CASES:
            print(f"{c.group:10} {c.describe()}")
        return
    if args.check_coverage:
        print(f"[check] {len(CASES)} cases cover every value of: " + ", ".join(REQUIRED))
        return
    known = {c.name for c in CASES}
    groups = {c.group for c in CASES}
    for name in args.case:
        if name not in known:
            raise harness.BootTestError(f"no case {name!r} (see --list)")
    for g in args.group:
        if g not in groups:
            raise harness.BootTestError(f"no group {g!r} (see --list)")
    chosen = [c for c in CASES if c.name in args.case or c.group in args.group]
    if not args.case and not args.group:
        chosen = CASES
    if not args.kernel:
        raise harness.BootTestError("--kernel is needed (the ELF's segments are checked)")
    segments = harness.elf_load_segments(args.kernel)
    font = screen.load_psf(args.font)
    os.makedirs(args.workdir, exist_ok=True)
    results = []
    failed = []
    for case in chosen:
        t0 = time.monotonic()
        try:
            if case.serial:
                t_ovmf, t_ready = run_serial_case(args, case, segments)
            else:
                t_ovmf, t_ready = run_screen_case(args, case, segments, font)
            results.append((case, "PASS", t_ovmf, t_ready, time.monotonic() - t0, ""))
        except harness.BootTestError as e:
            print(f"\nFAIL {case.name}: {e}", flush=True)
            results.append((case, "FAIL", None, None, time.monotonic() - t0, str(e)))
            failed.append(case.name)
    print("\ncase              result  OVMF->disk  ready   total")
    for case, result, t_ovmf, t_ready, total, _why in results:
        fmt = lambda t: f"{t:6.1f} s" if t is not None else "     - "
        print(f"{case.name:17} {result:6}  {fmt(t_ovmf)}   {fmt(t_ready)} {total:6.1f} s")
    if failed:
        raise harness.BootTestError(f"{len(failed)} of {len(results)} cases failed: "
                                    + ", ".join(failed))


if __name__ == "__main__":
    harness.run(main)
