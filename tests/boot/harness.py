"""Boot-test harness: runs a Canopy disk image under QEMU + OVMF (or U-Boot) and talks to it.

One `Machine` is one QEMU process:
  - OVMF's code as read-only pflash, plus a private copy of the variable store
    in a temporary directory (tests never share or modify the installed one);
    or U-Boot's ROM (firmware="uboot"), which keeps its variables in the image;
  - the image as the boot disk (snapshot=on unless asked otherwise);
  - the guest's COM1 on QEMU's stdio, read by a thread into a log that
    `wait_for` searches and `send` writes to;
  - QMP on a unix socket for monitor commands (`hmp("info tlb")`), screendumps
    and keys;
  - `-no-reboot` (unless no_reboot=False) and `isa-debug-exit`, so a reset
    or a guest's exit ends QEMU.

Every wait is bounded, and QEMU is killed on every exit path (context
manager, and the kernel's parent-death signal if this process dies first).
Standard library only.
"""

import argparse
import array
import ctypes
import fcntl
import json
import os
import queue
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import termios
import threading
import time

# The QEMU command line and the OVMF files have one home, shared with scripts/run.sh.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, os.pardir,
                                "scripts"))
import qemu_args  # noqa: E402

DEFAULT_OVMF_CODE, DEFAULT_OVMF_VARS = qemu_args.ovmf_pair()

# Linux's fcntl to resize a pipe (fcntl.F_SETPIPE_SZ, by number for older Pythons).
F_SETPIPE_SZ = 1031
F_GETPIPE_SZ = 1032
# QEMU's serial output waits, and the guest's UART stays busy, while the pipe
# to the reader thread is full; 1 MiB (Linux's default maximum) holds a whole
# `pt tlb` dump, so a reader descheduled on a loaded host does not stall it.
SERIAL_PIPE_BYTES = 1 << 20

# CSI escape sequences (OVMF's console draws with them) and a trailing,
# not yet complete one.
_CSI = re.compile(r"\x1b\[[0-9;?=]*[ -/]*[@-~]|\x1b[()][0-9A-Za-z]")
_CSI_PARTIAL = re.compile(r"\x1b(\[[0-9;?=]*[ -/]*|[()])?$")


# What each firmware's boot manager prints on serial: when it starts the
# disk's loader, when the loader returned a failure, and when it went on to
# its next option after that. OVMF names boot options; U-Boot's EFI boot
# manager finds \EFI\BOOT\BOOTX64.EFI itself, and after a failure its
# distro boot script goes on to the next device, ending at its `=> ` prompt.
FIRMWARE_LINES = {
    "ovmf": {
        "start": r"BdsDxe: starting Boot\d+",
        "failed": r"BdsDxe: failed to start Boot\d+",
        "next": r"BdsDxe: (?:loading|starting) Boot\d+",
    },
    "uboot": {
        "start": r"Booting /efi\\boot\\bootx64\.efi",
        "failed": r"## Application failed, r = \d+",
        "next": r"EFI LOAD FAILED: continuing\.\.\.",
    },
}
FIRMWARES = tuple(FIRMWARE_LINES)

# Console lines that mean the boot went wrong: the kernel's panic and exception
# reports, and either firmware's boot manager getting control back from stage 1.
BOOT_FAILURE = (r"^panic: |^\*\*\* |BdsDxe: failed to start|^## Application failed|"
                r"EFI LOAD FAILED")

# The kernel runs `pt check` and its PMM audit on every boot, before
# `canopy: ready`. Every wait fails if either reports anything but OK, so no
# boot test can pass over a bad page table, a W+X page or a lost frame. The
# patterns need the line's end, so a line still being printed never matches.
ALWAYS_FAILURE = r"^pt check: (?!OK \().*\n|^pmm audit: (?!OK).*\n"  # whole lines only


class BootTestError(Exception):
    """A check failed; the message says what was expected and what was seen."""


def clean_console_text(raw):
    """Console bytes as text a regex can match: no escapes, no carriage returns.

    Bytes are decoded as Latin-1 so that every byte is one character and a
    prefix of the output always cleans to a prefix of the cleaned output.
    """
    text = raw.decode("latin-1")
    text = _CSI.sub("", text)
    text = _CSI_PARTIAL.sub("", text)
    return text.replace("\r", "")


def _set_parent_death_signal():
    # Runs in the child before exec: QEMU gets SIGKILL if the test process
    # dies (for example when CTest's timeout kills it).
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        PR_SET_PDEATHSIG = 1
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        pass


