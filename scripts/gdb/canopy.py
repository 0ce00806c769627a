"""GDB helpers for the Canopy kernel: its symbols and a `pt` command that
prints the kernel shell's human page-table dump from a stopped guest.

    (gdb) source scripts/gdb/canopy.py          # loads build/kernel/kernel.elf if no
                                                # symbols are loaded yet
    (gdb) canopy-kernel path/to/kernel.elf      # or name the file
    (gdb) target remote :1234
    (gdb) pt                                    # the whole address space
    (gdb) pt ffffffff80000000 ffffffff80100000  # [START, END)

`pt` reads CR3 and CR4 as GDB's registers $cr3 and $cr4 (QEMU's gdbstub
describes them for x86-64) and walks the page tables in Python, reading each
table through the guest's HHDM when the kernel's symbols give its base
(kmm.hhdm), else as physical memory (QEMU's `Qqemu.PhyMemMode` packet). Its
output is the kernel's `pt` byte for byte: the same merging rules, columns,
section markers and labels (the VMA tree's names, the kernel segments, the
boot stack, the mapping manifest's owners), between the same
`--- pt begin ---` / `--- pt end ---` lines. The cache column assumes the
power-on PAT, which Canopy never changes (the gdbstub exposes no MSRs).
"""

import bisect
import os
import struct

import gdb

PAGE_4K, PAGE_2M, PAGE_1G = 1 << 12, 1 << 21, 1 << 30
MASK64 = (1 << 64) - 1
ADDR_MASK = 0x000FFFFFFFFFF000
PTE_P, PTE_W, PTE_U, PTE_PWT, PTE_PCD, PTE_PS, PTE_G = 1, 2, 4, 8, 16, 0x80, 0x100
PTE_NX = 1 << 63
CR4_LA57 = 1 << 12
POWER_ON_PAT = 0x0007040600070406

# include/canopy/bootinfo.h
HHDM_BASE_4L = 0xFFFF800000000000
HHDM_BASE_5L = 0xFF00000000000000
DYNAMIC_BASE = 0xFFFFC00000000000
DYNAMIC_END = 0xFFFFE00000000000
KERNEL_BASE = 0xFFFFFFFF80000000
BOOT_STACK_SIZE = 64 * 1024
SEG_X, SEG_W = 0x1, 0x2

# pmm/src/pmm.c, pmm_owner_name()
OWNER_NAMES = {0: "none", 1: "kernel image", 2: "page table", 3: "boot info", 4: "stack",
               5: "pmm", 6: "hhdm", 7: "framebuffer", 8: "trampoline", 9: "heap", 10: "vmm",
               11: "runtime", 12: "test"}

# kernel/mm/vm.c, vm_kind_name(): a VMA without a name is labelled with its kind
VM_KIND_NAMES = {1: "image", 2: "hhdm", 3: "framebuffer", 4: "stack", 5: "guard", 6: "anon"}

# vmm/src/ptdump.c, cache_name()
CACHE_NAMES = {0: "UC", 1: "WC", 4: "WT", 5: "WP", 6: "WB", 7: "UC-"}


def u64(value):
    return int(value) & MASK64


def symbol_value(expr):
    """A kernel variable, or None without symbols or when it cannot be read."""
    try:
        return gdb.parse_and_eval(expr)
    except gdb.error:
        return None


def default_kernel_elf():
    for path in (os.environ.get("CANOPY_KERNEL", ""), "build/kernel/kernel.elf"):
        if path and os.path.isfile(path):
            return path
    return None


class Memory:
    """Physical memory of the guest: through the HHDM when its base is known,
    else through QEMU's physical-memory mode."""

    def __init__(self, hhdm):
        self.inf = gdb.selected_inferior()
        self.hhdm = hhdm
        self.tables = {}
        if hhdm is None:
            gdb.execute("maintenance packet Qqemu.PhyMemMode:1", to_string=True)

    def close(self):
        if self.hhdm is None:
            gdb.execute("maintenance packet Qqemu.PhyMemMode:0", to_string=True)

    def table(self, pa):
        if pa not in self.tables:
            raw = bytes(self.inf.read_memory(((self.hhdm or 0) + pa) & MASK64, PAGE_4K))
            self.tables[pa] = struct.unpack("<512Q", raw)
        return self.tables[pa]


class Leaf:
    __slots__ = ("va", "pa", "size", "entry", "w", "x", "u")


