/*
 * support: what the host benchmarks share besides their nodes (nodes.h):
 * the clock they time with, medians, and the target lines scripts/bench.sh
 * judges.
 */
#ifndef BENCH_SUPPORT_H
#define BENCH_SUPPORT_H

#include <stddef.h>
#include <stdio.h>

/*
 * The CPU time this thread has used, in ns: on a shared machine, the time
 * other processes hold the core is not charged to the code measured (what
 * they do to the caches still is).
 */
double bench_now_ns(void);

/* The median of count values; sorts v. => count > 0 */
double bench_median(double *v, int count);

/* Which side of its bound a target's value must stay on. */
enum bench_bound { BENCH_AT_MOST, BENCH_AT_LEAST };

/* How scripts/bench.sh combines one target's values from several runs. */
enum bench_runs {
    BENCH_RUNS_MEDIAN, /* a time or a ratio: the median run */
    BENCH_RUNS_WORST,  /* a count that must hold every time: the worst run */
};

/*
 * Writes one target line to out (the benchmark's JSON output), for
 * scripts/bench.sh to judge PASS or MISS in build/bench/targets.txt:
 *   {"target": NAME, "value": V, "at_most": B, "runs": "median"}
 * NAME says what is measured, at which n; the same NAME in several runs is
 * one target. Does nothing if out is NULL.
 * => name holds no '"' or '\\'
 */
void bench_target(FILE *out, const char *name, double value, enum bench_bound bound, double limit,
                  enum bench_runs runs);

#endif
