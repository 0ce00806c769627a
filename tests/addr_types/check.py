#!/usr/bin/env python3
"""Host test: a virtual and a physical address passed in each other's place
do not compile (include/canopy/addr.h).

swap.c is compiled with -fsyntax-only once per case. Case 0 passes every
address as its own kind and must compile, so the include paths and the calls
themselves are right; each other case passes a paddr_t where a vaddr_t is
expected (or a bare integer) and must fail with the compiler's "incompatible
type 'vaddr_t'" for it. Were the parameters plain uint64_t, the
swapped cases would compile and this test would fail.

usage: check.py CC INCLUDE_DIR...
"""

import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
# case: (what it does, the parameter type the compiler must say was not given)
SWAPS = {
    1: ("pt_map(pt, pa, va, ...)", "vaddr_t"),
    2: ("mapplan_request_4k(pa, va, ...)", "vaddr_t"),
    3: ("mapplan_page_size(pa, va, ...)", "vaddr_t"),
    4: ("mapplan_hhdm(..., pa_limit, hhdm_base, ...)", "vaddr_t"),
    5: ("pt_walk(pt, pa, ...)", "vaddr_t"),
    6: ("pt_map with bare integers", "vaddr_t"),
}


def compile_case(cc, includes, case):
    cmd = [cc, "-std=c17", "-fsyntax-only", "-Wall", "-Wextra", "-Werror", f"-DCASE={case}"]
    cmd += [f"-I{d}" for d in includes] + [os.path.join(HERE, "swap.c")]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    return p.returncode, p.stderr


def main():
    if len(sys.argv) < 3:
        print(__doc__.strip().splitlines()[-1], file=sys.stderr)
        return 2
    cc, includes = sys.argv[1], sys.argv[2:]
    failed = 0
    rc, err = compile_case(cc, includes, 0)
    if rc != 0:
        print(f"FAIL: the correct calls (case 0) do not compile:\n{err}")
        return 1
    print("ok: the calls with each address as its own kind compile")
    for case, (what, typename) in SWAPS.items():
        rc, err = compile_case(cc, includes, case)
        if rc == 0:
            print(f"FAIL: {what} compiles")
            failed += 1
        elif f"incompatible type '{typename}'" not in err:
            print(f"FAIL: {what} fails, but not on an address's type:\n{err}")
            failed += 1
        else:
            print(f"ok: {what} does not compile")
    print(f"{len(SWAPS) + 1 - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
