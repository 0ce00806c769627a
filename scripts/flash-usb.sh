#!/usr/bin/env bash
# Writes Canopy's disk image to a USB stick, refusing anything that could
# destroy a disk the user did not mean.
#
#   flash-usb.sh [--yes] [--shim --cert CERT] IMAGE DEVICE
#
# --shim writes, instead of IMAGE itself, its shim variant (scripts/shim-image.sh):
# IMAGE must be a signed Canopy image (canopy-sb.img) and CERT the certificate
# of its key; Microsoft-signed shim starts, MokManager enrolls CERT once, and
# from then on shim starts stage 1 (docs/secure-boot.md).
#
# Before a single byte is written, every one of these must hold, or the script
# prints one line `flash-usb: refusing: <reason>` on stderr and exits 1:
#   - IMAGE is a readable GPT disk image (a whole number of 512-byte sectors,
#     "EFI PART" at LBA 1);
#   - DEVICE is a block device and a whole disk, not a partition;
#   - the disk is removable or hangs off a USB bus (sysfs says which);
#   - neither the disk nor any of its partitions is mounted, used as swap or
#     held by another block device (LVM, RAID, dm-crypt), so it cannot hold the
#     running system;
#   - the disk is at least as large as the image;
#   - the user typed the device name again at the prompt, or passed --yes.
# Then it writes with progress, syncs, reads the image's length back and
# compares sha256 sums, and finally moves the backup GPT to the real end of
# the stick (`sgdisk -e`) so that firmware sees a consistent GPT.
#
# Exit status: 0 written and verified; 1 refused (nothing written);
# 2 usage error; 3 the write, the verification or sgdisk failed.
#
# Testing without hardware: the kernel interfaces it reads can be redirected.
#   CANOPY_SYSFS   root of sysfs (default /sys)
#   CANOPY_PROCFS  root of procfs (default /proc): self/mounts (or mounts),
#                  self/mountinfo when present, swaps
#   CANOPY_DEVFS   when set, DEVICE must be /dev/NAME and the bytes go to the
#                  regular file $CANOPY_DEVFS/NAME; whether NAME "is a block
#                  device" is then decided by the fake sysfs alone.
set -euo pipefail

readonly PROG=flash-usb
readonly SECTOR=512
SYSFS=${CANOPY_SYSFS:-/sys}
PROCFS=${CANOPY_PROCFS:-/proc}
DEVFS=${CANOPY_DEVFS:-}

usage() {
    cat <<'EOF'
usage: flash-usb.sh [--yes] [--shim --cert CERT] IMAGE DEVICE

Writes IMAGE (for example build/canopy.img) to the whole USB stick DEVICE
(for example /dev/sdb), reads it back to verify it, and moves the backup GPT
to the end of the stick.

  --yes       do not ask for the device name again (for scripts)
  --shim      for Secure Boot with Microsoft's keys: write IMAGE (canopy-sb.img)
              laid out behind Debian's shim, with MokManager and CERT to enroll
  --cert CERT the certificate canopy-sb.img's stage 1 is signed with (PEM or DER)
  -h, --help  show this text

DEVICE must be a whole, removable or USB-attached disk that is not mounted.
Everything on it is lost.
EOF
}

# One line on stderr, exit 1: the only way a check ends the script.
refuse() {
    echo "$PROG: refusing: $*" >&2
    exit 1
}

# A failure after writing has begun: the stick is in an unknown state.
fail() {
    echo "$PROG: error: $*" >&2
    exit 3
}

# Bytes as "15.6 GB (14.5 GiB)": sticks are sold in decimal units.
human_size() {
    awk -v b="$1" 'BEGIN {
        if (b >= 1e9)      printf "%.1f GB (%.1f GiB)", b / 1e9, b / 1073741824
        else if (b >= 1e6) printf "%.1f MB (%.1f MiB)", b / 1e6, b / 1048576
        else               printf "%d bytes", b
    }'
}