class Machine:
    """A QEMU + OVMF virtual machine booting one disk image."""

    def __init__(self, image, *, ovmf_code=DEFAULT_OVMF_CODE,
                 ovmf_vars=DEFAULT_OVMF_VARS, machine="q35", mem="512M", smp=1,
                 cpu="max", serial=True, graphics=None, extra_args=(), log_dir=None,
                 name="boot", echo=True, serial_pipe_bytes=SERIAL_PIPE_BYTES,
                 secure_boot=False, no_reboot=True, firmware="ovmf", snapshot=True,
                 debug_exit=True):
        if firmware not in FIRMWARE_LINES:
            raise BootTestError(f"unknown firmware {firmware!r}")
        self.firmware = firmware  # "ovmf" or "uboot"
        self.snapshot = snapshot  # False: the guest writes the image file itself
        self.debug_exit = debug_exit
        self.image = image
        self.ovmf_code = ovmf_code
        self.ovmf_vars = ovmf_vars
        self.machine = machine
        self.mem = mem
        self.smp = smp
        self.cpu = cpu
        self.serial = serial
        self.graphics = graphics
        self.extra_args = list(extra_args)
        self.secure_boot = secure_boot  # SMM and a secure flash (Secure Boot OVMF builds)
        self.no_reboot = no_reboot      # False: a reset reboots, the variable store kept
        self.name = name
        self.echo = echo
        self.serial_pipe_bytes = serial_pipe_bytes
        self._reading = threading.Event()  # cleared: the reader stops reading
        self._reading.set()
        self.log_dir = log_dir
        self.proc = None
        self.tmp = None
        self.qmp_sock = None
        self._qmp_file = None
        self._qmp_id = 0
        self._events = []      # QMP events read while waiting for answers
        self._raw = bytearray()
        self._clean = ""       # cleaned text of all complete lines so far
        self._raw_done = 0     # bytes of _raw already in _clean
        self._cursor = 0       # wait_for searches from here in the cleaned text
        self._cond = threading.Condition()
        self._eof = False
        self._reader = None
        self._echo_queue = None
        self._echoer = None
        self._log = None
        self._started_at = None

    # ---- lifecycle -------------------------------------------------------

    def command_line(self):
        """The QEMU command line (scripts/qemu_args.py) for this run: the
        firmware (OVMF with the private variable store, or U-Boot), by
        default snapshot=on so that the image file stays as built, no
        monitor but QMP, no window, and -no-reboot (unless no_reboot is
        False: then a reset boots again with the same variables)."""
        return qemu_args.command_line(
            self.image, self.ovmf_code, os.path.join(self.tmp, "OVMF_VARS.fd"),
            machine=self.machine, cpu=self.cpu, mem=self.mem, smp=self.smp,
            serial="stdio" if self.serial else None, monitor="none", display="none",
            qmp=self.qmp_path, snapshot=self.snapshot, no_reboot=self.no_reboot,
            graphics=self.graphics, secure_boot=self.secure_boot, firmware=self.firmware,
            debug_exit=self.debug_exit, extra=self.extra_args)

    def fw_line(self, what):
        """The regex for this firmware's boot-manager line `what` (FIRMWARE_LINES)."""
        return FIRMWARE_LINES[self.firmware][what]

    def start(self):
        files = [self.image] + ([self.ovmf_code, self.ovmf_vars] if self.firmware == "ovmf"
                                else [qemu_args.UBOOT_ROM])
        for path in files:
            if not os.path.isfile(path):
                raise BootTestError(f"{path}: no such file")
        # A short private directory: unix socket paths are limited to 107 bytes.
        self.tmp = tempfile.mkdtemp(prefix="canopy-qemu-")
        if self.firmware == "ovmf":
            shutil.copyfile(self.ovmf_vars, os.path.join(self.tmp, "OVMF_VARS.fd"))
        self.qmp_path = os.path.join(self.tmp, "qmp.sock")
        if self.log_dir:
            os.makedirs(self.log_dir, exist_ok=True)
            self._log = open(os.path.join(self.log_dir, f"{self.name}.serial.log"), "wb")
            stderr = open(os.path.join(self.log_dir, f"{self.name}.qemu.log"), "wb")
        else:
            stderr = subprocess.DEVNULL
        args = self.command_line()
        if self.log_dir:
            stderr.write((" ".join(args) + "\n").encode())
            stderr.flush()
        self._started_at = time.monotonic()
        self.proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=stderr, preexec_fn=_set_parent_death_signal)
        if stderr is not subprocess.DEVNULL:
            stderr.close()
        self._start_reader()
        return self

    def _start_reader(self):
        """Starts reading self.proc's stdout (the guest's COM1) in a thread;
        echoing goes through a second thread, so a slow reader of this
        process's own output never holds up QEMU's."""
        try:
            fcntl.fcntl(self.proc.stdout.fileno(), F_SETPIPE_SZ, self.serial_pipe_bytes)
        except OSError:
            pass  # a smaller pipe only makes stalls likelier; the kernel rides them out
        if self.echo:
            self._echo_queue = queue.Queue()
            self._echoer = threading.Thread(target=self._echo_serial, daemon=True)
            self._echoer.start()
        self._reader = threading.Thread(target=self._read_serial, daemon=True)
        self._reader.start()

    def _echo_serial(self):
        while True:
            chunk = self._echo_queue.get()
            if chunk is None:
                return
            try:
                sys.stdout.write(clean_console_text(chunk))
                sys.stdout.flush()
            except (OSError, ValueError):
                pass

    def close(self):
        """Ends QEMU (killing it if needed) and removes the temporary files."""
        if self._qmp_file is not None:
            try:
                self._qmp_file.close()
            except OSError:
                pass
            self._qmp_file = None
        if self.qmp_sock is not None:
            try:
                self.qmp_sock.close()
            except OSError:
                pass
            self.qmp_sock = None
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.kill()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
            for f in (self.proc.stdin, self.proc.stdout):
                try:
                    f.close()
                except (OSError, ValueError):
                    pass
        if self._reader is not None:
            self._reading.set()
            self._reader.join(timeout=5)
        if self._echoer is not None:
            self._echo_queue.put(None)
            self._echoer.join(timeout=5)
            self._echoer = None
        if self._log is not None:
            self._log.close()
            self._log = None
        if self.tmp is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)
            self.tmp = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.close()
        return False

    def elapsed(self):
        """Seconds since QEMU was started."""
        return time.monotonic() - self._started_at

    # ---- serial console --------------------------------------------------

    def _read_serial(self):
        fd = self.proc.stdout.fileno()
        while True:
            self._reading.wait()
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                chunk = b""
            if self._log is not None and chunk:
                try:
                    self._log.write(chunk)
                    self._log.flush()
                except (OSError, ValueError):
                    pass
            if self._echo_queue is not None and chunk:
                self._echo_queue.put(chunk)
            with self._cond:
                if not chunk:
                    self._eof = True
                    self._cond.notify_all()
                    return
                self._raw += chunk
                self._cond.notify_all()

    def _text(self):
        # Caller holds _cond. Complete lines are cleaned once; the partial
        # last line is cleaned on each call (prompts have no newline).
        nl = self._raw.rfind(b"\n")
        if nl >= self._raw_done:
            self._clean += clean_console_text(bytes(self._raw[self._raw_done:nl + 1]))
            self._raw_done = nl + 1
        return self._clean + clean_console_text(bytes(self._raw[self._raw_done:]))

    def pause_reading(self):
        """Stops reading the guest's serial output, as a host that is busy
        elsewhere does: once the pipe is full, the guest's UART stays busy."""
        self._reading.clear()

    def resume_reading(self):
        self._reading.set()

    def wait_serial_stalled(self, timeout_s):
        """With reading paused: waits until the guest's output fills the
        pipe, the moment from which its UART stays busy. A loaded host may
        take seconds to get the guest printing; a stall timed from here does
        not depend on that."""
        fd = self.proc.stdout.fileno()
        size = fcntl.fcntl(fd, F_GETPIPE_SZ)
        pending = array.array("i", [0])
        deadline = time.monotonic() + timeout_s
        while True:
            fcntl.ioctl(fd, termios.FIONREAD, pending)
            if pending[0] >= size:
                return
            if time.monotonic() > deadline:
                raise BootTestError(f"the guest's output never filled the serial pipe "
                                    f"({pending[0]} of {size} bytes in {timeout_s} s)")
            time.sleep(0.01)

    def output(self):
        """All console text so far (escapes and carriage returns removed)."""
        with self._cond:
            return self._text()

    def tail(self, lines=25):
        """The last lines of the console, for failure messages."""
        text = self.output().rstrip("\n").split("\n")
        return "\n".join("    | " + line for line in text[-lines:])

    def wait_for(self, pattern, timeout, what=None, fail_if=None, partial=False):
        """Waits until `pattern` (a regex) appears in the console output after
        the previous match; returns the match and moves past it.

        Only complete lines are searched, so a pattern never matches a line
        that is still arriving ("returned E" of "returned EFI_LOAD_ERROR");
        `partial` also searches the unfinished last line, for prompts, which
        have no newline. `fail_if` always sees complete lines only.

        => raises BootTestError on timeout, when QEMU exits first, or when the
           regex `fail_if` appears first, or a `pt check` or `pmm audit` line
           that does not say OK (ALWAYS_FAILURE).
        """
        regex = re.compile(pattern, re.MULTILINE)
        bad = re.compile(f"(?:{fail_if})|{ALWAYS_FAILURE}" if fail_if else ALWAYS_FAILURE,
                         re.MULTILINE)
        deadline = time.monotonic() + timeout
        while True:
            # The search runs without the lock: the reader thread must keep
            # draining QEMU's pipe, or the guest's UART stalls behind it.
            with self._cond:
                text, eof, seen = self._text(), self._eof, len(self._raw)
            lines_end = len(text) if eof else text.rfind("\n") + 1
            if lines_end >= self._cursor:
                m = regex.search(text, self._cursor, len(text) if partial else lines_end)
                b = bad.search(text, self._cursor, lines_end)
            else:  # the last match ended inside the unfinished line
                m = regex.search(text, self._cursor) if partial else None
                b = None
            if b and (not m or b.start() < m.start()):
                raise BootTestError(f"waiting for {what or repr(pattern)}: got "
                                    f"{b.group(0)!r} instead; the console ended with:\n"
                                    + self.tail())
            if m:
                self._cursor = m.end()
                return m
            remaining = deadline - time.monotonic()
            if eof or remaining <= 0:
                break
            with self._cond:
                if len(self._raw) == seen and not self._eof:
                    self._cond.wait(min(remaining, 0.5))
        why = "QEMU exited" if self._eof else f"nothing after {timeout:.0f} s"
        if self._eof and self.proc is not None:
            try:
                self.proc.wait(timeout=5)
                why += f" with status {self.proc.returncode}"
            except subprocess.TimeoutExpired:
                pass
        raise BootTestError(f"waiting for {what or repr(pattern)}: {why}; the console ended with:\n"
                            + self.tail())

    def wait_for_line(self, pattern, timeout, what=None, fail_if=None):
        """Like wait_for, but waits for a whole console line containing a
        match of `pattern`; the match's group(0) is that line with its newline.
        """
        return self.wait_for(r"^.*(?:" + pattern + r").*\n", timeout, what or repr(pattern),
                             fail_if)

    def expect_absent(self, pattern, since=0):
        """Fails if `pattern` occurs in the console output from offset `since`."""
        m = re.compile(pattern, re.MULTILINE).search(self.output(), since)
        if m:
            raise BootTestError(f"unexpected console output {m.group(0)!r}")

    def cursor(self):
        """The offset wait_for searches from (for expect_absent ranges)."""
        return self._cursor

    def send(self, text):
        """Types `text` on the guest's serial port."""
        data = text.encode("latin-1") if isinstance(text, str) else bytes(text)
        try:
            self.proc.stdin.write(data)
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError) as e:
            raise BootTestError(f"cannot write to the serial port: {e}")

    def wait_exit(self, timeout):
        """Waits for QEMU to end; returns its exit status.

        => raises BootTestError if it is still running after `timeout` s.
        """
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise BootTestError(f"QEMU still running after {timeout:.0f} s; the console ended with:\n"
                                + self.tail())

    # ---- QMP -------------------------------------------------------------

    def _qmp_connect(self, timeout=10):
        deadline = time.monotonic() + timeout
        while True:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                sock.connect(self.qmp_path)
                break
            except OSError as e:
                sock.close()
                if self.proc.poll() is not None:
                    raise BootTestError(f"QEMU exited with status {self.proc.returncode} "
                                        "before QMP was up")
                if time.monotonic() > deadline:
                    raise BootTestError(f"cannot connect to QMP at {self.qmp_path}: {e}")
                time.sleep(0.1)
        sock.settimeout(timeout)
        self.qmp_sock = sock
        self._qmp_file = sock.makefile("rb")
        greeting = self._qmp_read(timeout)
        if "QMP" not in greeting:
            raise BootTestError(f"unexpected QMP greeting {greeting!r}")
        self._qmp_execute("qmp_capabilities", None, timeout)

    def _qmp_read(self, timeout):
        self.qmp_sock.settimeout(timeout)
        try:
            line = self._qmp_file.readline()
        except socket.timeout:
            raise BootTestError(f"QMP: no answer within {timeout} s")
        if not line:
            raise BootTestError("QMP: connection closed (QEMU gone?)")
        return json.loads(line)

    def _qmp_execute(self, command, arguments, timeout):
        self._qmp_id += 1
        request = {"execute": command, "id": self._qmp_id}
        if arguments is not None:
            request["arguments"] = arguments
        self.qmp_sock.sendall(json.dumps(request).encode() + b"\n")
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise BootTestError(f"QMP {command}: no answer within {timeout} s")
            reply = self._qmp_read(remaining)
            if "event" in reply:
                self._events.append(reply)  # asynchronous events are not answers: kept
                continue
            if reply.get("id") != self._qmp_id:
                continue
            if "error" in reply:
                err = reply["error"]
                raise BootTestError(f"QMP {command}: {err.get('class')}: {err.get('desc')}")
            return reply.get("return")

    def qmp(self, command, arguments=None, timeout=30):
        """Runs one QMP command and returns its `return` value."""
        if self.qmp_sock is None:
            self._qmp_connect()
        return self._qmp_execute(command, arguments, timeout)

    def qmp_events(self, name=None):
        """The QMP events QEMU sent so far (named `name`, if given), in order;
        a query-status first collects those no command has read yet."""
        self.qmp("query-status")
        return [e for e in self._events if name is None or e["event"] == name]

    def hmp(self, command_line, timeout=30):
        """Runs a human monitor command (e.g. "info tlb"); returns its text
        with "\\n" line ends."""
        text = self.qmp("human-monitor-command", {"command-line": command_line}, timeout)
        return text.replace("\r\n", "\n")

    def screendump(self, path):
        """Saves the screen as a PPM file; returns (width, height, rgb bytes)."""
        self.qmp("screendump", {"filename": os.path.abspath(path)})
        return read_ppm(path)

    def send_key(self, *keys):
        """Presses the QEMU key names together (e.g. "ret", "shift", "a")."""
        self.qmp("send-key", {"keys": [{"type": "qcode", "data": k} for k in keys]})


