/*
 * cmdline: lookups in the kernel command line. Words are separated by
 * spaces or tabs; a word is `key` or `key=value`; the first match wins.
 * Pure code over a NUL-terminated string (the boot info check guarantees the
 * terminator).
 */
#include <stdbool.h>
#include <stddef.h>

#include <kernel/cmdline.h>

static bool is_space(char c)
{
    return c == ' ' || c == '\t';
}

bool cmdline_get(const char *cmdline, const char *key, char *value, size_t size)
{
    size_t key_len = 0;
    while (key[key_len] != '\0')
        key_len++;
    const char *p = cmdline;
    while (*p != '\0') {
        while (is_space(*p))
            p++;
        const char *word = p;
        while (*p != '\0' && !is_space(*p))
            p++;
        size_t len = (size_t)(p - word);
        bool match = len >= key_len && (len == key_len || word[key_len] == '=');
        for (size_t i = 0; match && i < key_len; i++)
            match = word[i] == key[i];
        if (!match)
            continue;
        const char *v = len > key_len ? word + key_len + 1 : word + len;
        size_t n = 0;
        while (v + n < p && n + 1 < size) {
            value[n] = v[n];
            n++;
        }
        if (size > 0)
            value[n] = '\0';
        return true;
    }
    return false;
}
