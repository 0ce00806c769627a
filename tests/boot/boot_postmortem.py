#!/usr/bin/env python3
"""Boot test: stage 1's post-mortem, with faults injected by canopy.cfg's
debug_fault= (a test and debug aid, see docs/stage1.md).

For each case, two QEMU runs share one OVMF variable store:
  1. an image whose config says debug_fault=PHASE: stage 1 must report the
     page fault on serial (phase, vector 14, error code, RIP, CR2), show the
     same lines at the top of the screen (a QMP screendump taken during the
     pause: white text on a dark red band, each row as long as its serial
     line), store the record in the non-volatile variable CanopyLastFault
     (read back from the variable store file itself) and reset the machine,
     which -no-reboot turns into QEMU exiting (status 0, and QMP's SHUTDOWN
     event with reason guest-reset: not a power-off or a crash);
  2. the normal image: stage 1 must print one line saying where the previous
     boot stopped, with the same RIP and CR2, and boot on; the kernel, at
     `canopy: ready`, says it deletes the record (one failed boot), and the
     store's copy is marked deleted (through the runtime services' SetVariable).

Cases:
  before-ebs    the fault while boot services still run (the firmware's IDT
                with vectors 0-31 replaced)
  kernel-entry  the jump into the kernel after the CR3 switch goes to an
                unmapped address: the IDT loaded through the HHDM, the stubs on
                the trampoline page and the switch back to the firmware's tables

With --graphics two (a second display adapter: EDK2's console splitter owns
ConsoleOutHandle and its GOP is blit only), the report must still be on the
screen QEMU shows first: stage 1 draws on the GOP it chose for the kernel.

    boot_postmortem.py <harness options> [--cases NAME...]
"""

import os
import re
import shutil
import struct
import subprocess

import harness

CASES = ("before-ebs", "kernel-entry")
INJECT_VA = 0x00007FFFFFFFF000  # FW_FAULT_INJECT_VA in stage1/efi/fw.h

BOOT_START_S = 60   # OVMF to the disk's boot option
REPORT_S = 30       # the option started to stage 1's report
RESET_S = 20        # the report to QEMU exiting (stage 1 waits 5 s)

# Stage 1's fault record (struct canopy_fault_record in include/canopy/faultrec.h).
RECORD_NAME = "CanopyLastFault"
RECORD = struct.Struct("<QIIIIQQQII96s")
RECORD_MAGIC = 0x54524F4D59504F4E
RECORD_VERSION = 2
RECORD_EXCEPTION = 1
RECORD_FATAL = 2
# The record's phase is an enum canopy_phase value: the position of the phase
# in the CANOPY_PHASES list of include/canopy/bootinfo.h, the list's one home.
BOOTINFO_H = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "include",
                          "canopy", "bootinfo.h")


def phase_names():
    """The boot phases' names in enum order, read from CANOPY_PHASES in
    bootinfo.h (an X-macro of X(ID, "name") lines)."""
    with open(BOOTINFO_H) as f:
        text = f.read()
    m = re.search(r"^#define CANOPY_PHASES\(X\)((?:.*\\\n)*.*)$", text, re.MULTILINE)
    names = re.findall(r'\bX\(\w+, "([^"]+)"\)', m.group(1)) if m else []
    if not names:
        raise harness.BootTestError(f"{BOOTINFO_H}: no CANOPY_PHASES list")
    return names


# ---- OVMF's variable store ------------------------------------------------------

VAR_START_ID = 0x55AA
VAR_ADDED = 0x3F
AUTH_HEADER = struct.Struct("<HBBIQ16sIII16s")  # edk2 AUTHENTICATED_VARIABLE_HEADER, 60 bytes


def read_variables(path, name):
    """The copies of variable `name` in an edk2 variable store file, as
    (state, data): state VAR_ADDED is the live one, others are deleted or in
    transition. Walks the authenticated-variable headers from the store's
    first one (StartId 0x55AA), 4-byte aligned, until the free space."""
    with open(path, "rb") as f:
        blob = f.read()
    want = name.encode("utf-16-le") + b"\0\0"
    # The file opens with a firmware volume header ("_FVH" at 0x28, its
    # length at 0x30), then the 28-byte variable store header, then the
    # variables.
    if blob[0x28:0x2C] != b"_FVH":
        raise harness.BootTestError(f"{path}: not an OVMF variable store")
    (fv_header_len,) = struct.unpack_from("<H", blob, 0x30)
    found = []
    pos = fv_header_len + 0x1C
    while pos + AUTH_HEADER.size <= len(blob):
        start, state, _r, _attrs, _mc, _ts, _pk, name_size, data_size, _guid = \
            AUTH_HEADER.unpack_from(blob, pos)
        if start != VAR_START_ID:
            break
        name_at = pos + AUTH_HEADER.size
        data_at = name_at + name_size
        if blob[name_at:data_at] == want:
            found.append((state, blob[data_at:data_at + data_size]))
        pos = (data_at + data_size + 3) & ~3
    return found


