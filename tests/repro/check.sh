#!/usr/bin/env bash
# Builds the images a second time from a copy of the tree at another path, in
# a build directory of another name, later than the first build, and checks
# that each is the same byte for byte: canopy.img, and canopy-sb.img when the
# first build signs one (the same key, so the same signature).
#
# usage: check.sh SOURCE_DIR WORKDIR IMAGE... [-- CMAKE_OPTION...]
#   each IMAGE is compared with the file of its name in the second build;
#   the CMake options configure the second build as the first
set -euo pipefail
src=$1 work=$2
shift 2
images=() options=()
while [ $# -gt 0 ] && [ "$1" != -- ]; do images+=("$1"); shift; done
[ $# -gt 0 ] && shift
options=("$@")

# The timestamps the first build used: SOURCE_DATE_EPOCH, else the last
# commit (what scripts/mkimage.sh falls back to; the copy has no .git).
epoch=${SOURCE_DATE_EPOCH:-$(git -C "$src" log -1 --format=%ct 2>/dev/null || true)}
[ -n "$epoch" ] || epoch=1704067200

rm -rf "$work"
copy="$work/another/place/canopy-copy"
mkdir -p "$copy"
(cd "$src" && git ls-files -z --cached --others --exclude-standard) |
    (cd "$src" && xargs -0 cp --parents -t "$copy")

echo "[repro] second build in $copy/out-elsewhere ${options[*]}"
SOURCE_DATE_EPOCH=$epoch cmake -S "$copy" -B "$copy/out-elsewhere" -G Ninja "${options[@]}" \
    >"$work/configure.log" 2>&1 || { cat "$work/configure.log"; exit 1; }
targets=(--target image)
for image in "${images[@]}"; do
    [ "$(basename "$image")" != canopy-sb.img ] || targets+=(--target image_sb)
done
SOURCE_DATE_EPOCH=$epoch cmake --build "$copy/out-elsewhere" "${targets[@]}" >"$work/build.log" 2>&1 ||
    { tail -40 "$work/build.log"; exit 1; }

passed=0 failed=0
for image in "${images[@]}"; do
    other=$copy/out-elsewhere/$(basename "$image")
    first=$(sha256sum <"$image" | cut -d' ' -f1)
    second=$(sha256sum <"$other" | cut -d' ' -f1)
    echo "[repro] first  $first $image"
    echo "[repro] second $second $other"
    if [ "$first" = "$second" ]; then
        passed=$((passed + 1))
    else
        echo "FAIL: $(basename "$image") differs between the two builds"
        cmp -l "$image" "$other" | head -5 || true
        failed=$((failed + 1))
    fi
done
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
