#!/usr/bin/env python3
"""Boot test: 10,000 random and hostile lines on the serial console do not
break the shell.

The lines mix random bytes (all 256 values but CR and LF), lines far longer
than the shell's buffer, control characters in otherwise good commands,
backspace and DEL storms, unknown commands, commands with malformed or
out-of-range arguments, and empty lines, ended by CR, LF or CRLF. They are
written in one stream while the guest reads them (the UART's interrupt wakes
it), and a model of the shell's line editor predicts how many lines it sees
and how many of them get an `error: ` line. Afterwards the prompt count and
the error count must match the model exactly, nothing may have panicked, and
`help` and `pt check` must still answer.

--seed N replays a run (the seed is printed).
"""

import random
import re
import threading
import time

import harness
import shell

LINES = 10000
LINE_MAX = 255  # characters the shell keeps (SHELL_LINE_MAX - 1)
INPUT_TIMEOUT_S = 150
# Commands a generated line may run: cheap, and never reboot or power off.
SAFE = {"walk", "peek", "mem", "help", "boottime", "vmas"}
KNOWN = SAFE | {"memmap", "pt", "selftest", "reboot", "poweroff"}
PRINTABLE = bytes(range(0x20, 0x7F))


def model_lines(data):
    """Mirrors shell.c's editor over the byte stream: returns a list of
    (kind, tokens) per completed line, kind "fault" or "line"."""
    out = []
    line, fault, after_cr = bytearray(), False, False
    for c in data:
        prev_cr, after_cr = after_cr, c == 0x0D
        if c == 0x0A and prev_cr:
            continue
        if c in (0x0A, 0x0D):
            out.append(("fault", None) if fault else ("line", line.decode().split()))
            line, fault = bytearray(), False
        elif c in (0x08, 0x7F):
            if not fault and line:
                line.pop()
        elif fault:
            continue
        elif c < 0x20 or c > 0x7E or len(line) == LINE_MAX:
            fault = True
        else:
            line.append(c)
    return out


def junk(rng, n):
    return bytes(rng.choice(PRINTABLE) for _ in range(n))


def gen_line(rng):
    """One line without its terminator."""
    r = rng.random()
    if r < 0.35:  # random bytes
        return bytes(rng.choice([b for b in range(256) if b not in (10, 13)])
                     for _ in range(rng.randint(1, 120)))
    if r < 0.43:  # far too long
        return junk(rng, rng.randint(LINE_MAX + 1, 1500))
    if r < 0.55:  # a good-looking command with a control or non-ASCII byte inside
        bad = rng.choice([0x00, 0x01, 0x03, 0x04, 0x07, 0x09, 0x0B, 0x0C, 0x1A, 0x1B, 0x1C,
                          0x80, 0x9B, 0xC3, 0xFF])
        word = rng.choice(sorted(SAFE)).encode()
        return word + b" " + junk(rng, rng.randint(0, 20)) + bytes([bad]) + junk(rng, 5)
    if r < 0.75:  # commands with malformed or out-of-range arguments
        return rng.choice([
            b"walk " + junk(rng, rng.randint(1, 40)).replace(b" ", b""),
            b"walk " + b"f" * rng.randint(17, 60),
            b"walk 0000800000000000",
            b"walk " + b"%x" % rng.getrandbits(64),
            b"peek " + b"%x" % rng.getrandbits(64) + b" " + str(rng.randint(0, 10**25)).encode(),
            b"peek 0 " + junk(rng, 6).replace(b" ", b"-"),
            b"peek ffffffffffffffff 4096",
            b"mem extra",
            b"help me please now with many words a b c d e f",
            b"boottime " + junk(rng, 8).replace(b" ", b""),
            b"walk   ",
            b"peek",
        ])
    if r < 0.90:  # unknown commands
        return junk(rng, rng.randint(1, 30)).strip() or b"x"
    if r < 0.95:  # backspace and DEL storms, sometimes erasing more than was typed
        out = bytearray()
        for _ in range(rng.randint(1, 80)):
            out += rng.choice([junk(rng, 1), b"\x08", b"\x7f"])
        return bytes(out)
    return rng.choice([b"", b" ", b"    ", b"\x08\x08"])


