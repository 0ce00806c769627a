#!/usr/bin/env bash
# Longer fuzzing runs than the bounded ones CTest does. Builds the fuzzers in
# their own build directory (build-fuzz, or CANOPY_FUZZ_BUILD_DIR), then runs
# each chosen target from a working corpus that starts as a copy of the
# committed seeds and keeps what it finds between runs. Crashes land beside
# that corpus. Ends with one line per target: executions, corpus size and
# verdict. The exit status is non-zero if any target failed.
#
# --long runs each target to a number of executions (10^7 unless --runs says
# otherwise; --seconds caps it in time), then minimises what the run found
# into the committed seed directory (libFuzzer -merge=1: only inputs that add
# coverage the seeds lack) and prints the run as rows of the table in
# docs/fuzzing.md.
set -euo pipefail

usage() {
    cat <<'EOF_USAGE'
usage: scripts/fuzz.sh [--seconds N] [-j N] [target...]
       scripts/fuzz.sh --long [--runs N] [--seconds N] [--no-merge] [--fork N] [-j N] [target...]
       scripts/fuzz.sh --merge [target...]
       scripts/fuzz.sh --list

  --seconds N   how long each target runs (default 600; with --long: no limit)
  --long        run each target to --runs executions, minimise the findings
                into the committed seeds, print the docs/fuzzing.md table rows
  --runs N      executions per target for --long (default 10000000)
  --no-merge    with --long: leave the committed seeds alone
  --fork N      run each target as N worker processes (libFuzzer's -fork=N),
                for a machine with cores to spare: the executions and the
                time are the workers' together
  --merge       only minimise each target's working corpus into its seeds
  -j N          how many targets run at once (default 2; 1 on a shared machine)
  --list        print the known targets and exit
  target...     fuzzer names (default: all of them)

Builds the fuzzers in build-fuzz/ (CANOPY_FUZZ_BUILD_DIR overrides it) and
runs each as `NAME -max_total_time=N -print_final_stats=1 CORPUS` (--long:
`-runs=N` instead, and -max_total_time only if --seconds was given). The
working corpus is build-fuzz/fuzz/NAME/corpus (seeded from the committed
corpus), the log build-fuzz/fuzz/NAME/log.txt, crash inputs
build-fuzz/fuzz/NAME/crash-*. Reproduce a crash with
`build-fuzz/<dir>/NAME CRASH-FILE`. A --long run also appends its table
rows to build-fuzz/fuzz/long-runs.md.
EOF_USAGE
}

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${CANOPY_FUZZ_BUILD_DIR:-build-fuzz}
case "$build" in
/*) ;;
*) build=$root/$build ;;
esac

seconds=
jobs=2
list=0
long=0
runs=10000000
merge=1
merge_only=0
fork=
targets=()
while [ $# -gt 0 ]; do
    case "$1" in
    -h | --help) usage; exit 0 ;;
    --seconds) seconds=${2:?--seconds wants a number}; shift 2 ;;
    --seconds=*) seconds=${1#--seconds=}; shift ;;
    --runs) runs=${2:?--runs wants a number}; shift 2 ;;
    --runs=*) runs=${1#--runs=}; shift ;;
    --long) long=1; shift ;;
    --no-merge) merge=0; shift ;;
    --fork) fork=${2:?--fork wants a number}; shift 2 ;;
    --fork=*) fork=${1#--fork=}; shift ;;
    --merge) merge_only=1; shift ;;
    -j) jobs=${2:?-j wants a number}; shift 2 ;;
    -j*) jobs=${1#-j}; shift ;;
    --list) list=1; shift ;;
    -*) echo "fuzz.sh: unknown option $1" >&2; usage >&2; exit 2 ;;
    *) targets+=("$1"); shift ;;
    esac
done
case "${seconds:-0}$jobs$runs${fork:-0}" in
*[!0-9]*) echo "fuzz.sh: --seconds, --runs, --fork and -j take whole numbers" >&2; exit 2 ;;
esac
if [ "$jobs" -lt 1 ] || [ "$runs" -lt 1 ] || [ "${fork:-1}" -lt 1 ]; then
    echo "fuzz.sh: -j, --runs and --fork must be at least 1" >&2
    exit 2
fi
[ "$long" = 1 ] || seconds=${seconds:-600}

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

# The tree the binaries were built from: the commit, "+changes" if the
# working tree differs from it.
tree=$(git -C "$root" rev-parse --short=7 HEAD 2>/dev/null || echo unknown)
if [ "$tree" != unknown ] && ! git -C "$root" diff --quiet HEAD -- 2>/dev/null; then
    tree="$tree+changes"
fi

# One target: refresh the working corpus from the seeds, run, keep the log.
run_one() {
    local t=$1 dir=$build/fuzz/$1
    mkdir -p "$dir/corpus"
    cp -r "${corpus[$t]}/." "$dir/corpus/"
    rm -f "$dir/status" "$dir/merge.txt" "$dir"/crash-* "$dir"/leak-* "$dir"/timeout-*
    local limit=()
    if [ "$long" = 1 ]; then
        limit=(-runs="$runs")
        [ -z "$seconds" ] || limit+=(-max_total_time="$seconds")
    else
        limit=(-max_total_time="$seconds")
    fi
    [ -z "$fork" ] || limit+=(-fork="$fork")
    local st=0
    (cd "$dir" && "${binary[$t]}" "${limit[@]}" -print_final_stats=1 \
        -artifact_prefix="$dir/" corpus >"$dir/log.txt" 2>&1) || st=$?
    echo "$st" >"$dir/status"
    if [ "$long" = 1 ] && [ "$merge" = 1 ] && [ "$st" = 0 ]; then
        merge_one "$t"
    fi
}

# Minimises what the working corpus found into the committed seeds. With
# -use_counters=0 an input joins only for an edge the seeds do not reach (not
# for a new hit count), so the seeds stay at tens of files; merge.txt gets
# "BEFORE AFTER" (the seed count) or "merge failed".
merge_one() {
    local t=$1 dir=$build/fuzz/$1 before after
    before=$(find "${corpus[$t]}" -type f | wc -l)
    rm -f "$dir/merge.txt"
    (cd "$dir" && "${binary[$t]}" -merge=1 -use_counters=0 "${corpus[$t]}" corpus \
        >"$dir/merge-log.txt" 2>&1) || echo "merge failed" >"$dir/merge.txt"
    after=$(find "${corpus[$t]}" -type f | wc -l)
    [ -f "$dir/merge.txt" ] || echo "$before $after" >"$dir/merge.txt"
}

if [ "$merge_only" = 1 ]; then
    for t in "${targets[@]}"; do
        [ -d "$build/fuzz/$t/corpus" ] || { echo "fuzz.sh: $t has no working corpus yet" >&2; exit 2; }
        merge_one "$t"
        echo "$t: seeds $(cat "$build/fuzz/$t/merge.txt")"
    done
    exit 0
fi

what="for $seconds s each"
[ "$long" = 0 ] || what="to $runs executions each${seconds:+ (at most $seconds s)}"
echo "==> fuzzing ${#targets[@]} target(s) $what, $jobs at a time (tree $tree)"
start=$(date -u +%Y-%m-%d)
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

# 1234567 -> 1,234,567 (whatever the locale).
group() {
    echo "$1" | sed -e ':a' -e 's/\([0-9]\)\([0-9]\{3\}\)\($\|,\)/\1,\2\3/' -e 'ta'
}

# The last "cov: E ft: F" libFuzzer printed: edges and features at the end.
coverage() {
    sed -n 's/.* cov: \([0-9]*\) ft: \([0-9]*\).*/\1 \/ \2/p' "$1" | tail -n 1
}

