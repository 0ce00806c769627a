/*
 * sha256: SHA-256 (FIPS 180-4) for stage 1's Secure Boot checks and the host
 * tests, plus the lowercase hex form the configuration and the build use.
 *
 * Streaming (init, update any number of times, final) or one call
 * (sha256_digest). Freestanding: no allocation, no libc, general registers only.
 */
#ifndef CANOPY_SHA256_H
#define CANOPY_SHA256_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SHA256_DIGEST_BYTES 32
#define SHA256_BLOCK_BYTES  64
#define SHA256_HEX_CHARS    64 /* the digest in hex, without a NUL */

struct sha256_digest {
    uint8_t bytes[SHA256_DIGEST_BYTES];
};

/* A hash in progress. */
struct sha256 {
    uint32_t state[8];
    uint64_t total_bytes; /* bytes given to sha256_update so far */
    uint8_t block[SHA256_BLOCK_BYTES];
    uint32_t block_used; /* bytes of block filled, below SHA256_BLOCK_BYTES */
};

/* Starts a new hash. */
void sha256_init(struct sha256 *h);
/*
 * Adds data[0..len) to the message.
 * => data may be NULL when len is 0; messages up to 2^61 - 1 bytes.
 */
void sha256_update(struct sha256 *h, const void *data, size_t len);
/*
 * Finishes the hash into *out.
 * => h must be started again (sha256_init) before it is used for another message.
 */
void sha256_final(struct sha256 *h, struct sha256_digest *out);
/* The hash of data[0..len) in one call. */
void sha256_digest(const void *data, size_t len, struct sha256_digest *out);

/* Writes the digest as 64 lowercase hex digits and a NUL into hex (65 bytes). */
void sha256_to_hex(const struct sha256_digest *d, char hex[SHA256_HEX_CHARS + 1]);
/*
 * Parses exactly 64 hex digits (either case) from s[0..len).
 * => returns false, and leaves *out alone, on any other length or a non-hex byte.
 */
bool sha256_from_hex(const char *s, size_t len, struct sha256_digest *out);
/* Whether two digests are equal (every byte compared, whatever the first difference). */
bool sha256_equal(const struct sha256_digest *a, const struct sha256_digest *b);

#endif
