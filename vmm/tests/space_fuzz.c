/*
 * space_fuzz: libFuzzer target for the address space (vmm/space.h).
 *
 * The input is decoded into a scenario (byte 0: which space), a VMA target
 * (byte 1) and then a stream of 64-bit words from which diff_random_op draws
 * operations: reserves, first-fit and top-down allocations with random
 * sizes, alignments and windows, whole/partial/multi-VMA frees, protects,
 * lookups and node-source exhaustion. After every operation the VMAs it
 * touched (and one either side) are compared with the naive model in
 * space_oracle.c and checked with avl_check_path; every FULL_EVERY
 * operations and at the end the whole space is compared and checked with
 * vmm_space_check. Any disagreement or leaked node aborts.
 *
 * CTest runs it for 15 s from the seed corpus in corpus/space_fuzz/. A longer
 * run: ./vmm_space_fuzz -max_total_time=3600 <a copy of that directory>.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <canopy/check.h>

#include "space_oracle.h"

#define FULL_EVERY 32 /* operations between two whole-space checks */

struct byte_stream {
    const uint8_t *data;
    size_t size, pos;
};

/* The next 8 input bytes as a word; zeros once the input runs out. */
static uint64_t next_word(void *ctx)
{
    struct byte_stream *b = ctx;
    uint64_t w = 0;

    for (int i = 0; i < 8; i++, b->pos++)
        if (b->pos < b->size)
            w |= (uint64_t)b->data[b->pos] << (8 * i);
    return w;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct diff d;
    struct byte_stream b = {.data = data, .size = size, .pos = 2};
    struct diff_rand r = {.next = next_word, .ctx = &b};
    size_t target;

    if (size < 2)
        return 0;
    if (!diff_init_scenario(&d, data[0])) {
        fprintf(stderr, "space_fuzz: %s\n", d.err);
        abort();
    }
    d.full_every = FULL_EVERY;
    target = 4 + data[1];
    /* Each operation draws at least two words: stop when the input is spent. */
    for (unsigned ops = 0; b.pos < b.size && ops < 4096; ops++) {
        if (!diff_random_op(&d, &r, target)) {
            fprintf(stderr, "space_fuzz: scenario %u: %s\n", data[0] % DIFF_SCENARIOS, d.err);
            abort();
        }
    }
    if (!diff_fini(&d)) {
        fprintf(stderr, "space_fuzz: %s\n", d.err);
        abort();
    }
    return 0;
}
