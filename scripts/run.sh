#!/usr/bin/env bash
# Installs what is missing, builds, and boots canopy.img under QEMU with OVMF
# (or U-Boot's UEFI), the guest's serial console on this terminal.
set -euo pipefail

usage() {
    cat <<'EOF'
usage: scripts/run.sh [options] [-- extra QEMU arguments]

Installs missing Debian packages, builds (in build/), and boots build/canopy.img
under QEMU (q35) with OVMF. The serial console is on this terminal: type to the
guest; Ctrl-A X quits QEMU, Ctrl-A C switches to QEMU's monitor and back.

  --headless        no window; the serial console only
  --mem SIZE        guest RAM (default 512M), e.g. 128M, 4G
  --smp N           number of CPUs (default 1)
  --cpu MODEL       CPU model (default: max; e.g. qemu64 has no 1 GiB pages)
  --machine TYPE    q35 (default) or pc
  --graphics SETUP  display adapters: std, two (std + a secondary VGA), virtio
                    (virtio-gpu only) or none (default: QEMU's, one std VGA)
  --gdb             start paused; QEMU waits for GDB on localhost:1234
                    (docs/debugging.md)
  --gdb-port PORT   the same on another port (implies --gdb)
  --no-reboot       exit instead of rebooting
  --kvm             use KVM instead of TCG emulation (needs a usable /dev/kvm)
  --no-build        boot the existing image without installing or building
  --image FILE      boot another image (implies --no-build)
  --ovmf-code FILE  firmware code (default: OVMF's 4 MB build)
  --ovmf-vars FILE  variable store template (default: the one matching the code)
  --uboot           boot under U-Boot's UEFI instead of OVMF (package
                    u-boot-qemu), from a fresh copy of the image
                    (build/uboot-disk.img): U-Boot keeps its variables there
  -h, --help        this text

QMP (the machine-readable monitor) listens on build/qmp.sock while QEMU runs.
The environment variable CANOPY_BUILD_DIR picks another build directory.
The command line itself comes from scripts/qemu_args.py, which the boot tests
use too.
EOF
}

source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

headless=0 mem=512M smp=1 cpu=max machine=q35 graphics= gdb=0 no_reboot=0 build=1 image= accel=tcg gdb_port=1234
ovmf_code= ovmf_vars= firmware=ovmf
extra=()
qemu_args=(python3 "$CANOPY_ROOT/scripts/qemu_args.py")
need() {
    [ $# -ge 2 ] && [ -n "$2" ] || { echo "run.sh: $1 needs a value" >&2; exit 2; }
}
while [ $# -gt 0 ]; do
    case "$1" in
    --headless) headless=1; shift ;;
    --mem) need "$@"; mem=$2; shift 2 ;;
    --smp) need "$@"; smp=$2; shift 2 ;;
    --cpu) need "$@"; cpu=$2; shift 2 ;;
    --machine) need "$@"; machine=$2; shift 2 ;;
    --graphics) need "$@"; graphics=$2; shift 2 ;;
    --gdb) gdb=1; shift ;;
    --gdb-port) need "$@"; gdb=1; gdb_port=$2; shift 2 ;;
    --no-reboot) no_reboot=1; shift ;;
    --kvm) accel=kvm; shift ;;
    --no-build) build=0; shift ;;
    --image) need "$@"; image=$2; build=0; shift 2 ;;
    --ovmf-code) need "$@"; ovmf_code=$2; shift 2 ;;
    --ovmf-vars) need "$@"; ovmf_vars=$2; shift 2 ;;
    --uboot) firmware=uboot; shift ;;
    -h | --help) usage; exit 0 ;;
    --) shift; extra=("$@"); break ;;
    *) echo "run.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
    esac
done
case "$smp" in '' | *[!0-9]*) echo "run.sh: --smp wants a number" >&2; exit 2 ;; esac

if [ "$build" = 1 ]; then
    canopy_deps_and_build
fi
image=${image:-$CANOPY_BUILD/canopy.img}
[ -f "$image" ] || { echo "run.sh: $image not found (build first)" >&2; exit 1; }

