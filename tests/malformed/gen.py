#!/usr/bin/env python3
"""Derives broken kernels from the real kernel.elf, each with the reason stage 1's
validator (stage1/load/elf.c) must give for it.

Every case starts from the built kernel and breaks one thing, so the file is
otherwise a plausible kernel and the validator's check for that one thing is
the only one that can stop it. The cases locate what they change (the text,
rodata and data segments, the program header table) by reading the kernel's
own headers, so they follow the kernel as it grows.

    gen.py --kernel kernel.elf --out DIR   writes DIR/<case>.elf and DIR/manifest.tsv
    gen.py --kernel kernel.elf --list      prints the case names, one per line

Imported by host_test.py (every case through the validator on the host) and
boot_malformed.py (a selection booted under QEMU). Standard library only.
"""

import argparse
import os
import struct
import sys

EHDR = struct.Struct("<16sHHIQQQIHHHHHH")
PHDR = struct.Struct("<IIQQQQQQ")
EHDR_FIELDS = ("ident", "type", "machine", "version", "entry", "phoff", "shoff", "flags",
               "ehsize", "phentsize", "phnum", "shentsize", "shnum", "shstrndx")
PHDR_FIELDS = ("type", "flags", "offset", "vaddr", "paddr", "filesz", "memsz", "align")

PT_NULL, PT_LOAD, PT_DYNAMIC, PT_INTERP, PT_NOTE, PT_TLS = 0, 1, 2, 3, 4, 7
PF_X, PF_W, PF_R = 1, 2, 4
PAGE = 0x1000
U64 = 2**64
MAX_SEGMENTS = 16  # CANOPY_MAX_SEGMENTS in include/canopy/bootinfo.h (checked by host_test.py)

# What the validator's reason sentence says for each status (stage1/load/elf.c).
# host_test.py checks each against the validator's actual sentence, so the boot
# scenarios can rely on them to recognise a line on the serial console.
REASON = {
    "ELF_ERR_TRUNCATED": r"too few for an ELF header",
    "ELF_ERR_MAGIC": r"not an ELF file",
    "ELF_ERR_CLASS": r"not a 64-bit ELF file",
    "ELF_ERR_ENDIAN": r"not a little-endian ELF file",
    "ELF_ERR_VERSION": r"unknown ELF version",
    "ELF_ERR_MACHINE": r"not x86-64",
    "ELF_ERR_TYPE": r"must be ET_EXEC",
    "ELF_ERR_EHSIZE": r"ELF header size \d+, expected 64",
    "ELF_ERR_PHENTSIZE": r"program header entry size \d+, expected 56",
    "ELF_ERR_PHNUM": r"program header count \d+ is unusable",
    "ELF_ERR_PHDRS_OUTSIDE": r"program header table .* runs past the end of the file",
    "ELF_ERR_INTERP": r"is PT_INTERP: .*no dynamic linking",
    "ELF_ERR_DYNAMIC": r"is PT_DYNAMIC: the kernel needs relocations",
    "ELF_ERR_TLS": r"is PT_TLS: the kernel has thread-local storage",
    "ELF_ERR_NO_LOAD": r"no loadable segment",
    "ELF_ERR_TOO_MANY_SEGMENTS": r"more than \d+ loadable segments",
    "ELF_ERR_SEG_OUTSIDE_FILE": r"segment \d+ .*runs past the end of the file",
    "ELF_ERR_FILESZ": r"file size \(\d+\) larger than its memory size",
    "ELF_ERR_ALIGN": r"alignment \(0x[0-9a-f]+\) that is not a power of two",
    "ELF_ERR_CONGRUENCE": r"differ modulo (4096|its p_align \(0x[0-9a-f]+\))",
    "ELF_ERR_WRAPS": r"wraps past the top of the address space",
    "ELF_ERR_LOWER_HALF": r"is in the lower half",
    "ELF_ERR_NONCANONICAL": r"is not a canonical address",
    "ELF_ERR_OUTSIDE_KERNEL_AREA": r"below the kernel area",
    "ELF_ERR_WX": r"both writable and executable",
    "ELF_ERR_NO_ACCESS": r"has no R, W or X flag",
    "ELF_ERR_OVERLAP": r"segments \d+ .* and \d+ .* overlap",
    "ELF_ERR_SHARED_PAGE": r"share a page \(0x[0-9a-f]+\)",
    "ELF_ERR_ENTRY_OUTSIDE": r"entry point 0x[0-9a-f]+ is outside every segment",
    "ELF_ERR_ENTRY_NOT_EXEC": r"entry point 0x[0-9a-f]+ is in segment \d+ .*not executable",
    "ELF_ERR_ENTRY_IN_BSS": r"entry point 0x[0-9a-f]+ is in segment \d+'s zero-filled tail",
    "ELF_ERR_TOO_BIG": r"need \d+ KiB but only \d+ KiB of memory is available",
}


