"""What the malformed-kernel and bad-configuration boots share: building a
variant image, and the checks for a stage 1 that gives up before
ExitBootServices.

A give-up looks like this on the serial console (OVMF copies ConOut there):

    BdsDxe: starting Boot0002 "UEFI QEMU HARDDISK ..."
    canopy: stage 1
    canopy: /canopy/kernel.elf: not an ELF file (bad magic bytes)
      (stage 1 pauses a few seconds so the line can be read)
    BdsDxe: failed to start Boot0002 "UEFI QEMU HARDDISK ...": ...
    BdsDxe: loading Boot0003 ...          (the boot manager moves on)

and during the pause the screen's last text rows are those two stage 1
lines. Under U-Boot's UEFI (--firmware uboot) the boot manager's lines are
U-Boot's (harness.FIRMWARE_LINES), stage 1 first says once that U-Boot keeps
no variables after ExitBootServices, and there is no screen to check (U-Boot
has no graphics output protocol). The screen check has no font: it measures where each text row ends,
in character cells of the `canopy: stage 1` row, which is exact enough to
tell a line's length to the character and to see where the console wrapped it.

Uses tests/boot/harness.py for QEMU, OVMF, serial and QMP.
"""

import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "boot"))
import harness  # noqa: E402

BOOT_START_S = 90   # the firmware to the disk's boot option (OVMF about 5 s, U-Boot 5-15 s)
STAGE1_LINE_S = 20  # the option started to stage 1's error line
RETURN_S = 8        # the error line to the boot manager's failure report (3 s pause)
NEXT_S = 20         # the failure report to the next boot option
READY_S = 60        # the option started to `canopy: ready`

# Anything that means the machine did not simply give up: the kernel ran, or a
# CPU exception (OVMF prints "!!!! X64 Exception Type ..." and hangs).
NOT_A_GIVE_UP = r"^canopy: ready|entering the kernel|X64 Exception|^canopy: panic"


def make_image(args, name, kernel=None, cfg=None, no_cfg=False):
    """Builds args.workdir/<name>.img with scripts/mkimage.sh: stage 1, the
    given kernel (default: the real one), cfg (default: the tree's) or none."""
    out = os.path.join(args.workdir, name + ".img")
    cmd = [args.mkimage, "--out", out, "--efi", args.efi, "--quiet",
           "--kernel", kernel or args.kernel]
    cmd += ["--no-cfg"] if no_cfg else ["--cfg", cfg or args.cfg]
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=120)
    if r.returncode != 0:
        raise harness.BootTestError(f"mkimage failed for {name}: "
                                    f"{r.stdout.decode(errors='replace')}")
    return out


# ---- the screen ----------------------------------------------------------------

def text_rows(width, height, pixels):
    """The screen's text rows from the top: [(top, bottom, left, right)] of
    the bands of pixel rows holding non-black pixels, up to the first gap
    taller than three bands (OVMF's logo sits far below the text)."""
    lit_rows = []
    for y in range(height):
        row = pixels[y * width * 3:(y + 1) * width * 3]
        if row.count(0) == len(row):
            lit_rows.append(None)
            continue
        xs = [x for x in range(width) if row[3 * x] or row[3 * x + 1] or row[3 * x + 2]]
        lit_rows.append((xs[0], xs[-1]))
    bands = []
    for y, lit in enumerate(lit_rows):
        if lit is None:
            continue
        if bands and bands[-1][1] == y - 1:
            top, _, left, right = bands[-1]
            bands[-1] = (top, y, min(left, lit[0]), max(right, lit[1]))
        else:
            bands.append((y, y, lit[0], lit[1]))
    rows = []
    for b in bands:
        if rows:
            pitch = max(r[1] - r[0] + 1 for r in rows)
            if b[0] - rows[-1][1] > 3 * pitch:
                break
        rows.append(b)
    return rows


