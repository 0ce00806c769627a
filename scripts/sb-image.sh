#!/usr/bin/env bash
# Builds the Secure Boot image: stage 1 signed with KEY, pinning the hash of
# its canopy.cfg, which pins the hash of the kernel (docs/secure-boot.md).
#
#   sb-image.sh --key KEY --cert CERT --efi BOOTX64.EFI --kernel ELF --cfg CFG
#               --dir DIR [--out IMAGE]
#
# In DIR, in this order:
#   kernel.elf          the kernel without its debug sections, as it goes on the ESP
#   canopy.cfg          CFG with every kernel_sha256= line replaced by the kernel's hash
#   BOOTX64.unsigned.efi  stage 1 without symbols or debug sections, canopy.cfg's
#                       hash written into its .cfgpin section (sb-pin.py)
#   BOOTX64.EFI         that file signed with sbsign, then checked with sbverify
# and, with --out, the disk image of those three files (mkimage.sh).
#
# The signature records a signing time; it is SOURCE_DATE_EPOCH (else the
# last commit's time, as mkimage.sh), set through faketime, so the same tree
# and key give the same bytes: RSA PKCS#1 v1.5 signatures have no randomness.
# The key must not ask for a passphrase (sbsign cannot be given one).
set -euo pipefail

readonly PROG=sb-image.sh
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

usage() {
    sed -n '2,20p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
}

die() {
    echo "$PROG: $*" >&2
    exit 1
}

key= cert= efi= kernel= cfg= dir= out=
while [ $# -gt 0 ]; do
    case "$1" in
    --key) key=${2:?}; shift 2 ;;
    --cert) cert=${2:?}; shift 2 ;;
    --efi) efi=${2:?}; shift 2 ;;
    --kernel) kernel=${2:?}; shift 2 ;;
    --cfg) cfg=${2:?}; shift 2 ;;
    --dir) dir=${2:?}; shift 2 ;;
    --out) out=${2:?}; shift 2 ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; exit 2 ;;
    esac
done
for v in key cert efi kernel cfg dir; do
    [ -n "${!v}" ] || { usage >&2; die "--$v is required"; }
done
for f in "$key" "$cert" "$efi" "$kernel" "$cfg"; do
    [ -f "$f" ] || die "$f: no such file"
done
for tool in llvm-objcopy sha256sum sbsign sbverify faketime python3; do
    command -v "$tool" >/dev/null || die "$tool not found (scripts/deps.sh installs it)"
done

if [ -z "${SOURCE_DATE_EPOCH:-}" ]; then
    SOURCE_DATE_EPOCH=$(git -C "$here/.." log -1 --format=%ct 2>/dev/null || true)
    [ -n "$SOURCE_DATE_EPOCH" ] || SOURCE_DATE_EPOCH=1704067200
fi
case "$SOURCE_DATE_EPOCH" in
'' | *[!0-9]*) die "SOURCE_DATE_EPOCH must be a number of seconds" ;;
esac
export SOURCE_DATE_EPOCH

mkdir -p "$dir"
sha256() { sha256sum "$1" | cut -d' ' -f1; }

llvm-objcopy --strip-debug "$kernel" "$dir/kernel.elf.tmp"
mv -f "$dir/kernel.elf.tmp" "$dir/kernel.elf"
kernel_hash=$(sha256 "$dir/kernel.elf")

{
    grep -v '^[[:space:]]*kernel_sha256[[:space:]]*=' "$cfg" || true
    echo
    echo "# The kernel's SHA-256, written by the build: stage 1 refuses any other kernel."
    echo "kernel_sha256=$kernel_hash"
} >"$dir/canopy.cfg.tmp"
mv -f "$dir/canopy.cfg.tmp" "$dir/canopy.cfg"
cfg_hash=$(sha256 "$dir/canopy.cfg")

# --strip-all: the COFF symbol table goes too, so every byte of the file lies
# in a section and sbsign hashes no trailing data.
llvm-objcopy --strip-all "$efi" "$dir/BOOTX64.unsigned.efi.tmp"
python3 "$here/sb-pin.py" "$dir/BOOTX64.unsigned.efi.tmp" "$cfg_hash"
mv -f "$dir/BOOTX64.unsigned.efi.tmp" "$dir/BOOTX64.unsigned.efi"

when=$(TZ=UTC date -d "@$SOURCE_DATE_EPOCH" '+%Y-%m-%d %H:%M:%S')
TZ=UTC faketime -f "$when" sbsign --key "$key" --cert "$cert" \
    --output "$dir/BOOTX64.EFI.tmp" "$dir/BOOTX64.unsigned.efi" >/dev/null 2>"$dir/sbsign.log" ||
    { cat "$dir/sbsign.log" >&2; die "sbsign failed"; }
sbverify --cert "$cert" "$dir/BOOTX64.EFI.tmp" >"$dir/sbverify.log" 2>&1 ||
    { cat "$dir/sbverify.log" >&2; die "sbverify does not accept the signed stage 1 with $cert"; }
mv -f "$dir/BOOTX64.EFI.tmp" "$dir/BOOTX64.EFI"

if [ -n "$out" ]; then
    "$here/mkimage.sh" --out "$out" --efi "$dir/BOOTX64.EFI" --kernel "$dir/kernel.elf" \
        --cfg "$dir/canopy.cfg" --no-strip --quiet
fi
