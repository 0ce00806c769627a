"""GDB for the boot tests: a GDB process driven over its machine interface
(MI), and the checks of scripts/gdb/canopy.py's `pt` against QEMU's monitor.

`Gdb` runs GDB with `--interpreter=mi3` and asynchronous execution, so a test
can continue the guest and watch the console until it stops, and read exactly
one command's output with its success or error (an error is never silent, and
never ends the session as it would a batch script). Every wait is bounded.

`check_stop` compares, with the guest stopped, what GDB's `pt tlb`, `pt qemu`
and `pt` print with QEMU's `info tlb` and `info mem` over QMP:
  - `pt tlb` must equal `info tlb` and `pt qemu` must equal `info mem`, byte
    for byte: every present leaf's address, physical address and flags;
  - the human `pt` must describe exactly the leaves `info tlb` lists, line by
    line: each line's page size and count, its physical addresses (or that
    they are not contiguous), G and the cache type from the leaf's own bits,
    user and write as `info mem` gives them (ANDed over the levels), no
    execute where the leaf has NX, the same mapped extent as `info mem`, and
    the W+X verdict that follows from its lines.

The GDB socket is a unix socket in a private directory (`socket_dir`), so no
two runs can collide on a port. Standard library only.
"""

import os
import queue
import re
import shlex
import shutil
import subprocess
import tempfile
import threading
import time

import harness

HERE = os.path.dirname(os.path.abspath(__file__))
MASK64 = (1 << 64) - 1
PAGE_SIZES = {"4K": 1 << 12, "2M": 1 << 21, "1G": 1 << 30}
# The memory types (PCD, PWT) can stand for: `info tlb` hides the PAT bit.
# Canopy's IA32_PAT keeps the power-on entries 0-4, 6 and 7 and makes entry 5
# (PAT | PWT) write-combining, so PWT alone is WT (entry 1) or WC (entry 5);
# the firmware keeps the power-on PAT, where both are WT.
CACHE_FOR = {0: {"WB"}, 1: {"WT", "WC"}, 2: {"UC-"}, 3: {"UC"}}

_STREAM = re.compile(r'^([~@&])"(.*)"$')
_RESULT = re.compile(r"^(\d*)\^(done|running|connected|error|exit)(?:,(.*))?$")
_ASYNC = re.compile(r"^(\d*)([*=+])([a-z-]+)(?:,(.*))?$")
_ESCAPE = re.compile(r"\\(?:([0-7]{1,3})|(.))")
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "e": "\x1b", "a": "\a", "b": "\b", "f": "\f",
            "v": "\v"}
_FIELD = re.compile(r'([a-z-]+)="((?:[^"\\]|\\.)*)"')


def mi_string(body):
    """The text of an MI c-string, given what is between its quotes."""
    return _ESCAPE.sub(lambda m: chr(int(m.group(1), 8)) if m.group(1)
                       else _ESCAPES.get(m.group(2), m.group(2)), body)


def mi_fields(rest):
    """The name="value" pairs of an MI record, flattened (the first of each name)."""
    out = {}
    for name, value in _FIELD.findall(rest or ""):
        out.setdefault(name, mi_string(value))
    return out


def parse_args(description):
    """The boot tests' options plus --gdb and --gdb-script, with every path
    made absolute (GDB runs in the work directory); args.stage1_script is
    stage1.py beside the helper."""
    p = harness.arg_parser(description)
    p.add_argument("--gdb", default="gdb")
    p.add_argument("--gdb-script", default=os.path.join(HERE, "..", "..", "scripts", "gdb",
                                                          "canopy.py"))
    args = p.parse_args()
    for name in ("gdb_script", "kernel", "efi", "workdir"):
        if getattr(args, name):
            setattr(args, name, os.path.abspath(getattr(args, name)))
    args.stage1_script = os.path.join(os.path.dirname(args.gdb_script), "stage1.py")
    os.makedirs(args.workdir, exist_ok=True)
    return args


def socket_dir():
    """A private directory for a GDB socket (unix socket paths are short)."""
    return tempfile.mkdtemp(prefix="canopy-gdb-")


def remove_socket_dir(path):
    shutil.rmtree(path, ignore_errors=True)


