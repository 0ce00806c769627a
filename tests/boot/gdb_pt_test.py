#!/usr/bin/env python3
"""Checks gdb_pt.py on synthetic input, so that boot_gdb_stops' and
boot_shell_gdb's verdicts can be trusted: the comparison of a human `pt` dump
with `info tlb` and `info mem` must accept a dump that describes them and
reject each kind of wrong one; MI strings must decode as GDB escapes them."""

import os
import sys
import unittest

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


class GdbPtTest(unittest.TestCase):
    def expect_rejected(self, dump, needle, tlb=TLB, mem=MEM):
        with self.assertRaises(harness.BootTestError, msg=dump) as cm:
            gdb_pt.check_human(dump, tlb, mem)
        self.assertIn(needle, str(cm.exception))

    def test_matching_dump_passes(self):
        summary = gdb_pt.check_human(DUMP, TLB, MEM)
        self.assertTrue(summary.startswith("3 lines cover the 5 leaves"), summary)

    def test_five_level_without_info_mem_passes(self):
        self.assertNotIn("info mem", gdb_pt.check_human(DUMP, TLB, ""))

    def test_wrong_physical_address_rejected(self):
        self.expect_rejected(DUMP.replace("     4M 0000000000000000", "     4M 0000000000200000"),
                             "its page 0 maps 0000000000200000")

    def test_contiguous_claim_on_scattered_frames_rejected(self):
        self.expect_rejected(DUMP.replace("not contiguous  ", "0000000000005000"),
                             "its page 1 maps")

    def test_not_contiguous_claim_on_contiguous_frames_rejected(self):
        self.expect_rejected(DUMP.replace("     4M 0000000000000000", "     4M not contiguous  "),
                             "maps it contiguously")

    def test_execute_on_nx_leaf_rejected(self):
        dump = DUMP.replace("R-- kernel", "R-X kernel").replace("1024 pages", "1026 pages")
        self.expect_rejected(dump, "more rights than the leaf entry gives")

    def test_write_not_in_info_mem_rejected(self):
        # The leaves say W, the upper levels (info mem) do not.
        self.expect_rejected(DUMP, "other user/write rights",
                             mem=MEM.replace("0000000000400000 -rw", "0000000000400000 -r-"))

    def test_user_column_checked(self):
        self.expect_rejected(DUMP.replace("RW- kernel G", "RW- user   G"), "more rights")

    def test_global_and_cache_checked(self):
        self.expect_rejected(DUMP.replace("kernel G WB", "kernel - WB"), "G or the cache type")
        self.expect_rejected(DUMP.replace("kernel G WB", "kernel G UC"), "G or the cache type")
        self.expect_rejected(DUMP.replace("kernel G WB", "kernel G WC"), "G or the cache type")

    def test_pwt_alone_is_wt_or_wc(self):
        # `info tlb` hides the PAT bit: PWT alone is entry 1 (WT) or, under
        # Canopy's IA32_PAT, entry 5 (WC); PCD with it is UC either way.
        tlb = TLB.replace("ffff800000000000: 0000000000000000 XGP-A---W",
                          "ffff800000000000: 0000000000000000 XGP-A-T-W")
        for cache in ("WC", "WT"):
            gdb_pt.check_human(DUMP.replace("kernel G WB", f"kernel G {cache}"), tlb, MEM)
        self.expect_rejected(DUMP, "G or the cache type", tlb=tlb)
        self.expect_rejected(DUMP.replace("kernel G WB", "kernel G UC"), "G or the cache type",
                             tlb=tlb)

    def test_wrong_page_size_rejected(self):
        # A 1G leaf shown as one 2M page: the extent no longer matches `info mem`.
        dump = DUMP.replace("ffff800040000000     1G 0000000000000000 1G",
                            "ffff800000200000     2M 0000000000000000 2M")
        self.expect_rejected(dump, "do not cover what `info mem` maps")

    def test_missing_line_rejected(self):
        dump = "".join(l + "\n" for l in DUMP.splitlines() if not l.startswith("ffff8000"))
        self.expect_rejected(dump, "1 leaves beyond the dump")

    def test_wrong_count_rejected(self):
        self.expect_rejected(DUMP.replace("2M x2     RWX", "2M x3     RWX"),
                             "do not span the range")

    def test_wx_verdict_checked(self):
        self.expect_rejected(DUMP.replace("FAILED, 1024 pages", "passed"),
                             "its lines give FAILED")

    def test_unexpected_line_rejected(self):
        self.expect_rejected(DUMP.replace("---[ HHDM ]---", "Python Exception: oops"),
                             "unexpected lines")

    def test_mi_string_decoding(self):
        self.assertEqual(gdb_pt.mi_string(r'a\"b\\c\nd\te\033f'), 'a"b\\c\nd\te\x1bf')
        fields = gdb_pt.mi_fields(r'reason="breakpoint-hit",frame={addr="0x10",func="efi_main"}')
        self.assertEqual(fields, {"reason": "breakpoint-hit", "addr": "0x10", "func": "efi_main"})

    def test_cut_dump(self):
        out = "pt: no labels: x\n--- pt begin ---\nA\n--- pt end ---\n"
        self.assertEqual(gdb_pt.cut_dump(out, "pt"), ("pt: no labels: x\n", "A\n"))
        with self.assertRaises(harness.BootTestError):
            gdb_pt.cut_dump("Python Exception <class 'gdb.MemoryError'>\n", "pt")


if __name__ == "__main__":
    unittest.main(verbosity=2)
