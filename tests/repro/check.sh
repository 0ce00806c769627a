#!/usr/bin/env bash
# Builds canopy.img a second time from a copy of the tree at another path, in
# a build directory of another name, later than the first build, and checks
# that the image is the same byte for byte.
#
# usage: check.sh SOURCE_DIR IMAGE WORKDIR
set -euo pipefail
src=$1 image=$2 work=$3

# The timestamps the first build used: SOURCE_DATE_EPOCH, else the last
# commit (what scripts/mkimage.sh falls back to; the copy has no .git).
epoch=${SOURCE_DATE_EPOCH:-$(git -C "$src" log -1 --format=%ct 2>/dev/null || true)}
[ -n "$epoch" ] || epoch=1704067200

rm -rf "$work"
copy="$work/another/place/canopy-copy"
mkdir -p "$copy"
(cd "$src" && git ls-files -z --cached --others --exclude-standard) |
    (cd "$src" && xargs -0 cp --parents -t "$copy")

echo "[repro] second build in $copy/out-elsewhere"
SOURCE_DATE_EPOCH=$epoch cmake -S "$copy" -B "$copy/out-elsewhere" -G Ninja >"$work/configure.log" 2>&1 ||
    { cat "$work/configure.log"; exit 1; }
SOURCE_DATE_EPOCH=$epoch cmake --build "$copy/out-elsewhere" --target image >"$work/build.log" 2>&1 ||
    { tail -40 "$work/build.log"; exit 1; }

first=$(sha256sum <"$image" | cut -d' ' -f1)
second=$(sha256sum <"$copy/out-elsewhere/canopy.img" | cut -d' ' -f1)
echo "[repro] first  $first $image"
echo "[repro] second $second $copy/out-elsewhere/canopy.img"
if [ "$first" != "$second" ]; then
    echo "FAIL: canopy.img differs between the two builds"
    cmp -l "$image" "$copy/out-elsewhere/canopy.img" | head -5 || true
    echo "0 passed, 1 failed"
    exit 1
fi
echo "1 passed, 0 failed"