# Trimmed contents of a sysfs attribute, or nothing if it is absent.
sysattr() {
    local v=
    if [ -r "$1" ]; then IFS= read -r v <"$1" || true; fi
    v=${v#"${v%%[![:space:]]*}"}
    v=${v%"${v##*[![:space:]]}"}
    printf '%s' "$v"
}

# A device path as the kernel names it: /dev/disk/by-id/... links resolve to
# /dev/sdX. Under CANOPY_DEVFS nothing resolves (the names are fake).
resolve_dev() {
    case "$1" in
    /dev/*)
        if [ -z "$DEVFS" ] && [ -e "$1" ]; then
            readlink -f -- "$1"
            return
        fi
        ;;
    esac
    printf '%s' "$1"
}

# --- arguments ---------------------------------------------------------------
yes=0 shim=0 cert=
args=()
while [ $# -gt 0 ]; do
    case "$1" in
    --yes | -y) yes=1; shift ;;
    --shim) shim=1; shift ;;
    --cert)
        [ $# -ge 2 ] || { usage >&2; echo "$PROG: --cert wants a file" >&2; exit 2; }
        cert=$2
        shift 2
        ;;
    -h | --help) usage; exit 0 ;;
    --) shift; args+=("$@"); break ;;
    -*) usage >&2; echo "$PROG: unknown option '$1'" >&2; exit 2 ;;
    *) args+=("$1"); shift ;;
    esac
done
if [ "${#args[@]}" -ne 2 ]; then
    usage >&2
    exit 2
fi
image=${args[0]}
device=${args[1]}
if [ "$shim" = 1 ] && [ -z "$cert" ]; then
    usage >&2
    echo "$PROG: --shim needs --cert (the certificate stage 1 is signed with)" >&2
    exit 2
fi
if [ "$shim" = 0 ] && [ -n "$cert" ]; then
    usage >&2
    echo "$PROG: --cert goes with --shim" >&2
    exit 2
fi

for tool in dd sha256sum sgdisk awk; do
    command -v "$tool" >/dev/null || refuse "$tool not found (install it: sgdisk is in the gdisk package)"
done

# --- the image -----------------------------------------------------------------
[ -e "$image" ] || refuse "image $image does not exist (build it first)"
[ -f "$image" ] || refuse "image $image is not a regular file"
[ -r "$image" ] || refuse "image $image is not readable"
img_bytes=$(stat -L -c %s -- "$image")
[ "$img_bytes" -gt 0 ] || refuse "image $image is empty"
[ $((img_bytes % SECTOR)) -eq 0 ] ||
    refuse "image $image is not a whole number of $SECTOR-byte sectors"
sig=$(dd if="$image" bs=1 skip=$SECTOR count=8 status=none | tr '\0' '.')
[ "$sig" = "EFI PART" ] || refuse "image $image is not a GPT disk image (no GPT header at LBA 1)"

# --shim: what gets written is the shim variant, made here before any check
# of the device (so a refusal of the image comes first and writes nothing).
shown_image=$image
if [ "$shim" = 1 ]; then
    shim_tmp=$(mktemp -d "${TMPDIR:-/tmp}/canopy-flash.XXXXXX")
    trap 'rm -rf "$shim_tmp"' EXIT
    if ! why=$("$(dirname "${BASH_SOURCE[0]}")/shim-image.sh" --cert "$cert" "$image" \
        "$shim_tmp/shim.img" 2>&1); then
        why=${why##*$'\n'} # its last line says why
        refuse "${why#shim-image.sh: }"
    fi
    shown_image="$image behind shim (MokManager and $(basename "$cert") to enroll)"
    image=$shim_tmp/shim.img
    img_bytes=$(stat -L -c %s -- "$image")
fi

# --- the device: a whole block device ------------------------------------------
if [ -n "$DEVFS" ]; then
    case "$device" in
    /dev/*/* | /dev/) refuse "$device: with CANOPY_DEVFS set, DEVICE must be /dev/NAME" ;;
    /dev/*) ;;
    *) refuse "$device: with CANOPY_DEVFS set, DEVICE must be /dev/NAME" ;;
    esac
    name=${device#/dev/}
    target=$DEVFS/$name
    shown=/dev/$name
    [ -e "$target" ] || refuse "$shown does not exist"
    # The fake sysfs stands in for the kernel's notion of a block device.
    { [ -f "$target" ] && [ -e "$SYSFS/class/block/$name" ]; } ||
        refuse "$shown is not a block device"
else
    [ -e "$device" ] || refuse "$device does not exist"
    target=$(readlink -f -- "$device")
    name=${target##*/}
    shown=$target
    [ -b "$target" ] || refuse "$device is not a block device"
    [ -e "$SYSFS/class/block/$name" ] ||
        refuse "$device is not known to sysfs ($SYSFS/class/block/$name is missing)"
    # The node must be the device sysfs describes (a stale or renamed node
    # in a container could point at some other disk).
    want=$(sysattr "$SYSFS/class/block/$name/dev")
    have=$(stat -L -c '%t %T' -- "$target")
    read -r maj_hex min_hex <<<"$have"
    [ "$want" = "$((16#$maj_hex)):$((16#$min_hex))" ] ||
        refuse "$device is device $((16#$maj_hex)):$((16#$min_hex)) but sysfs says $name is $want"
fi

