#!/usr/bin/env python3
"""Checks the boot harness's parsers and page-table rules on synthetic input,
so that a boot test's verdict can be trusted: each rule must reject the layout
that breaks it and accept the one that keeps it."""

import os
import re
import struct
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import shell  # noqa: E402

KB, MB, GB = 1 << 10, 1 << 20, 1 << 30

# A kernel like Canopy's: text R+X, rodata R, data+bss R+W.
SEGMENTS = [
    harness.Segment(0xFFFFFFFF80000000, 0x3000, harness.PF_R | harness.PF_X),
    harness.Segment(0xFFFFFFFF80003000, 0x1800, harness.PF_R),
    harness.Segment(0xFFFFFFFF80005000, 0x2100, harness.PF_R | harness.PF_W),
]


def tlb_line(va, pa, flags):
    return f"{va:016x}: {pa:016x} {flags}"


def good_tlb():
    """`info tlb` of a correct address space, and its `info mem`."""
    lines = []
    # HHDM: 1 GiB of RAM with one 1 GiB page.
    lines.append(tlb_line(0xFFFF800000000000, 0, "X-P-A---W"))
    # A stack in the dynamic area, NX.
    lines.append(tlb_line(0xFFFFC00000001000, 0x300000, "X--DA---W"))
    pa = 0x200000
    for s in SEGMENTS:
        for va in range(s.start, s.end, 0x1000):
            flags = ("-" if s.executable else "X") + "---A---" + ("W" if s.writable else "-")
            lines.append(tlb_line(va, pa, flags))
            pa += 0x1000
    mem = [
        "ffff800000000000-ffff800040000000 0000000040000000 -rw",
        "ffffc00000001000-ffffc00000002000 0000000000001000 -rw",
        "ffffffff80000000-ffffffff80005000 0000000000005000 -r-",
        "ffffffff80005000-ffffffff80008000 0000000000003000 -rw",
    ]
    return lines, mem


def check(lines, mem):
    ranges = harness.parse_info_mem("\n".join(mem))
    leaves = harness.parse_info_tlb("\n".join(lines), ranges)
    return harness.check_address_space(SEGMENTS, leaves, ranges)


def expect_failure(lines, mem, needle):
    try:
        check(lines, mem)
    except harness.BootTestError as e:
        assert needle in str(e), f"failure message lacks {needle!r}: {e}"
        return
    raise AssertionError(f"accepted a layout that should fail with {needle!r}")


def test_good_layout_passes():
    lines, mem = good_tlb()
    report = check(lines, mem)
    assert any("W+X leaves: 0" in r for r in report), report


def test_lower_half_leaf_fails():
    lines, mem = good_tlb()
    lines.insert(0, tlb_line(0x1000, 0x1000, "X-------W"))
    expect_failure(lines, mem, "lower half mapped")


def test_wx_leaf_fails():
    lines, mem = good_tlb()
    lines.append(tlb_line(0xFFFFC00000005000, 0x400000, "-------UW"))
    expect_failure(lines, mem, "writable and executable")


def test_executable_hhdm_fails():
    lines, mem = good_tlb()
    lines[0] = tlb_line(0xFFFF800000000000, 0, "--P-A----")
    expect_failure(lines, mem, "HHDM leaf executable")


def test_missing_hhdm_fails():
    lines, mem = good_tlb()
    del lines[0]
    expect_failure(lines, mem[1:], "nothing mapped at the HHDM")


def test_extra_page_in_kernel_window_fails():
    lines, mem = good_tlb()
    lines.append(tlb_line(0xFFFFFFFF80008000, 0x900000, "X---A----"))
    expect_failure(lines, mem, "not inside any PT_LOAD segment")


def test_missing_segment_page_fails():
    lines, mem = good_tlb()
    lines = [l for l in lines if not l.startswith("ffffffff80004000")]
    expect_failure(lines, mem, "1 of 2 pages mapped")


def test_writable_rodata_fails():
    lines, mem = good_tlb()
    lines = [l[:-1] + "W" if l.startswith("ffffffff80003000") else l for l in lines]
    expect_failure(lines, mem, "writable=True but segment")