class GenError(Exception):
    """The kernel does not have the shape a case needs."""


class Kernel:
    """The parsed kernel: its bytes, header and program headers, and the three
    PT_LOAD segments the cases change (text r-x, rodata r--, data rw-)."""

    def __init__(self, data):
        self.data = bytes(data)
        if len(data) < EHDR.size or data[:4] != b"\x7fELF":
            raise GenError("the kernel is not an ELF file")
        self.eh = dict(zip(EHDR_FIELDS, EHDR.unpack_from(data, 0)))
        if self.eh["phentsize"] != PHDR.size:
            raise GenError(f"program header size {self.eh['phentsize']}, expected 56")
        self.ph = [dict(zip(PHDR_FIELDS, PHDR.unpack_from(data, self.phdr_offset(i))))
                   for i in range(self.eh["phnum"])]
        loads = [i for i, p in enumerate(self.ph) if p["type"] == PT_LOAD and p["memsz"]]
        self.text = self._one(loads, lambda p: p["flags"] & PF_X, "executable")
        self.rodata = self._one(loads, lambda p: p["flags"] & 7 == PF_R, "read-only")
        self.wdata = self._one(loads, lambda p: p["flags"] & PF_W, "writable")
        self.loads = loads
        text = self.ph[self.text]
        if not text["vaddr"] <= self.eh["entry"] < text["vaddr"] + text["memsz"]:
            raise GenError("the entry point is not in the executable segment")

    def _one(self, loads, pred, what):
        hits = [i for i in loads if pred(self.ph[i])]
        if len(hits) != 1:
            raise GenError(f"expected one {what} PT_LOAD segment, found {len(hits)}")
        return hits[0]

    def phdr_offset(self, i):
        return self.eh["phoff"] + i * PHDR.size

    # ---- variants: each returns new bytes; the kernel itself never changes

    def with_ehdr(self, **fields):
        eh = dict(self.eh, **fields)
        out = bytearray(self.data)
        EHDR.pack_into(out, 0, *(eh[f] for f in EHDR_FIELDS))
        return bytes(out)

    def with_ident(self, index, value):
        ident = bytearray(self.eh["ident"])
        ident[index] = value
        return self.with_ehdr(ident=bytes(ident))

    def with_phdr(self, i, **fields):
        ph = dict(self.ph[i], **fields)
        out = bytearray(self.data)
        PHDR.pack_into(out, self.phdr_offset(i), *(ph[f] for f in PHDR_FIELDS))
        return bytes(out)

    def with_phdrs(self, changes):
        """changes: {index: {field: value}}, applied together."""
        out = bytearray(self.data)
        for i, fields in changes.items():
            ph = dict(self.ph[i], **fields)
            PHDR.pack_into(out, self.phdr_offset(i), *(ph[f] for f in PHDR_FIELDS))
        return bytes(out)

    def with_table_appended(self, phdrs):
        """The file with a new program header table (phdrs: list of field dicts)
        appended at its end, page aligned, and the ELF header pointing at it."""
        out = bytearray(self.data)
        out += bytes(-len(out) % PAGE)
        phoff = len(out)
        for ph in phdrs:
            out += PHDR.pack(*(ph[f] for f in PHDR_FIELDS))
        eh = dict(self.eh, phoff=phoff, phnum=len(phdrs))
        EHDR.pack_into(out, 0, *(eh[f] for f in EHDR_FIELDS))
        return bytes(out)

    def cut(self, size):
        return self.data[:size]


