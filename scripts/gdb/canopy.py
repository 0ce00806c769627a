"""GDB helpers for the Canopy kernel: its symbols and a `pt` command that
prints the kernel shell's page-table dumps from a stopped guest.

    (gdb) source scripts/gdb/canopy.py          # loads build/kernel/kernel.elf if no
                                                # symbols are loaded yet
    (gdb) canopy-kernel path/to/kernel.elf      # or name the file
    (gdb) target remote :1234
    (gdb) pt                                    # the whole address space
    (gdb) pt ffffffff80000000 ffffffff80100000  # [START, END)
    (gdb) pt tlb                                # QEMU's `info tlb`, byte for byte
    (gdb) pt qemu                               # QEMU's `info mem`, byte for byte

`pt` works wherever the guest stopped: at the reset vector, in the firmware,
in stage 1 or in the kernel. What it does is decided by the CPU and by what it
can read, never by which symbols are loaded:
  - CR0, CR3, CR4 and EFER are GDB registers in the target description QEMU's
    gdbstub sends for x86-64. Paging off (CR0.PG clear) is reported as such;
    otherwise CR4.LA57 gives 4 or 5 levels.
  - The tables are read as guest-physical memory, by switching the gdbstub to
    physical addresses (QEMU's `Qqemu.PhyMemMode` packet) for the walk, so the
    walk needs neither the kernel's HHDM nor an identity map.
  - Labels (the VMA tree's names, the kernel segments, the boot stack, the
    mapping manifest's owners) come from the kernel's variables, read through
    the live address space before the walk. When the kernel's symbols are not
    loaded, or its memory cannot be read there (the firmware or stage 1 runs),
    the dump has no labels and a note line before it says why.

The human dump is the kernel's `pt` byte for byte: the same merging rules,
columns, section markers and labels, between the same `--- pt begin ---` /
`--- pt end ---` lines. The gdbstub exposes no MSRs, so the cache column
reads IA32_PAT as the kernel recorded it (`kmm.pat`) where it can; without
that, Canopy's layout (entry 5 write-combining) on tables that map the
kernel's image, which stage 1 sets just before it switches to them, and the
power-on PAT on any other tables (the firmware's, stage 1's own). The owner
and VMA-kind names are the kernel's own tables (pmm_owner_name's and
vm_kind_name's), found through the kernel's DWARF.
"""

import bisect
import os
import struct

import gdb

PAGE_4K, PAGE_2M, PAGE_1G = 1 << 12, 1 << 21, 1 << 30
MASK64 = (1 << 64) - 1
ADDR_MASK = 0x000FFFFFFFFFF000
PTE_P, PTE_W, PTE_U, PTE_PWT, PTE_PCD, PTE_A, PTE_D, PTE_PS, PTE_G = \
    1, 2, 4, 8, 16, 32, 64, 0x80, 0x100
PTE_NX = 1 << 63
CR0_PG = 1 << 31
CR4_LA57 = 1 << 12
EFER_LMA = 1 << 10
POWER_ON_PAT = 0x0007040600070406
CANOPY_PAT = 0x0007010600070406  # include/canopy/bootinfo.h: entry 5 write-combining

# include/canopy/bootinfo.h
HHDM_BASE_4L = 0xFFFF800000000000
HHDM_BASE_5L = 0xFF00000000000000
DYNAMIC_BASE = 0xFFFFC00000000000
DYNAMIC_END = 0xFFFFE00000000000
KERNEL_BASE = 0xFFFFFFFF80000000
BOOT_STACK_SIZE = 64 * 1024
SEG_X, SEG_W = 0x1, 0x2

# The PAT's memory types (Intel SDM Vol. 3, 11.12.2), as vmm/src/ptdump.c names them.
CACHE_NAMES = {0: "UC", 1: "WC", 4: "WT", 5: "WP", 6: "WB", 7: "UC-"}

# QEMU 7.2's physical address masks in `info tlb` (print_pte's callers).
QEMU_MASK_4K, QEMU_MASK_2M, QEMU_MASK_1G = 0x3FFFFFFFFF000, 0x3FFFFFFE00000, 0x3FFFFC0000000


def u64(value):
    return int(value) & MASK64


def kernel_objfile():
    """The objfile that defines kernel_main, or None (stage 1's symbols, also
    loaded, define some of the same names: pmm_owner_name, for one)."""
    for o in gdb.objfiles():
        if o.is_valid() and o.lookup_global_symbol("kernel_main") is not None:
            return o
    return None