if [ -e "$SYSFS/class/block/$name/partition" ]; then
    parent=$(readlink -f -- "$SYSFS/class/block/$name/..")
    parent=${parent##*/}
    refuse "$shown is a partition, not a whole disk (the whole disk is /dev/$parent)"
fi
sysblk=$SYSFS/block/$name
[ -d "$sysblk" ] || refuse "$shown is not a whole disk ($sysblk is missing)"

# --- removable or on USB -----------------------------------------------------
removable=$(sysattr "$sysblk/removable")
devpath=$(readlink -f -- "$sysblk/device" 2>/dev/null || readlink -f -- "$sysblk")
on_usb=0
case "/$devpath/" in
*/usb[0-9]*/*) on_usb=1 ;;
esac
if [ "$removable" != 1 ] && [ "$on_usb" != 1 ]; then
    refuse "$shown is neither removable nor on a USB bus (an internal disk?)"
fi

# --- not in use ----------------------------------------------------------------
# The disk and its partitions: kernel names and device numbers.
parts=()
for p in "$sysblk"/*/partition; do
    [ -e "$p" ] || continue
    p=${p%/partition}
    parts+=("${p##*/}")
done
members=("$name" "${parts[@]}")
majmins=()
for m in "${members[@]}"; do
    if [ "$m" = "$name" ]; then
        majmins+=("$(sysattr "$sysblk/dev")")
    else
        majmins+=("$(sysattr "$sysblk/$m/dev")")
    fi
done

# Mount points that mean "this is the running system".
is_system_mount() {
    case "$1" in
    / | /usr | /var | /boot | /boot/efi | /efi | /home) return 0 ;;
    esac
    return 1
}

# Refuses if the disk or a partition is mounted, is swap or has holders.
# Root and swap come first: they are the reason to refuse most worth reading.
check_in_use() {
    local mounts_file='' src mnt mm m i rest sys_hit='' any_hit='' line f
    if [ -r "$PROCFS/self/mounts" ]; then
        mounts_file=$PROCFS/self/mounts
    elif [ -r "$PROCFS/mounts" ]; then
        mounts_file=$PROCFS/mounts
    else
        refuse "cannot read $PROCFS/self/mounts to check that $shown is not mounted"
    fi
    while read -r src mnt rest; do
        src=$(resolve_dev "$src")
        mnt=$(printf '%b' "$mnt")
        for m in "${members[@]}"; do
            [ "$src" = "/dev/$m" ] || continue
            if is_system_mount "$mnt"; then
                [ -n "$sys_hit" ] || sys_hit="$mnt is mounted from /dev/$m"
            else
                [ -n "$any_hit" ] || any_hit="/dev/$m on $mnt"
            fi
        done
    done <"$mounts_file"
    # mountinfo names the device by number, which catches a root listed as
    # /dev/root or through a name this script cannot resolve.
    if [ -r "$PROCFS/self/mountinfo" ]; then
        while read -r _ _ mm _ mnt rest; do
            mnt=$(printf '%b' "$mnt")
            for i in "${!members[@]}"; do
                if [ -z "${majmins[$i]}" ] || [ "$mm" != "${majmins[$i]}" ]; then continue; fi
                m=${members[$i]}
                if is_system_mount "$mnt"; then
                    [ -n "$sys_hit" ] || sys_hit="$mnt is mounted from /dev/$m"
                else
                    [ -n "$any_hit" ] || any_hit="/dev/$m on $mnt"
                fi
            done
        done <"$PROCFS/self/mountinfo"
    fi
    [ -z "$sys_hit" ] || refuse "$shown holds the running system: $sys_hit"

    if [ -r "$PROCFS/swaps" ]; then
        while read -r src rest; do
            [ "$src" != Filename ] || continue
            src=$(resolve_dev "$(printf '%b' "$src")")
            for m in "${members[@]}"; do
                [ "$src" = "/dev/$m" ] &&
                    refuse "$shown holds the running system: /dev/$m is in use as swap"
            done
        done <"$PROCFS/swaps"
    fi

    [ -z "$any_hit" ] || refuse "$shown is mounted: $any_hit (unmount it first)"

    for m in "${members[@]}"; do
        if [ "$m" = "$name" ]; then f=$sysblk/holders; else f=$sysblk/$m/holders; fi
        for line in "$f"/*; do
            [ -e "$line" ] || [ -L "$line" ] || continue
            refuse "$shown is in use: /dev/$m is held by ${line##*/} (LVM, RAID or encryption)"
        done
    done
    return 0
}
check_in_use

# --- big enough ----------------------------------------------------------------
sectors=$(sysattr "$sysblk/size")
case "$sectors" in
'' | *[!0-9]*) refuse "cannot read the size of $shown from $sysblk/size" ;;
esac
dev_bytes=$((sectors * SECTOR))
[ "$dev_bytes" -gt 0 ] || refuse "$shown has size 0 (no medium in the reader?)"
[ "$dev_bytes" -ge "$img_bytes" ] ||
    refuse "$shown ($(human_size "$dev_bytes")) is smaller than the image ($(human_size "$img_bytes"))"