def live_record(path):
    live = [data for state, data in read_variables(path, RECORD_NAME) if state == VAR_ADDED]
    if len(live) > 1:
        raise harness.BootTestError(f"{path}: {len(live)} live copies of {RECORD_NAME}")
    return live[0] if live else None


# ---- the screen ------------------------------------------------------------------

def check_screen(path, lines, width, height, pixels):
    """The report's rows at the top of the screen: a dark red band holding
    white glyphs, one 16-pixel row per serial line, each row's white pixels
    ending where its line's last character cell ends (8-pixel cells from
    x = 8; the font is 8x16)."""
    def px(x, y):
        i = 3 * (y * width + x)
        return pixels[i], pixels[i + 1], pixels[i + 2]

    if px(width - 1, 0) != (0x80, 0, 0) or px(0, 4) != (0x80, 0, 0):
        raise harness.BootTestError(f"{path}: no dark red band at the top of the screen "
                                    f"(corner pixels {px(width - 1, 0)}, {px(0, 4)})")
    notes = []
    for row, line in enumerate(lines):
        top = 8 + 16 * row
        xs = [x for y in range(top, top + 16) for x in range(width) if px(x, y) == (255, 255, 255)]
        if not xs:
            raise harness.BootTestError(f"{path}: text row {row} is empty; expected {line!r}")
        last_cell = (max(xs) - 8) // 8
        first_cell = (min(xs) - 8) // 8
        if first_cell != 0 or abs(last_cell - (len(line) - 1)) > 1:
            raise harness.BootTestError(
                f"{path}: text row {row} spans cells {first_cell}-{last_cell}; {line!r} has "
                f"{len(line)} characters")
        notes.append(f"{len(line)}")
    below = 8 + 16 * len(lines) + 8 + 2
    if any(px(x, below - 4) == (255, 255, 255) for x in range(width)):
        raise harness.BootTestError(f"{path}: white pixels below the report's rows")
    return f"{len(lines)} rows of {', '.join(notes)} characters on the red band"


# ---- one case ----------------------------------------------------------------------

def make_image(args, name, cfg_text):
    cfg = os.path.join(args.workdir, f"{name}.cfg")
    with open(cfg, "w") as f:
        f.write(cfg_text)
    out = os.path.join(args.workdir, f"{name}.img")
    r = subprocess.run([args.mkimage, "--out", out, "--efi", args.efi, "--kernel", args.kernel,
                        "--cfg", cfg, "--quiet"],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=120)
    if r.returncode != 0:
        raise harness.BootTestError(f"mkimage failed: {r.stdout.decode(errors='replace')}")
    return out


