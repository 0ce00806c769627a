#!/usr/bin/env python3
"""Checks gdb_pt.py on synthetic input, so that boot_gdb_stops' and
boot_shell_gdb's verdicts can be trusted: the comparison of a human `pt` dump
with `info tlb` and `info mem` must accept a dump that describes them and
reject each kind of wrong one; MI strings must decode as GDB escapes them."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gdb_pt  # noqa: E402
import harness  # noqa: E402

# Two 2M pages RWX, two 4K pages read-only NX at scattered frames, one 1G
# page global, writable and NX in the upper half.
TLB = """\
0000000000000000: 0000000000000000 --P-----W
0000000000200000: 0000000000200000 --PDA---W
0000000000400000: 0000000000005000 X--------
0000000000401000: 0000000000009000 X---A----
ffff800000000000: 0000000000000000 XGP-A---W
"""
MEM = """\
0000000000000000-0000000000400000 0000000000400000 -rw
0000000000400000-0000000000402000 0000000000002000 -r-
ffff800000000000-ffff800040000000 0000000040000000 -rw
"""
DUMP = """\
---[ user space ]---
0000000000000000-0000000000400000     4M 0000000000000000 2M x2     RWX kernel - WB
0000000000400000-0000000000402000     8K not contiguous   4K x2     R-- kernel - WB
---[ non-canonical hole ]---
---[ HHDM ]---
ffff800000000000-ffff800040000000     1G 0000000000000000 1G x1     RW- kernel G WB  hhdm
W+X mappings: FAILED, 1024 pages
"""


def expect_rejected(dump, needle, tlb=TLB, mem=MEM):
    try:
        gdb_pt.check_human(dump, tlb, mem)
    except harness.BootTestError as e:
        assert needle in str(e), f"the message lacks {needle!r}: {e}"
        return
    raise AssertionError(f"accepted a dump that should fail with {needle!r}:\n{dump}")


def test_matching_dump_passes():
    summary = gdb_pt.check_human(DUMP, TLB, MEM)
    assert summary.startswith("3 lines cover the 5 leaves"), summary


def test_five_level_without_info_mem_passes():
    assert "info mem" not in gdb_pt.check_human(DUMP, TLB, "")


def test_wrong_physical_address_rejected():
    expect_rejected(DUMP.replace("     4M 0000000000000000", "     4M 0000000000200000"),
                    "its page 0 maps 0000000000200000")


def test_contiguous_claim_on_scattered_frames_rejected():
    expect_rejected(DUMP.replace("not contiguous  ", "0000000000005000"), "its page 1 maps")


def test_not_contiguous_claim_on_contiguous_frames_rejected():
    expect_rejected(DUMP.replace("     4M 0000000000000000", "     4M not contiguous  "),
                    "maps it contiguously")


def test_execute_on_nx_leaf_rejected():
    expect_rejected(DUMP.replace("R-- kernel", "R-X kernel").replace("1024 pages", "1026 pages"),
                    "more rights than the leaf entry gives")


def test_write_not_in_info_mem_rejected():
    # The leaves say W, the upper levels (info mem) do not.
    expect_rejected(DUMP, "other user/write rights",
                    mem=MEM.replace("0000000000400000 -rw", "0000000000400000 -r-"))


def test_user_column_checked():
    expect_rejected(DUMP.replace("RW- kernel G", "RW- user   G"), "more rights")


def test_global_and_cache_checked():
    expect_rejected(DUMP.replace("kernel G WB", "kernel - WB"), "G or the cache type")
    expect_rejected(DUMP.replace("kernel G WB", "kernel G UC"), "G or the cache type")


def test_wrong_page_size_rejected():
    # A 1G leaf shown as one 2M page: the extent no longer matches `info mem`.
    expect_rejected(DUMP.replace("ffff800040000000     1G 0000000000000000 1G",
                                 "ffff800000200000     2M 0000000000000000 2M"),
                    "do not cover what `info mem` maps")


def test_missing_line_rejected():
    dump = "".join(l + "\n" for l in DUMP.splitlines() if not l.startswith("ffff8000"))
    expect_rejected(dump, "1 leaves beyond the dump")


def test_wrong_count_rejected():
    expect_rejected(DUMP.replace("2M x2     RWX", "2M x3     RWX"), "do not span the range")


def test_wx_verdict_checked():
    expect_rejected(DUMP.replace("FAILED, 1024 pages", "passed"), "its lines give FAILED")


def test_unexpected_line_rejected():
    expect_rejected(DUMP.replace("---[ HHDM ]---", "Python Exception: oops"),
                    "unexpected lines")


def test_mi_string_decoding():
    assert gdb_pt.mi_string(r'a\"b\\c\nd\te\033f') == 'a"b\\c\nd\te\x1bf'
    fields = gdb_pt.mi_fields(r'reason="breakpoint-hit",frame={addr="0x10",func="efi_main"}')
    assert fields == {"reason": "breakpoint-hit", "addr": "0x10", "func": "efi_main"}, fields


def test_cut_dump():
    notes, dump = gdb_pt.cut_dump("pt: no labels: x\n--- pt begin ---\nA\n--- pt end ---\n", "pt")
    assert (notes, dump) == ("pt: no labels: x\n", "A\n"), (notes, dump)
    try:
        gdb_pt.cut_dump("Python Exception <class 'gdb.MemoryError'>\n", "pt")
    except harness.BootTestError:
        return
    raise AssertionError("cut_dump accepted output without a dump")


def main():
    tests = [(n, f) for n, f in sorted(globals().items()) if n.startswith("test_")]
    failed = 0
    for name, fn in tests:
        try:
            fn()
        except Exception as e:  # noqa: BLE001 - report every kind of failure
            failed += 1
            print(f"FAIL {name}: {type(e).__name__}: {e}")
        else:
            print(f"ok   {name}")
    print(f"{len(tests) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
