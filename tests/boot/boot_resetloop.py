#!/usr/bin/env python3
"""Boot test: no endless reset loop. A boot that fails the same way every
time stops after the third failure in a row, before the kernel, and goes back
to the firmware's boot manager.

The image's canopy.cfg says debug_fault=PHASE, so every boot faults at PHASE;
QEMU runs without -no-reboot, so each reset boots again, with the same
variable store (OVMF: a private copy of the store; U-Boot: a private copy of
the image, which holds U-Boot's ubootefi.var). Stage 1 counts the failed
boots in its fault record (CanopyLastFault, include/canopy/faultrec.h).

Cases:
  ovmf        debug_fault=pmm-ready (after ExitBootServices). Boots 1-3 fault
              and reset, boots 2 and 3 show the previous record; boot 4 says
              `canopy: 3 failed boots in a row; not starting the kernel` with
              the record and waits for a key, which the test presses on the
              PS/2 keyboard (QMP send-key, so through ConIn); the count is
              cleared, and OVMF's boot manager reports the failed option and
              moves on. Then: exactly 3 resets (QMP RESET events), no fault
              after the stop, and the record deleted from the store file.
  uboot       the same under U-Boot (pc, the faster machine), with
              debug_fault=before-ebs: U-Boot keeps variables only while boot
              services live, so that is where it can count. The key comes on
              the serial console, and U-Boot says `## Application failed`.
  uboot-after-ebs
              U-Boot with debug_fault=pmm-ready: its variables are gone after
              ExitBootServices, so nothing can be recorded or counted there.
              Each boot says so once, in one line, the report says `not
              recorded`, and the next boot shows no previous record (two
              boots are watched).
  uboot-recovers
              U-Boot, a failed boot (debug_fault=before-ebs, recorded, then
              the reset: under -no-reboot QEMU exits with status 0 and QMP's
              SHUTDOWN event with reason guest-reset) and then a good one:
              the kernel cannot delete the record there (no SetVariable
              after ExitBootServices), so stage 1 deletes it right before
              ExitBootServices; a third boot shows no previous record. Three
              QEMU runs, the record carried in ubootefi.var.

    boot_resetloop.py <harness options> --case NAME
"""

import os
import re
import shutil
import subprocess
import time

import boot_postmortem
import harness

BOOT_S = {"ovmf": 60, "uboot": 90}  # a reset to `canopy: stage 1`
REPORT_S = 40                       # `canopy: stage 1` to the fault report
STOP_LINE = r"^canopy: 3 failed boots in a row; not starting the kernel\n"
KEY_PROMPT = r"^canopy: press a key to clear the count.*\n"
NO_VARIABLES = r"^canopy: this firmware keeps no variables after ExitBootServices: .*\n"

CASES = {
    # firmware, machine, debug_fault phase
    "ovmf": ("ovmf", "q35", "pmm-ready"),
    "uboot": ("uboot", "pc", "before-ebs"),
    "uboot-after-ebs": ("uboot", "pc", "pmm-ready"),
    "uboot-recovers": ("uboot", "pc", "before-ebs"),
}
MTOOLS_ENV = dict(os.environ, MTOOLSRC="/dev/null", MTOOLS_SKIP_CHECK="1")
ESP = "@@1048576"  # mkimage.sh puts the ESP at 1 MiB


def fault_image(args, name, phase):
    with open(args.cfg) as f:
        text = f.read()
    return boot_postmortem.make_image(args, name, text + f"\ndebug_fault={phase}\n")


def failing_boot(vm, n, phase, recorded):
    """Boot n: stage 1 starts, shows the record of boot n-1 (n > 1 and
    recorded), faults at phase, reports it (recorded or not) and resets."""
    vm.wait_for(r"^canopy: stage 1\n", BOOT_S[vm.firmware], f"boot {n}: `canopy: stage 1`",
                fail_if=harness.BOOT_FAILURE + r"|^canopy: ready")
    start = vm.cursor()
    m = vm.wait_for(r"^canopy: CPU exception in phase (\S+): vector 14 .*\n", REPORT_S,
                    f"boot {n}: the fault report",
                    fail_if=harness.BOOT_FAILURE + r"|^canopy: ready|" + STOP_LINE)
    if m.group(1) != phase:
        raise harness.BootTestError(f"boot {n}: the fault came in phase {m.group(1)}, not {phase}")
    text = vm.output()[start:m.start()]
    previous = re.findall(r"^canopy: the previous boot stopped at phase (\S+): .*$", text, re.M)
    want = [phase] if recorded and n > 1 else []
    if previous != want:
        raise harness.BootTestError(f"boot {n}: previous-boot lines {previous}, expected for "
                                    f"{want}")
    note = vm.wait_for(r"^canopy: (recorded for the next boot|not recorded \([^)]*\)); "
                       r"resetting in 5 seconds\n", 5, f"boot {n}: the reset notice")
    if (note.group(1) == "recorded for the next boot") != recorded:
        raise harness.BootTestError(f"boot {n}: {note.group(0).strip()!r}, expected the record "
                                    f"to be {'stored' if recorded else 'impossible'}")
    print(f"\n[check] boot {n} at {vm.elapsed():.1f} s: fault in {phase}, "
          f"{len(previous)} previous-boot line(s), {note.group(1)}", flush=True)
    return vm.output()[start:vm.cursor()]