def run_case(args, phase):
    # Named by display setup too: CTest runs the two-display variant beside
    # the default one, and they must not share an image or a variable store.
    name = f"postmortem-{phase}" + ("" if args.graphics in (None, "std") else f"-{args.graphics}")
    with open(args.cfg) as f:
        base_cfg = f.read()
    image = make_image(args, name, base_cfg + f"\ndebug_fault={phase}\n")
    vars_file = os.path.join(args.workdir, f"{name}.vars.fd")

    # Run 1: the fault, its report, the record, the reset.
    with harness.machine_from_args(args, image=image, name=name) as vm:
        vm.wait_for(r"BdsDxe: starting Boot\d+.*", BOOT_START_S, "OVMF starting the disk",
                    fail_if=r"X64 Exception")
        # Connected now, long before the reset (stage 1 waits 5 s after its
        # report): the screendump is one quick request, and QEMU's SHUTDOWN
        # event for the reset cannot be missed.
        vm.qmp("query-status")
        m1 = vm.wait_for(r"^canopy: CPU exception in phase (\S+): vector (\d+) \(([^)]*)\), "
                         r"error code 0x([0-9a-f]+)\n", REPORT_S, "stage 1's exception report",
                         fail_if=r"X64 Exception|^canopy: ready|BdsDxe: failed to start")
        m2 = vm.wait_for(r"^canopy: RIP 0x([0-9a-f]+)(?: \(BOOTX64\.EFI\+0x[0-9a-f]+\))?, "
                         r"CR2 0x([0-9a-f]+), CR3 0x([0-9a-f]+)\n", 5, "the RIP/CR2 line")
        m3 = vm.wait_for(r"^canopy: recorded for the next boot; resetting in (\d+) seconds\n", 5,
                         "the reset notice")
        reported_at = vm.elapsed()
        shot = os.path.join(args.workdir, f"{name}.ppm")
        width, height, pixels = vm.screendump(shot)
        lines = [m.group(0).rstrip("\n") for m in (m1, m2, m3)]
        screen = check_screen(shot, lines, width, height, pixels)

        got_phase, vector, what, error = m1.group(1), int(m1.group(2)), m1.group(3), \
            int(m1.group(4), 16)
        rip, cr2 = int(m2.group(1), 16), int(m2.group(2), 16)
        if got_phase != phase or vector != 14 or what != "page fault" or cr2 != INJECT_VA:
            raise harness.BootTestError(f"{name}: reported {lines[0]!r} / {lines[1]!r}; expected "
                                        f"a page fault at CR2 {INJECT_VA:#x} in phase {phase}")
        if phase == "kernel-entry" and (rip != INJECT_VA or not error & 0x10):
            raise harness.BootTestError(f"{name}: the jump to {INJECT_VA:#x} should fault on the "
                                        f"instruction fetch (RIP = CR2, error bit 4): {lines}")
        if phase != "kernel-entry" and "BOOTX64.EFI+" not in lines[1]:
            raise harness.BootTestError(f"{name}: the RIP should lie in stage 1: {lines[1]!r}")
        status = vm.wait_exit(RESET_S)
        waited = vm.elapsed() - reported_at
        if waited < int(m3.group(1)) - 1:
            raise harness.BootTestError(f"{name}: QEMU exited {waited:.1f} s after the report, "
                                        f"before the announced {m3.group(1)} s")
        harness.check_guest_reset(vm, status)
        shutil.copyfile(os.path.join(vm.tmp, "OVMF_VARS.fd"), vars_file)
    print(f"\n[check] {name}: {lines[0]!r} at {reported_at:.1f} s; on screen: {screen}; reset "
          f"{waited:.1f} s later (QEMU status {status})", flush=True)

    rec = live_record(vars_file)
    if rec is None or len(rec) != RECORD.size:
        raise harness.BootTestError(f"{name}: no {RECORD.size}-byte {RECORD_NAME} in the "
                                    f"variable store after the fault ({rec!r})")
    magic, version, kind, rphase, rvector, rerror, rrip, rcr2, failed, _r, _msg = \
        RECORD.unpack(rec)
    phases = phase_names()
    rphase_name = phases[rphase] if rphase < len(phases) else f"#{rphase}"
    if (magic, version, kind, rphase_name, rvector, rerror, rrip, rcr2, failed) != \
            (RECORD_MAGIC, RECORD_VERSION, RECORD_EXCEPTION, phase, 14, error, rip, cr2, 1):
        raise harness.BootTestError(f"{name}: the stored record {RECORD.unpack(rec)!r} differs "
                                    "from the report")
    print(f"[check] {name}: {RECORD_NAME} holds phase {phase}, vector 14, RIP {rip:#x}, CR2 "
          f"{cr2:#x}, 1 failed boot", flush=True)

    # Run 2: the normal image with the same variable store.
    with harness.Machine(args.image, ovmf_code=args.ovmf_code, ovmf_vars=vars_file,
                         machine=args.machine, mem=args.mem, smp=args.smp, cpu=args.cpu,
                         graphics=args.graphics, log_dir=args.workdir, name=f"{name}-next",
                         echo=not args.quiet) as vm:
        vm.wait_for(r"^canopy: stage 1\n", BOOT_START_S + REPORT_S, "`canopy: stage 1`")
        want = (f"canopy: the previous boot stopped at phase {phase}: vector 14 (page fault), "
                f"error code 0x{error:x}, at RIP 0x{rip:x}, CR2 0x{cr2:x}")
        m = vm.wait_for(r"^canopy: [^\n]*\n", 10, "stage 1's next line")
        if m.group(0).rstrip("\n") != want:
            raise harness.BootTestError(f"{name}: the next boot said {m.group(0)!r}; expected "
                                        f"{want!r}")
        vm.wait_for(r"^canopy: /canopy/kernel\.elf: \d+ bytes", 20, "stage 1 going on",
                    fail_if=r"previous boot|BdsDxe: failed to start")
        vm.wait_for(r"^canopy: [^\n]*entering the kernel", 30, "stage 1 entering the kernel",
                    fail_if=harness.BOOT_FAILURE)
        vm.wait_for(r"^canopy: ready\n", 45, "`canopy: ready`", fail_if=harness.BOOT_FAILURE)
        cleared = vm.wait_for_line(r"^canopy: this boot got to ready; the record of 1 failed "
                                   r"boot before it is cleared$", 10, "the kernel clearing the "
                                   "record", fail_if=r"^canopy: cannot clear")
        vm.qmp("quit")
        vm.wait_exit(10)
        shutil.copyfile(os.path.join(vm.tmp, "OVMF_VARS.fd"), vars_file)
    print(f"[check] {name}: the next boot printed {want!r} and went on into the kernel, "
          f"which said {cleared.group(0).strip()!r}", flush=True)
    states = [state for state, _ in read_variables(vars_file, RECORD_NAME)]
    if live_record(vars_file) is not None or not states:
        raise harness.BootTestError(f"{name}: after the next boot the store holds {RECORD_NAME} "
                                    f"copies in states {states}; expected only deleted ones")
    print(f"[check] {name}: the record is deleted from the store ({len(states)} dead "
          "cop" + ("y" if len(states) == 1 else "ies") + ")", flush=True)


def main():
    p = harness.arg_parser(__doc__)
    p.add_argument("--cases", nargs="+", choices=CASES, default=list(CASES))
    args = p.parse_args()
    os.makedirs(args.workdir, exist_ok=True)
    for phase in args.cases:
        run_case(args, phase)
    print(f"[check] {len(args.cases)} post-mortem case(s) as expected")


if __name__ == "__main__":
    harness.run(main)