# ---- how QEMU ended ---------------------------------------------------------

def events_until_exit(vm, timeout):
    """Every QMP event QEMU has sent since QMP was connected: those already
    read while commands waited for their answers, then each one QEMU sends
    until it closes the socket (it exited) or `timeout` seconds pass. After
    a timeout the socket takes no more commands.

    => raises BootTestError if QMP was never connected: events from before
    the connection are lost, so a test connects (vm.qmp("query-status"))
    before the guest does what it watches for.
    """
    if vm.qmp_sock is None:
        raise BootTestError("QMP was not connected before QEMU's events came: connect it "
                            "(vm.qmp(\"query-status\")) before the guest acts")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        vm.qmp_sock.settimeout(max(0.1, deadline - time.monotonic()))
        try:
            line = vm._qmp_file.readline()
        except (socket.timeout, OSError):
            break
        if not line:
            break
        msg = json.loads(line)
        if "event" in msg:
            vm._events.append(msg)
    return list(vm._events)


def check_event(events, reason, event="SHUTDOWN"):
    """QEMU's own account of how the machine went: the first SHUTDOWN or
    RESET event in `events` must be `event`, with `reason`, caused by the
    guest (guest: true). A reset under -no-reboot ends QEMU with SHUTDOWN
    reason guest-reset; without -no-reboot it is a RESET; a power-off
    (ResetSystem(EfiResetShutdown), ACPI S5) is SHUTDOWN guest-shutdown.
    Returns the event."""
    shutdowns = [e for e in events if e["event"] in ("SHUTDOWN", "RESET")]
    if not shutdowns:
        raise BootTestError(f"no SHUTDOWN or RESET event from QEMU (events: {events})")
    e = shutdowns[0]
    data = e.get("data", {})
    if e["event"] != event or data.get("reason") != reason or data.get("guest") is not True:
        raise BootTestError(f"QEMU reported {e['event']} {data}, expected {event} with reason "
                            f"{reason!r} caused by the guest")
    print(f"\n[check] QEMU reported {e['event']} with reason {data['reason']} (guest: true)")
    return e