def test_executable_data_fails():
    lines, mem = good_tlb()
    lines = [l[:35] + "-" + l[36:] if l.startswith("ffffffff80005000") else l for l in lines]
    expect_failure(lines, mem, "executable=True but segment")


def test_non_executable_text_fails():
    lines, mem = good_tlb()
    lines = [l[:35] + "X" + l[36:] if l.startswith("ffffffff80001000") else l for l in lines]
    expect_failure(lines, mem, "executable=False but segment")


def test_effective_write_outside_data_fails():
    lines, mem = good_tlb()
    mem[2] = "ffffffff80000000-ffffffff80005000 0000000000005000 -rw"
    expect_failure(lines, mem, "writable outside the PF_W segments")


def test_large_page_sizes():
    mem = harness.parse_info_mem("ffff800000000000-ffff800080000000 0000000080000000 -rw\n"
                                 "ffffc00000000000-ffffc00000200000 0000000000200000 -rw")
    leaves = harness.parse_info_tlb("\n".join([
        tlb_line(0xFFFF800000000000, 0, "X-P-A---W"),
        tlb_line(0xFFFF800040000000, 0x40000000, "X-P-A---W"),
        tlb_line(0xFFFFC00000000000, 0x800000, "X-P-A---W"),  # alone, but 2 MiB
    ]), mem)
    assert [l.size for l in leaves] == [GB, GB, 2 * MB], [l.size for l in leaves]
    # Two 2 MiB pages at the start of a GiB: the first is not 1 GiB.
    leaves = harness.parse_info_tlb("\n".join([
        tlb_line(0xFFFF800000000000, 0, "X-P-A---W"),
        tlb_line(0xFFFF800000200000, 0x200000, "X-P-A---W"),
    ]), mem)
    assert [l.size for l in leaves] == [2 * MB, 2 * MB]


def test_info_mem_sign_extension():
    ranges = harness.parse_info_mem("ffffffff80000000-0000000000000000 0000000080000000 -r-")
    assert ranges == [(0xFFFFFFFF80000000, 1 << 64, False, False)], ranges


def test_unexpected_lines_rejected():
    for text, fn in (("garbage", harness.parse_info_tlb), ("0-1 2 xyz", harness.parse_info_mem)):
        try:
            fn(text)
        except harness.BootTestError:
            continue
        raise AssertionError(f"{text!r} accepted")


# Phase names for the parser's test: it takes whatever names the kernel prints.
PHASE_NAMES = [f"phase-{i}" for i in range(12)]


def boottime_text(times_ms, frames="page tables: 16 frames, minimum 16 (equal)"):
    """`boottime`'s output with the given times since start, one per phase; a
    time None is a phase the kernel did not record, a string its note."""
    lines = ["boottime: TSC at 2000000000 Hz",
             "  phase                         since start             step"]
    prev = 0.0
    for name, t in zip(PHASE_NAMES, times_ms):
        if t is None or isinstance(t, str):
            lines.append(f"  {name:<24} {t or '(not recorded)':>16}")
            continue
        lines.append(f"  {name:<24} {t:13.3f} ms {t - prev:13.3f} ms")
        prev = t
    return "\n".join(lines + [frames]) + "\n"


def test_parse_boottime():
    times = [0.0, 4.5, 6.0, 8.25, 11.0, 20.0, 23.0, 25.5, 34.0, 45.0, 47.0, 75.125]
    phases, frames = shell.parse_boottime(boottime_text(times))
    assert [p[0] for p in phases] == PHASE_NAMES, phases
    assert [p[1] for p in phases] == [round(t * 1e6) for t in times], phases
    assert phases[-1][2] == 28125000 and frames == (16, 16), (phases[-1], frames)
    assert shell.parse_boottime(boottime_text(times, "page tables: 17 frames, minimum 16 "
                                                     "(NOT the minimum)"))[1] == (17, 16)
    bad = {
        "a phase missing": boottime_text(times[:-1] + [None]),
        "a phase out of order": boottime_text(times[:-1] + ["(out of order)"]),
        "no phase table": boottime_text([]),
        "out of order": boottime_text(times[:5] + [10.0] + times[6:]),
        "over a minute": boottime_text(times[:-1] + [60001.0]),
        "no page-table line": boottime_text(times, ""),
        "no TSC rate": boottime_text(times).replace("TSC at 2000000000 Hz",
                                                    "TSC frequency unknown"),
    }
    for why, text in bad.items():
        try:
            shell.parse_boottime(text)
        except harness.BootTestError:
            continue
        raise AssertionError(f"{why}: accepted")


