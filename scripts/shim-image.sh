#!/usr/bin/env bash
# Makes the shim variant of a signed Canopy image, for a PC that trusts only
# Microsoft's keys (docs/secure-boot.md, "shim"):
#
#   shim-image.sh --cert CERT SIGNED_IMAGE OUT
#
# SIGNED_IMAGE is canopy-sb.img (or its flashed copy); its stage 1, kernel and
# configuration go into OUT unchanged, laid out by mkimage.sh --shim: Debian's
# Microsoft-signed shim as \EFI\BOOT\BOOTX64.EFI, stage 1 as grubx64.efi beside
# it, MokManager as mmx64.efi, and CERT (PEM or DER) as \canopy\canopy.cer in
# DER for the one-time enrollment. Refuses, writing nothing, unless sbverify
# accepts the image's stage 1 with CERT: enrolling any other certificate would
# not let shim start it.
#
# CANOPY_SHIM_DIR: where shimx64.efi.signed and mmx64.efi.signed are (default
# shim/ in the build directory, CANOPY_BUILD_DIR or build). Missing files are
# fetched there from Debian's shim-signed and shim-helpers-amd64-signed by
# scripts/shim-fetch.sh, without installing those packages.
set -euo pipefail

readonly PROG=shim-image.sh
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
build_dir=${CANOPY_BUILD_DIR:-build}
case "$build_dir" in
/*) ;;
*) build_dir=$here/../$build_dir ;;
esac
shim_dir=${CANOPY_SHIM_DIR:-$build_dir/shim}

die() {
    echo "$PROG: $*" >&2
    exit 1
}
usage() {
    echo "usage: shim-image.sh --cert CERT SIGNED_IMAGE OUT" >&2
    exit 2
}

cert=
args=()
while [ $# -gt 0 ]; do
    case "$1" in
    --cert) cert=${2:?}; shift 2 ;;
    -h | --help) sed -n '2,17p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) usage ;;
    *) args+=("$1"); shift ;;
    esac
done
[ -n "$cert" ] && [ "${#args[@]}" -eq 2 ] || usage
image=${args[0]} out=${args[1]}

for tool in mcopy sgdisk openssl sbverify; do
    command -v "$tool" >/dev/null || die "$tool not found (scripts/deps.sh installs it)"
done
[ -f "$image" ] || die "$image: no such file"
[ -f "$cert" ] || die "$cert: no such file"
shim=$shim_dir/shimx64.efi.signed
mm=$shim_dir/mmx64.efi.signed
if [ ! -f "$shim" ] || [ ! -f "$mm" ]; then
    "$here/shim-fetch.sh" "$shim_dir" || die "no shim in $shim_dir, and it could not be fetched"
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/canopy-shim.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
export MTOOLSRC=/dev/null MTOOLS_SKIP_CHECK=1

# The ESP: the image's first partition, wherever it starts.
first=$(sgdisk -i 1 "$image" 2>/dev/null | awk '/^First sector:/ { print $3 }')
case "$first" in
'' | *[!0-9]*) die "$image: no first partition (not a Canopy image?)" ;;
esac
esp="$image@@$((first * 512))"
for f in EFI/BOOT/BOOTX64.EFI canopy/kernel.elf canopy/canopy.cfg; do
    mcopy -n -i "$esp" "::/$f" "$tmp/${f##*/}" 2>/dev/null || die "$image has no /$f"
done

# The certificate in DER, whichever form it came in.
if openssl x509 -in "$cert" -noout 2>/dev/null; then
    openssl x509 -in "$cert" -outform DER -out "$tmp/canopy.cer"
elif openssl x509 -inform DER -in "$cert" -noout 2>/dev/null; then
    cp "$cert" "$tmp/canopy.cer"
else
    die "$cert is not an X.509 certificate (PEM or DER)"
fi
openssl x509 -inform DER -in "$tmp/canopy.cer" -out "$tmp/canopy.pem"
sbverify --cert "$tmp/canopy.pem" "$tmp/BOOTX64.EFI" >/dev/null 2>&1 ||
    die "$image: its stage 1 is not signed with $cert (build canopy-sb.img with that key)"

"$here/mkimage.sh" --out "$out" --efi "$tmp/BOOTX64.EFI" --kernel "$tmp/kernel.elf" \
    --cfg "$tmp/canopy.cfg" --no-strip --quiet --shim "$shim" --mokmanager "$mm" \
    --mok-cert "$tmp/canopy.cer"
