#!/usr/bin/env bash
# What CI runs: installs what is missing, builds, then every test through
# CTest: host unit tests, fuzzers (bounded time), the formatting check, and
# the boot tests under QEMU + OVMF, those with Secure Boot enforced included.
# Ends with CTest's summary; the exit status is non-zero if anything failed.
set -euo pipefail

usage() {
    cat <<'EOF_USAGE'
usage: scripts/test.sh [-j N] [ctest arguments...]

Installs missing Debian packages, builds in build/, and runs ctest over
everything (two tests at a time by default). Extra arguments go to ctest,
e.g. `scripts/test.sh -L boot` for the boot tests only or `-R pmm` by name.
CANOPY_BUILD_DIR picks another build directory.
EOF_USAGE
}

source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

jobs=2
ctest_args=()
while [ $# -gt 0 ]; do
    case "$1" in
    -h | --help) usage; exit 0 ;;
    -j) jobs=${2:?-j wants a number}; shift 2 ;;
    -j*) jobs=${1#-j}; shift ;;
    *) ctest_args+=("$1"); shift ;;
    esac
done

start=$(date +%s)
# The Secure Boot tests boot canopy-sb.img under OVMF's snakeoil firmware, so
# the build signs it with that firmware's test key (cmake/SecureBoot.cmake).
canopy_deps_and_build -DCANOPY_SB_SNAKEOIL=ON
canopy_step "running the tests (install and build took $(( $(date +%s) - start )) s)"
set +e
ctest --test-dir "$CANOPY_BUILD" --output-on-failure -j "$jobs" "${ctest_args[@]}"
status=$?
exit "$status"
