#!/usr/bin/env bash
# Installs the Debian packages Canopy's build and tests need, only those that
# are missing: one `apt-get update` and one `apt-get install -y`, through sudo
# when not root. Nothing happens (and nothing is asked) when all are present.
set -euo pipefail

PACKAGES=(
    clang lld llvm                 # the one compiler and linkers (lld-link, ld.lld), llvm tools
    clang-format                   # the formatting check in scripts/test.sh
    libclang-rt-14-dev             # libFuzzer and the sanitizer runtimes
    cmake ninja-build              # the build
    gnu-efi                        # UEFI types and protocol headers for stage 1
    console-setup-linux            # the kernel's PSF console font
    mtools gdisk                   # the disk image, without root or loop devices
    ovmf qemu-system-x86           # the firmware and the machine the image boots on
    u-boot-qemu                    # U-Boot's EFI: a second, non-EDK2 firmware for the image
    sbsigntool                     # sbsign/sbverify: the signed stage 1 (canopy-sb.img) and its check
    openssl                        # the snakeoil key's unencrypted copy, sb-keys.sh's keys, shim's certificate
    faketime                       # signs at SOURCE_DATE_EPOCH: sbsign records the signing time
    efitools                       # sb-keys.sh's .esl/.auth files for enrolling keys in firmware
    python3                        # the boot-test harness
    gdb                            # scripts/gdb/canopy.py and its boot test
    git                            # image timestamps from the last commit
    gnuplot-nox                    # benchmark plots
    libglib2.0-dev libavl-dev      # the peers in the AVL benchmarks
    pkg-config                     # finds GLib for the benchmarks
)

if ! command -v dpkg-query >/dev/null 2>&1; then
    echo "deps.sh: no dpkg-query: not a Debian system; install these yourself:" >&2
    echo "  ${PACKAGES[*]}" >&2
    exit 0
fi

missing=()
for pkg in "${PACKAGES[@]}"; do
    status=$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null || true)
    [ "$status" = installed ] || missing+=("$pkg")
done
if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi

echo "deps.sh: installing ${missing[*]}"
if [ "$(id -u)" -eq 0 ]; then
    as_root=()
elif command -v sudo >/dev/null 2>&1; then
    # A password prompt is fine on a terminal; elsewhere fail instead of hanging.
    if [ -t 0 ]; then as_root=(sudo); else as_root=(sudo -n); fi
else
    echo "deps.sh: missing packages and neither root nor sudo: ${missing[*]}" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
    -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "${missing[@]}"
