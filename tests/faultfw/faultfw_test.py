#!/usr/bin/env python3
"""Boot scenarios for the fault-injecting firmware layer.

Each scenario boots a test image under QEMU + OVMF in which FAULTFW.EFI is
\\EFI\\BOOT\\BOOTX64.EFI, Canopy's real stage 1 is \\canopy\\stage1.efi and
\\canopy\\fault.cfg names the fault. The layer patches the firmware's boot
services for calls from stage 1 and starts it. Every scenario must end one
of three ways, within a bounded time, and never with a hang or a CPU
exception report:

  boot   the kernel reaches `canopy: ready` after `pmm audit: OK`, and QEMU's
         own view of the page tables matches the kernel ELF (no W+X, HHDM NX,
         segments with their permissions, empty lower half);
  error  stage 1 prints its one `canopy: ...` error line and returns to the
         firmware (`faultfw: stage 1 returned <status>`), whose boot manager
         then reports the failed option;
  reset  after ExitBootServices failed for good, stage 1 prints its line and
         resets the machine (QEMU, run with -no-reboot, exits with status 0
         and QMP's SHUTDOWN event says guest-reset: not a power-off, an
         isa-debug-exit or a crash);
  report a CPU exception that the firmware's own handlers could not report:
         stage 1's post-mortem report, then the reset.

Scenarios are grouped; CTest runs one entry per group (--group), and
--scenario runs one by name.
"""

import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "boot"))
import harness  # noqa: E402

# Anything that shows a fault: OVMF's exception dump, the kernel's report or panic.
FAULT = r"!!!! X64 Exception|\*\*\* CPU exception|^panic:|[Tt]riple fault"
OUT_OF_MEMORY = r"out of memory"
CLAIM_FAILED = r"cannot claim \d+ KiB at 0x[0-9a-f]+ for {} \(out of memory\)"
# The free-memory guard's report: something hidden, and every range done.
GUARDED = (r"faultfw: free-guard: [1-9]\d* KiB of free memory in [1-9]\d* ranges made "
           r"not-present in the firmware's page tables \(\d+ tables split, [45]-level "
           r"paging\)\r?$")

# How stage 1 uses the allocation services, in order (all before the final
# GetMemoryMap): 1 pool for canopy.cfg's file info, 2 pages for canopy.cfg,
# 3 pool for the kernel's file info, 4 pages for the kernel file, 5 pool for
# the memory map the ELF check reads, 6 pages for the map buffer (the map
# stage 1 plans with, then the final one), 7 pages for the normaliser's work
# space; then the claims of all it writes after ExitBootServices, each at an
# address it chose (AllocateAddress): 8 the boot info, 9 the PMM's state,
# 10 the boot stack, 11 and on one per kernel segment, and last the page
# tables. The config is optional (a failure there means defaults), the rest
# is not. A claim's failure must give back every claim made before it.


def segment_count(kernel):
    return len(harness.elf_load_segments(kernel))


def alloc_page_tables(args):
    """fault.cfg for the page tables' claim: the last allocation, after every segment's."""
    return f"alloc-fail-nth {11 + segment_count(args.kernel)}"


class Scenario:
    def __init__(self, name, cfg, group, expect, must=(), error=None, mem="512M",
                 cpu="max", extra=(), check=None, seconds=60):
        self.name = name
        self.cfg = cfg            # the line written to \canopy\fault.cfg (or a function of args)
        self.group = group
        self.expect = expect      # "boot", "error" or "reset"
        self.must = must          # regexes the console must show
        self.error = error        # "error"/"reset": what stage 1's line must say
        self.mem = mem
        self.cpu = cpu
        self.extra = list(extra)
        self.check = check        # a function(vm, args, text) for extra checks
        self.seconds = seconds    # bound on the whole boot


def check_many(vm, args, text):
    m = re.findall(r"rewritten maps \(last (\d+) descriptors", text)
    if not m or int(m[-1]) <= 512:
        raise harness.BootTestError(f"the final map had {m[-1] if m else 'no'} descriptors, "
                                    "not more than 512")
    print(f"[check] the final map stage 1 read had {m[-1]} descriptors")


