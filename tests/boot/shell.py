"""Driving the kernel's debug shell over the serial console, for the boot tests.

`Shell` wraps a harness.Machine booted to the prompt: `run(line)` types one
command and returns exactly what it printed (between the echoed line and the
next prompt), `dump(line)` cuts out the text between `--- pt begin ---` and
`--- pt end ---`. `parse_boottime(out)` reads `boottime`'s table (the boot
test and bench/boot_timeline.py share it). Standard library only.
"""

import re

import harness

PROMPT = "canopy> "
BEGIN = "--- pt begin ---\n"
END = "--- pt end ---\n"


class Shell:
    """The shell of a machine that has printed `canopy: ready`."""

    def __init__(self, vm, timeout=30):
        self.vm = vm
        self.timeout = timeout

    def wait_ready(self, timeout=60):
        """Waits for `pt check` at boot, `canopy: ready` and the first prompt;
        returns the boot's `pt check` line."""
        check = self.vm.wait_for(r"^pt check: .*\n", timeout, "the boot's `pt check` line",
                                 fail_if=harness.BOOT_FAILURE)
        self.vm.wait_for(r"^canopy: ready\n", timeout, "`canopy: ready`",
                         fail_if=harness.BOOT_FAILURE)
        self.vm.wait_for(re.escape(PROMPT), timeout, "the first prompt", partial=True)
        return check.group(0)

    def settle(self, timeout=10):
        """Moves past everything printed so far, which must end with a prompt
        (after input typed without waiting for each answer)."""
        self.vm.wait_for(re.escape(PROMPT) + r"\Z", timeout, "a final prompt", partial=True)

    def run(self, line, timeout=None):
        """Types `line` and Enter; returns the output up to the next prompt."""
        self.vm.send(line + "\r")
        return self.answer(line, timeout)

    def answer(self, line, timeout=None):
        """The output of `line`, already typed: waits for its echo, then
        returns what follows up to the next prompt."""
        # The echo is the line itself, then "\n" (CR is dropped by the harness).
        self.vm.wait_for(re.escape(line) + r"\n", timeout or self.timeout, f"the echo of {line!r}")
        return until_prompt(self.vm, timeout or self.timeout, f"the prompt after {line!r}")

    def dump(self, line, timeout=None):
        """Runs a `pt` command; returns the text between its begin and end lines."""
        return cut_dump(line, self.run(line, timeout))

    def dump_answer(self, line, timeout=None):
        """Like dump, for a `pt` command already typed."""
        return cut_dump(line, self.answer(line, timeout))


def until_prompt(vm, timeout, what):
    """Waits for the next prompt; returns the text from the wait's start to it.
    (A plain search for the prompt: a lazy "(.|\\n)*?" before it would make
    each search quadratic in the output's length.)"""
    since = vm.cursor()
    m = vm.wait_for(re.escape(PROMPT), timeout, what, fail_if=harness.BOOT_FAILURE,
                    partial=True)
    return vm.output()[since:m.start()]


def cut_dump(line, out):
    if not out.startswith(BEGIN) or not out.endswith(END):
        raise harness.BootTestError(f"`{line}` did not print one dump between "
                                    f"{BEGIN.strip()!r} and {END.strip()!r}:\n{out}")
    return out[len(BEGIN):-len(END)]


def expect(text, pattern, what):
    """Returns the first match of the regex `pattern` (multiline) in text, or fails."""
    m = re.search(pattern, text, re.MULTILINE)
    if not m:
        raise harness.BootTestError(f"{what}: no match for {pattern!r} in:\n{text}")
    return m


def expect_absent(text, pattern, what):
    m = re.search(pattern, text, re.MULTILINE)
    if m:
        raise harness.BootTestError(f"{what}: unexpected {m.group(0)!r} in:\n{text}")


def _ms_to_ns(text):
    whole, frac = text.split(".")
    return int(whole) * 1000000 + int(frac) * 1000


def parse_boottime(out):
    """`boottime`'s output as ([(phase, ns since start, ns step), ...],
    (page-table frames used, minimum)). The phases are the rows of the table
    under its `phase since start step` header, named and ordered as the kernel
    prints them (one row per boot phase it knows), so no list of them is kept
    here. Fails unless the TSC rate is known, every row has its times (none is
    "(not recorded)" or "(out of order)"), they rise from 0 and stay within a
    minute, and the page-table line is there (whether the two frame counts
    are equal is the caller's check)."""
    if not re.search(r"^boottime: TSC at \d+ Hz$", out, re.MULTILINE):
        raise harness.BootTestError(f"boottime: no TSC rate:\n{out}")
    table = re.search(r"^  phase +since start +step\n((?:  .*\n)*)", out, re.MULTILINE)
    if not table or not table.group(1):
        raise harness.BootTestError(f"boottime: no phase table:\n{out}")
    phases = []
    for row in table.group(1).splitlines():
        m = re.fullmatch(r"  (\S+) +(\d+\.\d{3}) ms +(\d+\.\d{3}) ms", row)
        if not m:
            raise harness.BootTestError(f"boottime: phase row {row.strip()!r} has no times:\n"
                                        f"{out}")
        phases.append((m.group(1), _ms_to_ns(m.group(2)), _ms_to_ns(m.group(3))))
    since = [p[1] for p in phases]
    if since != sorted(since) or since[0] != 0 or since[-1] > 60 * 10**9:
        raise harness.BootTestError(f"boottime: phases out of order or implausible (ns): {since}")
    m = re.search(r"^page tables: (\d+) frames, minimum (\d+) \((?:equal|NOT the minimum)\)$",
                  out, re.MULTILINE)
    if not m:
        raise harness.BootTestError(f"boottime: no page-table line:\n{out}")
    return phases, (int(m.group(1)), int(m.group(2)))