def walk(mem, root, levels, first, last):
    """Present leaves intersecting [first, last] in address order (lower half
    first), with the effective W, U (ANDed) and X (no NX anywhere), as
    vmm/pt.c's pt_for_each_leaf reports them."""
    top_shift = 12 + 9 * (levels - 1)
    sign_bit = 1 << (top_shift + 8)

    def recurse(table_pa, level, base, all_w, all_u, any_nx):
        shift = 12 + 9 * (level - 1)
        size = 1 << shift
        entries = mem.table(table_pa)
        for i, e in enumerate(entries):
            if not e & PTE_P:
                continue
            va = base | (i << shift)
            if level == levels and va & sign_bit:
                va |= MASK64 & ~((sign_bit << 1) - 1)  # canonical: sign-extend
            if va + size - 1 < first or va > last:
                continue
            w, u, nx = all_w and bool(e & PTE_W), all_u and bool(e & PTE_U), any_nx or bool(e & PTE_NX)
            if level == 1 or (level <= 3 and e & PTE_PS):
                leaf = Leaf()
                leaf.va, leaf.size, leaf.entry = va, size, e
                leaf.pa = e & ADDR_MASK & ~(size - 1)
                leaf.w, leaf.u, leaf.x = w, u, not nx
                yield leaf
            else:
                yield from recurse(e & ADDR_MASK, level - 1, va, w, u, nx)

    yield from recurse(root, levels, 0, True, True, False)


def size_text(nbytes):
    """vmm/src/ptdump.c's size_text: the largest unit that keeps it whole."""
    units = "KMGTPE"
    v, u = (nbytes & MASK64) >> 10, 0
    while v != 0 and v & 1023 == 0 and u + 1 < len(units):
        v >>= 10
        u += 1
    return f"{v}{units[u]}"


def cache_name(pat, entry, size):
    pat_bit = (1 << 7) if size == PAGE_4K else (1 << 12)
    index = (4 if entry & pat_bit else 0) | (2 if entry & PTE_PCD else 0) | (1 if entry & PTE_PWT else 0)
    return CACHE_NAMES.get((pat >> (index * 8)) & 7, "??")


class Labels:
    """The kernel's labels for `pt` (kernel/shell/shellglue.c, label_of): the
    VMA tree's names, then the kernel segments, the boot stack and the mapping
    manifest's owners; each source a sorted list of [start, end) ranges."""

    def __init__(self):
        self.sources = [self._vmas(), self._segments(), self._manifest()]

    @staticmethod
    def _string(ptr):
        try:
            return ptr.string() if int(ptr) else None
        except gdb.error:
            return None

    def _vmas(self):
        vm = symbol_value("'vm.c'::vm")
        out = []
        try:
            if vm is None or not bool(vm["ready"]):
                return out
            vma_type = gdb.lookup_type("struct vmm_vma").pointer()
            stack, node = [], vm["space"]["tree"]["root"]
            while stack or int(node):  # in order
                while int(node):
                    stack.append(node)
                    node = node["left"]
                node = stack.pop()
                v = node.cast(vma_type)  # the node is the VMA's first member
                name = self._string(v["attrs"]["name"])
                if name is None:
                    name = VM_KIND_NAMES.get(int(v["attrs"]["kind"]), "?")
                out.append((u64(node["start"]), u64(node["last"]) + 1, name))
                node = node["right"]
        except gdb.error:
            return []
        return out

    def _segments(self):
        bi = symbol_value("kmm.bi")
        out = []
        try:
            if bi is None or not int(bi):
                return out
            for i in range(min(int(bi["segment_count"]), 16)):
                s = bi["segments"][i]
                flags = int(s["flags"])
                name = ".text" if flags & SEG_X else ".data" if flags & SEG_W else ".rodata"
                start = u64(s["vaddr"])
                out.append((start, start + int(s["page_count"]) * PAGE_4K, name))
            top = u64(bi["stack_top_va"])
            out.append((top - BOOT_STACK_SIZE, top, "boot stack"))
        except gdb.error:
            return []
        return sorted(out)

    def _manifest(self):
        m = symbol_value("'manifest_kernel.c'::kernel_manifest")
        out = []
        try:
            if m is None or not int(m["entries"]):
                return out
            for i in range(int(m["count"])):
                e = m["entries"][i]
                va = u64(e["va"])
                out.append((va, va + u64(e["size_bytes"]), OWNER_NAMES.get(int(e["owner"]), "unknown")))
        except gdb.error:
            return []
        return out

    def __call__(self, va):
        for ranges in self.sources:
            i = bisect.bisect_right(ranges, (va, MASK64 + 1, "")) - 1
            if i >= 0 and ranges[i][0] <= va < ranges[i][1]:
                return ranges[i][2]
        return None