def read_value(expr):
    """A kernel variable, read now: None without symbols or when its memory
    cannot be read (the kernel is not mapped while the firmware or stage 1
    runs). parse_and_eval's values are lazy, so the read is forced here."""
    try:
        v = gdb.parse_and_eval(expr)
        v.fetch_lazy()
        return v
    except gdb.error:  # gdb.MemoryError included
        return None


def kernel_pat():
    """IA32_PAT as the kernel recorded it (`kmm.pat`), or None if it cannot be
    read (no symbols, not mapped here) or was not set yet."""
    pat = read_value("kmm.pat")
    return u64(pat) if pat is not None and u64(pat) else None


def pat_for(mem, root, levels, recorded):
    """The PAT to read the cache column through: the kernel's record if there
    is one; else Canopy's layout if these tables map the kernel's image (stage
    1 sets IA32_PAT right before it switches to them, docs/boot-protocol.md);
    else the power-on value (the firmware, stage 1 before the hand-off)."""
    if recorded is not None:
        return recorded
    if next(walk(mem, root, levels, KERNEL_BASE, KERNEL_BASE), None) is not None:
        return CANOPY_PAT
    return POWER_ON_PAT


def enum_names(type_name, prefix):
    """{value: name} of an enum in the loaded DWARF, each name the enumerator
    without PREFIX in lower case with spaces for underscores
    (VM_KIND_FRAMEBUFFER -> "framebuffer"); {} when the type is unknown."""
    try:
        fields = gdb.lookup_type(type_name).fields()
    except gdb.error:
        return {}
    return {f.enumval: f.name[len(prefix):].lower().replace("_", " ")
            for f in fields if f.name.startswith(prefix)}


def name_table(objfile, function):
    """The static `names` table inside the kernel's FUNCTION (pmm_owner_name,
    vm_kind_name), found through the DWARF and read from the kernel's memory:
    a list indexed by value, None where the table has no name; None when the
    symbol is missing or its memory cannot be read."""
    try:
        fn = objfile.lookup_global_symbol(function)
        block = gdb.block_for_pc(int(fn.value().address))
        table = gdb.lookup_symbol("names", block)[0].value()
        low, high = table.type.range()
        return [table[i].string() if int(table[i]) else None for i in range(low, high + 1)]
    except (gdb.error, AttributeError, TypeError):  # no such symbol, or unreadable
        return None


def names_or_enum(objfile, function, enum_type, prefix):
    """FUNCTION's name table, or else names made from ENUM_TYPE's enumerators
    (a COUNT enumerator left out), in the same form."""
    table = name_table(objfile, function)
    if table is not None:
        return table
    named = {v: n for v, n in enum_names(enum_type, prefix).items() if n != "count"}
    return [named.get(i) for i in range(max(named, default=-1) + 1)]


def owner_names(objfile):
    """The mapping owners' names as the kernel prints them (pmm_owner_name's
    table); None where the kernel has no name (it prints "unknown")."""
    return names_or_enum(objfile, "pmm_owner_name", "enum canopy_owner", "CANOPY_OWNER_")


def kind_names(objfile):
    """The VMA kinds' names as the kernel prints them (vm_kind_name's table);
    None where the kernel has no name (it prints "?")."""
    return names_or_enum(objfile, "vm_kind_name", "enum vm_kind", "VM_KIND_")


def default_kernel_elf():
    for path in (os.environ.get("CANOPY_KERNEL", ""), "build/kernel/kernel.elf"):
        if path and os.path.isfile(path):
            return path
    return None


def read_cpu():
    """(CR0, CR3, CR4, EFER) of the selected CPU, from the gdbstub's registers."""
    try:
        return tuple(u64(gdb.parse_and_eval(f"${r}")) for r in ("cr0", "cr3", "cr4", "efer"))
    except gdb.error:
        raise gdb.GdbError("pt: the target has no $cr0/$cr3/$cr4/$efer registers "
                           "(QEMU's gdbstub for x86-64 has them; is GDB connected?)")


class PhysicalMemory:
    """The guest's physical memory, through QEMU's gdbstub in physical-memory
    mode; a context manager that switches the mode on and back off. Reads of
    virtual addresses (kernel variables) must not happen inside it."""

    def __init__(self):
        self.inf = gdb.selected_inferior()
        self.tables = {}

    def __enter__(self):
        reply = gdb.execute("maintenance packet Qqemu.PhyMemMode:1", to_string=True)
        if '"OK"' not in reply:
            raise gdb.GdbError("pt: the gdbstub cannot read physical memory (QEMU's "
                               "Qqemu.PhyMemMode packet); pt needs QEMU's gdbstub")
        return self

    def __exit__(self, *exc):
        gdb.execute("maintenance packet Qqemu.PhyMemMode:0", to_string=True)
        return False

    def table(self, pa):
        if pa not in self.tables:
            try:
                raw = bytes(self.inf.read_memory(pa, PAGE_4K))
            except gdb.MemoryError:
                raise gdb.GdbError(f"pt: cannot read the page table at physical address "
                                   f"0x{pa:x}")
            self.tables[pa] = struct.unpack("<512Q", raw)
        return self.tables[pa]