def generate(rng, count):
    """count lines and their stream; regenerates lines that would run a command
    outside SAFE."""
    chunks, prev_cr = [], False
    while len(chunks) < count:
        body = gen_line(rng)
        end = rng.choice([b"\r", b"\n", b"\r\n"])
        if prev_cr and end == b"\n" and body == b"":
            end = b"\r"  # an LF straight after a CR would be the CR's pair
        parsed = model_lines(body + b"\n")
        if len(parsed) != 1:
            continue
        kind, tokens = parsed[0]
        if kind == "line" and tokens and tokens[0] in KNOWN and tokens[0] not in SAFE:
            continue
        chunks.append(body + end)
        prev_cr = end == b"\r"
    return b"".join(chunks)


def main():
    p = harness.arg_parser(__doc__)
    p.add_argument("--seed", type=int, default=None)
    args = p.parse_args()
    seed = args.seed if args.seed is not None else random.SystemRandom().getrandbits(32)
    print(f"seed {seed}")
    rng = random.Random(seed)
    data = generate(rng, LINES)
    expected = model_lines(data)
    if len(expected) != LINES:
        raise harness.BootTestError(f"generator: {len(expected)} lines, not {LINES}")
    errors = sum(1 for kind, tokens in expected
                 if kind == "fault" or (tokens and tokens[0] not in KNOWN))
    print(f"{len(data)} bytes, {LINES} lines, {errors} of them should get an `error: ` line")

    # The console grows by megabytes: no echo, and count prompts from the log.
    args.quiet = True
    with harness.machine_from_args(args, name="shell_hostile") as vm:
        sh = shell.Shell(vm)
        sh.wait_ready()
        start_text = len(vm.output())
        print(f"[check] prompt after {vm.elapsed():.1f} s")

        failure = []

        def writer():
            try:
                for i in range(0, len(data), 4096):
                    vm.send(data[i:i + 4096])
            except harness.BootTestError as e:
                failure.append(e)

        t0 = time.monotonic()
        thread = threading.Thread(target=writer, daemon=True)
        thread.start()
        prompts = 0
        while prompts < LINES:
            if time.monotonic() - t0 > INPUT_TIMEOUT_S:
                raise harness.BootTestError(f"after {INPUT_TIMEOUT_S} s only {prompts} of {LINES} "
                                            "lines were answered; the console ended with:\n"
                                            + vm.tail())
            if failure:
                raise failure[0]
            if vm.proc.poll() is not None:
                raise harness.BootTestError("QEMU exited during the input:\n" + vm.tail())
            time.sleep(1)
            prompts = vm.output().count(shell.PROMPT, start_text)
        thread.join(10)
        elapsed = time.monotonic() - t0
        text = vm.output()[start_text:]
        if prompts != LINES:
            raise harness.BootTestError(f"{prompts} prompts for {LINES} lines")
        print(f"[check] {LINES} lines ({len(data)} bytes) answered with {LINES} prompts in "
              f"{elapsed:.1f} s ({len(data) / elapsed / 1024:.0f} KiB/s in)")
        bad = re.search(harness.BOOT_FAILURE, text, re.MULTILINE)
        if bad:
            raise harness.BootTestError(f"the input caused {bad.group(0)!r}")
        got_errors = len(re.findall(r"^error: ", text, re.MULTILINE))
        if got_errors != errors:
            raise harness.BootTestError(f"{got_errors} `error: ` lines, the model expects {errors}")
        print(f"[check] {got_errors} `error: ` lines, as the model of the line editor expects; "
              "no panic or exception")

        # Whatever state the editor was left in, a fresh line works.
        sh.settle()
        out = sh.run("help")
        shell.expect(out, r"^commands:$", "help after the hostile input")
        shell.expect(out, r"^  walk VA +walk the page tables", "help lists walk")
        check = sh.dump("pt check")
        shell.expect(check, r"^pt check: OK \(\d+ mappings\)$", "pt check after the input")
        print("[check] `help` and `pt check` still answer")


if __name__ == "__main__":
    harness.run(main)