def check_screen(vm, path, line):
    """Checks, on a screendump taken while stage 1 pauses, that its error line
    is the last text on the screen, right below `canopy: stage 1`: the rows'
    right ends, measured in character cells of the `canopy: stage 1` row,
    must fall where the line's length puts them, whether it fits one row or
    the console wraps it. Returns a note on what was seen."""
    width, height, pixels = vm.screendump(path)
    rows = text_rows(width, height, pixels)
    if not rows:
        raise harness.BootTestError(f"{path}: the screen is blank while stage 1 shows {line!r}")
    x0 = min(r[2] for r in rows)  # column 0 (give or take a glyph's left bearing)
    stage1 = "canopy: stage 1"
    tried = []
    for k in (1, 2, 3):  # rows the error line takes on screen
        if len(rows) < k + 1:
            break
        # The right end of a row whose last glyph is in column c lies about
        # c + 0.75 cells from x0; the stage 1 row's last glyph is in column 14.
        cell = (rows[-(k + 1)][3] - x0) / (len(stage1) - 0.25)
        ends = [(r[3] - x0) / cell - 0.75 for r in rows[-k:]]
        if k == 1:
            ok = abs(ends[0] - (len(line) - 1)) <= 1
            cols = None
        else:
            cols = round(ends[0] + 1)
            ok = cols >= 80 and all(abs(e + 1 - cols) <= 1 for e in ends[:-1]) and \
                abs(ends[-1] - (len(line) - (k - 1) * cols - 1)) <= 1
        tried.append(f"{k} row(s): last columns {', '.join(f'{e:.1f}' for e in ends)}")
        if ok:
            return (f"{len(rows)} text rows; the last {k} hold the {len(line)}-character line"
                    + (f" ({cols} columns)" if cols else "") + f", below `{stage1}`")
    raise harness.BootTestError(
        f"{path}: the last rows on screen do not look like {line!r} ({len(line)} characters) "
        f"below {stage1!r}; as {'; as '.join(tried)}")


# ---- one boot that must end in stage 1 giving up ---------------------------------

# Stage 1's lines that are not its error line: the first, and U-Boot's notice.
NOT_THE_ERROR = r"stage 1|this firmware keeps no variables after ExitBootServices"


def expect_give_up(vm, name, line_regex, shot_dir):
    """Boots to stage 1's error line (a regex for the whole line after
    `canopy: `), checks it is on screen (OVMF), that stage 1 returns to the
    firmware within RETURN_S, and that the boot manager moves on. Returns the
    line."""
    vm.wait_for(vm.fw_line("start") + ".*", BOOT_START_S, "the firmware starting the disk",
                fail_if=NOT_A_GIVE_UP)
    # Connect QMP now, so the screendump during stage 1's pause is one request.
    vm.qmp("query-status")
    vm.wait_for(r"^canopy: stage 1\s*$", STAGE1_LINE_S, "`canopy: stage 1`",
                fail_if=NOT_A_GIVE_UP)
    # A whole line: the console text also holds the line being written.
    m = vm.wait_for(r"^canopy: (?!" + NOT_THE_ERROR + r")[^\n]*\n", STAGE1_LINE_S,
                    "stage 1's error line", fail_if=NOT_A_GIVE_UP)
    line = m.group(0).strip()
    at = vm.elapsed()
    if not re.fullmatch(line_regex, line[len("canopy: "):]):
        raise harness.BootTestError(f"{name}: stage 1 said {line!r}; expected "
                                    f"`canopy: ` + {line_regex!r}")
    if vm.firmware == "ovmf":
        shown = check_screen(vm, os.path.join(shot_dir, f"{name}.error.ppm"), line)
    else:
        shown = "no screen (no graphics output)"
    m = vm.wait_for(vm.fw_line("failed") + ".*", RETURN_S,
                    "the boot manager reporting the failed option", fail_if=NOT_A_GIVE_UP)
    back = vm.elapsed() - at
    between = vm.output()[m.start() - 2000 if m.start() > 2000 else 0:m.start()]
    after_error = between[between.rfind(line) + len(line):]
    if re.search(r"^canopy: ", after_error, re.M):
        raise harness.BootTestError(f"{name}: stage 1 printed more after its error line: "
                                    f"{after_error.strip()!r}")
    vm.wait_for(vm.fw_line("next") + ".*", NEXT_S,
                "the boot manager moving on to the next option", fail_if=NOT_A_GIVE_UP)
    print(f"[check] {name}: {line!r} at {at:.1f} s; on screen: {shown}; back in the firmware "
          f"{back:.1f} s later, which moved on to the next boot option", flush=True)
    return line
