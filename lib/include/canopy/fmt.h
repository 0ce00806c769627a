/*
 * fmt: formatted output into a sink, shared by stage 1, the kernel and the host.
 *
 * Conversions: %d %i %u %x %X %o %c %s %p %%, flags '-' '0', a field width
 * (number or '*'), precision for %s ('.N' or '.*'), length modifiers hh h l ll z j t.
 * Anything else is printed literally, so a bad format never reads past its
 * arguments more than the conversions it understood.
 */
#ifndef CANOPY_FMT_H
#define CANOPY_FMT_H

#include <stdarg.h>
#include <stddef.h>

#include <canopy/compiler.h>

/* Receives n bytes of output (not NUL terminated). */
typedef void (*fmt_sink)(void *ctx, const char *s, size_t n);

/* Formats into sink; returns the number of bytes produced. */
size_t fmt_vformat(fmt_sink sink, void *ctx, const char *fmt, va_list ap);
size_t fmt_format(fmt_sink sink, void *ctx, const char *fmt, ...) PRINTF_LIKE(3, 4);

/*
 * snprintf semantics: writes at most size-1 bytes and a NUL (if size > 0),
 * returns the length the whole output would have had.
 */
size_t fmt_snprintf(char *buf, size_t size, const char *fmt, ...) PRINTF_LIKE(3, 4);
size_t fmt_vsnprintf(char *buf, size_t size, const char *fmt, va_list ap);

#endif
