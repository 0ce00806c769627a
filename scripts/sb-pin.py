#!/usr/bin/env python3
"""Writes canopy.cfg's SHA-256 into stage 1's reserved pin section.

usage: sb-pin.py EFI HEX     pins HEX (64 hex digits) in the PE file EFI, in place
       sb-pin.py --show EFI  prints the pin: "pinned HEX" or "not pinned"

The pin is struct stage1_pin (stage1/load/pin.h) in the section .cfgpin: a
16-byte marker, a 32-bit `pinned` word, 4 reserved bytes and the 32-byte hash.
The section is found through the PE section table, and its marker is checked,
so a file that is not Canopy's stage 1, or one already pinned, is refused and
left as it was. Run it before signing: the signature must cover the pin.
Standard library only.
"""

import re
import struct
import sys

PIN_SECTION = b".cfgpin"
PIN_MAGIC = b"CANOPY-CFG-PIN/1"
PIN_SIZE = 56


class PinError(Exception):
    pass


def find_pin(data):
    """The file offset of the pin in a PE image (bytes); raises PinError."""
    if len(data) < 0x40 or data[:2] != b"MZ":
        raise PinError("not a PE file (no MZ header)")
    (pe,) = struct.unpack_from("<I", data, 0x3C)
    if pe + 24 > len(data) or data[pe:pe + 4] != b"PE\0\0":
        raise PinError("not a PE file (no PE signature)")
    sections, = struct.unpack_from("<H", data, pe + 6)
    optional_size, = struct.unpack_from("<H", data, pe + 20)
    table = pe + 24 + optional_size
    for i in range(sections):
        entry = table + 40 * i
        if entry + 40 > len(data):
            raise PinError("section table runs past the end of the file")
        name = data[entry:entry + 8].rstrip(b"\0")
        raw_size, raw_offset = struct.unpack_from("<II", data, entry + 16)
        if name != PIN_SECTION:
            continue
        if raw_size < PIN_SIZE or raw_offset + PIN_SIZE > len(data):
            raise PinError(f"section {PIN_SECTION.decode()} is too small for the pin")
        if data[raw_offset:raw_offset + 16] != PIN_MAGIC:
            raise PinError(f"section {PIN_SECTION.decode()} lacks the marker {PIN_MAGIC.decode()}")
        return raw_offset
    raise PinError(f"no {PIN_SECTION.decode()} section: not Canopy's stage 1")


def read_pin(data):
    """(pinned, hex) of the pin in data."""
    off = find_pin(data)
    pinned, = struct.unpack_from("<I", data, off + 16)
    return pinned != 0, data[off + 24:off + 56].hex()


def pin(path, digest_hex):
    """Pins digest_hex in the file at path; raises PinError and writes nothing on any problem."""
    if not re.fullmatch(r"[0-9a-fA-F]{64}", digest_hex):
        raise PinError(f"'{digest_hex}' is not 64 hex digits")
    with open(path, "rb") as f:
        data = bytearray(f.read())
    off = find_pin(data)
    pinned, _ = read_pin(data)
    if pinned:
        raise PinError("already pinned (pin a fresh copy of the linked file)")
    struct.pack_into("<II", data, off + 16, 1, 0)
    data[off + 24:off + 56] = bytes.fromhex(digest_hex)
    with open(path, "r+b") as f:
        f.write(data)


def main(argv):
    try:
        if len(argv) == 2 and argv[0] == "--show":
            with open(argv[1], "rb") as f:
                pinned, digest = read_pin(f.read())
            print(f"pinned {digest}" if pinned else "not pinned")
            return 0
        if len(argv) == 2 and not argv[0].startswith("-"):
            pin(argv[0], argv[1])
            return 0
    except (PinError, OSError) as e:
        print(f"sb-pin.py: {argv[-1] if argv[0] == '--show' else argv[0]}: {e}", file=sys.stderr)
        return 1
    print(__doc__.strip().split("\n\n")[1], file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
