/*
 * sha256: SHA-256 as FIPS 180-4 section 6.2 defines it, written for the
 * freestanding targets: 32-bit integer arithmetic only (stage 1 and the kernel
 * build with -mgeneral-regs-only), no tables beyond the 64 round constants, no
 * allocation.
 *
 * Invariant of struct sha256 between calls: block[0..block_used) holds the
 * message bytes that do not yet fill a 64-byte block, block_used < 64, and
 * state is the hash of every whole block before them.
 *
 * Called by stage 1 (canopy.cfg and the kernel under Secure Boot) and by the
 * host tests, which compare it with the NIST examples and sha256sum.
 */
#include <canopy/sha256.h>

/* The first 32 bits of the fractional parts of the cube roots of the first 64 primes. */
static const uint32_t round_k[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

static uint32_t rotr(uint32_t x, unsigned n)
{
    return (x >> n) | (x << (32 - n));
}

static uint32_t load_be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

static void store_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* Folds one 64-byte block into the state (FIPS 180-4 6.2.2, steps 1-4). */
static void compress(uint32_t state[8], const uint8_t block[SHA256_BLOCK_BYTES])
{
    /* The message schedule as a 16-word ring: W[t] lives in w[t % 16]. */
    uint32_t w[16];
    for (unsigned t = 0; t < 16; t++)
        w[t] = load_be32(block + 4 * t);

    uint32_t a = state[0], b = state[1], c = state[2], d = state[3];
    uint32_t e = state[4], f = state[5], g = state[6], h = state[7];
    for (unsigned t = 0; t < 64; t++) {
        if (t >= 16) {
            uint32_t w15 = w[(t - 15) % 16], w2 = w[(t - 2) % 16];
            uint32_t s0 = rotr(w15, 7) ^ rotr(w15, 18) ^ (w15 >> 3);
            uint32_t s1 = rotr(w2, 17) ^ rotr(w2, 19) ^ (w2 >> 10);
            w[t % 16] += s0 + w[(t - 7) % 16] + s1;
        }
        uint32_t big_s1 = rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25);
        uint32_t ch = (e & f) ^ (~e & g);
        uint32_t t1 = h + big_s1 + ch + round_k[t] + w[t % 16];
        uint32_t big_s0 = rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22);
        uint32_t maj = (a & b) ^ (a & c) ^ (b & c);
        uint32_t t2 = big_s0 + maj;
        h = g;
        g = f;
        f = e;
        e = d + t1;
        d = c;
        c = b;
        b = a;
        a = t1 + t2;
    }
    state[0] += a;
    state[1] += b;
    state[2] += c;
    state[3] += d;
    state[4] += e;
    state[5] += f;
    state[6] += g;
    state[7] += h;
}

void sha256_init(struct sha256 *h)
{
    /* The first 32 bits of the fractional parts of the square roots of the first 8 primes. */
    static const uint32_t initial[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                        0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
    for (unsigned i = 0; i < 8; i++)
        h->state[i] = initial[i];
    h->total_bytes = 0;
    h->block_used = 0;
}

void sha256_update(struct sha256 *h, const void *data, size_t len)
{
    const uint8_t *p = data;
    h->total_bytes += len;
    if (h->block_used > 0) {
        while (len > 0 && h->block_used < SHA256_BLOCK_BYTES) {
            h->block[h->block_used++] = *p++;
            len--;
        }
        if (h->block_used < SHA256_BLOCK_BYTES)
            return;
        compress(h->state, h->block);
        h->block_used = 0;
    }
    /* Whole blocks straight from the caller's buffer, without a copy. */
    for (; len >= SHA256_BLOCK_BYTES; p += SHA256_BLOCK_BYTES, len -= SHA256_BLOCK_BYTES)
        compress(h->state, p);
    while (len > 0) {
        h->block[h->block_used++] = *p++;
        len--;
    }
}

void sha256_final(struct sha256 *h, struct sha256_digest *out)
{
    /*
     * Padding (5.1.1): a 1 bit, zeros up to 56 bytes into a block, then the
     * message length in bits as a big-endian 64-bit number. When fewer than 9
     * bytes are left in the current block the padding spills into one more.
     */
    uint64_t bits = h->total_bytes << 3;
    h->block[h->block_used++] = 0x80;
    if (h->block_used > SHA256_BLOCK_BYTES - 8) {
        while (h->block_used < SHA256_BLOCK_BYTES)
            h->block[h->block_used++] = 0;
        compress(h->state, h->block);
        h->block_used = 0;
    }
    while (h->block_used < SHA256_BLOCK_BYTES - 8)
        h->block[h->block_used++] = 0;
    store_be32(h->block + 56, (uint32_t)(bits >> 32));
    store_be32(h->block + 60, (uint32_t)bits);
    compress(h->state, h->block);
    for (unsigned i = 0; i < 8; i++)
        store_be32(out->bytes + 4 * i, h->state[i]);
    h->block_used = 0;
}

void sha256_digest(const void *data, size_t len, struct sha256_digest *out)
{
    struct sha256 h;
    sha256_init(&h);
    sha256_update(&h, data, len);
    sha256_final(&h, out);
}

void sha256_to_hex(const struct sha256_digest *d, char hex[SHA256_HEX_CHARS + 1])
{
    static const char digits[] = "0123456789abcdef";
    for (unsigned i = 0; i < SHA256_DIGEST_BYTES; i++) {
        hex[2 * i] = digits[d->bytes[i] >> 4];
        hex[2 * i + 1] = digits[d->bytes[i] & 15];
    }
    hex[SHA256_HEX_CHARS] = '\0';
}

/* The value of one hex digit, or -1. */
static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

bool sha256_from_hex(const char *s, size_t len, struct sha256_digest *out)
{
    if (len != SHA256_HEX_CHARS)
        return false;
    struct sha256_digest d;
    for (unsigned i = 0; i < SHA256_DIGEST_BYTES; i++) {
        int hi = hex_value(s[2 * i]), lo = hex_value(s[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return false;
        d.bytes[i] = (uint8_t)(hi << 4 | lo);
    }
    *out = d;
    return true;
}

bool sha256_equal(const struct sha256_digest *a, const struct sha256_digest *b)
{
    /* No early exit: the time taken says nothing about where two hashes differ. */
    uint8_t diff = 0;
    for (unsigned i = 0; i < SHA256_DIGEST_BYTES; i++)
        diff |= a->bytes[i] ^ b->bytes[i];
    return diff == 0;
}
