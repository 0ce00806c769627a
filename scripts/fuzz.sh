#!/usr/bin/env bash
# Longer fuzzing runs than the bounded ones CTest does. Builds the fuzzers in
# their own build directory (build-fuzz, or CANOPY_FUZZ_BUILD_DIR), then runs
# each chosen target for the given time from a working corpus that starts as a
# copy of the committed seeds and keeps what it finds between runs. Crashes
# land beside that corpus. Ends with one line per target: executions, corpus
# size and verdict. The exit status is non-zero if any target failed.
set -euo pipefail

usage() {
    cat <<'EOF_USAGE'
usage: scripts/fuzz.sh [--seconds N] [-j N] [--list] [target...]

  --seconds N   how long each target runs (default 600)
  -j N          how many targets run at once (default 2)
  --list        print the known targets and exit
  target...     fuzzer names (default: all of them)

Builds the fuzzers in build-fuzz/ (CANOPY_FUZZ_BUILD_DIR overrides it) and
runs each as `NAME -max_total_time=N -print_final_stats=1 CORPUS`. The working
corpus is build-fuzz/fuzz/NAME/corpus (seeded from the committed corpus), the
log build-fuzz/fuzz/NAME/log.txt, crash inputs build-fuzz/fuzz/NAME/crash-*.
Reproduce a crash with `build-fuzz/<dir>/NAME CRASH-FILE`.
EOF_USAGE
}

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${CANOPY_FUZZ_BUILD_DIR:-build-fuzz}
case "$build" in
/*) ;;
*) build=$root/$build ;;
esac

seconds=600
jobs=2
list=0
targets=()
while [ $# -gt 0 ]; do
    case "$1" in
    -h | --help) usage; exit 0 ;;
    --seconds) seconds=${2:?--seconds wants a number}; shift 2 ;;
    --seconds=*) seconds=${1#--seconds=}; shift ;;
    -j) jobs=${2:?-j wants a number}; shift 2 ;;
    -j*) jobs=${1#-j}; shift ;;
    --list) list=1; shift ;;
    -*) echo "fuzz.sh: unknown option $1" >&2; usage >&2; exit 2 ;;
    *) targets+=("$1"); shift ;;
    esac
done
case "$seconds$jobs" in
*[!0-9]*) echo "fuzz.sh: --seconds and -j take whole numbers" >&2; exit 2 ;;
esac

if [ ! -f "$build/CMakeCache.txt" ]; then
    echo "==> configuring $build"
    cmake -S "$root" -B "$build" -G Ninja >/dev/null
else
    cmake "$build" >/dev/null # refreshes fuzzers.txt if a fuzzer was added
fi
# fuzzers.txt: "NAME BINARY CORPUS" per fuzzer, written by canopy_fuzzer.
declare -A binary corpus
all=()
while read -r name bin seeds; do
    [ -n "$name" ] || continue
    binary[$name]=$bin
    corpus[$name]=$seeds
    all+=("$name")
done <"$build/fuzzers.txt"

if [ "$list" = 1 ]; then
    printf '%s\n' "${all[@]}"
    exit 0
fi
[ ${#targets[@]} -gt 0 ] || targets=("${all[@]}")
for t in "${targets[@]}"; do
    if [ -z "${binary[$t]+set}" ]; then
        echo "fuzz.sh: no fuzzer named $t (known: ${all[*]})" >&2
        exit 2
    fi
done

echo "==> building ${targets[*]} in $build"
cmake --build "$build" --target "${targets[@]}"

# One target: refresh the working corpus from the seeds, run, keep the log.
run_one() {
    local t=$1 dir=$build/fuzz/$1
    mkdir -p "$dir/corpus"
    cp -r "${corpus[$t]}/." "$dir/corpus/"
    rm -f "$dir/status"
    local st=0
    (cd "$dir" && "${binary[$t]}" -max_total_time="$seconds" -print_final_stats=1 \
        -artifact_prefix="$dir/" corpus >"$dir/log.txt" 2>&1) || st=$?
    echo "$st" >"$dir/status"
}

echo "==> fuzzing ${#targets[@]} target(s) for $seconds s each, $jobs at a time"
running=0
for t in "${targets[@]}"; do
    if [ "$running" -ge "$jobs" ]; then
        wait -n || true
        running=$((running - 1))
    fi
    run_one "$t" &
    running=$((running + 1))
done
wait

failed=0
printf '%-16s %14s %10s %8s  %s\n' target executions exec/s corpus verdict
for t in "${targets[@]}"; do
    log=$build/fuzz/$t/log.txt
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
    files=$(find "$build/fuzz/$t/corpus" -type f | wc -l)
    verdict=ok
    if [ "$(cat "$build/fuzz/$t/status" 2>/dev/null)" != 0 ]; then
        failed=1
        verdict="FAILED (see $log)"
    fi
    printf '%-16s %14s %10s %8s  %s\n' "$t" "${execs:-?}" "${rate:-?}" "$files" "$verdict"
done
exit "$failed"