class Leaf:
    __slots__ = ("va", "pa", "size", "entry", "w", "x", "u")


def walk(mem, root, levels, first, last):
    """Present leaves intersecting [first, last] in address order (lower half
    first), with the effective W, U (ANDed) and X (no NX anywhere), as
    vmm/src/pt.c's pt_for_each_leaf reports them."""
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
    """vmm/src/ptdump.c's ptdump_size_text: the largest unit that keeps it whole."""
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
    manifest's owners; each source a sorted list of [start, end) ranges.
    `missing` says why there are none at all, or is None."""

    def __init__(self):
        self.sources, self.missing = [], None
        objfile = kernel_objfile()
        if objfile is None:
            self.missing = "no kernel symbols (canopy-kernel PATH loads them)"
        elif read_value("kmm") is None:
            self.missing = "the kernel's memory is not mapped in this address space"
        else:
            self.sources = [self._vmas(objfile), self._segments(), self._manifest(objfile)]

    @staticmethod
    def _string(ptr):
        try:
            return ptr.string() if int(ptr) else None
        except gdb.error:
            return None

    def _vmas(self, objfile):
        vm = read_value("'vm.c'::vm")
        out = []
        try:
            if vm is None or not bool(vm["ready"]):
                return out
            kinds = kind_names(objfile)
            vma_type = gdb.lookup_type("struct vmm_vma").pointer()
            stack, node = [], vm["space"]["tree"]["root"]
            while stack or int(node):  # in order
                while int(node):
                    stack.append(node)
                    node = node["left"]
                node = stack.pop()
                v = node.cast(vma_type)  # the node is the VMA's first member
                name = self._string(v["attrs"]["name"])
                if name is None:  # label_of's fallback: vm_kind_name, "?" for no kind
                    kind = int(v["attrs"]["kind"])
                    name = kinds[kind] if kind < len(kinds) and kinds[kind] else "?"
                out.append((u64(node["start"]), u64(node["last"]) + 1, name))
                node = node["right"]
        except gdb.error:
            return []
        return out

    def _segments(self):
        bi = read_value("kmm.bi")
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

    def _manifest(self, objfile):
        m = read_value("'manifest_kernel.c'::kernel_manifest")
        out = []
        try:
            if m is None or not int(m["entries"]):
                return out
            names = owner_names(objfile)
            for i in range(int(m["count"])):
                e = m["entries"][i]
                va, owner = u64(e["va"]), int(e["owner"])
                name = names[owner] if owner < len(names) and names[owner] else "unknown"
                out.append((va, va + u64(e["size_bytes"]), name))
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


TLB_FLAGS = (("X", PTE_NX), ("G", PTE_G), ("P", PTE_PS), ("D", PTE_D), ("A", PTE_A),
             ("C", PTE_PCD), ("T", PTE_PWT), ("U", PTE_U), ("W", PTE_W))
TLB_FLAG_BITS = PTE_NX | PTE_G | PTE_PS | PTE_D | PTE_A | PTE_PCD | PTE_PWT | PTE_U | PTE_W


def qemu_tlb_dump(leaves, write):
    """vmm/src/ptdump.c's ptdump_qemu_tlb: QEMU 7.2's `info tlb`, one line per
    present leaf with its own flags; a 4K entry's bit 7 (PAT) is cleared and
    the physical address masked as QEMU masks it."""
    flag_text = {}
    for leaf in leaves:
        e = leaf.entry
        mask = QEMU_MASK_1G if leaf.size == PAGE_1G else QEMU_MASK_2M if leaf.size == PAGE_2M \
            else QEMU_MASK_4K
        if leaf.size == PAGE_4K:
            e &= ~PTE_PS
        bits = e & TLB_FLAG_BITS
        if bits not in flag_text:
            flag_text[bits] = "".join(c if bits & b else "-" for c, b in TLB_FLAGS)
        write(f"{leaf.va:016x}: {e & mask:016x} {flag_text[bits]}\n")


def qemu_mem_dump(leaves, levels, write):
    """vmm/src/ptdump.c's ptdump_qemu_mem: QEMU 7.2's `info mem`, a line
    whenever the effective U/W (or presence) changes along the un-extended
    48-bit walk address; start, end and size sign-extended from bit 47. QEMU
    prints nothing under 5-level paging, and neither does this."""
    if levels != 4:
        return
    end48 = 1 << 48

    def canon(a):
        return a | (MASK64 & ~(end48 - 1)) if a & (1 << 47) else a

    st = {"start": 0, "have": False, "prot": 0, "next": 0}

    def mem_print(end, prot):
        if prot == st["prot"]:
            return
        if st["have"]:
            p = st["prot"]
            write(f"{canon(st['start']):016x}-{canon(end):016x} {canon(end - st['start']):016x} "
                  f"{'u' if p & 4 else '-'}r{'w' if p & 2 else '-'}\n")
        st["have"], st["start"], st["prot"] = prot != 0, end, prot

    for leaf in leaves:
        at = leaf.va & (end48 - 1)
        if at != st["next"]:
            mem_print(st["next"], 0)  # the hole before this leaf
        mem_print(at, 1 | (2 if leaf.w else 0) | (4 if leaf.u else 0))
        st["next"] = at + leaf.size
    if st["next"] != end48:
        mem_print(st["next"], 0)
    mem_print(end48, 0)


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
    """pt [START END | tlb | qemu]: the kernel shell's page-table dumps of the live CR3.