def check_high_memory(vm, args, text):
    m = re.search(r"took (\d+) MiB below 4 GiB, left (\d+) MiB free there; (\d+) MiB free above",
                  text)
    if not m or int(m.group(1)) < 1024 or int(m.group(3)) < 3072:
        raise harness.BootTestError("the layer did not take most memory below 4 GiB: "
                                    f"{m.group(0) if m else 'no report'}")
    # Stage 1's frames come from its PMM, which sees no usable memory below
    # 4 GiB: the segments and the page-table root must lie above.
    phys = [int(p, 16) for p in re.findall(r"-> phys 0x([0-9a-f]+)", text)]
    root = re.search(r"adopted the page tables \(.*root 0x([0-9a-f]+)", text)
    if not phys or not root:
        raise harness.BootTestError("the kernel listed no segments or no page-table root")
    placed = phys + [int(root.group(1), 16)]
    low = [p for p in placed if p < 4 << 30]
    print(f"[check] {m.group(0)}; kernel segments and page-table root at "
          + ", ".join(f"0x{p:x}" for p in placed))
    if low:
        raise harness.BootTestError("stage 1 placed frames below 4 GiB: "
                                    + ", ".join(f"0x{p:x}" for p in low))


BOOTINFO_MAGIC = struct.pack("<Q", 0x4F464E4959504F4E)
PMM_MAGIC = 0x4D4D505950304E43
PMM_ST_RESERVED = 0x60    # pmm/src/pmm.c: the state byte of a reserved frame
PMM_SECTION_SHIFT = 15    # pmm/pmm.h: frames per section, 1 << 15
PMM_NO_SECTION = 0xFFFFFFFF
CANOPY_MEM_RESERVED = 7   # include/canopy/bootinfo.h


def find_bootinfo(ram):
    """The boot info in a dump of physical memory from 0: page aligned, with
    its magic, a version (1 or later: fields are only appended, so the offsets
    read here hold in every version) and a PMM whose magic holds."""
    pos = 0
    while True:
        pos = ram.find(BOOTINFO_MAGIC, pos)
        if pos < 0:
            raise harness.BootTestError("no boot info found in physical memory")
        if pos % 4096 == 0:
            version, = struct.unpack_from("<I", ram, pos + 8)
            pmm_pa, = struct.unpack_from("<Q", ram, pos + 48)
            if version >= 1 and pmm_pa + 8 <= len(ram) and \
                    struct.unpack_from("<Q", ram, pmm_pa)[0] == PMM_MAGIC:
                return pos
        pos += 8


