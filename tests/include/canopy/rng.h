/*
 * rng: the seeded pseudo-random generators of the host tests and benchmarks,
 * so that a failing sequence reproduces from its seed. Not for anything that
 * needs unpredictability.
 *
 *   splitmix64_next  Steele, Lea and Flood's SplitMix64: any seed, 0 included,
 *                    gives a full-period, well-mixed sequence.
 *   xorshift64_next  Marsaglia's xorshift64 (shifts 13, 7, 17): cheaper, and
 *                    what the older tests draw from; the state must not be 0.
 */
#ifndef CANOPY_RNG_H
#define CANOPY_RNG_H

#include <stdint.h>

/* The next value of the SplitMix64 sequence whose state is *state. */
static inline uint64_t splitmix64_next(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);

    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* The next value of the xorshift64 sequence whose state is *state. => *state != 0 */
static inline uint64_t xorshift64_next(uint64_t *state)
{
    uint64_t x = *state;

    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *state = x;
}

#endif
