/*
 * support: what the host benchmarks share: the one allocator their tree
 * nodes come from, the clock they time with, medians, and the target lines
 * scripts/bench.sh judges.
 *
 * Nodes are allocated the way the kernel allocates a VMA: today kmalloc,
 * whose size class for the node is carved out of one-page slabs after a
 * 64-byte header (kernel/mm/slab.c, compiled in here unchanged). The pages
 * come from an arena of transparent huge pages, as the kernel reaches its
 * heap through an HHDM of large pages. When the kernel's VMAs get a cache
 * of their own, bench_node_alloc() is the line to change.
 */
#ifndef BENCH_SUPPORT_H
#define BENCH_SUPPORT_H

#include <stddef.h>
#include <stdio.h>

/*
 * size bytes for one tree node, from the node allocator; never NULL (the
 * program ends with a message if memory runs out). Successive calls fill
 * a slab page before starting the next, as kmalloc does.
 */
void *bench_node_alloc(size_t size);

/* Gives a node back. => p came from bench_node_alloc() (or is NULL). */
void bench_node_free(void *p);

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