pt            the human dump of the whole address space
pt START END  the human dump of [START, END) (hex addresses)
pt tlb        QEMU's `info tlb`: every present leaf with its own flags
pt qemu       QEMU's `info mem`: ranges with their effective user/write bits

Works at any stop: with paging off it says so; the tables are read as
physical memory; labels need the kernel's symbols and a readable kernel."""

    def __init__(self):
        super().__init__("pt", gdb.COMMAND_DATA)

    @staticmethod
    def parse(arg):
        words = arg.split()
        if not words:
            return "human", 0, MASK64
        if len(words) == 1 and words[0] in ("tlb", "qemu"):
            return words[0], 0, MASK64
        if len(words) == 2:
            try:
                first, end = int(words[0], 16), int(words[1], 16)
            except ValueError:
                raise gdb.GdbError("pt: START and END are hex addresses (usage: pt [START END "
                                   "| tlb | qemu])")
            if not 0 <= first < end <= MASK64 + 1:
                raise gdb.GdbError("pt: END is not above START, or beyond 2^64")
            return "human", first, end - 1
        raise gdb.GdbError("usage: pt [START END | tlb | qemu]")

    def invoke(self, arg, from_tty):
        mode, first, last = self.parse(arg)
        cr0, cr3, cr4, efer = read_cpu()
        out, labels = [], None
        if not cr0 & CR0_PG:
            out.append("paging off (CR0.PG clear): addresses are physical\n" if mode == "human"
                       else "PG disabled\n")  # QEMU's words
        elif not efer & EFER_LMA:
            raise gdb.GdbError("pt: 32-bit paging (CR0.PG set, EFER.LMA clear); pt walks 4- "
                               "and 5-level tables only")
        else:
            levels = 5 if cr4 & CR4_LA57 else 4
            if mode == "human":
                labels = Labels()  # virtual reads: before the walk's physical mode
                recorded_pat = kernel_pat()
                hhdm = read_value("kmm.hhdm")
                base = u64(hhdm) if hhdm is not None and u64(hhdm) else \
                    HHDM_BASE_5L if levels == 5 else HHDM_BASE_4L
                markers = [(0, "user space"),
                           (0x0100000000000000 if levels == 5 else 0x0000800000000000,
                            "non-canonical hole"),
                           (base, "HHDM"), (DYNAMIC_BASE, "dynamic area"), (DYNAMIC_END, "unused"),
                           (KERNEL_BASE, "kernel image")]
            with PhysicalMemory() as mem:
                leaves = walk(mem, cr3 & ADDR_MASK, levels, first, last)
                if mode == "human":
                    pat = pat_for(mem, cr3 & ADDR_MASK, levels, recorded_pat)
                    human_dump(leaves, first, last, markers, labels, pat, out.append)
                elif mode == "tlb":
                    qemu_tlb_dump(leaves, out.append)
                else:
                    qemu_mem_dump(leaves, levels, out.append)
        if labels is not None and labels.missing:
            gdb.write(f"pt: no labels: {labels.missing}\n")
        gdb.write("--- pt begin ---\n" + "".join(out) + "--- pt end ---\n")


CanopyKernel()
Pt()

if kernel_objfile() is None:
    _path = default_kernel_elf()
    if _path:
        gdb.execute(f"symbol-file {_path}", to_string=True)
        print(f"canopy: kernel symbols from {_path}")
    else:
        print("canopy: no kernel.elf loaded; use canopy-kernel PATH")