def build_elf(phdrs):
    """An ELF64 header plus program headers (type, flags, vaddr, memsz)."""
    header = bytearray(64)
    header[:6] = b"\x7fELF\x02\x01"
    struct.pack_into("<Q", header, 0x20, 64)
    struct.pack_into("<HH", header, 0x36, 56, len(phdrs))
    body = b"".join(struct.pack("<IIQQQQQQ", t, f, 0, va, va, sz, sz, 0x1000)
                    for t, f, va, sz in phdrs)
    return bytes(header) + body


def test_elf_load_segments():
    data = build_elf([(1, 5, 0xFFFFFFFF80000000, 0x1234), (6, 4, 0x40, 0x38),
                      (1, 6, 0xFFFFFFFF80002000, 0), (1, 6, 0xFFFFFFFF80003010, 0x10)])
    with tempfile.NamedTemporaryFile(delete=False) as f:
        f.write(data)
    try:
        segs = harness.elf_load_segments(f.name)
    finally:
        os.unlink(f.name)
    # PT_PHDR and the empty PT_LOAD are skipped; pages are rounded outward.
    assert [(s.start, s.end, s.perms()) for s in segs] == [
        (0xFFFFFFFF80000000, 0xFFFFFFFF80002000, "R-X"),
        (0xFFFFFFFF80003000, 0xFFFFFFFF80004000, "RW-"),
    ], segs


def test_elf_bad_magic_rejected():
    with tempfile.NamedTemporaryFile(delete=False) as f:
        f.write(b"\x7fELG" + bytes(60))
    try:
        harness.elf_load_segments(f.name)
    except harness.BootTestError:
        return
    finally:
        os.unlink(f.name)
    raise AssertionError("bad magic accepted")


def test_console_cleaning_is_prefix_stable():
    raw = b"\x1b[2J\x1b[01;01HBdsDxe: starting\r\ncanopy: \x1b[1mready\x1b[0m\r\n"
    full = harness.clean_console_text(raw)
    assert full == "BdsDxe: starting\ncanopy: ready\n", repr(full)
    for cut in range(len(raw)):
        part = harness.clean_console_text(raw[:cut])
        assert full.startswith(part), (cut, part)


def test_read_ppm():
    with tempfile.NamedTemporaryFile(delete=False) as f:
        f.write(b"P6\n# c\n2 1\n255\n" + bytes([1, 2, 3, 4, 5, 6]))
    try:
        assert harness.read_ppm(f.name) == (2, 1, bytes([1, 2, 3, 4, 5, 6]))
    finally:
        os.unlink(f.name)


def test_always_failure_catches_bad_checks_on_whole_lines_only():
    bad = re.compile(harness.ALWAYS_FAILURE, re.MULTILINE)
    for line in ["pt check: 2 differences\n", "pt check: W+X ffff800000000000-ffff800000001000 4K\n",
                 "pmm audit: 3 differences\n", "pmm audit: 12 frames owned by heap, 10 expected\n"]:
        assert bad.search("canopy: x\n" + line), f"not caught: {line!r}"
    for text in ["pt check: OK (42 mappings)\n", "pmm audit: OK (page tables 13)\n",
                 "pt check: ", "pt check: O", "pmm audit: ", "canopy> pt check: 1 differences\n"]:
        assert not bad.search(text), f"caught by mistake: {text!r}"


