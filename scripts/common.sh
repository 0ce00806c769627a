# Shared by run.sh and test.sh (sourced, not run): where the tree and the
# build directory are, and the install + configure + build steps both share.

CANOPY_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# The build directory; CANOPY_BUILD_DIR overrides it (relative to the tree).
CANOPY_BUILD=${CANOPY_BUILD_DIR:-build}
case "$CANOPY_BUILD" in
/*) ;;
*) CANOPY_BUILD=$CANOPY_ROOT/$CANOPY_BUILD ;;
esac

canopy_step() {
    printf '==> %s\n' "$*"
}

# Installs missing packages, configures (once, or again when the caller
# passes CMake options: they must hold in the build it tests) and builds
# everything. Arguments: -D options for the configure step.
canopy_deps_and_build() {
    canopy_step "checking packages"
    "$CANOPY_ROOT/scripts/deps.sh"
    # Debian's signed shim for the --shim layout and its tests: fetched, never
    # installed (scripts/shim-fetch.sh says why).
    "$CANOPY_ROOT/scripts/shim-fetch.sh" "$CANOPY_BUILD/shim"
    if [ ! -f "$CANOPY_BUILD/CMakeCache.txt" ]; then
        canopy_step "configuring $CANOPY_BUILD"
        cmake -S "$CANOPY_ROOT" -B "$CANOPY_BUILD" -G Ninja "$@"
    elif [ $# -gt 0 ]; then
        canopy_step "configuring $CANOPY_BUILD with $*"
        cmake -S "$CANOPY_ROOT" -B "$CANOPY_BUILD" "$@" >/dev/null
    fi
    canopy_step "building"
    cmake --build "$CANOPY_BUILD"
    if [ ! -f "$CANOPY_BUILD/canopy.img" ]; then
        echo "no canopy.img in $CANOPY_BUILD after the build" >&2
        return 1
    fi
}
