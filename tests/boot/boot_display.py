#!/usr/bin/env python3
"""Boot test: every display setup a PC can have (docs/stage1.md, "The display").

Stage 1 takes the framebuffer of one Graphics Output Protocol among all the
firmware has: a console device's with a linear framebuffer first, then any
physical device's, never a blit-only one. Cases (scripts/qemu_args.py's
graphics setups):

  two     a standard VGA and a secondary-vga: EDK2's console splitter owns
          ConsoleOutHandle, and its GOP is blit only. Stage 1 says nothing
          about the display, the kernel prints its `framebuffer:` line, and
          the screen QEMU shows first (QMP screendump) holds the kernel's
          banner and `canopy: ready`, read cell by cell with the console font
  virtio  only virtio-gpu, whose GOP is blit only: one line from stage 1
          saying so, the serial console, `canopy: ready`
  none    no display adapter, so no GOP: one line, the serial console,
          `canopy: ready`

    boot_display.py <harness options> --case two|virtio|none [--font PSF]
"""

import os
import re
import time

import harness
import screen

READY_S = 90          # OVMF to `canopy: ready`; stage 1 and the kernel take a few seconds
SCREEN_S = 20         # the console's rows reaching the screen after `canopy: ready`
SCREEN_POLL_S = 1.0

# Stage 1's lines about the display (stage1/main.c, gather_platform).
BLIT_ONLY = "canopy: no graphics output has a linear framebuffer (blit only); serial console only"
NO_GOP = "canopy: no graphics output; serial console only"
STAGE1_DISPLAY = r"^canopy: [^\n]*(graphics output|framebuffer|display)[^\n]*\n"
CASES = {
    # case: (the one stage 1 line about the display, or None; framebuffer on?)
    "two": (None, True),
    "virtio": (BLIT_ONLY, False),
    "none": (NO_GOP, False),
}


def stage1_display_lines(text):
    """Stage 1's lines about the display: everything before the kernel's first line."""
    before = text.split("canopy: kernel entered", 1)[0]
    return [m.group(0).rstrip("\n") for m in re.finditer(STAGE1_DISPLAY, before, re.MULTILINE)]


def read_screen_until(vm, font, path, want, timeout):
    """Screendumps until a row starts with each of `want`; returns the Screen."""
    deadline = time.monotonic() + timeout
    while True:
        w, h, px = vm.screendump(path)
        s = screen.read_screen(w, h, px, font, screen.kernel_scale(w, h))
        missing = [x for x in want if s.find_row(x) < 0]
        if not missing:
            return s, w, h
        if time.monotonic() >= deadline:
            raise harness.BootTestError(
                f"the screen ({w}x{h}) shows no row starting {missing[0]!r}; it shows:\n"
                + "\n".join("    | " + r for r in s.text().rstrip("\n").split("\n")))
        time.sleep(SCREEN_POLL_S)


def main():
    p = harness.arg_parser(__doc__)
    p.add_argument("--case", required=True, choices=sorted(CASES))
    p.add_argument("--font", default=screen.DEFAULT_FONT,
                   help="the kernel's console font (PSF, gzipped or not)")
    args = p.parse_args()
    args.graphics = args.case
    want_line, fb_on = CASES[args.case]
    with harness.machine_from_args(args, name=f"display-{args.case}") as vm:
        vm.wait_for(r"^canopy: ready\n", READY_S, "`canopy: ready`", fail_if=harness.BOOT_FAILURE)
        text = vm.output()
        lines = stage1_display_lines(text)
        if lines != ([want_line] if want_line else []):
            raise harness.BootTestError(f"stage 1 said {lines} about the display; expected "
                                        f"{[want_line] if want_line else 'nothing'}")
        print(f"\n[check] stage 1 about the display: {lines or 'nothing'}")
        console = re.search(r"^console: serial on, framebuffer (on|off)$", text, re.MULTILINE)
        if not console or (console.group(1) == "on") != fb_on:
            raise harness.BootTestError(f"the kernel's console line is "
                                        f"{console.group(0) if console else 'missing'}; expected "
                                        f"the framebuffer {'on' if fb_on else 'off'}")
        fb = re.search(r"^framebuffer: (\d+)x(\d+), pitch \d+, (\d+) bpp at phys 0x([0-9a-f]+)",
                       text, re.MULTILINE)
        if fb_on != bool(fb):
            raise harness.BootTestError(f"the kernel's framebuffer line: "
                                        f"{fb.group(0) if fb else 'none'}")
        print(f"[check] {console.group(0)}" + (f"; {fb.group(0)}" if fb else ""))
        if not fb_on:
            return
        font = screen.load_psf(args.font)
        shot = os.path.join(args.workdir, f"display-{args.case}.ppm")
        s, w, h = read_screen_until(vm, font, shot, ("Canopy ", "canopy: ready"), SCREEN_S)
        if (w, h) != (int(fb.group(1)), int(fb.group(2))):
            raise harness.BootTestError(f"the screen QEMU shows is {w}x{h}; the kernel draws on "
                                        f"{fb.group(1)}x{fb.group(2)}")
        print(f"[check] the first screen ({w}x{h}) shows the banner "
              f"{s.rows[s.find_row('Canopy ')]!r} and `canopy: ready`")


if __name__ == "__main__":
    harness.run(main)
