#!/usr/bin/env python3
"""Boot test: the kernel's serial console under a host that stops reading.

QEMU's 16550 keeps its transmitter busy while the pipe behind the serial
port is full, so a host process that pauses (descheduled on a loaded
machine) stalls the guest's output. The kernel bounds each byte's wait in
time (kernel/dev/serial.c), so:

- short: the host stops reading (the pipe shrunk to one page) for half a
  second while the guest prints `pt tlb`; nothing is lost: the dump equals
  one printed without a pause (D and A masked, the CPU sets them as it runs);
- long: the host stops reading for longer than the kernel waits for three
  bytes in a row (4 s, or up to 16 s where the guest's clock runs slow);
  the guest must drop output rather than hang, and once the host reads
  again the console comes back: a `[serial: N bytes dropped]`
  line that accounts for what is missing, then the next command's echo and
  its whole `pt qemu` dump, equal to one printed before the stall.
"""

import re
import time

import harness
import shell
from boot_shell_qemu import compare, mask_da

PIPE_BYTES = 4096      # the smallest pipe Linux makes: the dump fills it many times
SHORT_PAUSE_S = 0.5    # below the kernel's 1 s wait for one byte
LONG_PAUSES_S = (4.0, 8.0, 16.0)  # above three such waits in a row; see below
FILL_S = 60            # the most the guest may take to fill the pipe


def paused_dump(vm, line, pause_s):
    """Types `line` with the reader paused, and reads again pause_s seconds
    after the guest's answer filled the pipe (so the stall is pause_s long
    however late the guest starts printing)."""
    vm.pause_reading()
    vm.send(line + "\r")
    vm.wait_serial_stalled(FILL_S)
    time.sleep(pause_s)
    vm.resume_reading()


def main():
    args = harness.arg_parser(__doc__).parse_args()
    with harness.machine_from_args(args, name="serial_stall",
                                   serial_pipe_bytes=PIPE_BYTES) as vm:
        sh = shell.Shell(vm)
        sh.wait_ready()
        ref_tlb = sh.dump("pt tlb")
        ref_mem = sh.dump("pt qemu")
        lines = ref_tlb.count("\n")
        if lines < 200 or len(ref_tlb) < 4 * PIPE_BYTES:
            raise harness.BootTestError(f"`pt tlb` printed {len(ref_tlb)} bytes, too little "
                                        "to fill the pipe")
        print(f"[check] reference dumps: `pt tlb` {lines} lines ({len(ref_tlb)} bytes), "
              f"`pt qemu` {ref_mem.count(chr(10))} lines")

        # Short: a pause the kernel waits out byte for byte.
        paused_dump(vm, "pt tlb", SHORT_PAUSE_S)
        out = sh.dump_answer("pt tlb")
        compare("`pt tlb` after a short pause", mask_da(out), mask_da(ref_tlb))
        print(f"[check] the host stopped reading for {SHORT_PAUSE_S} s during `pt tlb`: "
              "the dump arrived whole")

        # Long: the kernel gives up on the port, drops output, and comes back.
        # Its 1 s wait is counted in TSC cycles at the rate stage 1 measured;
        # on a loaded host a measurement can still come out high, and the
        # waits as long, so a stall that lost nothing is tried again, twice
        # as long, up to 16 s. A guest that drops nothing then has hung.
        for pause_s in LONG_PAUSES_S:
            start = vm.cursor()
            paused_dump(vm, "pt tlb", pause_s)
            time.sleep(2)  # let the guest finish (or drop) the rest of the dump
            got = len(vm.output()) - start
            if got < len(ref_tlb):
                break
            print(f"[check] a {pause_s} s stall lost nothing ({got} bytes arrived)")
            sh.settle(60)
        else:
            raise harness.BootTestError(f"a {LONG_PAUSES_S[-1]} s stall lost nothing: the "
                                        "guest waited out the whole stall")
        print(f"[check] the host stopped reading for {pause_s} s: {got} of about "
              f"{len(ref_tlb)} bytes arrived, the guest went on without the rest")
        out = sh.dump("pt qemu")
        compare("`pt qemu` after the port came back", out, ref_mem)
        m = re.search(r"^\[serial: (\d+) bytes dropped\]\n", vm.output()[start:], re.MULTILINE)
        if not m:
            raise harness.BootTestError("the console came back without saying what it dropped")
        # The count is of bytes given to the port (before "\n" becomes "\r\n").
        if abs(int(m.group(1)) - (len(ref_tlb) - got)) > 128:
            raise harness.BootTestError(f"{m.group(0).strip()!r}, but {len(ref_tlb) - got} of "
                                        f"{len(ref_tlb)} bytes were missing")
        print(f"[check] the console came back with {m.group(0).strip()!r}; the next command's "
              "echo and `pt qemu` arrived whole and equal to the reference")

if __name__ == "__main__":
    harness.run(main)
