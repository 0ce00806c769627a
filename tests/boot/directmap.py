"""The direct map and the device mappings as QEMU sees them, for the boot tests.

The kernel's own `pt check` states the direct map's rule; these checks apply
it to QEMU's `info tlb` instead, against the memory map the firmware gave
(the shell's `memmap`), so a kernel that checked itself wrongly still fails:

  - every leaf of the HHDM maps hhdm_base + p to p, write-back (neither PCD
    nor PWT), not executable, and every byte of p is RAM-like memory;
  - a leaf smaller than the largest page size is used only where the next
    larger page would cover something else: another memory type, a hole, or a
    frame whose alias has other permissions (smaller pages at the edges);
  - the framebuffer's leaves map it page by page, writable, not executable,
    with PAT index 5 (write-combining under Canopy's IA32_PAT): PWT set and
    PCD clear in `info tlb`, which hides the PAT bit, and the PAT bit itself
    in the entry read from guest memory with `xp`.

Standard library only.
"""

import re

import harness

KIB4 = 0x1000
MIB2 = 2 << 20
GIB = 1 << 30
RAM_TYPES = {"usable", "reclaimable", "acpi-reclaim", "acpi-nvs", "persistent"}
PTE_PAT_4K = 1 << 7
PTE_PAT_LARGE = 1 << 12
PTE_PS = 1 << 7
ADDR_MASK = 0x000FFFFFFFFFF000


def parse_memmap(out):
    """The shell's `memmap` rows as [(start, end, canopy_type)], end exclusive."""
    rows = re.findall(r"^  ([0-9a-f]{16})-([0-9a-f]{16}) +\S+ (\S+) ", out, re.MULTILINE)
    if not rows:
        raise harness.BootTestError(f"memmap: no rows:\n{out}")
    return [(int(a, 16), int(b, 16) + 1, kind) for a, b, kind in rows]


def ram_runs(memmap):
    """The RAM-like ranges, merged where they touch: [(start, end)]."""
    runs = []
    for start, end, kind in sorted(memmap):
        if kind not in RAM_TYPES:
            continue
        if runs and runs[-1][1] == start:
            runs[-1] = (runs[-1][0], end)
        else:
            runs.append((start, end))
    return runs


def in_ram(runs, start, end):
    return any(a <= start and end <= b for a, b in runs)


def flags_of(leaf):
    """(PCD, PWT) of an `info tlb` leaf: its C and T columns."""
    cols = leaf.text.split()[-1]
    return cols[5] == "C", cols[6] == "T"


def hhdm_leaves(leaves):
    return [l for l in leaves if harness.HHDM_START <= l.va < harness.HHDM_END]


def check_ram_only(leaves, memmap):
    """Every HHDM leaf maps RAM at its direct-map address, write-back, NX."""
    runs = ram_runs(memmap)
    problems = []
    hhdm = hhdm_leaves(leaves)
    for l in hhdm:
        pa = l.va - harness.HHDM_START
        pcd, pwt = flags_of(l)
        if l.pa != pa:
            problems.append(f"{l}: maps {l.pa:x}, not its direct-map address {pa:x}")
        elif not in_ram(runs, pa, pa + l.size):
            problems.append(f"{l}: {pa:x}-{pa + l.size:x} is not all RAM in the memory map")
        if pcd or pwt:
            problems.append(f"{l}: not write-back (PCD {int(pcd)}, PWT {int(pwt)})")
        if not l.nx:
            problems.append(f"{l}: executable")
    if not hhdm:
        problems.append("no HHDM leaf at all")
    if problems:
        raise harness.BootTestError("QEMU's view of the direct map:\n  " +
                                    "\n  ".join(problems[:20]))
    mapped = sum(l.size for l in hhdm)
    ram = sum(b - a for a, b in runs if a < harness.HHDM_END - harness.HHDM_START)
    return (f"direct map: {len(hhdm)} leaves, {mapped >> 20} MiB, each inside RAM "
            f"({ram >> 20} MiB of RAM-like memory in {len(runs)} runs), write-back, NX")


def trampoline_of(text):
    """The trampoline page's physical address from the kernel's boot log, or None."""
    m = re.search(r"^kmm: trampoline page 0x([0-9a-f]+) unmapped", text, re.MULTILINE)
    return int(m.group(1), 16) if m else None


