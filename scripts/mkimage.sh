#!/usr/bin/env bash
# Assembles Canopy's disk image: a GPT disk (protective MBR, one EFI System
# Partition, type EF00, FAT32) holding
#   /EFI/BOOT/BOOTX64.EFI   stage 1, the removable-media boot path firmware looks for
#   /canopy/kernel.elf      the kernel
#   /canopy/canopy.cfg      stage 1's configuration
# Built with sgdisk and mtools only: no root, no loop devices, no mounts.
#
# The image is reproducible byte for byte: the GPT GUIDs and the FAT volume id
# are fixed, every timestamp comes from SOURCE_DATE_EPOCH (else the time of the
# last commit, else a fixed constant), and nothing records where it was built:
# the binaries go in without their debug sections (DWARF names the directories
# it was compiled in; the copies in the build directory keep it for gdb).
#
# Tests use the same script to make broken variants (--no-kernel, a corrupt
# --kernel file, --no-cfg).
#
# With --shim (scripts/shim-image.sh, flash-usb.sh --shim; docs/secure-boot.md)
# the firmware starts shim instead, and stage 1 goes where shim looks for its
# second stage:
#   /EFI/BOOT/BOOTX64.EFI   shim
#   /EFI/BOOT/grubx64.efi   stage 1 (shim's default second stage)
#   /EFI/BOOT/mmx64.efi     MokManager, which shim starts when stage 1 fails its check
#   /canopy/canopy.cer      the certificate to enroll as a MOK (DER), with --mok-cert
# No fallback (fbx64.efi): shim would run it instead of stage 1 from this path.
set -euo pipefail

usage() {
    cat <<'EOF'
usage: mkimage.sh --out IMAGE --efi BOOTX64.EFI [--kernel ELF | --no-kernel]
                  [--cfg FILE | --no-cfg] [--size-mib N] [--no-strip] [--quiet]
                  [--shim SHIM --mokmanager MM [--mok-cert DER]]

  --out IMAGE      where to write the image (written to a temporary file first)
  --efi FILE       stage 1, installed as /EFI/BOOT/BOOTX64.EFI
  --kernel FILE    the kernel, installed as /canopy/kernel.elf
  --no-kernel      leave /canopy/kernel.elf out (for tests)
  --cfg FILE       installed as /canopy/canopy.cfg
  --no-cfg         leave /canopy/canopy.cfg out
  --size-mib N     disk size in MiB (default 64; at least 40 so FAT32 has
                   enough clusters)
  --no-strip       install the binaries with their debug sections
  --quiet          do not print the sha256 line
  --shim FILE      install FILE (shim) as BOOTX64.EFI and stage 1 as grubx64.efi
  --mokmanager FILE  MokManager, as /EFI/BOOT/mmx64.efi (with --shim)
  --mok-cert FILE  a DER certificate, as /canopy/canopy.cer (with --shim)

Timestamps come from SOURCE_DATE_EPOCH if set, else from the last commit.
EOF
}

die() {
    echo "mkimage.sh: $*" >&2
    exit 1
}

out= efi= kernel= cfg= no_kernel=0 no_cfg=0 size_mib=64 quiet=0 strip=1 shim= mm= mok_cert=
while [ $# -gt 0 ]; do
    case "$1" in
    --out) out=${2:?}; shift 2 ;;
    --efi) efi=${2:?}; shift 2 ;;
    --kernel) kernel=${2:?}; shift 2 ;;
    --no-kernel) no_kernel=1; shift ;;
    --cfg) cfg=${2:?}; shift 2 ;;
    --no-cfg) no_cfg=1; shift ;;
    --size-mib) size_mib=${2:?}; shift 2 ;;
    --no-strip) strip=0; shift ;;
    --quiet) quiet=1; shift ;;
    --shim) shim=${2:?}; shift 2 ;;
    --mokmanager) mm=${2:?}; shift 2 ;;
    --mok-cert) mok_cert=${2:?}; shift 2 ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; die "unknown argument '$1'" ;;
    esac
done

[ -n "$out" ] || die "--out is required"
[ -n "$efi" ] || die "--efi is required"
[ -f "$efi" ] || die "$efi: no such file"
if [ "$no_kernel" = 0 ]; then
    [ -n "$kernel" ] || die "--kernel or --no-kernel is required"
    [ -f "$kernel" ] || die "$kernel: no such file"
fi
if [ "$no_cfg" = 0 ]; then
    [ -n "$cfg" ] || die "--cfg or --no-cfg is required"
    [ -f "$cfg" ] || die "$cfg: no such file"
fi
if [ -n "$shim" ] || [ -n "$mm" ] || [ -n "$mok_cert" ]; then
    [ -n "$shim" ] && [ -n "$mm" ] || die "--shim and --mokmanager go together"
    for f in "$shim" "$mm" ${mok_cert:+"$mok_cert"}; do
        [ -f "$f" ] || die "$f: no such file"
    done
fi
case "$size_mib" in
'' | *[!0-9]*) die "--size-mib wants a number of MiB" ;;
esac
[ "$size_mib" -ge 40 ] || die "--size-mib must be at least 40 (FAT32 needs 65525 clusters)"