def check_guest_reset(vm, status):
    """QEMU, run with -no-reboot, has ended with `status` (wait_exit's): it
    must be the guest's reset, exit status 0 and a SHUTDOWN event with reason
    guest-reset from the guest. A power-off (ResetSystem(EfiResetShutdown),
    ACPI S5), isa-debug-exit (status 3 for the kernel's exit) or QEMU
    crashing also end QEMU; only this tells them from a reset. QMP must have
    been connected before the guest acted (events_until_exit)."""
    events = events_until_exit(vm, 5)
    if status != 0:
        raise BootTestError(f"QEMU exit status {status}, expected 0 from a guest reset under "
                            f"-no-reboot (events: {events})")
    return check_event(events, "guest-reset")


def read_ppm(path):
    """Reads a binary PPM (P6, maxval 255): returns (width, height, rgb bytes)."""
    with open(path, "rb") as f:
        data = f.read()
    fields = []
    pos = 0
    while len(fields) < 4:
        while data[pos:pos + 1].isspace():
            pos += 1
        if data[pos:pos + 1] == b"#":
            pos = data.index(b"\n", pos) + 1
            continue
        end = pos
        while not data[end:end + 1].isspace():
            end += 1
        fields.append(data[pos:end])
        pos = end
    pos += 1
    if fields[0] != b"P6" or int(fields[3]) != 255:
        raise BootTestError(f"{path}: not a P6 PPM with maxval 255")
    width, height = int(fields[1]), int(fields[2])
    pixels = data[pos:pos + width * height * 3]
    if len(pixels) != width * height * 3:
        raise BootTestError(f"{path}: truncated PPM")
    return width, height, pixels


