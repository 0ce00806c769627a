#!/usr/bin/env python3
"""Host test of screen.py (no QEMU): PSF1/PSF2 parsing with Unicode tables,
and reading text back from screens drawn here the way the kernel's fbcon
draws them (cells from the top left, 0xc0c0c0 on black, 2x on large screens),
through a PPM file as QMP's screendump writes it.
"""

import argparse
import gzip
import os
import struct
import sys
import tempfile

import harness
import screen

FG = 0xC0


def draw(width, height, font, lines, scale=1, cursor=None, fg=(FG, FG, FG)):
    """An RGB framebuffer with `lines` drawn like fbcon (and its cursor bar)."""
    px = bytearray(width * height * 3)
    cw, ch = font.width * scale, font.height * scale

    def put(x, y, rgb):
        i = (y * width + x) * 3
        px[i:i + 3] = bytes(rgb)

    for row, text in enumerate(lines):
        for col, c in enumerate(text):
            bits = font.bitmaps[c]
            for gy in range(font.height):
                for gx in range(font.width):
                    if bits[gy * font.width + gx]:
                        for sy in range(scale):
                            for sx in range(scale):
                                put(col * cw + gx * scale + sx, row * ch + gy * scale + sy, fg)
    if cursor is not None:
        col, row = cursor
        for y in range((row + 1) * ch - 2 * scale, (row + 1) * ch):
            for x in range(col * cw, (col + 1) * cw):
                put(x, y, fg)
    return bytes(px)


def via_ppm(width, height, pixels, tmp):
    path = os.path.join(tmp, "screen.ppm")
    with open(path, "wb") as f:
        f.write(b"P6\n# written like QEMU's screendump\n%d %d\n255\n" % (width, height))
        f.write(pixels)
    return harness.read_ppm(path)


def psf2_font(glyph_rows, table):
    """A PSF2 font of 8x4 glyphs; table: per glyph, the bytes of its entry."""
    header = struct.pack("<4s7I", screen.PSF2_MAGIC, 0, 32, 1, len(glyph_rows), 4, 4, 8)
    return header + b"".join(bytes(g) for g in glyph_rows) + b"".join(t + b"\xff" for t in table)