def check_largest_pages(leaves, memmap, max_page, exempt=()):
    """A page smaller than max_page only where the next size up would cover
    something that is not the same RAM with the same permissions. The regions
    holding a physical address in `exempt` may keep smaller pages: the
    trampoline frame's alias, read-only at hand-off and writable again once
    the kernel dropped the page, stays in the 4 KiB pages stage 1 gave it (no
    page is ever merged back into a larger one, as in Linux's direct map)."""
    runs = ram_runs(memmap)
    hhdm = hhdm_leaves(leaves)
    by_region = {}
    for l in hhdm:
        if l.size >= max_page:
            continue
        bigger = MIB2 if l.size == KIB4 else GIB
        by_region.setdefault((bigger, l.va // bigger * bigger), []).append(l)
    problems = []
    for (bigger, va), inside in sorted(by_region.items()):
        pa = va - harness.HHDM_START
        if not in_ram(runs, pa, pa + bigger) or any(pa <= e < pa + bigger for e in exempt):
            continue
        if sum(l.size for l in inside) != bigger:
            continue  # part of it unmapped (an alias elsewhere?) is a problem the RAM check sees
        kinds = {(l.writable, l.nx, flags_of(l)) for l in inside}
        if len(kinds) == 1:
            problems.append(f"{va:016x}: {len(inside)} leaves where one {bigger >> 20} MiB page "
                            f"fits (all RAM, one set of permissions)")
    if problems:
        raise harness.BootTestError("the direct map uses smaller pages than it could:\n  " +
                                    "\n  ".join(problems[:20]))
    sizes = {}
    for l in hhdm:
        sizes[l.size] = sizes.get(l.size, 0) + 1
    text = ", ".join(f"{n} x {'1G' if s == GIB else '2M' if s == MIB2 else '4K'}"
                     for s, n in sorted(sizes.items(), reverse=True))
    return f"direct map pages: {text}; smaller pages only at edges of RAM or of an alias"


def qemu_walk(vm, cr3, va):
    """The leaf entry for va and its page size, read from guest memory with
    `xp` (4-level paging), or (None, 0) if not mapped."""
    table = cr3 & ADDR_MASK
    for level, shift in ((4, 39), (3, 30), (2, 21), (1, 12)):
        index = (va >> shift) & 511
        out = vm.hmp(f"xp /1gx {table + index * 8:#x}")
        m = re.search(r":\s+0x([0-9a-f]+)", out)
        if not m:
            raise harness.BootTestError(f"xp: unexpected output {out!r}")
        entry = int(m.group(1), 16)
        if not entry & 1:
            return None, 0
        if level == 1 or (level <= 3 and entry & PTE_PS):
            return entry, 1 << shift
        table = entry & ADDR_MASK
    return None, 0


def cr3_of(vm):
    m = re.search(r"CR3=([0-9a-f]+)", vm.hmp("info registers"))
    if not m:
        raise harness.BootTestError("`info registers` shows no CR3")
    return int(m.group(1), 16)


def max_page_of(text):
    """The direct map's largest page as the banner states it (1 GiB with pdpe1gb)."""
    m = re.search(r"^paging: \d levels, HHDM at 0x[0-9a-f]{16} \((1 GiB|2 MiB) pages\)$", text,
                  re.MULTILINE)
    if not m:
        raise harness.BootTestError("no `paging:` line in the banner")
    return GIB if m.group(1) == "1 GiB" else MIB2


def framebuffer_of(text):
    """(phys, va, bytes) from the kernel banner's framebuffer line, or None."""
    m = re.search(r"^framebuffer: \d+x\d+, pitch \d+, \d+ bpp at phys 0x([0-9a-f]+) \((\d+) KiB\), "
                  r"mapped at 0x([0-9a-f]{16}) write-combining", text, re.MULTILINE)
    if not m:
        return None
    return int(m.group(1), 16), int(m.group(3), 16), int(m.group(2)) << 10


def check_framebuffer(vm, leaves, fb):
    """The framebuffer's leaves (guest stopped): each page mapped onto its
    frame, W, NX, PWT without PCD in `info tlb`, and the PAT bit set in the
    entries `xp` reads at its first and last page."""
    pa, va, size = fb
    first, end = va & ~(KIB4 - 1), (va + size + KIB4 - 1) & ~(KIB4 - 1)
    mine = [l for l in leaves if first <= l.va < end]
    problems = []
    if sum(l.size for l in mine) != end - first:
        problems.append(f"{len(mine)} leaves cover {sum(l.size for l in mine):#x} of "
                        f"{end - first:#x} bytes")
    for l in mine:
        pcd, pwt = flags_of(l)
        want = (pa & ~(KIB4 - 1)) + (l.va - first)
        if l.pa != want or not l.writable or not l.nx or pcd or not pwt or l.large:
            problems.append(f"{l}: want a 4K leaf onto {want:016x}, W, NX, T without C")
    cr3 = cr3_of(vm)
    for page in (first, end - KIB4):
        entry, size = qemu_walk(vm, cr3, page)
        if entry is None:
            problems.append(f"xp walk: {page:016x} not mapped")
            continue
        pat = entry & (PTE_PAT_4K if size == KIB4 else PTE_PAT_LARGE)
        index = (4 if pat else 0) | (2 if entry & 0x10 else 0) | (1 if entry & 0x8 else 0)
        if index != 5:
            problems.append(f"xp walk: {page:016x} entry {entry:016x} selects PAT index {index}, "
                            "not 5 (write-combining)")
    if problems:
        raise harness.BootTestError("the framebuffer's mapping:\n  " + "\n  ".join(problems[:20]))
    return (f"framebuffer: {len(mine)} 4K leaves at {first:016x} onto {pa:016x}, W, NX, PWT "
            f"without PCD, and PAT index 5 (WC) in the entries read with xp")