def press_key(vm):
    if vm.firmware == "ovmf":
        vm.send_key("spc")  # the PS/2 keyboard, through ConIn
        return "the PS/2 keyboard (QMP send-key)"
    vm.send(" ")
    return "the serial console"


def run_counted(args, name, firmware, machine, phase):
    image = fault_image(args, f"resetloop-{name}", phase)
    if firmware == "uboot":
        # U-Boot writes ubootefi.var into the image: a private copy, written to.
        private = os.path.join(args.workdir, f"resetloop-{name}-disk.img")
        shutil.copyfile(image, private)
        image = private
    vm = harness.Machine(image, ovmf_code=args.ovmf_code, ovmf_vars=args.ovmf_vars,
                         machine=machine, mem=args.mem, smp=args.smp, cpu=args.cpu,
                         log_dir=args.workdir, name=f"resetloop-{name}", echo=not args.quiet,
                         firmware=firmware, no_reboot=False, snapshot=firmware == "ovmf")
    with vm:
        vm.qmp("query-status")  # QMP up from the start: every RESET event is seen
        for n in (1, 2, 3):
            failing_boot(vm, n, phase, recorded=True)
        vm.wait_for(r"^canopy: stage 1\n", BOOT_S[firmware], "boot 4: `canopy: stage 1`",
                    fail_if=harness.BOOT_FAILURE)
        stop = vm.wait_for(STOP_LINE, 20, "boot 4: the stop after 3 failed boots",
                           fail_if=r"^canopy: CPU exception|^canopy: /canopy/kernel\.elf")
        record = vm.wait_for_line(r"^canopy: the last one stopped at phase " + re.escape(phase)
                                  + r": vector 14 \(page fault\), error code 0x[0-9a-f]+, at RIP "
                                  r"0x[0-9a-f]+, CR2 0x7ffffffff000$", 5, "the saved record")
        vm.wait_for(KEY_PROMPT, 5, "the prompt for a key")
        asked_at = vm.elapsed()
        time.sleep(1)  # the wait has begun: keys typed before it do not count
        how = press_key(vm)
        vm.wait_for_line(r"^canopy: a key; the count is cleared; back to the firmware$", 15,
                         "stage 1 taking the key")
        took = vm.elapsed() - asked_at
        back = vm.wait_for_line(vm.fw_line("failed"), 20, "the boot manager getting control back",
                                fail_if=r"^canopy: CPU exception|^canopy: ready")
        vm.wait_for_line(vm.fw_line("next"), 30, "the boot manager moving on")
        resets = len(vm.qmp_events("RESET"))
        after = vm.output()[stop.start():]
        print(f"\n[check] boot 4: {stop.group(0).strip()!r}, {record.group(0).strip()!r}; "
              f"a key on {how} after {took:.1f} s (not the 60 s timeout); then "
              f"{back.group(0).strip()!r}", flush=True)
        if took > 30:
            raise harness.BootTestError(f"stage 1 took {took:.1f} s to see the key")
        if resets != 3:
            raise harness.BootTestError(f"QEMU saw {resets} resets, expected 3")
        if re.search(r"^canopy: CPU exception", after, re.M):
            raise harness.BootTestError("a fault after the stop: the loop went on")
        print(f"[check] exactly 3 resets (QMP RESET events), no fault after the stop", flush=True)
        vm.qmp("quit")
        vm.wait_exit(10)
        if firmware == "ovmf":
            store = os.path.join(args.workdir, f"resetloop-{name}.vars.fd")
            shutil.copyfile(os.path.join(vm.tmp, "OVMF_VARS.fd"), store)
    if firmware == "ovmf":
        states = [s for s, _ in boot_postmortem.read_variables(store, "CanopyLastFault")]
        if boot_postmortem.live_record(store) is not None or not states:
            raise harness.BootTestError(f"after the key the store holds CanopyLastFault in "
                                        f"states {states}; expected only deleted copies")
        print(f"[check] the record is deleted from the store ({len(states)} dead copies)")
    else:
        check_uboot_var_file(image)