mkdir -p "$CANOPY_BUILD"
if [ "$firmware" = uboot ]; then
    uboot_rom=$("${qemu_args[@]}" uboot)
    [ -f "$uboot_rom" ] || { echo "run.sh: $uboot_rom not found (package u-boot-qemu)" >&2; exit 1; }
    # U-Boot keeps its variables in a file on the ESP: it boots a fresh copy of
    # the image each run, as OVMF gets a fresh copy of its store, and the
    # built image stays as built.
    cp "$image" "$CANOPY_BUILD/uboot-disk.img"
    image=$CANOPY_BUILD/uboot-disk.img
    fw_args=(--firmware uboot --uboot-rom "$uboot_rom")
else
    # The default firmware, and the variable store matching the firmware build
    # (OVMF_CODE_4M.fd goes with OVMF_VARS_4M.fd, OVMF_CODE.fd with OVMF_VARS.fd).
    if [ -z "$ovmf_code" ]; then
        ovmf_code=$("${qemu_args[@]}" ovmf)
        ovmf_code=${ovmf_code%%$'\n'*} # the first line: the code; the second names its store
    fi
    if [ -z "$ovmf_vars" ]; then
        ovmf_vars=$("${qemu_args[@]}" vars-for "$ovmf_code")
    fi
    for f in "$ovmf_code" "$ovmf_vars"; do
        [ -f "$f" ] || { echo "run.sh: $f not found (package ovmf)" >&2; exit 1; }
    done

    # A private copy of the variable store: boot entries the firmware writes stay
    # in the build directory, and a fresh copy each run keeps runs independent.
    vars=$CANOPY_BUILD/OVMF_VARS.fd
    cp "$ovmf_vars" "$vars"
    fw_args=(--ovmf-code "$ovmf_code" --vars "$vars")
fi

# TCG unless asked: it behaves the same everywhere (nested or restricted KVM
# hosts can refuse CPU models), and Canopy boots in seconds without KVM.
if [ "$accel" = kvm ] && [ ! -w /dev/kvm ]; then
    echo "run.sh: --kvm: /dev/kvm is not usable by this user" >&2
    exit 1
fi

# The serial console and QEMU's monitor share this terminal (mon:stdio).
args=(
    --image "$image" "${fw_args[@]}"
    --machine "$machine" --accel "$accel" --cpu "$cpu" --mem "$mem" --smp "$smp"
    --serial mon:stdio --qmp "$CANOPY_BUILD/qmp.sock"
)
if [ "$headless" = 0 ] && [ -z "${DISPLAY:-}${WAYLAND_DISPLAY:-}" ]; then
    echo "run.sh: no graphical session (DISPLAY unset); running headless" >&2
    headless=1
fi
if [ "$headless" = 1 ]; then
    args+=(--display none)
else
    displays=$(qemu-system-x86_64 -display help 2>/dev/null || true)
    if grep -qx gtk <<<"$displays"; then
        args+=(--display gtk)
    elif grep -qx sdl <<<"$displays"; then
        args+=(--display sdl)
    else
        echo "run.sh: QEMU has no gtk or sdl display (package qemu-system-gui); running headless" >&2
        args+=(--display none)
    fi
fi
qemu_extra=()
if [ "$gdb" = 1 ]; then
    qemu_extra+=(-gdb "tcp:localhost:$gdb_port" -S)
    echo "run.sh: QEMU is paused and waits for GDB on localhost:$gdb_port:" >&2
    echo "  gdb $CANOPY_BUILD/kernel/kernel.elf -ex 'target remote :$gdb_port'" >&2
fi
[ "$no_reboot" = 1 ] && args+=(--no-reboot)
[ -n "$graphics" ] && args+=(--graphics "$graphics")

canopy_step "booting $(basename "$image") (Ctrl-A X quits)"
set +e
"${qemu_args[@]}" exec "${args[@]}" -- "${qemu_extra[@]}" "${extra[@]}"
status=$?
set -e
rm -f "$CANOPY_BUILD/qmp.sock"
# isa-debug-exit: a guest's write of v ends QEMU with status (v << 1) | 1.
if [ "$status" -ne 0 ] && [ $((status & 1)) -eq 1 ]; then
    echo "run.sh: the guest exited through isa-debug-exit with value $((status >> 1))" >&2
fi
exit "$status"
