/*
 * str: the few string and parsing helpers stage 1 and the kernel share.
 * The freestanding targets get memcpy/memset/memmove/memcmp/strlen from
 * lib/src/mem.c; the host uses its libc for those.
 */
#ifndef CANOPY_STR_H
#define CANOPY_STR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Compares at most n bytes like strncmp. */
int str_ncmp(const char *a, const char *b, size_t n);
/* True if the NUL-terminated strings are equal. */
bool str_eq(const char *a, const char *b);
/* Copies src into dst (size bytes), always NUL terminated; returns strlen(src). */
size_t str_copy(char *dst, const char *src, size_t size);
/*
 * Parses an unsigned number from s[0..len): decimal, or hex with 0x prefix.
 * => returns false (and leaves *out alone) on an empty string, a bad digit or overflow.
 */
bool str_parse_u64(const char *s, size_t len, uint64_t *out);
/* As str_parse_u64, hex digits with or without 0x. */
bool str_parse_hex(const char *s, size_t len, uint64_t *out);

#endif
