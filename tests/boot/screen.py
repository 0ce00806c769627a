"""Reading the kernel's framebuffer console off a QMP screendump.

The kernel draws each character cell with one glyph of a PSF console font,
foreground 0xc0c0c0 on black, cells from the top left corner with no margin
(kernel/dev/fbcon.c). So a screendump can be read back exactly: cut it into
cells of the font's size, turn each cell into a bitmap of lit pixels, and look
that bitmap up among the font's glyphs. A cell that matches no glyph (the
cursor bar, or anything else drawn there) reads as UNKNOWN; a blank cell is a
space. No tolerance is needed: TCG and the screendump are pixel exact.

`load_psf` reads PSF1 and PSF2 fonts (gzipped or not) with their Unicode
tables, so each Latin-1 character finds its glyph. Standard library only.
"""

import gzip
import struct

import harness

DEFAULT_FONT = "/usr/share/consolefonts/Lat15-Fixed16.psf.gz"
UNKNOWN = "\ufffd"   # a cell that is neither blank nor a glyph of the font
LIT_THRESHOLD = 0x60  # the kernel's foreground is 0xc0 per channel, background 0

PSF1_MAGIC = b"\x36\x04"
PSF2_MAGIC = b"\x72\xb5\x4a\x86"


class Font:
    """A console font: cell size and, per Latin-1 character, its bitmap as
    `height * width` bytes of 0/1 (row by row)."""

    def __init__(self, width, height):
        self.width = width
        self.height = height
        self.bitmaps = {}   # char -> bytes
        self._lookup = None

    def lookup(self):
        """bitmap -> char; where glyphs are shared, the lowest code point wins
        (so a no-break space never hides a space)."""
        if self._lookup is None:
            self._lookup = {}
            for ch in sorted(self.bitmaps, key=ord, reverse=True):
                self._lookup[self.bitmaps[ch]] = ch
        return self._lookup


def _glyph_bits(raw, width, height, row_bytes):
    out = bytearray(width * height)
    for y in range(height):
        row = raw[y * row_bytes:(y + 1) * row_bytes]
        for x in range(width):
            if row[x // 8] & (0x80 >> (x % 8)):
                out[y * width + x] = 1
    return bytes(out)


def load_psf(path):
    """Reads a PSF1/PSF2 font file; returns a Font covering the Latin-1
    characters the font has glyphs for.

    => raises BootTestError for a file that is not a well-formed PSF font.
    """
    with open(path, "rb") as f:
        data = f.read()
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    if data[:2] == PSF1_MAGIC:
        mode, charsize = data[2], data[3]
        count = 512 if mode & 1 else 256
        width, height, row_bytes, start = 8, charsize, 1, 4
        has_table = bool(mode & 6)
        glyph_size = charsize
    elif data[:4] == PSF2_MAGIC:
        (_version, start, flags, count, glyph_size, height, width) = \
            struct.unpack_from("<7I", data, 4)
        row_bytes = (width + 7) // 8
        has_table = bool(flags & 1)
    else:
        raise harness.BootTestError(f"{path}: not a PSF font")
    if not (0 < width <= 64 and 0 < height <= 64) or glyph_size < row_bytes * height:
        raise harness.BootTestError(f"{path}: implausible glyph size {width}x{height}")
    table_at = start + count * glyph_size
    if len(data) < table_at:
        raise harness.BootTestError(f"{path}: truncated glyph data")
    font = Font(width, height)

    def add(cp, index):
        if cp <= 0xFF and chr(cp) not in font.bitmaps:
            raw = data[start + index * glyph_size:start + (index + 1) * glyph_size]
            font.bitmaps[chr(cp)] = _glyph_bits(raw, width, height, row_bytes)

    if not has_table:
        for cp in range(min(count, 256)):
            add(cp, cp)
        return font
    pos = table_at
    if data[:2] == PSF1_MAGIC:
        # Per glyph: u16 code points, 0xfffe starts sequences, 0xffff ends.
        for index in range(count):
            in_seq = False
            while True:
                if pos + 2 > len(data):
                    raise harness.BootTestError(f"{path}: truncated Unicode table")
                (cp,) = struct.unpack_from("<H", data, pos)
                pos += 2
                if cp == 0xFFFF:
                    break
                if cp == 0xFFFE:
                    in_seq = True
                elif not in_seq:
                    add(cp, index)
    else:
        # Per glyph: UTF-8 code points, 0xfe starts sequences, 0xff ends.
        for index in range(count):
            end = data.find(b"\xff", pos)
            if end < 0:
                raise harness.BootTestError(f"{path}: truncated Unicode table")
            entry = data[pos:end].split(b"\xfe")[0]
            pos = end + 1
            for ch in entry.decode("utf-8", errors="replace"):
                if ch != "\ufffd":
                    add(ord(ch), index)
    return font


def lit_mask(width, height, pixels):
    """One byte per pixel, 1 where the pixel is the console's foreground
    (any channel above LIT_THRESHOLD), else 0."""
    table = bytes(1 if v > LIT_THRESHOLD else 0 for v in range(256))
    r = pixels[0::3].translate(table)
    g = pixels[1::3].translate(table)
    b = pixels[2::3].translate(table)
    if r == g == b:
        return r
    return bytes(x | y | z for x, y, z in zip(r, g, b))


class Screen:
    """The text of a screendump read with a font: `rows` is a list of strings
    (trailing blanks removed), `unknown` the number of cells that matched
    no glyph."""

    def __init__(self, rows, unknown, lit_cells):
        self.rows = rows
        self.unknown = unknown
        self.lit_cells = lit_cells

    def text(self):
        """The rows joined with newlines, blank rows at the end dropped."""
        return "\n".join(self.rows).rstrip("\n") + "\n"

    def find_row(self, prefix, start=0):
        """The index of the first row from `start` that begins with `prefix`, or -1."""
        for i in range(start, len(self.rows)):
            if self.rows[i].startswith(prefix):
                return i
        return -1


def read_screen(width, height, pixels, font, scale=1):
    """Reads the character cells of a screendump (the rgb bytes of
    harness.read_ppm) with `font` drawn at `scale`; returns a Screen."""
    lit = lit_mask(width, height, pixels)
    cw, ch = font.width * scale, font.height * scale
    cols, nrows = width // cw, height // ch
    lookup = font.lookup()
    blank = bytes(font.width * font.height)
    rows = []
    unknown = lit_cells = 0
    for r in range(nrows):
        line = []
        for c in range(cols):
            x0, y0 = c * cw, r * ch
            parts = []
            for gy in range(font.height):
                row = lit[(y0 + gy * scale) * width + x0:(y0 + gy * scale) * width + x0 + cw]
                parts.append(row[::scale])
            cell = b"".join(parts)
            if cell == blank:
                line.append(" ")
                continue
            lit_cells += 1
            chr_ = lookup.get(cell)
            if chr_ is None:
                unknown += 1
                chr_ = UNKNOWN
            line.append(chr_)
        rows.append("".join(line).rstrip(" "))
    return Screen(rows, unknown, lit_cells)


def kernel_scale(width, height):
    """The font scale the kernel's console picks for a framebuffer (fbcon.c)."""
    return 2 if width >= 2560 and height >= 1600 else 1