def psf1_font(glyph_rows, table):
    """A PSF1 font of 8x4 glyphs (256 of them) with a Unicode table."""
    glyphs = list(glyph_rows) + [[0, 0, 0, 0]] * (256 - len(glyph_rows))
    out = b"\x36\x04\x02\x04" + b"".join(bytes(g) for g in glyphs)
    for i in range(256):
        for cp in table.get(i, []):
            out += struct.pack("<H", cp)
        out += struct.pack("<H", 0xFFFF)
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--font", default=screen.DEFAULT_FONT)
    args = p.parse_args()
    t = harness.Checks()
    font = screen.load_psf(args.font)
    t.check(font.width == 8 and font.height == 16, f"font size {font.width}x{font.height}")
    printable = [chr(c) for c in range(0x20, 0x7F)]
    t.check(all(c in font.bitmaps for c in printable), "every printable ASCII character has a glyph")
    look = font.lookup()
    same = [c for c in printable if look.get(font.bitmaps[c]) != c]
    t.check(not same, f"printable ASCII reads back as itself (not: {same})")
    t.check(font.bitmaps[" "] == bytes(8 * 16), "space is blank")

    with tempfile.TemporaryDirectory() as tmp:
        lines = ["canopy: kernel entered", "pmm audit: OK (1 used, 2 free)",
                 "  .text    0xffffffff80000000 R-X {}|~", "canopy: ready", "canopy> "]
        w, h = 1280, 800
        pixels = draw(w, h, font, lines, cursor=(8, 4))
        s = screen.read_screen(*via_ppm(w, h, pixels, tmp), font, screen.kernel_scale(w, h))
        t.check(len(s.rows) == 50, f"1280x800 has 50 rows of 8x16 cells, read {len(s.rows)}")
        t.check(s.rows[:4] == lines[:4], f"text read back: {s.rows[:4]}")
        t.check(s.rows[4] == "canopy> " + screen.UNKNOWN, f"cursor cell unknown: {s.rows[4]!r}")
        t.check(s.unknown == 1, f"one unknown cell, got {s.unknown}")
        t.check(s.find_row("canopy: ready") == 3 and s.find_row("nothing") == -1, "find_row")
        t.check(s.text().endswith("canopy> " + screen.UNKNOWN + "\n"), "text() ends at the last row")

        # A glyph shifted by one pixel is no longer that glyph.
        shifted = draw(w + 1, h, font, ["x" + "A"])
        cut = b"".join(shifted[(y * (w + 1) + 1) * 3:(y * (w + 1) + 1 + w) * 3] for y in range(h))
        s = screen.read_screen(w, h, cut, font)
        t.check(s.rows[0][1:2] != "A", f"a misaligned glyph does not read as itself: {s.rows[0]!r}")

        # Large screens: the kernel doubles the font.
        w2, h2 = 2560, 1600
        t.check(screen.kernel_scale(w2, h2) == 2 and screen.kernel_scale(1920, 1200) == 1,
                "kernel_scale follows fbcon")
        pixels = draw(w2, h2, font, ["Canopy 0.1", "canopy: ready"], scale=2)
        s = screen.read_screen(w2, h2, pixels, font, 2)
        t.check(s.rows[:2] == ["Canopy 0.1", "canopy: ready"] and s.unknown == 0,
                f"scale 2 reads back: {s.rows[:2]}")

        # Dim pixels are background; a coloured foreground is still lit.
        dim = draw(320, 32, font, ["dim"], fg=(0x50, 0x50, 0x50))
        t.check(screen.read_screen(320, 32, dim, font).rows[0] == "", "dim pixels are not lit")
        red = draw(320, 32, font, ["red"], fg=(0xFF, 0, 0))
        t.check(screen.read_screen(320, 32, red, font).rows[0] == "red", "a red foreground reads")

        # PSF2 with a Unicode table: glyph 1 is 'A' and U+00C5 (UTF-8), and a
        # sequence after 0xfe that must not count; glyph 0 is ' '.
        g0, g1 = [0, 0, 0, 0], [0x18, 0x24, 0x7E, 0x81]
        data = psf2_font([g0, g1], [b" ", b"A\xc3\x85\xfeB"])
        path = os.path.join(tmp, "t2.psf.gz")
        with open(path, "wb") as f:
            f.write(gzip.compress(data))
        f2 = screen.load_psf(path)
        t.check((f2.width, f2.height) == (8, 4), "PSF2 size")
        t.check(set(f2.bitmaps) == {" ", "A", "\u00c5"}, f"PSF2 table: {sorted(f2.bitmaps)}")
        t.check(f2.bitmaps["A"][:8] == bytes([0, 0, 0, 1, 1, 0, 0, 0]), "PSF2 glyph bits")
        t.check(f2.lookup()[f2.bitmaps["A"]] == "A", "shared glyph reads as the lowest code point")
        path = os.path.join(tmp, "t1.psf")
        with open(path, "wb") as f:
            f.write(psf1_font([g0, g1], {0: [0x20], 1: [0x41, 0xFFFE, 0x42]}))
        f1 = screen.load_psf(path)
        t.check(set(f1.bitmaps) == {" ", "A"} and f1.bitmaps["A"] == f2.bitmaps["A"],
                f"PSF1 table: {sorted(f1.bitmaps)}")
        for name, bad in (("truncated", data[:40]), ("not a font", b"hello world" * 10),
                          ("no table end", data[:-1])):
            path = os.path.join(tmp, "bad.psf")
            with open(path, "wb") as f:
                f.write(bad)
            try:
                screen.load_psf(path)
                t.check(False, f"{name}: accepted")
            except harness.BootTestError:
                t.check(True, name)

    sys.exit(t.finish())


if __name__ == "__main__":
    main()