# The image's GPT counts in 512-byte LBAs; on a disk with larger logical
# sectors (some USB hard-disk bridges) firmware would read it at the wrong
# offsets and find no partition.
lbs=$(sysattr "$sysblk/queue/logical_block_size")
[ -z "$lbs" ] || [ "$lbs" = "$SECTOR" ] ||
    refuse "$shown has $lbs-byte logical sectors; the image is laid out for $SECTOR-byte sectors"

[ -w "$target" ] || refuse "cannot write to $shown (run as root, for example with sudo)"

# --- show what is about to be erased -----------------------------------------
# Filesystem type and label of a partition, when blkid or lsblk can tell.
fs_desc() {
    local node=/dev/$1 type='' label=''
    [ -z "$DEVFS" ] && [ -b "$node" ] || return 0
    if command -v blkid >/dev/null; then
        type=$(blkid -p -o value -s TYPE -- "$node" 2>/dev/null || true)
        label=$(blkid -p -o value -s LABEL -- "$node" 2>/dev/null || true)
    elif command -v lsblk >/dev/null; then
        type=$(lsblk -dno FSTYPE -- "$node" 2>/dev/null || true)
        label=$(lsblk -dno LABEL -- "$node" 2>/dev/null || true)
    fi
    printf '%s%s' "${type:+  $type}" "${label:+  \"$label\"}"
}

vendor=$(sysattr "$sysblk/device/vendor")
model=$(sysattr "$sysblk/device/model")
conn=
[ "$on_usb" = 1 ] && conn=USB
[ "$removable" = 1 ] && conn="${conn:+$conn, }removable"
echo "Device:  $shown"
echo "Model:   ${vendor:+$vendor }${model:-(unknown)}"
echo "Size:    $(human_size "$dev_bytes")"
echo "Bus:     $conn"
if [ "${#parts[@]}" -eq 0 ]; then
    echo "Holds:   no partitions$(fs_desc "$name")"
else
    first=1
    for p in "${parts[@]}"; do
        psize=$(sysattr "$sysblk/$p/size")
        line="$p  $(human_size $((${psize:-0} * SECTOR)))$(fs_desc "$p")"
        if [ "$first" = 1 ]; then echo "Holds:   $line"; first=0; else echo "         $line"; fi
    done
fi
echo "Image:   $shown_image, $(human_size "$img_bytes")"
echo "Everything on $shown will be lost."

# --- confirm -------------------------------------------------------------------
if [ "$yes" != 1 ]; then
    [ -t 0 ] || refuse "no terminal to confirm on; pass --yes to write without asking"
    printf 'Type the device name again (%s) to write the image: ' "$shown"
    answer=
    IFS= read -r answer || true
    case "$answer" in
    "$shown" | "$name" | "$device") ;;
    '') refuse "no device name typed; nothing written" ;;
    *) refuse "typed '$answer', which is not $shown; nothing written" ;;
    esac
    # The prompt may have waited a while: a desktop may have mounted it since.
    check_in_use
fi

# --- write, verify, fix the GPT ------------------------------------------------
direct=
[ -b "$target" ] && direct=direct
echo "Writing $image to $shown ..."
dd if="$image" of="$target" bs=4M iflag=fullblock conv=fsync,notrunc \
    ${direct:+oflag=$direct} status=progress ||
    fail "writing $shown failed; the stick is in an unknown state"
sync

echo "Verifying ..."
# Read from the device, not from the page cache.
if [ -b "$target" ] && command -v blockdev >/dev/null; then
    blockdev --flushbufs "$target" 2>/dev/null || true
fi
want=$(sha256sum <"$image")
want=${want%% *}
read_back() {
    dd if="$target" bs=4M iflag=fullblock,count_bytes${1:+,$1} count="$img_bytes" status=none |
        sha256sum
}
got=$(read_back "$direct" 2>/dev/null || read_back "") ||
    fail "reading $shown back failed"
got=${got%% *}
[ "$got" = "$want" ] ||
    fail "verification failed: image sha256 $want, $shown reads back $got"
echo "Verified: sha256 $want"

# The image's backup GPT sits at the image's end, which is not the stick's:
# firmware that checks the backup header (as the UEFI spec asks) would see a
# broken GPT. sgdisk -e moves it to the last sectors of the stick.
if ! out=$(sgdisk -e "$target" 2>&1); then
    printf '%s\n' "$out" >&2
    fail "sgdisk -e $shown failed; the data is written but the backup GPT is not at the end"
fi
sync
out=$(sgdisk -v "$target" 2>&1 || true)
case "$out" in
*"No problems found"*) echo "GPT: backup moved to the end of the stick; sgdisk -v finds no problems" ;;
*)
    printf '%s\n' "$out" >&2
    fail "sgdisk -v reports problems with the GPT on $shown"
    ;;
esac
echo "Done: $shown holds the image. Eject it before unplugging."