# ---- ELF program headers -------------------------------------------------

PT_LOAD = 1
PF_X, PF_W, PF_R = 1, 2, 4


class Segment:
    """One PT_LOAD: where it goes and with which permissions."""

    def __init__(self, vaddr, memsz, flags, offset=0, filesz=0):
        self.vaddr = vaddr
        self.memsz = memsz
        self.flags = flags
        self.offset = offset
        self.filesz = filesz

    @property
    def start(self):
        return self.vaddr & ~0xFFF

    @property
    def end(self):
        return (self.vaddr + self.memsz + 0xFFF) & ~0xFFF

    @property
    def writable(self):
        return bool(self.flags & PF_W)

    @property
    def executable(self):
        return bool(self.flags & PF_X)

    def perms(self):
        return ("R" if self.flags & PF_R else "-") + ("W" if self.writable else "-") + \
            ("X" if self.executable else "-")

    def __repr__(self):
        return f"{self.start:016x}-{self.end:016x} {self.perms()}"


def elf_load_segments(path):
    """The PT_LOAD segments of an ELF64 little-endian file, read with struct."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        raise BootTestError(f"{path}: not an ELF64 little-endian file")
    (e_phoff,) = struct.unpack_from("<Q", data, 0x20)
    e_phentsize, e_phnum = struct.unpack_from("<HH", data, 0x36)
    segments = []
    for i in range(e_phnum):
        p_type, p_flags, p_offset, p_vaddr, _paddr, p_filesz, p_memsz, _align = \
            struct.unpack_from("<IIQQQQQQ", data, e_phoff + i * e_phentsize)
        if p_type == PT_LOAD and p_memsz > 0:
            segments.append(Segment(p_vaddr, p_memsz, p_flags, p_offset, p_filesz))
    return segments


# ---- QEMU's page-table views ---------------------------------------------

_TLB_LINE = re.compile(r"^([0-9a-f]{16}): ([0-9a-f]{16}) ([X-])([G-])([P-])([D-])([A-])"
                       r"([C-])([T-])([U-])([W-])$")
_MEM_LINE = re.compile(r"^([0-9a-f]{16})-([0-9a-f]{16}) ([0-9a-f]{16}) ([u-])r([w-])$")


class Leaf:
    """One `info tlb` line: a present leaf entry and its own flag bits."""

    def __init__(self, va, pa, flags):
        self.va = va
        self.pa = pa
        self.nx = flags[0] == "X"
        self.large = flags[2] == "P"
        self.user = flags[7] == "U"
        self.writable = flags[8] == "W"
        self.size = 0x1000  # fixed up by parse_info_tlb for large pages
        self.text = ""

    @property
    def end(self):
        return self.va + self.size

    def __repr__(self):
        return self.text or f"{self.va:016x}"


def parse_info_tlb(text, mem_ranges=None):
    """Parses `info tlb`; returns the leaves in address order.

    `info tlb` does not say a large page's level. A large leaf is 1 GiB when
    its address is 1 GiB aligned, no other leaf starts inside that GiB and
    `info mem` (mem_ranges) shows the address 2 MiB above it mapped; else 2 MiB.
    """
    leaves = []
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        m = _TLB_LINE.match(line)
        if not m:
            raise BootTestError(f"unexpected `info tlb` line {line!r}")
        leaf = Leaf(int(m.group(1), 16), int(m.group(2), 16), "".join(m.groups()[2:]))
        leaf.text = line
        leaves.append(leaf)
    leaves.sort(key=lambda l: l.va)
    for i, leaf in enumerate(leaves):
        if not leaf.large:
            continue
        leaf.size = 2 << 20
        gib = 1 << 30
        next_va = leaves[i + 1].va if i + 1 < len(leaves) else None
        if leaf.va % gib == 0 and (next_va is None or next_va >= leaf.va + gib) \
                and mem_ranges is not None and _covered(mem_ranges, leaf.va + (2 << 20)):
            leaf.size = gib
    return leaves


def parse_info_mem(text):
    """Parses `info mem`; returns [(start, end, user, writable)] with the
    addresses as unsigned 64-bit values."""
    ranges = []
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        m = _MEM_LINE.match(line)
        if not m:
            raise BootTestError(f"unexpected `info mem` line {line!r}")
        start, end = int(m.group(1), 16), int(m.group(2), 16)
        size = int(m.group(3), 16)
        # QEMU sign-extends start and end separately: use start + size.
        ranges.append((start, (start + size) & (2**64 - 1) or 2**64, m.group(4) == "u",
                       m.group(5) == "w"))
    return ranges


def _covered(mem_ranges, va):
    return any(start <= va < end for start, end, _u, _w in mem_ranges)


LOWER_HALF_END = 0x0000800000000000
HHDM_START = 0xFFFF800000000000
HHDM_END = 0xFFFFC00000000000
KERNEL_WINDOW = 0xFFFFFFFF80000000


def check_address_space(segments, leaves, mem_ranges):
    """Checks QEMU's view of the kernel's page tables against the ELF.

    Returns a list of lines describing what was checked; raises BootTestError
    listing every violation:
      - the top 2 GiB holds exactly the pages of the PT_LOAD segments, each
        leaf writable iff PF_W and executable (NX clear) iff PF_X;
      - the HHDM exists and every leaf in it is NX;
      - no leaf anywhere is both writable and executable;
      - nothing is mapped below 0x0000800000000000.
    """
    problems = []
    report = []
    if not segments:
        raise BootTestError("the kernel has no PT_LOAD segments")

    # Lower half.
    low = [l for l in leaves if l.va < LOWER_HALF_END]
    low_mem = [r for r in mem_ranges if r[0] < LOWER_HALF_END]
    for l in low[:5]:
        problems.append(f"lower half mapped: {l}")
    if len(low) > 5:
        problems.append(f"... and {len(low) - 5} more lower-half leaves")
    if low_mem and not low:
        problems.append(f"lower half mapped per `info mem`: {low_mem[0][0]:016x}")
    report.append(f"lower half: {len(low)} leaves (want 0)")

    # W+X anywhere.
    wx = [l for l in leaves if l.writable and not l.nx]
    for l in wx[:5]:
        problems.append(f"writable and executable: {l}")
    if len(wx) > 5:
        problems.append(f"... and {len(wx) - 5} more W+X leaves")
    report.append(f"W+X leaves: {len(wx)} of {len(leaves)} (want 0)")

    # HHDM.
    hhdm = [l for l in leaves if HHDM_START <= l.va < HHDM_END]
    if not hhdm:
        problems.append("nothing mapped at the HHDM (0xffff800000000000)")
    elif hhdm[0].va != HHDM_START:
        problems.append(f"the HHDM does not start at {HHDM_START:016x} (first leaf {hhdm[0]})")
    exec_hhdm = [l for l in hhdm if not l.nx]
    for l in exec_hhdm[:5]:
        problems.append(f"HHDM leaf executable: {l}")
    if hhdm:
        report.append(f"HHDM: {len(hhdm)} leaves from {hhdm[0].va:016x} to "
                      f"{hhdm[-1].end:016x}, {len(exec_hhdm)} executable (want 0)")

    # The top 2 GiB: each leaf inside one segment with its permissions, and
    # every page of every segment present.
    top = [l for l in leaves if l.va >= KERNEL_WINDOW]
    for l in top:
        owner = [s for s in segments if s.start <= l.va and l.end <= s.end]
        if not owner:
            problems.append(f"top 2 GiB: {l} is not inside any PT_LOAD segment")
            continue
        s = owner[0]
        if l.writable != s.writable:
            problems.append(f"{l}: writable={l.writable} but segment {s} has "
                            f"PF_W={s.writable}")
        if (not l.nx) != s.executable:
            problems.append(f"{l}: executable={not l.nx} but segment {s} has "
                            f"PF_X={s.executable}")
        if l.user:
            problems.append(f"{l}: user-accessible kernel page")
    for s in segments:
        pages = (s.end - s.start) // 0x1000
        covered = 0
        for l in top:
            lo, hi = max(l.va, s.start), min(l.end, s.end)
            if lo < hi:
                covered += (hi - lo) // 0x1000
        if covered != pages:
            problems.append(f"segment {s}: {covered} of {pages} pages mapped")
        report.append(f"segment {s}: {pages} pages, mapped with leaf W/X "
                      f"{'W' if s.writable else '-'}{'X' if s.executable else '-'}")
    # `info mem` gives the effective W (ANDed over the levels): a range in the
    # top 2 GiB may be writable only inside a PF_W segment.
    for start, end, user, writable in mem_ranges:
        if start >= KERNEL_WINDOW and writable:
            if not any(s.writable and s.start <= start and end <= s.end for s in segments):
                problems.append(f"`info mem`: {start:016x}-{end:016x} writable outside "
                                "the PF_W segments")
    report.append(f"top 2 GiB: {len(top)} leaves, all inside the {len(segments)} segments")

    if problems:
        raise BootTestError("page tables differ from what the kernel ELF asks for:\n  "
                            + "\n  ".join(problems))
    return report


# ---- host tests' tally -----------------------------------------------------

class Checks:
    """A host test's tally, like tests/include/canopy/check.h's: check() records
    one outcome and prints `FAIL what` when it failed; finish() prints
    `N passed, M failed` and gives the exit status."""

    def __init__(self):
        self.passed = 0
        self.failed = 0

    def check(self, ok, what):
        """Records ok (true when the check held) and returns it."""
        if ok:
            self.passed += 1
        else:
            self.failed += 1
            print(f"FAIL {what}")
        return ok

    def finish(self):
        print(f"{self.passed} passed, {self.failed} failed")
        return 1 if self.failed else 0


# ---- test scripts' common command line -----------------------------------

def arg_parser(description):
    """The options every boot test takes (CTest passes them)."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--image", help="the disk image to boot")
    p.add_argument("--efi", help="stage 1 (for variant images)")
    p.add_argument("--kernel", help="kernel.elf")
    p.add_argument("--cfg", help="canopy.cfg (for variant images)")
    p.add_argument("--mkimage", help="scripts/mkimage.sh (for variant images)")
    p.add_argument("--firmware", choices=FIRMWARES, default="ovmf",
                   help="OVMF (--ovmf-code, --ovmf-vars) or U-Boot's UEFI")
    p.add_argument("--ovmf-code", default=DEFAULT_OVMF_CODE)
    p.add_argument("--ovmf-vars", default=DEFAULT_OVMF_VARS)
    p.add_argument("--workdir", default=".", help="logs and variant images go here")
    p.add_argument("--mem", default="512M")
    p.add_argument("--smp", default="1")
    p.add_argument("--cpu", default="max")
    p.add_argument("--machine", default="q35")
    p.add_argument("--graphics", choices=sorted(qemu_args.GRAPHICS),
                   help="the display adapters (scripts/qemu_args.py; default QEMU's own)")
    p.add_argument("--quiet", action="store_true", help="do not echo the guest console")
    return p