class Case:
    """One broken kernel: its name, the status the validator must return, a
    regex its reason must also match (beyond REASON[status]) and its bytes."""

    def __init__(self, name, status, what, data, detail=None):
        if status not in REASON:
            raise GenError(f"{name}: unknown status {status}")
        self.name = name
        self.status = status
        self.what = what
        self.data = data
        self.detail = detail

    def reason_regex(self):
        """The regex the validator's reason must match (search, not anchored)."""
        return REASON[self.status] if self.detail is None else \
            f"(?=.*{REASON[self.status]}).*{self.detail}"


def seg(i):
    """Reason detail: the sentence names segment i (as the validator counts them)."""
    return rf"\bsegment {i}\b"


def cases(k):
    """Every broken kernel derived from k (a Kernel), in a fixed order."""
    eh = k.eh
    text, ro, rw = k.ph[k.text], k.ph[k.rodata], k.ph[k.wdata]
    t, r, w = k.text, k.rodata, k.wdata
    table_end = k.phdr_offset(eh["phnum"])
    size = len(k.data)
    text_end = text["vaddr"] + text["memsz"]
    out = []

    def add(name, status, what, data, detail=None):
        out.append(Case(name, status, what, data, detail))

    # Truncation: nothing, inside the ELF header, inside the program header
    # table, inside each segment's file bytes.
    add("empty", "ELF_ERR_TRUNCATED", "a zero-byte file", b"", r"has 0 bytes")
    add("trunc-ident", "ELF_ERR_TRUNCATED", "only the first 16 bytes (e_ident)", k.cut(16),
        r"has 16 bytes")
    add("trunc-ehdr", "ELF_ERR_TRUNCATED", "one byte short of a whole ELF header",
        k.cut(EHDR.size - 1), r"has 63 bytes")
    add("trunc-phdr-first", "ELF_ERR_PHDRS_OUTSIDE", "ends inside the first program header",
        k.cut(eh["phoff"] + PHDR.size // 2), rf"{eh['phnum']} entries")
    add("trunc-phdr-last", "ELF_ERR_PHDRS_OUTSIDE", "ends one byte before the table's end",
        k.cut(table_end - 1))
    add("trunc-text", "ELF_ERR_SEG_OUTSIDE_FILE", "ends halfway through the text segment's bytes",
        k.cut(text["offset"] + text["filesz"] // 2), seg(t))
    add("trunc-rodata", "ELF_ERR_SEG_OUTSIDE_FILE", "ends one byte before the rodata segment's end",
        k.cut(ro["offset"] + ro["filesz"] - 1), seg(r))
    last = max(k.loads, key=lambda i: k.ph[i]["offset"] + k.ph[i]["filesz"])
    lastp = k.ph[last]
    add("trunc-last-segment", "ELF_ERR_SEG_OUTSIDE_FILE",
        "ends one byte before the last file byte any segment needs",
        k.cut(lastp["offset"] + lastp["filesz"] - 1), seg(last))

    # The identification bytes and the header's fixed fields.
    add("magic-byte0", "ELF_ERR_MAGIC", "first byte 0x7e instead of 0x7f",
        k.with_ehdr(ident=b"\x7e" + eh["ident"][1:]))
    add("magic-lowercase", "ELF_ERR_MAGIC", "'\\x7fElf' instead of '\\x7fELF'",
        k.with_ehdr(ident=b"\x7fElf" + eh["ident"][4:]))
    add("magic-pe", "ELF_ERR_MAGIC", "a PE file's 'MZ' in front",
        b"MZ" + k.data[2:])
    add("class-32", "ELF_ERR_CLASS", "ELFCLASS32", k.with_ident(4, 1), r"class 1\b")
    add("class-none", "ELF_ERR_CLASS", "ELFCLASSNONE", k.with_ident(4, 0), r"class 0\b")
    add("endian-big", "ELF_ERR_ENDIAN", "ELFDATA2MSB", k.with_ident(5, 2), r"encoding 2\b")
    add("ident-version-0", "ELF_ERR_VERSION", "EI_VERSION 0", k.with_ident(6, 0))
    add("e-version-2", "ELF_ERR_VERSION", "e_version 2", k.with_ehdr(version=2), r"version 2\b")
    add("machine-i386", "ELF_ERR_MACHINE", "EM_386", k.with_ehdr(machine=3), r"machine 3\b")
    add("machine-aarch64", "ELF_ERR_MACHINE", "EM_AARCH64", k.with_ehdr(machine=183),
        r"machine 183\b")
    add("type-dyn", "ELF_ERR_TYPE", "ET_DYN (position independent)", k.with_ehdr(type=3),
        r"position independent")
    add("type-rel", "ELF_ERR_TYPE", "ET_REL (an object file)", k.with_ehdr(type=1), r"type 1\b")
    add("ehsize-52", "ELF_ERR_EHSIZE", "e_ehsize of an ELF32 header", k.with_ehdr(ehsize=52))

    # The program header table lying about itself.
    add("phnum-zero", "ELF_ERR_PHNUM", "e_phnum 0", k.with_ehdr(phnum=0), r"count 0\b")
    add("phnum-xnum", "ELF_ERR_PHNUM", "e_phnum PN_XNUM (extended numbering)",
        k.with_ehdr(phnum=0xFFFF), r"count 65535\b")
    too_many = (size - eh["phoff"]) // PHDR.size + 1
    add("phnum-past-eof", "ELF_ERR_PHDRS_OUTSIDE",
        f"e_phnum {too_many}: one entry more than the file can hold",
        k.with_ehdr(phnum=too_many), rf"{too_many} entries")
    add("phoff-past-eof", "ELF_ERR_PHDRS_OUTSIDE", "e_phoff at the end of the file",
        k.with_ehdr(phoff=size))
    add("phoff-wraps", "ELF_ERR_PHDRS_OUTSIDE", "e_phoff near 2^64: offset + table wraps",
        k.with_ehdr(phoff=U64 - 8))
    add("phentsize-32", "ELF_ERR_PHENTSIZE", "e_phentsize of an ELF32 program header",
        k.with_ehdr(phentsize=32), r"size 32\b")
    add("phentsize-64", "ELF_ERR_PHENTSIZE", "e_phentsize larger than an ELF64 program header",
        k.with_ehdr(phentsize=64), r"size 64\b")
    add("phentsize-zero", "ELF_ERR_PHENTSIZE", "e_phentsize 0", k.with_ehdr(phentsize=0),
        r"size 0\b")

    # Segments that do not fit the file or themselves.
    add("load-offset-past-eof", "ELF_ERR_SEG_OUTSIDE_FILE",
        "the text segment's bytes start at the end of the file",
        k.with_phdr(t, offset=size + (text["vaddr"] - size) % PAGE), seg(t))
    add("load-filesz-past-eof", "ELF_ERR_SEG_OUTSIDE_FILE",
        "the rodata segment's file size reaches past the end of the file",
        k.with_phdr(r, filesz=size, memsz=size), seg(r))
    add("load-filesz-wraps", "ELF_ERR_SEG_OUTSIDE_FILE",
        "the data segment's p_offset + p_filesz wraps past 2^64",
        k.with_phdr(w, filesz=U64 - PAGE, memsz=U64 - PAGE), seg(w))
    add("filesz-gt-memsz", "ELF_ERR_FILESZ", "rodata's p_filesz one byte larger than p_memsz",
        k.with_phdr(r, memsz=ro["filesz"] - 1), seg(r))
    add("align-3", "ELF_ERR_ALIGN", "text p_align 3", k.with_phdr(t, align=3), seg(t))
    add("align-0x1800", "ELF_ERR_ALIGN", "data p_align 0x1800", k.with_phdr(w, align=0x1800),
        seg(w))
    add("misaligned-vaddr", "ELF_ERR_CONGRUENCE",
        "text p_vaddr moved by 0x10 but not its p_offset (entry moved with it)",
        _move_text(k, 0x10), seg(t))
    add("misaligned-offset", "ELF_ERR_CONGRUENCE", "rodata p_offset moved by 8, not its p_vaddr",
        k.with_phdr(r, offset=ro["offset"] + 8), seg(r))
    add("align-2m-incongruent", "ELF_ERR_CONGRUENCE",
        "data p_align 2 MiB, its p_vaddr and p_offset congruent modulo 4 KiB only",
        _align_incongruent(k, 0x200000), rf"{seg(w)}.*p_align \(0x200000\)")

    # Where segments go.
    add("overlap", "ELF_ERR_OVERLAP", "rodata moved onto the middle of text",
        k.with_phdr(r, vaddr=_page_down(text["vaddr"] + text["memsz"] // 2) + ro["offset"] % PAGE),
        rf"segments {t} .* and {r} ")
    add("overlap-same-address", "ELF_ERR_OVERLAP", "data placed exactly where text is",
        k.with_phdr(w, vaddr=text["vaddr"] + (rw["offset"] - text["offset"]) % PAGE))
    add("shared-page", "ELF_ERR_SHARED_PAGE",
        "rodata starts in the page where text ends, past text's last byte",
        _shared_page(k), rf"segments {t} \(r-x\) and {r} \(r--\)")
    add("shared-first-page", "ELF_ERR_SHARED_PAGE",
        "text starts 0x800 into its first page, rodata (listed later) fills 0x100 bytes before it",
        _shared_first_page(k), rf"segments {r} \(r--\) and {t} \(r-x\)")
    add("lower-half", "ELF_ERR_LOWER_HALF", "data at 0x400000 (a user-space address)",
        k.with_phdr(w, vaddr=0x400000 + rw["offset"] % PAGE), seg(w))
    add("lower-half-zero", "ELF_ERR_LOWER_HALF", "text at address 0 (entry moved with it)",
        _move_text(k, -text["vaddr"] + text["offset"] % PAGE), seg(t))
    add("noncanonical-low", "ELF_ERR_NONCANONICAL", "data at 0x0000800000000000",
        k.with_phdr(w, vaddr=0x0000800000000000 + rw["offset"] % PAGE), seg(w))
    add("noncanonical-high", "ELF_ERR_NONCANONICAL", "rodata at 0x8000000000000000",
        k.with_phdr(r, vaddr=0x8000000000000000 + ro["offset"] % PAGE), seg(r))
    add("below-kernel-area", "ELF_ERR_OUTSIDE_KERNEL_AREA",
        "data in the higher half but at the HHDM's base, 0xffff800000000000",
        k.with_phdr(w, vaddr=0xFFFF800000000000 + rw["offset"] % PAGE), seg(w))
    wrap_va = U64 - PAGE + rw["offset"] % PAGE
    add("wraps-2-64", "ELF_ERR_WRAPS", "data at the last page with 2 pages of memory",
        k.with_phdr(w, vaddr=wrap_va, memsz=2 * PAGE), seg(w))
    add("memsz-wraps", "ELF_ERR_WRAPS", "data's p_memsz reaching exactly 2^64 + 1 byte",
        k.with_phdr(w, memsz=U64 - rw["vaddr"] + 1), seg(w))
    # The top of the kernel area: whatever the data segment can grow to
    # without wrapping, far beyond the RAM of any test machine.
    huge = _page_down(U64 - rw["vaddr"] - 1)
    add("memsz-huge", "ELF_ERR_TOO_BIG",
        f"data's p_memsz {huge >> 20} MiB, beyond the memory of the machine",
        k.with_phdr(w, memsz=huge))

    # Which segments there are.
    add("no-load-note", "ELF_ERR_NO_LOAD", "every PT_LOAD turned into a PT_NOTE",
        k.with_phdrs({i: {"type": PT_NOTE} for i in k.loads}), r"\b0 PT_LOAD")
    add("no-load-empty", "ELF_ERR_NO_LOAD", "every PT_LOAD with p_filesz = p_memsz = 0",
        k.with_phdrs({i: {"filesz": 0, "memsz": 0} for i in k.loads}),
        rf"{len(k.loads)} PT_LOAD")
    add("interp", "ELF_ERR_INTERP", "a PT_INTERP naming a dynamic linker after the PT_LOADs",
        _with_phdr_added(k, PT_INTERP, PF_R, ro), rf"program header {eh['phnum']}\b")
    add("dynamic", "ELF_ERR_DYNAMIC", "a PT_DYNAMIC over the data segment's bytes",
        _with_phdr_added(k, PT_DYNAMIC, PF_R | PF_W, rw), rf"program header {eh['phnum']}\b")
    add("tls", "ELF_ERR_TLS", "a PT_TLS over the data segment's bytes (a .tdata)",
        _with_phdr_added(k, PT_TLS, PF_R, rw), rf"program header {eh['phnum']}\b")
    add("too-many-segments", "ELF_ERR_TOO_MANY_SEGMENTS",
        f"{MAX_SEGMENTS + 1} PT_LOAD segments (text plus one bss page after another)",
        _too_many_segments(k), rf"more than {MAX_SEGMENTS}\b")

    # Permissions and the entry point.
    add("wx-text", "ELF_ERR_WX", "text marked rwx", k.with_phdr(t, flags=PF_R | PF_W | PF_X),
        seg(t))
    add("wx-data", "ELF_ERR_WX", "data marked rwx", k.with_phdr(w, flags=PF_R | PF_W | PF_X),
        seg(w))
    add("wx-no-read", "ELF_ERR_WX", "text marked -wx", k.with_phdr(t, flags=PF_W | PF_X), seg(t))
    add("no-access", "ELF_ERR_NO_ACCESS", "rodata marked ---", k.with_phdr(r, flags=0), seg(r))
    add("entry-zero", "ELF_ERR_ENTRY_OUTSIDE", "e_entry 0", k.with_ehdr(entry=0),
        r"entry point 0x0 ")
    add("entry-below-text", "ELF_ERR_ENTRY_OUTSIDE", "e_entry one byte below text",
        k.with_ehdr(entry=text["vaddr"] - 1))
    add("entry-after-bss", "ELF_ERR_ENTRY_OUTSIDE", "e_entry just past the data segment's memory",
        k.with_ehdr(entry=rw["vaddr"] + rw["memsz"]))
    if not any(k.ph[i]["vaddr"] <= text_end < k.ph[i]["vaddr"] + k.ph[i]["memsz"]
               for i in k.loads):
        add("entry-past-text", "ELF_ERR_ENTRY_OUTSIDE", "e_entry one byte past text's last byte",
            k.with_ehdr(entry=text_end))
    add("entry-in-rodata", "ELF_ERR_ENTRY_NOT_EXEC", "e_entry in the read-only segment",
        k.with_ehdr(entry=ro["vaddr"]), rf"segment {r} \(r--\)")
    add("entry-in-data", "ELF_ERR_ENTRY_NOT_EXEC", "e_entry in the data segment",
        k.with_ehdr(entry=rw["vaddr"] + 8), rf"segment {w} \(rw-\)")
    add("entry-in-text-tail", "ELF_ERR_ENTRY_IN_BSS",
        "text's p_memsz 16 bytes past its p_filesz, e_entry on the first zero-filled byte",
        _entry_in_text_tail(k), rf"segment {t}'s")
    return out


def _page_down(v):
    return v & ~(PAGE - 1)


def _move_text(k, delta):
    """Text (and the entry point with it) moved by delta bytes, file offset kept."""
    text = k.ph[k.text]
    data = bytearray(k.with_phdr(k.text, vaddr=(text["vaddr"] + delta) % U64))
    eh = dict(k.eh, entry=(k.eh["entry"] + delta) % U64)
    EHDR.pack_into(data, 0, *(eh[f] for f in EHDR_FIELDS))
    return bytes(data)


def _shared_page(k):
    """Rodata re-placed to start in text's last page, just past text's last
    byte; its offset moves by the same amount, so address and offset stay
    congruent and its bytes stay inside the file."""
    text, ro = k.ph[k.text], k.ph[k.rodata]
    text_end = text["vaddr"] + text["memsz"]
    if text_end % PAGE == 0 or text_end % PAGE > PAGE - 16:
        raise GenError("text ends on or near a page boundary: no room to share its last page")
    va = (text_end + 15) & ~15
    off = _page_down(ro["offset"]) + va % PAGE
    return k.with_phdr(k.rodata, vaddr=va, offset=off)


def _shared_first_page(k):
    """Text moved 0x800 bytes into its first page (offset, sizes and entry with
    it), and rodata, listed after text, shrunk to 0x100 bytes at the start of
    that page: in the order of their pages text comes first, in the order of
    their bytes rodata does, and they share a page without overlapping."""
    text, ro = k.ph[k.text], k.ph[k.rodata]
    if text["vaddr"] % PAGE or text["filesz"] <= 0x800 or ro["offset"] % PAGE:
        raise GenError("text or rodata is not page aligned, or text is too short")
    data = bytearray(k.with_phdrs({
        k.text: {"vaddr": text["vaddr"] + 0x800, "offset": text["offset"] + 0x800,
                 "filesz": text["filesz"] - 0x800, "memsz": text["memsz"] - 0x800},
        k.rodata: {"vaddr": text["vaddr"], "filesz": 0x100, "memsz": 0x100}}))
    eh = dict(k.eh, entry=text["vaddr"] + 0x800)
    EHDR.pack_into(data, 0, *(eh[f] for f in EHDR_FIELDS))
    return bytes(data)


def _align_incongruent(k, align):
    """The data segment's p_align raised to align, where its p_vaddr and
    p_offset differ modulo align (they agree modulo the page size)."""
    rw = k.ph[k.wdata]
    if (rw["vaddr"] - rw["offset"]) % align == 0:
        raise GenError(f"data's address and offset already agree modulo {align:#x}")
    return k.with_phdr(k.wdata, align=align)


def _with_phdr_added(k, ptype, flags, over):
    """The kernel's program headers plus one of type ptype covering the bytes
    of segment `over`, in a new table at the end of the file."""
    extra = dict(over, type=ptype, flags=flags, align=8)
    return k.with_table_appended([dict(p) for p in k.ph] + [extra])


def _entry_in_text_tail(k):
    """Text's p_memsz 16 bytes longer than its p_filesz (a zero-filled tail
    inside its last page) and the entry point on the tail's first byte."""
    text = k.ph[k.text]
    end = text["vaddr"] + text["filesz"]
    if end % PAGE == 0 or end % PAGE > PAGE - 16:
        raise GenError("text ends on or near a page boundary: no room for a tail in its page")
    data = bytearray(k.with_phdr(k.text, memsz=text["filesz"] + 16))
    eh = dict(k.eh, entry=end)
    EHDR.pack_into(data, 0, *(eh[f] for f in EHDR_FIELDS))
    return bytes(data)


def _too_many_segments(k):
    """The text segment plus MAX_SEGMENTS bss-only pages above the data
    segment, in a new program header table at the end of the file."""
    text, rw = k.ph[k.text], k.ph[k.wdata]
    base = _page_down(rw["vaddr"] + rw["memsz"] + 2 * PAGE - 1)
    phdrs = [dict(text)]
    for n in range(MAX_SEGMENTS):
        va = base + 2 * n * PAGE
        phdrs.append(dict(type=PT_LOAD, flags=PF_R | PF_W, offset=0, vaddr=va, paddr=va,
                          filesz=0, memsz=PAGE, align=PAGE))
    return k.with_table_appended(phdrs)


def generate(kernel_path, out_dir):
    """Writes every case to out_dir/<name>.elf and a manifest; returns the cases."""
    with open(kernel_path, "rb") as f:
        k = Kernel(f.read())
    all_cases = cases(k)
    names = [c.name for c in all_cases]
    if len(set(names)) != len(names):
        raise GenError("two cases share a name")
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "manifest.tsv"), "w") as m:
        m.write("# case\tstatus\treason regex\twhat\n")
        for c in all_cases:
            with open(os.path.join(out_dir, c.name + ".elf"), "wb") as f:
                f.write(c.data)
            m.write(f"{c.name}\t{c.status}\t{c.reason_regex()}\t{c.what}\n")
    return all_cases


def load(kernel_path):
    """The cases for kernel_path, in memory."""
    with open(kernel_path, "rb") as f:
        return cases(Kernel(f.read()))


def main():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--kernel", help="the built kernel.elf")
    p.add_argument("--out", help="directory for <case>.elf and manifest.tsv")
    p.add_argument("--list", action="store_true", help="print the case names")
    args = p.parse_args()
    if not args.kernel:
        p.error("--kernel is required")
    try:
        if args.list:
            for c in load(args.kernel):
                print(c.name)
            return 0
        if not args.out:
            p.error("--out is required")
        written = generate(args.kernel, args.out)
    except (GenError, OSError) as e:
        print(f"gen.py: {e}", file=sys.stderr)
        return 1
    print(f"gen.py: {len(written)} broken kernels in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