def event(name, reason, guest=True):
    return {"event": name, "data": {"guest": guest, "reason": reason},
            "timestamp": {"seconds": 0, "microseconds": 0}}


def test_check_event_wants_the_guests_own_reset():
    reset = event("SHUTDOWN", "guest-reset")
    assert harness.check_event([event("RTC_CHANGE", None), reset], "guest-reset") is reset
    again = event("RESET", "guest-reset")
    assert harness.check_event([again], "guest-reset", event="RESET") is again
    for events in ([], [event("RTC_CHANGE", None)],          # QEMU gone without a word
                   [event("SHUTDOWN", "guest-shutdown")],     # a power-off
                   [event("SHUTDOWN", "host-qmp-quit", guest=False)],
                   [event("SHUTDOWN", "guest-reset", guest=False)],
                   [event("RESET", "guest-reset")],           # a reset that rebooted
                   [event("SHUTDOWN", "guest-shutdown"), reset]):  # the first one counts
        try:
            harness.check_event(events, "guest-reset")
        except harness.BootTestError:
            continue
        raise AssertionError(f"accepted as a guest reset: {events}")


def test_events_until_exit_refused_without_qmp():
    vm = harness.Machine("unused.img", echo=False)
    try:
        harness.events_until_exit(vm, 1)
    except harness.BootTestError:
        return
    raise AssertionError("read events without a QMP connection")


def fake_console(*pieces):
    """A Machine whose "QEMU" is a child process that prints `pieces` with a
    pause before each: lines arriving in parts, as they do over a serial port.
    The output has no end (EOF would make the last line complete)."""
    script = ("import sys, time\n"
              f"for p in {list(pieces)!r}:\n"
              "    time.sleep(0.2)\n"
              "    sys.stdout.write(p)\n"
              "    sys.stdout.flush()\n"
              "time.sleep(30)\n")  # stays up like QEMU; close() kills it
    vm = harness.Machine("unused.img", echo=False)
    vm.proc = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE)
    vm._start_reader()
    return vm


def test_wait_for_never_matches_a_line_still_arriving():
    vm = fake_console("faultfw: stage 1 returned E", "FI_LOAD_ERROR\r\n")
    try:
        m = vm.wait_for(r"^faultfw: stage 1 returned (\S+)", 10)
        assert m.group(1) == "EFI_LOAD_ERROR", f"matched a partial line: {m.group(0)!r}"
    finally:
        vm.close()


def test_wait_for_fail_if_sees_whole_lines_only():
    # "pt check: O" then "K (...)": a bad-line pattern must not fire on the part.
    vm = fake_console("pt check: O", "K (11 mappings)\n", "canopy: ready\n")
    try:
        vm.wait_for(r"^canopy: ready\n", 10, fail_if=r"^pt check: (?!OK).*")
    finally:
        vm.close()
    vm = fake_console("pt check: O", "NE (1 difference)\n", "canopy: ready\n")
    try:
        vm.wait_for(r"^canopy: ready\n", 10)
    except harness.BootTestError as e:
        assert "pt check: ONE" in str(e), str(e)
    else:
        raise AssertionError("a bad `pt check` line went unnoticed")
    finally:
        vm.close()


def test_wait_for_partial_finds_a_prompt():
    vm = fake_console("canopy: ready\n", "canopy> ")
    try:
        try:
            vm.wait_for(r"canopy> ", 1)
        except harness.BootTestError:
            pass
        else:
            raise AssertionError("matched an unfinished line without partial=True")
        m = vm.wait_for(r"canopy> ", 10, partial=True)
        assert m.start() == len("canopy: ready\n"), m.start()
    finally:
        vm.close()


def main():
    tests = [(n, f) for n, f in sorted(globals().items()) if n.startswith("test_")]
    passed = failed = 0
    for name, fn in tests:
        try:
            fn()
        except Exception as e:  # noqa: BLE001 - report every kind of failure
            failed += 1
            print(f"FAIL {name}: {type(e).__name__}: {e}")
        else:
            passed += 1
            print(f"ok   {name}")
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