class Gdb:
    """One GDB process under MI. Commands are numbered; `cli` returns the
    console output of a CLI command and raises BootTestError with GDB's
    message if it fails."""

    def __init__(self, path, cwd, log_path, timeout=60):
        self.timeout = timeout
        self._token = 0
        self._lines = queue.Queue()
        self._async = []  # *stopped etc. seen while waiting for something else
        self._log = open(log_path, "w")
        self.proc = subprocess.Popen([path, "--interpreter=mi3", "-q", "-nx"], cwd=cwd,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True, errors="replace")
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self._until_prompt(time.monotonic() + timeout)
        self.mi("-gdb-set mi-async on")  # commands (-gdb-exit) are read while the guest runs

    def _read(self):
        for line in self.proc.stdout:
            self._lines.put(line.rstrip("\n"))
        self._lines.put(None)

    def _next(self, deadline, what):
        remaining = deadline - time.monotonic()
        try:
            line = self._lines.get(timeout=max(remaining, 0.01))
        except queue.Empty:
            raise harness.BootTestError(f"gdb: no answer to {what}")
        if line is None:
            raise harness.BootTestError(f"gdb exited while waiting for {what}")
        self._log.write(line[:2000] + ("...\n" if len(line) > 2000 else "\n"))
        return line

    def _until_prompt(self, deadline):
        while True:
            line = self._next(deadline, "the prompt")
            if line == "(gdb) ":
                return
            self._note_async(line)

    def _note_async(self, line):
        """Keeps an execution record (*stopped, *running) for wait_stopped."""
        m = _ASYNC.match(line)
        if m and m.group(2) == "*":
            self._async.append((m.group(3), mi_fields(m.group(4))))

    def mi(self, command, timeout=None):
        """Runs one MI command; returns (result class, fields, console text).
        => raises BootTestError on ^error, with GDB's message."""
        self._token += 1
        token = str(self._token)
        self._async.clear()  # a stop that matters comes after the command that causes it
        self._log.write(f"<<< {token}{command}\n")
        self._log.flush()
        self.proc.stdin.write(f"{token}{command}\n")
        self.proc.stdin.flush()
        deadline = time.monotonic() + (timeout or self.timeout)
        console = []
        while True:
            line = self._next(deadline, command)
            m = _STREAM.match(line)
            if m:
                if m.group(1) == "~":
                    console.append(mi_string(m.group(2)))
                continue
            m = _RESULT.match(line)
            if m and m.group(1) == token:
                fields, text = mi_fields(m.group(3)), "".join(console)
                self._until_prompt(deadline)
                if m.group(2) == "error":
                    raise harness.BootTestError(f"gdb: `{command}` failed: "
                                                f"{fields.get('msg', '?')}\n{text[-3000:]}")
                return m.group(2), fields, text
            self._note_async(line)

    def cli(self, command, timeout=None):
        """Runs a CLI command; returns what it printed."""
        quoted = command.replace("\\", "\\\\").replace('"', '\\"')
        return self.mi(f'-interpreter-exec console "{quoted}"', timeout)[2]

    def wait_stopped(self, timeout, what, fail_check=None):
        """Waits for the target to stop; returns the *stopped record's fields.
        fail_check() is called about twice a second and may raise."""
        deadline = time.monotonic() + timeout
        while True:
            for i, (kind, fields) in enumerate(self._async):
                if kind == "stopped":
                    del self._async[:i + 1]
                    return fields
            self._async.clear()
            if fail_check:
                fail_check()
            if time.monotonic() > deadline:
                raise harness.BootTestError(f"gdb: the guest did not stop ({what}) within "
                                            f"{timeout:.0f} s")
            try:
                line = self._next(min(deadline, time.monotonic() + 0.5), what)
            except harness.BootTestError:
                if self.proc.poll() is not None:
                    raise
                continue
            self._note_async(line)

    def cont(self, timeout, what, fail_check=None):
        """Continues the guest and waits until it stops again."""
        self.mi("-exec-continue")
        return self.wait_stopped(timeout, what, fail_check)

    def attach(self, vm, sock, timeout=30):
        """`target remote sock`, once QEMU listens there. QEMU opens its GDB
        socket only after it has built the machine, so a connect made right
        after launch can find no socket yet (seen in CI)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                return self.cli(f"target remote {sock}")
            except harness.BootTestError as e:
                if vm.proc.poll() is not None:
                    raise harness.BootTestError(f"QEMU exited with status "
                                                f"{vm.proc.returncode} before GDB attached")
                if time.monotonic() > deadline or not re.search(
                        r"No such file|Connection refused", str(e)):
                    raise
                time.sleep(0.2)

    def pc(self):
        return int(self.mi('-data-evaluate-expression "(unsigned long long)$pc"')[1]["value"])

    def close(self):
        if self.proc.poll() is None:
            try:
                self.proc.stdin.write("-gdb-exit\n")
                self.proc.stdin.flush()
                self.proc.wait(timeout=15)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait(timeout=10)
        self._reader.join(timeout=5)
        self._log.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


# ---- comparing `pt` with QEMU's monitor ---------------------------------------

_DUMP = re.compile(r"--- pt begin ---\n([\s\S]*?)--- pt end ---\n")
_TLB = re.compile(r"^([0-9a-f]{16}): ([0-9a-f]{16}) ([X-])([G-])([P-])[D-][A-]([C-])([T-])([U-])"
                  r"([W-])$")
_HUMAN = re.compile(r"^([0-9a-f]{16})-([0-9a-f]{16}) +\S+ (not contiguous|[0-9a-f]{16}) +"
                    r"(4K|2M|1G) x(\d+) +R([W-])([X-]) (user|kernel) +([G-]) "
                    r"(UC-|UC|WC|WT|WP|WB|\?\?)(?: +(.*))?$")
_WX = re.compile(r"^W\+X mappings: (passed|FAILED, (\d+) pages)$", re.MULTILINE)


def cut_dump(output, what):
    """(notes before the dump, the dump between its begin and end lines)."""
    m = _DUMP.search(output)
    if not m:
        raise harness.BootTestError(f"`{what}` printed no dump:\n{output[-3000:]}")
    return output[:m.start()], m.group(1)


class TlbLeaf:
    """One `info tlb` line."""

    def __init__(self, m):
        self.text = m.group(0)
        self.va, self.pa = int(m.group(1), 16), int(m.group(2), 16)
        self.nx, self.g, self.large = m.group(3) == "X", m.group(4) == "G", m.group(5) == "P"
        self.caches = CACHE_FOR[(2 if m.group(6) == "C" else 0) | (1 if m.group(7) == "T" else 0)]
        self.user, self.w = m.group(8) == "U", m.group(9) == "W"


def parse_tlb(text):
    leaves = []
    for line in text.splitlines():
        m = _TLB.match(line)
        if not m:
            raise harness.BootTestError(f"unexpected `info tlb` line {line!r}")
        leaves.append(TlbLeaf(m))
    return leaves


def merged_extent(ranges):
    """[start, end) ranges with the adjacent ones joined."""
    out = []
    for start, end in ranges:
        if out and out[-1][1] == start:
            out[-1] = (out[-1][0], end)
        else:
            out.append((start, end))
    return out


def check_human(dump, tlb_text, mem_text):
    """Checks the human `pt` dump against `info tlb` and `info mem` (see the
    module comment); returns a one-line summary, raises BootTestError listing
    the differences."""
    leaves = parse_tlb(tlb_text)
    mem = harness.parse_info_mem(mem_text) if mem_text.strip() else None  # empty at 5 levels
    problems, extent, lines, i, wx_pages = [], [], 0, 0, 0
    odd = [l for l in dump.splitlines()
           if not (_HUMAN.match(l) or _WX.match(l) or re.match(r"^---\[ [a-zA-Z -]+ \]---$", l))]
    if odd:
        problems.append(f"unexpected lines in the dump: {odd[:3]}")
    for m in map(_HUMAN.match, dump.splitlines()):
        if not m:
            continue  # section markers, the W+X verdict
        lines += 1
        text, start, end = m.group(0), int(m.group(1), 16), int(m.group(2), 16) or 1 << 64
        contiguous = m.group(3) != "not contiguous"
        pa = int(m.group(3), 16) if contiguous else None
        size, count = PAGE_SIZES[m.group(4)], int(m.group(5))
        w, x, user, g, cache = m.group(6) == "W", m.group(7) == "X", m.group(8) == "user", \
            m.group(9) == "G", m.group(10)
        if end != start + count * size:
            problems.append(f"{text}: {count} pages of {m.group(4)} do not span the range")
        run = leaves[i:i + count]
        i += count
        if len(run) < count:
            problems.append(f"{text}: `info tlb` has only {len(run)} more leaves")
        pas = []
        for k, leaf in enumerate(run):
            why = None
            if leaf.va != start + k * size:
                why = f"its page {k} is at {start + k * size:016x}"
            elif leaf.large != (size != 1 << 12):
                why = f"page size {m.group(4)}"
            elif contiguous and leaf.pa != pa + k * size:
                why = f"its page {k} maps {pa + k * size:016x}"
            elif leaf.g != g or cache not in leaf.caches:
                why = "G or the cache type"
            elif (x and leaf.nx) or (w and not leaf.w) or (user and not leaf.user):
                why = "more rights than the leaf entry gives"
            if why:
                problems.append(f"{text}\n      says {why}; `info tlb` has {leaf.text}")
                break
            pas.append(leaf.pa)
        if not contiguous and len(pas) == count and \
                all(p == pas[0] + k * size for k, p in enumerate(pas)):
            problems.append(f"{text}: says not contiguous, but `info tlb` maps it contiguously")
        if mem is not None:
            cover = [r for r in mem if r[0] <= start and end <= r[1]]
            if not cover or cover[0][2] != user or cover[0][3] != w:
                problems.append(f"{text}: `info mem` has another range or other user/write "
                                f"rights: {cover[0] if cover else 'nothing'}")
        if w and x:
            wx_pages += (end - start) >> 12
        extent.append((start, end))
        if len(problems) > 10:
            break
    if i < len(leaves) and len(problems) <= 10:
        problems.append(f"`info tlb` has {len(leaves) - i} leaves beyond the dump, from "
                        f"{leaves[i].text}")
    if mem is not None and merged_extent(extent) != merged_extent((s, e) for s, e, _u, _w in mem):
        problems.append("the dump's ranges do not cover what `info mem` maps")
    verdict = _WX.search(dump)
    want = "passed" if wx_pages == 0 else f"FAILED, {wx_pages} pages"
    if not verdict or verdict.group(1) != want:
        problems.append(f"W+X verdict {verdict.group(0) if verdict else 'missing'}; "
                        f"its lines give {want}")
    if problems:
        raise harness.BootTestError("`pt` differs from `info tlb`/`info mem`:\n  "
                                    + "\n  ".join(problems))
    return f"{lines} lines cover the {len(leaves)} leaves of `info tlb`" + \
        (", as `info mem` maps them" if mem is not None else "")


def check_stop(vm, gdb, where, workdir, prefix):
    """Runs `pt tlb`, `pt qemu` and `pt` in GDB and compares them with QEMU's
    `info tlb` and `info mem`, with the guest stopped (by GDB). Returns
    (notes GDB printed before the human dump, the human dump)."""
    t0 = time.monotonic()
    # `info tlb` of OVMF's tables has half a million lines: through a file, as
    # MI's escaped console stream is ten times slower.
    tlb_path = os.path.join(workdir, f"{prefix}.pt-tlb.txt")
    gdb.cli(f"pipe pt tlb | cat > {shlex.quote(tlb_path)}", 300)
    with open(tlb_path) as f:
        _, tlb = cut_dump(f.read(), "pt tlb")
    os.remove(tlb_path)
    _, mem = cut_dump(gdb.cli("pt qemu", 300), "pt qemu")
    notes, human = cut_dump(gdb.cli("pt", 300), "pt")
    qemu_tlb, qemu_mem = vm.hmp("info tlb", 120), vm.hmp("info mem", 120)
    with open(os.path.join(workdir, f"{prefix}.pt.txt"), "w") as f:
        f.write(notes + human)
    problems = []
    for name, ours, theirs in (("`pt tlb` / `info tlb`", tlb, qemu_tlb),
                               ("`pt qemu` / `info mem`", mem, qemu_mem)):
        if ours != theirs:
            a, b = ours.splitlines(), theirs.splitlines()
            k = next((k for k in range(min(len(a), len(b))) if a[k] != b[k]), min(len(a), len(b)))
            problems.append(f"{name}: {len(a)} and {len(b)} lines, first difference at line "
                            f"{k + 1}:\n    gdb:  {a[k] if k < len(a) else '(end)'}\n"
                            f"    qemu: {b[k] if k < len(b) else '(end)'}")
    if problems:
        for name, text in (("pt-tlb", tlb), ("info-tlb", qemu_tlb), ("pt-qemu", mem),
                           ("info-mem", qemu_mem)):
            with open(os.path.join(workdir, f"{prefix}.{name}.txt"), "w") as f:
                f.write(text)
        raise harness.BootTestError(f"{where}: " + "\n".join(problems))
    if qemu_tlb == "PG disabled\n":
        if "paging off (CR0.PG clear)" not in human:
            raise harness.BootTestError(f"{where}: paging is off, but `pt` printed:\n{human}")
        summary = "paging off: `pt tlb` and `pt qemu` print QEMU's `PG disabled`, `pt` says so"
    else:
        summary = (f"`pt tlb` = `info tlb` ({tlb.count(chr(10))} leaves), `pt qemu` = `info "
                   f"mem`, `pt`: " + check_human(human, qemu_tlb, qemu_mem))
    print(f"[check] {where}: {summary} ({time.monotonic() - t0:.1f} s)", flush=True)
    return notes, human