def human_dump(leaves, first, last, markers, label, pat, write):
    """vmm/src/ptdump.c's ptdump_human, line for line."""
    next_marker = 0
    # Start with the section the range begins in; markers before it are skipped.
    while next_marker + 1 < len(markers) and markers[next_marker + 1][0] <= first:
        next_marker += 1
    state = {"open": None, "marker": next_marker, "wx": 0}

    def markers_upto(va):
        while state["marker"] < len(markers) and markers[state["marker"]][0] <= va:
            write(f"---[ {markers[state['marker']][1]} ]---\n")
            state["marker"] += 1

    def close():
        r = state["open"]
        if r is None:
            return
        pa = f"{r['pa_start']:016x}" if r["contiguous"] else "not contiguous"
        size_name = {PAGE_1G: "1G", PAGE_2M: "2M"}.get(r["page_size"], "4K")
        line = (f"{r['start']:016x}-{(r['last'] + 1) & MASK64:016x} "
                f"{size_text(r['last'] - r['start'] + 1):>6} {pa:<16} {size_name} x{r['count']:<5} "
                f"R{'W' if r['w'] else '-'}{'X' if r['x'] else '-'} "
                f"{'user' if r['u'] else 'kernel':<6} {'G' if r['g'] else '-'} {r['cache']:<3} "
                f"{(r['label'] or '')[:100]}")
        write(line[:255].rstrip(" ") + "\n")
        state["open"] = None

    if first <= last:
        markers_upto(first)
        for leaf in leaves:
            start, lst = max(leaf.va, first), min(leaf.va + leaf.size - 1, last)
            pa = leaf.pa + (start - leaf.va)
            g = bool(leaf.entry & PTE_G)
            cache = cache_name(pat, leaf.entry, leaf.size)
            lab = label(start)
            marker_due = state["marker"] < len(markers) and markers[state["marker"]][0] <= start
            if leaf.w and leaf.x:
                state["wx"] += (lst - start + 1) // PAGE_4K
            r = state["open"]
            if (r is not None and not marker_due and r["last"] != MASK64 and r["last"] + 1 == start
                    and r["page_size"] == leaf.size and (r["w"], r["x"], r["u"]) == (leaf.w, leaf.x, leaf.u)
                    and r["g"] == g and r["cache"] == cache and r["label"] == lab):
                if pa != r["pa_next"]:
                    r["contiguous"] = False
                r["pa_next"] = pa + (lst - start + 1)
                r["last"] = lst
                r["count"] += 1
                continue
            close()
            markers_upto(start)
            state["open"] = {"start": start, "last": lst, "pa_start": pa,
                             "pa_next": pa + (lst - start + 1), "contiguous": True,
                             "page_size": leaf.size, "count": 1, "w": leaf.w, "x": leaf.x,
                             "u": leaf.u, "g": g, "cache": cache, "label": lab}
        close()
        markers_upto(last)
    if state["wx"] == 0:
        write("W+X mappings: passed\n")
    else:
        write(f"W+X mappings: FAILED, {state['wx']} pages\n")


class CanopyKernel(gdb.Command):
    """canopy-kernel [PATH]: load kernel.elf's symbols (it runs where it is linked)."""

    def __init__(self):
        super().__init__("canopy-kernel", gdb.COMMAND_FILES, gdb.COMPLETE_FILENAME)

    def invoke(self, arg, from_tty):
        path = arg.strip() or default_kernel_elf()
        if not path:
            raise gdb.GdbError("canopy-kernel: give the path of kernel.elf")
        gdb.execute(f"symbol-file {path}", to_string=not from_tty)
        print(f"canopy: kernel symbols from {path}")


class Pt(gdb.Command):
    """pt [START END]: the kernel's human page-table dump of the live CR3, for [START, END)."""

    def __init__(self):
        super().__init__("pt", gdb.COMMAND_DATA)

    def invoke(self, arg, from_tty):
        words = arg.split()
        first, last = 0, MASK64
        if len(words) == 2:
            try:
                first, end = int(words[0], 16), int(words[1], 16)
            except ValueError:
                raise gdb.GdbError("pt: START and END are hex addresses")
            if end <= first:
                raise gdb.GdbError("pt: END is not above START")
            last = end - 1
        elif words:
            raise gdb.GdbError("usage: pt [START END]")
        cr3 = u64(gdb.parse_and_eval("$cr3"))
        cr4 = u64(gdb.parse_and_eval("$cr4"))
        levels = 5 if cr4 & CR4_LA57 else 4
        hhdm = symbol_value("kmm.hhdm")
        hhdm = u64(hhdm) if hhdm is not None and u64(hhdm) != 0 else None
        base = hhdm if hhdm is not None else (HHDM_BASE_5L if levels == 5 else HHDM_BASE_4L)
        markers = [(0, "user space"),
                   (0x0100000000000000 if levels == 5 else 0x0000800000000000, "non-canonical hole"),
                   (base, "HHDM"), (DYNAMIC_BASE, "dynamic area"), (DYNAMIC_END, "unused"),
                   (KERNEL_BASE, "kernel image")]
        mem = Memory(hhdm)
        out = []
        try:
            label = Labels()
            leaves = walk(mem, cr3 & ADDR_MASK, levels, first, last)
            human_dump(leaves, first, last, markers, label, POWER_ON_PAT, out.append)
        finally:
            mem.close()
        gdb.write("--- pt begin ---\n" + "".join(out) + "--- pt end ---\n")


CanopyKernel()
Pt()

if not any(o.filename and o.filename.endswith("kernel.elf") for o in gdb.objfiles()):
    _path = default_kernel_elf()
    if _path:
        gdb.execute(f"symbol-file {_path}", to_string=True)
        print(f"canopy: kernel symbols from {_path}")
    else:
        print("canopy: no kernel.elf loaded; use canopy-kernel PATH")