def check_overlap(vm, args, text):
    """The reserved window laid inside usable memory: never handed out.

    Reads all of RAM once the kernel is ready: the canary the layer wrote
    there is intact, the normalised map in the boot info calls every page of
    it reserved, and so does the PMM's state byte for each frame; the same for
    the usable half of the straddling reserved range."""
    m = re.search(r"reserved canary 0x([0-9a-f]+)\+(\d+) pages", text)
    s = re.search(r"reserved straddle 0x([0-9a-f]+)\+(\d+) pages", text)
    if not m or not s:
        raise harness.BootTestError("the layer did not report its overlay")
    canary, canary_pages = int(m.group(1), 16), int(m.group(2))
    straddle, straddle_pages = int(s.group(1), 16), int(s.group(2))
    if canary_pages == 0 or straddle_pages == 0:
        raise harness.BootTestError("the overlay is missing a reserved range")
    tmp = tempfile.mkdtemp(prefix="canopy-ff-")
    try:
        dump = os.path.join(tmp, "ram.bin")
        size = mem_bytes(vm.mem)
        vm.qmp("stop")
        vm.qmp("pmemsave", {"val": 0, "size": size, "filename": dump}, timeout=60)
        with open(dump, "rb") as f:
            ram = f.read()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    problems = []
    for i in range(canary_pages * 4096 // 8):
        want = 0xFA017F1C0FFEE000 ^ (canary + i * 8)
        got, = struct.unpack_from("<Q", ram, canary + i * 8)
        if got != want:
            problems.append(f"canary overwritten at 0x{canary + i * 8:x}")
            break
    bi = find_bootinfo(ram)
    ranges_pa, count = struct.unpack_from("<QI", ram, bi + 32)
    pmm_pa, = struct.unpack_from("<Q", ram, bi + 48)
    # struct pmm (pmm/pmm.h; pmm.c asserts these offsets): base_frame, frame_count, state at
    # 16, slots_offset at 72. The state region starts with the section table.
    base_frame, frame_count, state_pa = struct.unpack_from("<QQQ", ram, pmm_pa + 16)
    slots_offset, = struct.unpack_from("<Q", ram, pmm_pa + 72)

    def pmm_state(f):
        """Frame index f's state byte, through the section table (reserved without a slot)."""
        slot, = struct.unpack_from("<I", ram, state_pa + 4 * (f >> PMM_SECTION_SHIFT))
        if slot == PMM_NO_SECTION:
            return PMM_ST_RESERVED
        mask = (1 << PMM_SECTION_SHIFT) - 1
        return ram[state_pa + slots_offset + (slot << PMM_SECTION_SHIFT) + (f & mask)]
    ranges = [struct.unpack_from("<QQII", ram, ranges_pa + 32 * i) for i in range(count)]

    def check_reserved(lo, pages, what):
        for pa in range(lo, lo + pages * 4096, 4096):
            r = [t for base, n, t, _e in ranges if base <= pa < base + n * 4096]
            if r != [CANOPY_MEM_RESERVED]:
                problems.append(f"{what}: page 0x{pa:x} has normalised type {r}, not reserved")
                return
            f = pa // 4096 - base_frame
            if 0 <= f < frame_count and pmm_state(f) != PMM_ST_RESERVED:
                problems.append(f"{what}: frame 0x{pa:x} has PMM state 0x{pmm_state(f):02x}"
                                f", not reserved (0x{PMM_ST_RESERVED:02x})")
                return
    check_reserved(canary, canary_pages, "reserved window inside usable memory")
    # The straddle's lower half lies in usable memory; its upper half elsewhere.
    check_reserved(straddle, straddle_pages // 2, "reserved range across a usable end")
    if problems:
        raise harness.BootTestError("the overlay's reserved memory was not respected:\n  "
                                    + "\n  ".join(problems))
    print(f"[check] boot info at 0x{bi:x}: {count} ranges; the reserved window "
          f"0x{canary:x}+{canary_pages} pages and the straddle's usable half are reserved in "
          "the map and the PMM, and the canary is intact")


def check_refused_avoided(vm, args, text):
    """The places the layer refused are not where the kernel's segments went."""
    refused = [(int(a, 16), int(n) * 4096) for a, n in
               re.findall(r"AllocatePages at 0x([0-9a-f]+) \((\d+) pages\) from stage 1 -> "
                          r"EFI_NOT_FOUND", text)]
    segs = [(int(p, 16), int(k) * 1024) for p, k in
            re.findall(r"-> phys 0x([0-9a-f]+) +(\d+) KiB", text)]
    if not refused or not segs:
        raise harness.BootTestError(f"{len(refused)} refused places, {len(segs)} segments listed")
    for r, rn in refused:
        for p, pn in segs:
            if p < r + rn and r < p + pn:
                raise harness.BootTestError(f"a segment at 0x{p:x} lies in the refused place "
                                            f"0x{r:x}+{rn // 4096} pages")
    print(f"[check] {len(refused)} refused places, none under the {len(segs)} segments")


def mem_bytes(mem):
    """QEMU's -m value ("256M", "6G", or MiB) in bytes."""
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    mem = str(mem)
    return int(mem[:-1]) * units[mem[-1]] if mem[-1] in units else int(mem) << 20


SCENARIOS = [
    # ExitBootServices
    Scenario("ebs-stale-key", "ebs-stale-key", "ebs", "boot",
             must=[r"faultfw: ExitBootServices call 1 with a stale key \(map changed: yes\) -> "
                   r"EFI_INVALID_PARAMETER",
                   r"faultfw: ExitBootServices call 2 succeeded"]),
    Scenario("ebs-fail-always", "ebs-fail-always", "ebs", "reset",
             must=[r"faultfw: ExitBootServices call 2 -> EFI_INVALID_PARAMETER"],
             error=r"ExitBootServices failed 3 times \(stale memory map key\)"),
    # The stale key again, and the map grew by 40 descriptors: within the room
    # stage 1 keeps in the buffer it planned with (the boot info's copy of the
    # map was claimed for that size), so the retry reads the new map into the
    # same buffer and boots.
    Scenario("ebs-stale-grow", "ebs-stale-grow 40", "ebs", "boot",
             must=[r"faultfw: ExitBootServices call 1 with a stale key \(map changed: yes\) -> "
                   r"EFI_INVALID_PARAMETER"],
             error=r"ExitBootServices failed.*"),
    # Grown by 400 descriptors, past that room: nothing claimed could hold the
    # final map, and after a failed ExitBootServices there is no way back to
    # the firmware. One line and a reset.
    Scenario("ebs-stale-grow-beyond", "ebs-stale-grow 400", "ebs", "reset",
             must=[r"faultfw: ExitBootServices call 1 with a stale key \(map changed: yes\) -> "
                   r"EFI_INVALID_PARAMETER"],
             error=r"ExitBootServices: the memory map outgrew the room claimed for it"),
    # GetMemoryMap
    Scenario("desc-size-64", "desc-size 64", "memmap", "boot",
             must=[r"rewritten maps \(last \d+ descriptors, 64 bytes each\)"]),
    Scenario("desc-size-80", "desc-size 80", "memmap", "boot",
             must=[r"rewritten maps \(last \d+ descriptors, 80 bytes each\)"]),
    Scenario("unsorted", "unsorted", "memmap", "boot",
             must=[r"faultfw: ExitBootServices call 1 succeeded; .* [1-9]\d* rewritten maps"]),
    Scenario("reversed", "reversed", "memmap", "boot",
             must=[r"faultfw: ExitBootServices call 1 succeeded; .* [1-9]\d* rewritten maps"]),
    Scenario("overlap", "overlap", "memmap", "boot", mem="256M", check=check_overlap,
             must=[r"faultfw: ExitBootServices call 1 succeeded; .* [1-9]\d* rewritten maps"]),
    Scenario("many-descriptors", "many-descriptors 64", "memmap", "boot", check=check_many),
    # 16-page pieces: no conventional descriptor can hold the kernel's largest
    # segment, though the runs of adjacent descriptors can.
    Scenario("many-small-descriptors", "many-descriptors 16", "memmap", "boot",
             check=check_many, seconds=90),
    # Allocations (numbers as in the order above)
    Scenario("alloc-1-config-info", "alloc-fail-nth 1", "alloc", "boot",
             must=[r"canopy: canopy\.cfg: cannot read it \(out of memory\); using the defaults"]),
    Scenario("alloc-2-config-data", "alloc-fail-nth 2", "alloc", "boot",
             must=[r"canopy: canopy\.cfg: cannot read it \(out of memory\); using the defaults"]),
    Scenario("alloc-after-2", "alloc-fail-after 2", "alloc", "error", error=OUT_OF_MEMORY),
    Scenario("alloc-4-kernel-data", "alloc-fail-nth 4", "alloc", "error", error=OUT_OF_MEMORY),
    Scenario("alloc-5-memory-map", "alloc-fail-nth 5", "alloc", "error", error=OUT_OF_MEMORY),
    Scenario("alloc-6-final-map", "alloc-fail-nth 6", "alloc", "error", error=OUT_OF_MEMORY),
    Scenario("alloc-7-work-space", "alloc-fail-nth 7", "alloc", "error", error=OUT_OF_MEMORY),
    # The claims: each fails with one line naming it, and every claim before it is given back.
    Scenario("alloc-8-boot-info", "alloc-fail-nth 8", "alloc", "error",
             error=CLAIM_FAILED.format("the boot info")),
    Scenario("alloc-9-pmm-state", "alloc-fail-nth 9", "alloc", "error",
             error=CLAIM_FAILED.format("the PMM's state")),
    Scenario("alloc-10-boot-stack", "alloc-fail-nth 10", "alloc", "error",
             error=CLAIM_FAILED.format("the boot stack")),
    Scenario("alloc-11-first-segment", "alloc-fail-nth 11", "alloc", "error",
             error=CLAIM_FAILED.format(r"segment \d+")),
    Scenario("alloc-last-page-tables", alloc_page_tables, "alloc", "error",
             error=CLAIM_FAILED.format("the page tables")),
    Scenario("alloc-after-7", "alloc-fail-after 7", "alloc", "error",
             error=CLAIM_FAILED.format("the boot info")),
    # A firmware that refuses the places stage 1 chose (its map changed, or
    # lied): each refused place is avoided and the next one below is asked
    # for; after 32 refusals, one line and back to the firmware.
    Scenario("address-refuse-5", "address-refuse 5", "alloc", "boot", check=check_refused_avoided,
             must=[r"faultfw: AllocatePages at 0x[0-9a-f]+ \(\d+ pages\) from stage 1 -> "
                   r"EFI_NOT_FOUND \(injected, 5 of 5\)"]),
    Scenario("address-refuse-all", "address-refuse 1000", "alloc", "error",
             error=r"cannot claim \d+ KiB at 0x[0-9a-f]+ for the boot info \(not found\)"),
    Scenario("pages-over-16", "pages-fail-over 16", "alloc", "error", error=OUT_OF_MEMORY),
    Scenario("pool-over-2048", "pool-fail-over 2048", "alloc", "error", error=OUT_OF_MEMORY),
    # Protocols
    Scenario("no-gop", "no-gop", "protocols", "boot",
             must=[r"faultfw: (HandleProtocol|LocateProtocol|LocateHandleBuffer)\(GOP\) "
                   r"from stage 1",
                   r"canopy: no graphics output; serial console only",
                   r"console: no framebuffer; serial only"]),
    # Without RDRAND/RDSEED stage 1 must ask the firmware, which has a
    # virtio RNG behind the protocol that the layer hides.
    Scenario("no-rng", "no-rng", "protocols", "boot", cpu="max,-rdrand,-rdseed",
             extra=["-device", "virtio-rng-pci"],
             must=[r"faultfw: LocateProtocol\(RNG\) from stage 1"]),
    # A firmware that maps stage 1's code XP (the memory attribute protocol of
    # UEFI 2.10, which this OVMF lacks): stage 1 clears XP on the trampoline
    # page, and sets it back when the failed kernel read returns it to the firmware.
    Scenario("memattr-xp", "memattr-xp 4", "protocols", "error", error=OUT_OF_MEMORY,
             must=[r"canopy: the firmware maps the trampoline page non-executable; changed "
                   r"through the memory attribute protocol",
                   r"faultfw: memory attributes: cleared 0x4000 on (0x[0-9a-f]+) \(4096 bytes\)"
                   r"\s+faultfw: memory attributes: set 0x4000 on \1 \(4096 bytes\)\n"
                   r"(?!faultfw: memory attributes)"]),
    # Usable memory listed above the CPU's physical address width: stage 1 drops
    # it with one line, so the PMM never hands out a frame nothing can reach.
    Scenario("above-maxphyaddr", "above-maxphyaddr", "memmap", "boot",
             must=[r"faultfw: 1 GiB of conventional memory listed at 0x[0-9a-f]+ \((\d+)-bit "
                   r"MAXPHYADDR\)[\s\S]*canopy: the memory map lists 1048576 KiB above the "
                   r"CPU's \1-bit physical address limit \(MAXPHYADDR\); ignored"]),
    # The firmware's exception handlers broken (vectors 0-31 not present, so
    # an exception would end in a silent triple fault) and its RNG protocol
    # faulting, in the first firmware call stage 1 makes (the stack canary's
    # seed): stage 1's own handlers must already be there to report it.
    Scenario("broken-handlers", "broken-handlers", "protocols", "report",
             must=[r"faultfw: the firmware's vectors 0-31 are not present from here on",
                   r"faultfw: LocateProtocol\(RNG\) from stage 1 -> one whose GetRNG faults"],
             error=r"CPU exception in phase stage1-entry: vector 6 \(invalid opcode\), "
                   r"error code 0x0"),
    # Memory: 6 GiB, of which q35 puts 2 GiB below 4 GiB; the layer takes it.
    Scenario("high-memory", "high-memory", "highmem", "boot", mem="6G",
             check=check_high_memory, seconds=120),
    # A freed-memory guard as EDK2 has one: once ExitBootServices succeeded,
    # every page the final map calls free is not-present in the firmware's
    # page tables, which stage 1 runs on until its CR3 switch. Stage 1 may
    # write only memory the firmware gave it. With 1 GiB pages, and without
    # them (qemu64) with RAM above 4 GiB.
    Scenario("free-guard", "free-guard", "guard", "boot", must=[GUARDED]),
    Scenario("free-guard-4g-qemu64", "free-guard", "guard", "boot", mem="4G", cpu="qemu64",
             must=[GUARDED], seconds=120),
]

GROUPS = ["ebs", "memmap", "alloc", "protocols", "highmem", "guard"]


def make_base_image(args):
    """The test image: the layer as the boot loader, stage 1 beside the kernel.

    Each run gets its own file (CTest runs the groups in parallel in one
    workdir; a shared base was rewritten under another group's copy)."""
    os.makedirs(args.workdir, exist_ok=True)
    base = os.path.join(args.workdir, f"faultfw-base-{args.group or 'scenarios'}-{os.getpid()}.img")
    cmd = [args.mkimage, "--out", base, "--efi", args.faultfw, "--kernel", args.kernel,
           "--cfg", args.cfg, "--quiet"]
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
    if r.returncode != 0:
        raise harness.BootTestError(f"mkimage failed: {r.stdout.decode(errors='replace')}")
    mcopy(base, args.efi, "::/canopy/stage1.efi")
    return base


def mcopy(image, src, dst):
    env = dict(os.environ, MTOOLSRC="/dev/null", MTOOLS_SKIP_CHECK="1")
    # mkimage.sh puts the ESP at 1 MiB.
    r = subprocess.run(["mcopy", "-o", "-i", f"{image}@@1048576", src, dst], env=env,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
    if r.returncode != 0:
        raise harness.BootTestError(f"mcopy {src} -> {dst}: "
                                    f"{r.stdout.decode(errors='replace')}")


def scenario_cfg(args, sc):
    return sc.cfg(args) if callable(sc.cfg) else sc.cfg


def scenario_image(args, base, sc):
    image = os.path.join(args.workdir, f"faultfw-{sc.name}.img")
    subprocess.run(["cp", "--sparse=always", base, image], check=True, timeout=60)
    cfg = os.path.join(args.workdir, f"faultfw-{sc.name}.cfg")
    with open(cfg, "w") as f:
        f.write(scenario_cfg(args, sc) + "\n")
    mcopy(image, cfg, "::/canopy/fault.cfg")
    return image


def require(text, patterns):
    for p in patterns:
        m = re.search(p, text, re.MULTILINE)
        if not m:
            raise harness.BootTestError(f"the console never showed /{p}/")
        print(f"[check] {m.group(0).strip()!r}")


def run_boot(vm, args, sc, deadline):
    m = vm.wait_for(r"^canopy: ready\s*$", deadline - time.monotonic(), "`canopy: ready`",
                    fail_if=FAULT + r"|faultfw: stage 1 returned.*|BdsDxe: failed to start.*"
                    r"|canopy: resetting.*")
    boot_checks(vm, args, sc, m)


def boot_checks(vm, args, sc, m):
    """What every boot must show once `canopy: ready` (match m) is there."""
    text = vm.output()
    if not re.search(r"^pmm audit: OK", text[:m.start()], re.MULTILINE):
        raise harness.BootTestError("`canopy: ready` without a `pmm audit: OK` line before it")
    print(f"[check] `pmm audit: OK` and `canopy: ready` after {vm.elapsed():.1f} s")
    require(text, sc.must)
    if sc.check:
        sc.check(vm, args, text)
    check_page_tables(vm, args)


def check_page_tables(vm, args):
    """QEMU's view of the kernel's page tables (the boot_pagetables rules)."""
    vm.qmp("stop")
    mem = harness.parse_info_mem(vm.hmp("info mem"))
    leaves = harness.parse_info_tlb(vm.hmp("info tlb", timeout=60), mem)
    for line in harness.check_address_space(harness.elf_load_segments(args.kernel), leaves, mem):
        print(f"[check] page tables: {line}")


def run_error(vm, args, sc, deadline):
    start = vm.cursor()
    m = vm.wait_for(r"^faultfw: stage 1 returned (\S+)", deadline - time.monotonic(),
                    "stage 1 returning to the layer",
                    fail_if=FAULT + r"|^canopy: (kernel entered|ready).*|canopy: resetting.*")
    status = m.group(1)
    text = vm.output()
    lines = [l.strip() for l in text[start:m.start()].split("\n") if l.startswith("canopy: ")]
    if not lines:
        raise harness.BootTestError("stage 1 printed nothing before returning")
    if not re.search(sc.error, lines[-1]):
        raise harness.BootTestError(f"stage 1's last line {lines[-1]!r} does not say "
                                    f"/{sc.error}/")
    if status not in ("EFI_LOAD_ERROR", "EFI_NOT_FOUND", "EFI_OUT_OF_RESOURCES"):
        raise harness.BootTestError(f"stage 1 returned {status}, not an error status")
    inj = re.search(r"faultfw: injected: (\d+) of (\d+) allocations failed, (\d+) places "
                    r"refused", text)
    if sc.group == "alloc" and (not inj or int(inj.group(1)) + int(inj.group(3)) == 0):
        raise harness.BootTestError("stage 1 failed although no allocation was failed")
    require(text, sc.must)
    print(f"[check] stage 1's error line {lines[-1]!r}, returned {status}")
    # A boot loader that gives up hands the firmware back everything it took.
    left = re.search(r"faultfw: stage 1 left (\d+\+?) allocations behind.*", text)
    if not left:
        raise harness.BootTestError("the layer did not report stage 1's allocations")
    if left.group(1) != "0":
        raise harness.BootTestError(f"stage 1 returned without freeing: {left.group(0).strip()}"
                                    + "".join("\n    " + l for l in
                                              re.findall(r"^faultfw:   .*", text, re.M)))
    print(f"[check] {left.group(0).strip()!r}")
    m = vm.wait_for(r"BdsDxe: failed to start Boot\d+.*", 20,
                    "the boot manager reporting the failed option")
    print(f"[check] back in the firmware: {m.group(0).strip()!r}")


def run_reset(vm, args, sc, deadline):
    m = vm.wait_for(r"^canopy: " + sc.error, deadline - time.monotonic(), "stage 1's error line",
                    fail_if=FAULT + r"|^canopy: (kernel entered|ready).*|faultfw: stage 1 "
                    r"returned.*")
    print(f"[check] {m.group(0).strip()!r}")
    vm.wait_for(r"^canopy: resetting", 10, "the reset notice")
    status = vm.wait_exit(max(5, deadline - time.monotonic()))
    print(f"[check] QEMU exited with status {status} after {vm.elapsed():.1f} s")
    harness.check_guest_reset(vm, status)
    require(vm.output(), sc.must)
    vm.expect_absent(FAULT)


def run_report(vm, args, sc, deadline):
    m = vm.wait_for(r"^canopy: " + sc.error + r"\n", deadline - time.monotonic(),
                    "stage 1's exception report",
                    fail_if=FAULT + r"|^canopy: (stage 1|kernel entered|ready).*|faultfw: stage 1 "
                    r"returned.*")
    print(f"[check] {m.group(0).strip()!r}")
    rip = vm.wait_for(r"^canopy: RIP 0x[0-9a-f]+.*\n", 5, "the RIP line")
    print(f"[check] {rip.group(0).strip()!r}")
    vm.wait_for(r"^canopy: (?:not )?recorded.*; resetting in 5 seconds\n", 5, "the reset notice")
    status = vm.wait_exit(max(10, deadline - time.monotonic()))
    print(f"[check] QEMU exited with status {status} after {vm.elapsed():.1f} s")
    harness.check_guest_reset(vm, status)
    require(vm.output(), sc.must)
    vm.expect_absent(FAULT)


def run_boot_or_reset(vm, args, sc, deadline):
    m = vm.wait_for(r"^canopy: (ready|resetting).*", deadline - time.monotonic(),
                    "`canopy: ready` or stage 1's reset notice",
                    fail_if=FAULT + r"|faultfw: stage 1 returned.*|BdsDxe: failed to start.*")
    outcome = m.group(1)
    print(f"[check] outcome: {outcome}")
    if outcome == "ready":
        boot_checks(vm, args, sc, m)
        return
    lines = [l.strip() for l in vm.output()[:m.start()].split("\n") if l.startswith("canopy: ")]
    if not lines or not re.search(sc.error, lines[-1]):
        raise harness.BootTestError(f"stage 1's line before the reset notice, "
                                    f"{lines[-1] if lines else None!r}, does not say /{sc.error}/")
    print(f"[check] stage 1's error line {lines[-1]!r}")
    status = vm.wait_exit(max(5, deadline - time.monotonic()))
    print(f"[check] QEMU exited with status {status} after {vm.elapsed():.1f} s")
    harness.check_guest_reset(vm, status)
    require(vm.output(), sc.must)
    vm.expect_absent(FAULT)


def run_scenario(args, base, sc):
    cfg = scenario_cfg(args, sc)
    print(f"\n=== {sc.name}: fault.cfg `{cfg}`, expect {sc.expect} ===", flush=True)
    image = scenario_image(args, base, sc)
    vm = harness.Machine(image, ovmf_code=args.ovmf_code, ovmf_vars=args.ovmf_vars,
                         mem=sc.mem, cpu=sc.cpu, extra_args=sc.extra, log_dir=args.workdir,
                         name=f"faultfw-{sc.name}", echo=not args.quiet)
    t0 = time.monotonic()
    deadline = t0 + sc.seconds
    try:
        with vm:
            vm.qmp("query-status")  # QMP up from the start: a reset's event is seen
            vm.wait_for(r"faultfw: scenario " + re.escape(cfg.split()[0]), 40,
                        "the layer starting", fail_if=r"faultfw: cannot.*")
            vm.wait_for(r"faultfw: stage 1 loaded.*", 20, "stage 1 loaded",
                        fail_if=r"faultfw: cannot.*")
            {"boot": run_boot, "error": run_error, "reset": run_reset, "report": run_report,
             "boot|reset": run_boot_or_reset}[sc.expect](
                vm, args, sc, deadline)
    except harness.BootTestError as e:
        if args.quiet:
            print(f"console log: {os.path.join(args.workdir, f'faultfw-{sc.name}.serial.log')}")
        print(f"FAIL {sc.name} ({time.monotonic() - t0:.1f} s): {e}", flush=True)
        return False
    finally:
        try:
            os.remove(image)
        except OSError:
            pass
    print(f"PASS {sc.name} ({time.monotonic() - t0:.1f} s)", flush=True)
    return True


def main():
    p = harness.arg_parser(__doc__)
    p.add_argument("--faultfw", help="FAULTFW.EFI")
    p.add_argument("--group", choices=GROUPS)
    p.add_argument("--scenario", action="append", help="run this scenario (repeatable)")
    p.add_argument("--list-groups", action="store_true",
                   help="print each group and its CTest timeout in seconds")
    args = p.parse_args()
    if args.list_groups:
        for g in GROUPS:
            total = sum(s.seconds + 15 for s in SCENARIOS if s.group == g)
            print(f"{g} {total + 60}")
        return 0
    chosen = [s for s in SCENARIOS
              if (args.group and s.group == args.group) or
              (args.scenario and s.name in args.scenario)]
    if args.scenario:
        unknown = set(args.scenario) - {s.name for s in SCENARIOS}
        if unknown:
            p.error(f"unknown scenario(s): {', '.join(sorted(unknown))}")
    if not chosen:
        p.error("nothing to run: give --group or --scenario")
    for path in (args.faultfw, args.efi, args.kernel, args.cfg, args.mkimage):
        if not path or not os.path.isfile(path):
            print(f"FAIL: missing input {path!r}")
            return 1
    base = make_base_image(args)
    try:
        results = [(s.name, run_scenario(args, base, s)) for s in chosen]
    finally:
        os.unlink(base)
    failed = [n for n, ok in results if not ok]
    print(f"\n{len(results) - len(failed)} passed, {len(failed)} failed"
          + (f": {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
