"""GDB commands `canopy-stage1`, which finds where the firmware loaded stage 1
(BOOTX64.EFI) and loads its symbols there, and `canopy-images`.

A UEFI application runs wherever the firmware put it, so its symbols (linked
at the PE's ImageBase) must be shifted. EDK II firmware such as OVMF keeps, for
debuggers, an EFI_SYSTEM_TABLE_POINTER ("IBI SYST") on a 4 MiB boundary; the
system table it points to lists the EFI_DEBUG_IMAGE_INFO_TABLE, whose entries
lead to each loaded image's EFI_LOADED_IMAGE_PROTOCOL (ImageBase, FilePath).

Works whenever stage 1 is loaded: stopped in the firmware, in stage 1 or early
in the kernel (before it reclaims boot-services memory). The tables are read
as physical memory through QEMU's gdbstub (`Qqemu.PhyMemMode`), whatever page
tables are live: the kernel's direct map holds RAM only, and the system table
lies in runtime-services memory, which it leaves out. On another gdbstub the
reads go through the live tables: identity under the firmware's, the HHDM
under the kernel's.

    (gdb) source scripts/gdb/stage1.py
    (gdb) canopy-stage1 [build/stage1/BOOTX64.EFI]
    (gdb) canopy-images                  # every loaded image: base, size, entry

The images' addresses, stage 1's among them, are the same in every boot with
the same firmware, image and QEMU options, so a breakpoint can be placed in
the firmware or stage 1 before they run, from the addresses of a first boot.
"""

import struct

import gdb

HHDM = 0xFFFF800000000000
SYSTEM_TABLE_SIGNATURE = b"IBI SYST"
DEBUG_IMAGE_INFO_TABLE_GUID = bytes.fromhex("772e1549da1a6447b7a27afefed95e8b")


class PhysMem:
    """Physical memory, a context manager: QEMU's gdbstub in physical-memory
    mode while it is entered; else through the current address space
    (identity under the firmware's tables, the HHDM under the kernel's)."""

    def __init__(self):
        self.inf = gdb.selected_inferior()
        pc = int(gdb.parse_and_eval("$pc"))
        self.base = HHDM if pc >= HHDM else 0
        self.physical = False

    def __enter__(self):
        reply = gdb.execute("maintenance packet Qqemu.PhyMemMode:1", to_string=True)
        self.physical = '"OK"' in reply
        if self.physical:
            self.base = 0
        return self

    def __exit__(self, *exc):
        if self.physical:
            gdb.execute("maintenance packet Qqemu.PhyMemMode:0", to_string=True)
        return False

    def read(self, pa, n):
        return bytes(self.inf.read_memory(self.base + pa, n))

    def u64(self, pa):
        return struct.unpack("<Q", self.read(pa, 8))[0]

    def u32(self, pa):
        return struct.unpack("<I", self.read(pa, 4))[0]


def find_system_table(mem, top=1 << 32):
    """Scans 4 MiB boundaries downwards for EFI_SYSTEM_TABLE_POINTER."""
    for pa in range(top - (4 << 20), 0, -(4 << 20)):
        try:
            if mem.read(pa, 8) == SYSTEM_TABLE_SIGNATURE:
                return mem.u64(pa + 8)
        except gdb.MemoryError:
            continue
    raise gdb.GdbError("no EFI_SYSTEM_TABLE_POINTER found (not EDK II firmware, "
                       "or boot-services memory already reclaimed)")


def file_path(mem, dp):
    """The text of the media file-path nodes of a device path."""
    parts = []
    for _ in range(64):
        node_type, sub, length = struct.unpack("<BBH", mem.read(dp, 4))
        if node_type == 0x7F or length < 4:
            break
        if node_type == 4 and sub == 4:
            parts.append(mem.read(dp + 4, length - 4).decode("utf-16-le").rstrip("\0"))
        dp += length
    return "".join(parts)


def loaded_images(mem):
    """(ImageBase, ImageSize, file path) of every image the firmware lists."""
    st = find_system_table(mem)
    count, tables = mem.u64(st + 104), mem.u64(st + 112)
    for i in range(count):
        entry = tables + 24 * i
        if mem.read(entry, 16) != DEBUG_IMAGE_INFO_TABLE_GUID:
            continue
        header = mem.u64(entry + 16)
        size, table = mem.u32(header + 4), mem.u64(header + 8)
        for j in range(size):
            info = mem.u64(table + 8 * j)
            if not info or mem.u32(info) != 1:  # EFI_DEBUG_IMAGE_INFO_TYPE_NORMAL
                continue
            li = mem.u64(info + 8)
            path = file_path(mem, mem.u64(li + 32)) if mem.u64(li + 32) else ""
            yield mem.u64(li + 64), mem.u64(li + 72), path
        return
    raise gdb.GdbError("the firmware has no EFI_DEBUG_IMAGE_INFO_TABLE")


def entry_point(mem, base):
    """The entry point of the PE image loaded at base (its optional header's
    AddressOfEntryPoint), or None if no PE header is there."""
    if mem.read(base, 2) != b"MZ":
        return None
    pe = base + mem.u32(base + 0x3C)
    if mem.read(pe, 4) != b"PE\0\0":
        return None
    return base + mem.u32(pe + 4 + 20 + 16)


def pe_image_base(path):
    with open(path, "rb") as f:
        data = f.read(4096)
    pe = struct.unpack_from("<I", data, 0x3C)[0]
    if data[pe:pe + 4] != b"PE\0\0":
        raise gdb.GdbError(f"{path}: not a PE file")
    return struct.unpack_from("<Q", data, pe + 24 + 24)[0]


class CanopyStage1(gdb.Command):
    """canopy-stage1 [BOOTX64.EFI]: load stage 1's symbols where the firmware loaded it."""

    def __init__(self):
        super().__init__("canopy-stage1", gdb.COMMAND_FILES)

    def invoke(self, arg, from_tty):
        efi = arg.strip() or "build/stage1/BOOTX64.EFI"
        with PhysMem() as mem:
            ours = [(base, size, path) for base, size, path in loaded_images(mem)
                    if path.upper().endswith("BOOTX64.EFI")]
        if not ours:
            raise gdb.GdbError("BOOTX64.EFI is not among the loaded images (not started "
                               "yet, or already unloaded)")
        base, size, path = ours[-1]
        # Sections move by the same amount (modulo 2^64: the PE is linked above
        # the load address).
        offset = (base - pe_image_base(efi)) & (2**64 - 1)
        print(f"stage 1 ({path}) loaded at 0x{base:x}, 0x{size:x} bytes")
        gdb.execute(f"add-symbol-file {efi} -o 0x{offset:x}", from_tty)


class CanopyImages(gdb.Command):
    """canopy-images: the images the firmware has loaded, in the order it lists
    them: load address, size, entry point and file path (drivers from the
    firmware volume have none)."""

    def __init__(self):
        super().__init__("canopy-images", gdb.COMMAND_STATUS)

    def invoke(self, arg, from_tty):
        with PhysMem() as mem:
            images = [(base, size, path, entry_point(mem, base))
                      for base, size, path in loaded_images(mem)]
        for base, size, path, entry in images:
            entry = f"0x{entry:x}" if entry is not None else "?"
            print(f"0x{base:x} 0x{size:x} entry {entry} {path}".rstrip())


CanopyStage1()
CanopyImages()