def check_uboot_var_file(image):
    """U-Boot stored the record in ubootefi.var on the ESP (read back with mtools)."""
    r = subprocess.run(["mdir", "-b", "-i", image + ESP, "::/"], env=MTOOLS_ENV,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
    files = r.stdout.decode(errors="replace").lower()
    if "ubootefi.var" not in files:
        raise harness.BootTestError(f"no ubootefi.var on the ESP after the boots: {files!r}")
    print("[check] U-Boot kept its variables in ubootefi.var on the ESP")


def run_uncounted(args, name, firmware, machine, phase):
    image = fault_image(args, f"resetloop-{name}", phase)
    with harness.Machine(image, ovmf_code=args.ovmf_code, ovmf_vars=args.ovmf_vars,
                         machine=machine, mem=args.mem, smp=args.smp, cpu=args.cpu,
                         log_dir=args.workdir, name=f"resetloop-{name}", echo=not args.quiet,
                         firmware=firmware, no_reboot=False) as vm:
        for n in (1, 2):
            text = failing_boot(vm, n, phase, recorded=False)
            said = re.findall(NO_VARIABLES, text, re.M)
            if len(said) != 1:
                raise harness.BootTestError(f"boot {n}: {len(said)} lines saying variables do "
                                            "not last, expected one")
        print(f"[check] each boot said once: {said[0].strip()!r}")


def mtools(*cmd):
    r = subprocess.run(list(cmd), env=MTOOLS_ENV, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=60)
    if r.returncode != 0:
        raise harness.BootTestError(f"{' '.join(cmd)}: {r.stdout.decode(errors='replace')}")


def run_recovers(args, name, firmware, machine, phase):
    failing = os.path.join(args.workdir, f"resetloop-{name}-failing.img")
    good = os.path.join(args.workdir, f"resetloop-{name}-good.img")
    shutil.copyfile(fault_image(args, f"resetloop-{name}", phase), failing)
    shutil.copyfile(args.image, good)

    def machine_for(image, run):
        return harness.Machine(image, machine=machine, mem=args.mem, smp=args.smp, cpu=args.cpu,
                               log_dir=args.workdir, name=f"resetloop-{name}-{run}",
                               echo=not args.quiet, firmware=firmware, snapshot=False)

    with machine_for(failing, 1) as vm:
        vm.qmp("query-status")  # QMP up from the start: the reset's event is seen
        failing_boot(vm, 1, phase, recorded=True)
        harness.check_guest_reset(vm, vm.wait_exit(20))
    var = os.path.join(args.workdir, f"resetloop-{name}.ubootefi.var")
    mtools("mcopy", "-o", "-i", failing + ESP, "::/ubootefi.var", var)
    mtools("mcopy", "-o", "-i", good + ESP, var, "::/ubootefi.var")
    print("[check] run 1 recorded the failure; its ubootefi.var goes to the good image")
    for run, want in ((2, 1), (3, 0)):
        with machine_for(good, run) as vm:
            vm.wait_for(r"^canopy: stage 1\n", BOOT_S[firmware], f"run {run}: `canopy: stage 1`")
            start = vm.cursor()
            vm.wait_for(r"^canopy: ready\n", 60, f"run {run}: `canopy: ready`",
                        fail_if=harness.BOOT_FAILURE + r"|^canopy: CPU exception")
            text = vm.output()[start:vm.cursor()]
            previous = re.findall(r"^canopy: the previous boot stopped at .*$", text, re.M)
            unsure = re.findall(r"^canopy: cannot clear.*$", text, re.M)
            if len(previous) != want or unsure:
                raise harness.BootTestError(f"run {run}: {previous + unsure}, expected "
                                            f"{want} previous-boot line(s) and nothing else")
            print(f"[check] run {run}: {previous[0] if previous else 'no previous-boot line'}; "
                  "`canopy: ready`", flush=True)
            vm.qmp("quit")
            vm.wait_exit(10)
    print("[check] stage 1 deleted the record before ExitBootServices: the good boot "
          "ended the count")


def main():
    p = harness.arg_parser(__doc__)
    p.add_argument("--case", choices=sorted(CASES), required=True)
    args = p.parse_args()
    os.makedirs(args.workdir, exist_ok=True)
    firmware, machine, phase = CASES[args.case]
    if args.case == "uboot-after-ebs":
        run_uncounted(args, args.case, firmware, machine, phase)
    elif args.case == "uboot-recovers":
        run_recovers(args, args.case, firmware, machine, phase)
    else:
        run_counted(args, args.case, firmware, machine, phase)


if __name__ == "__main__":
    harness.run(main)
