#!/usr/bin/env bash
# Puts Debian's Microsoft-signed shim and MokManager into DIR without
# installing them:
#
#   shim-fetch.sh DIR
#
# leaves DIR/shimx64.efi.signed and DIR/mmx64.efi.signed, taken from the
# shim-signed and shim-helpers-amd64-signed packages with `apt-get download`
# (which checks them against the signed archive index) and `dpkg-deb -x`.
# Installing shim-signed instead would run its maintainer script, which on a
# machine booted through UEFI reinstalls that machine's own GRUB; a developer
# running scripts/run.sh must never have their boot loader rewritten. Nothing
# happens when DIR already has both files. Needs no root, except for one
# `apt-get update` when the package lists are missing.
set -euo pipefail

readonly PROG=shim-fetch.sh
dir=${1:?usage: shim-fetch.sh DIR}
files=(shimx64.efi.signed mmx64.efi.signed)
have_all() {
    local f
    for f in "${files[@]}"; do
        [ -f "$dir/$f" ] || return 1
    done
}
have_all && exit 0

mkdir -p "$dir"
work=$(mktemp -d "${TMPDIR:-/tmp}/canopy-shim-fetch.XXXXXX")
trap 'rm -rf "$work"' EXIT
packages=(shim-signed shim-helpers-amd64-signed)
if ! (cd "$work" && apt-get download -q "${packages[@]}") >"$work/log" 2>&1; then
    # A fresh machine may not have the package lists yet.
    if [ "$(id -u)" -eq 0 ]; then as_root=(); else as_root=(sudo -n); fi
    "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q >>"$work/log" 2>&1 || true
    if ! (cd "$work" && apt-get download -q "${packages[@]}") >>"$work/log" 2>&1; then
        echo "$PROG: cannot download ${packages[*]}:" >&2
        tail -n 5 "$work/log" >&2
        exit 1
    fi
fi
for deb in "$work"/*.deb; do
    dpkg-deb -x "$deb" "$work/root"
done
for f in "${files[@]}"; do
    src=$work/root/usr/lib/shim/$f
    [ -f "$src" ] || { echo "$PROG: $f is not in ${packages[*]}" >&2; exit 1; }
    cp "$src" "$dir/$f.tmp" && mv "$dir/$f.tmp" "$dir/$f"
done
