#!/usr/bin/env python3
"""Host test: every broken kernel gen.py derives is rejected by stage 1's
validator with its own specific status and reason, and the real kernel is
accepted.

Runs elf_check (the validator compiled for the host) once over the real kernel
and every generated file, then checks for each case:
  - the status is exactly the one the case expects (not merely "rejected");
  - the reason sentence matches the status's wording (gen.REASON, which the
    boot scenarios match on the serial console) and the case's detail (which
    segment, which field value);
and for the set of cases:
  - every status the validator has (as `elf_check --statuses` lists them) is
    produced by at least one case and has a wording in gen.REASON;
  - no two cases produce the same bytes, and none equals the real kernel;
  - gen.MAX_SEGMENTS is CANOPY_MAX_SEGMENTS from include/canopy/bootinfo.h.
Prints `N passed, M failed` last and exits non-zero on any failure.
"""

import argparse
import hashlib
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gen  # noqa: E402
from bootcheck import harness  # noqa: E402  (the tally, Checks)

# The boot test machine's size is 512 MiB; the validator gets somewhat less
# as conventional memory there. Any amount between the real kernel's needs
# and the huge case's works.
AVAIL_BYTES = 448 << 20


def run_checker(checker, paths):
    """{path: (status name, reason)} from one elf_check run."""
    r = subprocess.run([checker, "--avail", str(AVAIL_BYTES)] + paths, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=120)
    if r.returncode != 0:
        sys.exit(f"elf_check failed ({r.returncode}): {r.stderr.decode(errors='replace')}")
    verdicts = {}
    for line in r.stdout.decode().splitlines():
        path, status, reason = line.split("\t", 2)
        verdicts[path] = (status, reason)
    return verdicts


def checker_statuses(checker):
    """The ELF_ERR_* names of enum elf_status, in order, as the checker lists them."""
    r = subprocess.run([checker, "--statuses"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=120)
    if r.returncode != 0:
        sys.exit(f"elf_check --statuses failed ({r.returncode}): "
                 f"{r.stderr.decode(errors='replace')}")
    return [x for x in r.stdout.decode().split() if x.startswith("ELF_ERR_")]


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--kernel", required=True, help="the built kernel.elf")
    p.add_argument("--checker", required=True, help="the elf_check executable")
    p.add_argument("--bootinfo-header", required=True, help="include/canopy/bootinfo.h")
    p.add_argument("--workdir", required=True, help="where the broken kernels are written")
    args = p.parse_args()

    c = harness.Checks()
    out_dir = os.path.join(args.workdir, "kernels")
    cases = gen.generate(args.kernel, out_dir)
    print(f"{len(cases)} broken kernels in {out_dir}")
    c.check(len(cases) >= 30, f"at least 30 cases (have {len(cases)})")

    paths = [args.kernel] + [os.path.join(out_dir, x.name + ".elf") for x in cases]
    verdicts = run_checker(args.checker, paths)

    status, reason = verdicts[args.kernel]
    c.check(status == "ELF_OK", f"the real kernel is accepted (got {status}: {reason})")
    print(f"real kernel: {status} ({reason})")

    for case in cases:
        status, reason = verdicts[os.path.join(out_dir, case.name + ".elf")]
        print(f"{case.name:22} {status:28} {reason}")
        if not c.check(status == case.status,
                       f"{case.name} ({case.what}): want {case.status}, got {status}: {reason}"):
            continue
        c.check(re.search(gen.REASON[case.status], reason),
                f"{case.name}: reason {reason!r} lacks the wording of {case.status} "
                f"({gen.REASON[case.status]!r})")
        if case.detail is not None:
            c.check(re.search(case.detail, reason),
                    f"{case.name}: reason {reason!r} does not say {case.detail!r}")

    statuses = checker_statuses(args.checker)
    c.check(len(statuses) >= 20, f"elf_check lists the validator's statuses ({len(statuses)} found)")
    for st in statuses:
        c.check(st in gen.REASON, f"{st} has a wording in gen.REASON")
        c.check(any(x.status == st for x in cases), f"some case makes the validator say {st}")
    for st in gen.REASON:
        c.check(st in statuses, f"gen.REASON's {st} is a status of the validator")

    with open(args.kernel, "rb") as f:
        real = hashlib.sha256(f.read()).hexdigest()
    seen = {real: "the real kernel"}
    for case in cases:
        h = hashlib.sha256(case.data).hexdigest()
        c.check(h not in seen, f"{case.name} differs from {seen.get(h)}")
        seen.setdefault(h, case.name)
    again = gen.load(args.kernel)
    c.check([(x.name, x.data) for x in again] == [(x.name, x.data) for x in cases],
            "generating twice gives the same cases and bytes")

    with open(args.bootinfo_header) as f:
        m = re.search(r"#define\s+CANOPY_MAX_SEGMENTS\s+(\d+)", f.read())
    c.check(m and int(m.group(1)) == gen.MAX_SEGMENTS,
            f"gen.MAX_SEGMENTS ({gen.MAX_SEGMENTS}) is CANOPY_MAX_SEGMENTS "
            f"({m.group(1) if m else 'not found'})")

    return c.finish()


if __name__ == "__main__":
    sys.exit(main())