def machine_from_args(args, image=None, name="boot", **kw):
    """A Machine configured from the common options."""
    return Machine(image or args.image, ovmf_code=args.ovmf_code, ovmf_vars=args.ovmf_vars,
                   machine=args.machine, mem=args.mem, smp=args.smp, cpu=args.cpu,
                   graphics=getattr(args, "graphics", None), log_dir=args.workdir, name=name,
                   echo=not args.quiet, firmware=getattr(args, "firmware", "ovmf"), **kw)


def make_image(args, out, kernel=None, no_kernel=False, cfg=None):
    """Builds a variant image with scripts/mkimage.sh; the files go in
    byte for byte as given (no stripping)."""
    cmd = [args.mkimage, "--out", out, "--efi", args.efi, "--quiet", "--no-strip"]
    cmd += ["--no-kernel"] if no_kernel else ["--kernel", kernel or args.kernel]
    cmd += ["--cfg", cfg or args.cfg]
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
    if r.returncode != 0:
        raise BootTestError(f"mkimage failed: {r.stdout.decode(errors='replace')}")
    return out


def run(main):
    """Runs a test's main(), printing PASS/FAIL and exiting 0/1."""
    name = os.path.basename(sys.argv[0])
    t0 = time.monotonic()
    try:
        main()
    except BootTestError as e:
        print(f"\nFAIL {name} ({time.monotonic() - t0:.1f} s): {e}", flush=True)
        sys.exit(1)
    print(f"\nPASS {name} ({time.monotonic() - t0:.1f} s)", flush=True)
    sys.exit(0)