tools=(sgdisk mformat mmd mcopy sha256sum)
if [ "$strip" = 1 ]; then tools+=(llvm-objcopy); fi
for tool in "${tools[@]}"; do
    command -v "$tool" >/dev/null || die "$tool not found (scripts/deps.sh installs it)"
done

# Timestamps: SOURCE_DATE_EPOCH, else the last commit, else a fixed date
# (2024-01-01 00:00:00 UTC) for trees outside git.
if [ -z "${SOURCE_DATE_EPOCH:-}" ]; then
    src_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
    SOURCE_DATE_EPOCH=$(git -C "$src_dir" log -1 --format=%ct 2>/dev/null || true)
    [ -n "$SOURCE_DATE_EPOCH" ] || SOURCE_DATE_EPOCH=1704067200
fi
case "$SOURCE_DATE_EPOCH" in
'' | *[!0-9]*) die "SOURCE_DATE_EPOCH must be a number of seconds" ;;
esac
# mtools takes "now" from SOURCE_DATE_EPOCH; FAT stores local time, so pin the zone.
export SOURCE_DATE_EPOCH TZ=UTC
# Ignore any user or system mtools configuration, and do not let mtools
# second-guess the geometry of a plain file.
export MTOOLSRC=/dev/null MTOOLS_SKIP_CHECK=1

# Fixed identities: the same bytes on every build and every stick.
readonly DISK_GUID=5C4E0E5A-7A1B-4C1F-9B0E-43414E4F5059
readonly ESP_GUID=8F3A2C61-0D4B-4E7A-A5C2-43414E4F5031
readonly FAT_SERIAL=CA90B001
readonly FAT_LABEL=CANOPY

# Layout in 512-byte sectors: the ESP starts at 1 MiB and ends 1 MiB before
# the end of the disk, which leaves room for the backup GPT (33 sectors).
readonly SECTOR=512
total_sectors=$((size_mib * 1024 * 1024 / SECTOR))
part_start=2048
part_end=$((total_sectors - 2048 - 1))
part_sectors=$((part_end - part_start + 1))

tmp=$(mktemp -d "${TMPDIR:-/tmp}/canopy-img.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

# The files as they go on the ESP.
if [ "$strip" = 1 ]; then
    llvm-objcopy --strip-debug "$efi" "$tmp/BOOTX64.EFI"
    efi=$tmp/BOOTX64.EFI
    if [ "$no_kernel" = 0 ]; then
        # A file that is not an ELF (a test's corrupt kernel) goes in as it is.
        if llvm-objcopy --strip-debug "$kernel" "$tmp/kernel.elf" 2>/dev/null; then
            kernel=$tmp/kernel.elf
        fi
    fi
fi

# The FAT32 file system, built as its own file and then placed in the disk.
# One sector per cluster: a 62 MiB partition then has about 125,000 clusters,
# well above FAT32's minimum of 65525. The hidden-sector count is the
# partition's first LBA, as a partitioned FAT volume's BPB requires.
fat=$tmp/esp.fat
truncate -s $((part_sectors * SECTOR)) "$fat"
mformat -i "$fat" -F -c 1 -T "$part_sectors" -h 64 -s 32 -H "$part_start" \
    -N "$FAT_SERIAL" -v "$FAT_LABEL" ::
mmd -i "$fat" ::/EFI ::/EFI/BOOT ::/canopy
if [ -n "$shim" ]; then
    mcopy -i "$fat" -D o "$shim" ::/EFI/BOOT/BOOTX64.EFI
    mcopy -i "$fat" -D o "$efi" ::/EFI/BOOT/grubx64.efi
    mcopy -i "$fat" -D o "$mm" ::/EFI/BOOT/mmx64.efi
else
    mcopy -i "$fat" -D o "$efi" ::/EFI/BOOT/BOOTX64.EFI
fi
if [ "$no_kernel" = 0 ]; then
    mcopy -i "$fat" -D o "$kernel" ::/canopy/kernel.elf
fi
if [ "$no_cfg" = 0 ]; then
    mcopy -i "$fat" -D o "$cfg" ::/canopy/canopy.cfg
fi
if [ -n "$mok_cert" ]; then
    mcopy -i "$fat" -D o "$mok_cert" ::/canopy/canopy.cer
fi

# The disk: an empty sparse file, the GPT, then the file system at 1 MiB.
disk=$tmp/disk.img
truncate -s $((total_sectors * SECTOR)) "$disk"
sgdisk --clear \
    --disk-guid="$DISK_GUID" \
    --new=1:"$part_start":"$part_end" \
    --typecode=1:EF00 \
    --partition-guid=1:"$ESP_GUID" \
    --change-name=1:"EFI System" \
    "$disk" >/dev/null
dd if="$fat" of="$disk" bs=1M seek=$((part_start * SECTOR / 1024 / 1024)) conv=notrunc,sparse \
    status=none

mkdir -p "$(dirname "$out")"
mv -f "$disk" "$out.tmp"
mv -f "$out.tmp" "$out"
if [ "$quiet" = 0 ]; then
    sum=$(sha256sum "$out" | cut -d' ' -f1)
    echo "$(basename "$out"): sha256 $sum"
fi
