/*
 * support: the clock, medians and target lines the host benchmarks share.
 * Their tree nodes come from nodes.c (the kernel's slab code, placed as the
 * kernel places its VMAs).
 */
#define _DEFAULT_SOURCE
#include "support.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

double bench_now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return ts.tv_sec * 1e9 + ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return (x > y) - (x < y);
}

double bench_median(double *v, int count)
{
    qsort(v, (size_t)count, sizeof(*v), cmp_double);
    return v[count / 2];
}

void bench_target(FILE *out, const char *name, double value, enum bench_bound bound, double limit,
                  enum bench_runs runs)
{
    if (!out)
        return;
    fprintf(out, "{\"target\": \"%s\", \"value\": %.4f, \"%s\": %.4f, \"runs\": \"%s\"}\n", name,
            value, bound == BENCH_AT_MOST ? "at_most" : "at_least", limit,
            runs == BENCH_RUNS_WORST ? "worst" : "median");
}
