/*
 * str: small string and number-parsing helpers shared by stage 1's config
 * parser and the kernel's shell. Pure functions; no allocation.
 */
#include <canopy/str.h>

int str_ncmp(const char *a, const char *b, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char x = (unsigned char)a[i], y = (unsigned char)b[i];
        if (x != y)
            return x < y ? -1 : 1;
        if (x == 0)
            return 0;
    }
    return 0;
}

bool str_eq(const char *a, const char *b)
{
    while (*a && *a == *b) {
        a++;
        b++;
    }
    return *a == *b;
}

size_t str_copy(char *dst, const char *src, size_t size)
{
    size_t n = 0;
    while (src[n])
        n++;
    if (size > 0) {
        size_t k = n < size - 1 ? n : size - 1;
        for (size_t i = 0; i < k; i++)
            dst[i] = src[i];
        dst[k] = 0;
    }
    return n;
}

/* The value of a digit in base 16, or 16 if c is not a hex digit. */
static unsigned hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return (unsigned)(c - '0');
    if (c >= 'a' && c <= 'f')
        return (unsigned)(c - 'a' + 10);
    if (c >= 'A' && c <= 'F')
        return (unsigned)(c - 'A' + 10);
    return 16;
}

/* Parses s[0..len) in base (10 or 16) with no prefix; false on bad digit or overflow. */
static bool parse_base(const char *s, size_t len, unsigned base, uint64_t *out)
{
    uint64_t v = 0;
    if (len == 0)
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned d = hex_value(s[i]);
        if (d >= base)
            return false;
        if (v > (UINT64_MAX - d) / base)
            return false;
        v = v * base + d;
    }
    *out = v;
    return true;
}

static bool has_hex_prefix(const char *s, size_t len)
{
    return len >= 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X');
}

bool str_parse_u64(const char *s, size_t len, uint64_t *out)
{
    if (has_hex_prefix(s, len))
        return parse_base(s + 2, len - 2, 16, out);
    return parse_base(s, len, 10, out);
}

bool str_parse_hex(const char *s, size_t len, uint64_t *out)
{
    if (has_hex_prefix(s, len))
        return parse_base(s + 2, len - 2, 16, out);
    return parse_base(s, len, 16, out);
}