failed=0
rows=()
printf '%-20s %14s %10s %12s %8s  %s\n' target executions exec/s edges/ft corpus verdict
for t in "${targets[@]}"; do
    dir=$build/fuzz/$t
    log=$dir/log.txt
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
    cov=$(coverage "$log")
    if [ -n "$fork" ]; then
        # -fork prints no stat:: lines and counts its own features: the
        # executions from "#N:" lines, the rate over the run's time, the
        # coverage from a replay of the working corpus, as the other runs'.
        execs=$(sed -n 's/^INFO: fuzzed for \([0-9]*\) iterations.*/\1/p' "$log" | tail -n 1)
        [ -n "$execs" ] || execs=$(sed -n 's/^#\([0-9]*\): cov:.*/\1/p' "$log" | tail -n 1)
        secs=$(sed -n 's/^INFO: exiting: .* time: \([0-9]*\)s.*/\1/p' "$log" | tail -n 1)
        rate=
        [ -z "$execs" ] || [ -z "$secs" ] || [ "$secs" = 0 ] || rate=$((execs / secs))
        (cd "$dir" && "${binary[$t]}" -runs=0 corpus >"$dir/replay.txt" 2>&1) || true
        cov=$(sed -n 's/.*INITED cov: \([0-9]*\) ft: \([0-9]*\).*/\1 \/ \2/p' "$dir/replay.txt" | tail -n 1)
    fi
    files=$(find "$dir/corpus" -type f | wc -l)
    verdict=ok
    if [ "$(cat "$dir/status" 2>/dev/null)" != 0 ]; then
        failed=1
        verdict="FAILED (see $log)"
    fi
    printf '%-20s %14s %10s %12s %8s  %s\n' "$t" "${execs:-?}" "${rate:-?}" "${cov:-?}" \
        "$files" "$verdict"
    if [ "$long" = 1 ]; then
        seeds="$(find "${corpus[$t]}" -type f | wc -l) (not merged)"
        if [ -f "$dir/merge.txt" ]; then
            read -r b a <"$dir/merge.txt" || true
            case "$b" in
            merge) seeds="merge failed (see $dir/merge-log.txt)" ;;
            *) seeds="$b -> $a" ;;
            esac
        fi
        finding=none
        [ "$verdict" = ok ] || finding="FAILED: $(ls "$dir"/crash-* "$dir"/leak-* "$dir"/timeout-* 2>/dev/null | head -n 1)"
        rows+=("| \`$t\` | $tree | $start | $(group "${execs:-?}") | $(group "${rate:-?}") | ${cov:-?} | $seeds | $finding |")
    fi
done
if [ "$long" = 1 ]; then
    echo
    echo "Rows for the table in docs/fuzzing.md (also appended to $build/fuzz/long-runs.md):"
    echo
    echo "| target | tree | date | executions | exec/s | coverage (edges / features) | committed seeds (before -> after merge) | finding |"
    echo "| --- | --- | --- | ---: | ---: | --- | --- | --- |"
    printf '%s\n' "${rows[@]}" | tee -a "$build/fuzz/long-runs.md"
fi
exit "$failed"
