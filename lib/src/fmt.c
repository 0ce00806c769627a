/*
 * fmt: a small printf for stage 1, the kernel and the host tests.
 *
 * Output goes to a sink callback in chunks; nothing is buffered here, so a
 * sink that writes to a UART or a framebuffer sees text as it is produced.
 * Numbers are converted into a 24-byte buffer on the stack (enough for a
 * 64-bit value in octal), so formatting never allocates.
 */
#include <canopy/fmt.h>

#include <stdbool.h>
#include <stdint.h>

struct spec {
    bool left;     /* '-' flag */
    bool zero;     /* '0' flag */
    int width;     /* minimum field width */
    int precision; /* -1 if none */
};

/* Counts what goes through the sink. */
struct out {
    fmt_sink sink;
    void *ctx;
    size_t count;
};

static void emit(struct out *o, const char *s, size_t n)
{
    if (n == 0)
        return;
    o->sink(o->ctx, s, n);
    o->count += n;
}

static void pad(struct out *o, char c, int n)
{
    char buf[16];
    for (int i = 0; i < (int)sizeof(buf); i++)
        buf[i] = c;
    while (n > 0) {
        int k = n < (int)sizeof(buf) ? n : (int)sizeof(buf);
        emit(o, buf, (size_t)k);
        n -= k;
    }
}

/* Emits s[0..n) in a field of the spec's width. */
static void field(struct out *o, const struct spec *sp, const char *s, size_t n)
{
    int fill = sp->width > (int)n ? sp->width - (int)n : 0;
    if (!sp->left)
        pad(o, ' ', fill);
    emit(o, s, n);
    if (sp->left)
        pad(o, ' ', fill);
}

static void number(struct out *o, const struct spec *sp, uint64_t v, bool negative, unsigned base,
                   bool upper)
{
    const char *digits = upper ? "0123456789ABCDEF" : "0123456789abcdef";
    char buf[24];
    int n = 0;
    do {
        buf[sizeof(buf) - 1 - n++] = digits[v % base];
        v /= base;
    } while (v);
    int len = n + (negative ? 1 : 0);
    int fill = sp->width > len ? sp->width - len : 0;
    if (sp->left) {
        if (negative)
            emit(o, "-", 1);
        emit(o, buf + sizeof(buf) - n, (size_t)n);
        pad(o, ' ', fill);
    } else if (sp->zero) {
        if (negative)
            emit(o, "-", 1);
        pad(o, '0', fill);
        emit(o, buf + sizeof(buf) - n, (size_t)n);
    } else {
        pad(o, ' ', fill);
        if (negative)
            emit(o, "-", 1);
        emit(o, buf + sizeof(buf) - n, (size_t)n);
    }
}

enum length { LEN_INT, LEN_CHAR, LEN_SHORT, LEN_LONG, LEN_LLONG, LEN_SIZE, LEN_MAX, LEN_PTRDIFF };

static uint64_t arg_unsigned(va_list *ap, enum length len)
{
    switch (len) {
    case LEN_CHAR:
        return (unsigned char)va_arg(*ap, unsigned int);
    case LEN_SHORT:
        return (unsigned short)va_arg(*ap, unsigned int);
    case LEN_LONG:
        return va_arg(*ap, unsigned long);
    case LEN_LLONG:
        return va_arg(*ap, unsigned long long);
    case LEN_SIZE:
        return va_arg(*ap, size_t);
    case LEN_MAX:
        return va_arg(*ap, uintmax_t);
    case LEN_PTRDIFF:
        return (uint64_t)va_arg(*ap, ptrdiff_t);
    case LEN_INT:
    default:
        return va_arg(*ap, unsigned int);
    }
}

static int64_t arg_signed(va_list *ap, enum length len)
{
    switch (len) {
    case LEN_CHAR:
        return (signed char)va_arg(*ap, int);
    case LEN_SHORT:
        return (short)va_arg(*ap, int);
    case LEN_LONG:
        return va_arg(*ap, long);
    case LEN_LLONG:
        return va_arg(*ap, long long);
    case LEN_SIZE:
        return (int64_t)va_arg(*ap, size_t);
    case LEN_MAX:
        return va_arg(*ap, intmax_t);
    case LEN_PTRDIFF:
        return va_arg(*ap, ptrdiff_t);
    case LEN_INT:
    default:
        return va_arg(*ap, int);
    }
}

size_t fmt_vformat(fmt_sink sink, void *ctx, const char *fmt, va_list ap_in)
{
    struct out o = {sink, ctx, 0};
    va_list ap;
    va_copy(ap, ap_in);
    const char *p = fmt;
    while (*p) {
        const char *start = p;
        while (*p && *p != '%')
            p++;
        emit(&o, start, (size_t)(p - start));
        if (!*p)
            break;
        const char *conv_start = p++;
        struct spec sp = {false, false, 0, -1};
        for (;; p++) {
            if (*p == '-')
                sp.left = true;
            else if (*p == '0')
                sp.zero = true;
            else
                break;
        }
        if (*p == '*') {
            sp.width = va_arg(ap, int);
            if (sp.width < 0) {
                sp.left = true;
                sp.width = -sp.width;
            }
            p++;
        } else {
            while (*p >= '0' && *p <= '9' && sp.width < 10000)
                sp.width = sp.width * 10 + (*p++ - '0');
        }
        if (*p == '.') {
            p++;
            sp.precision = 0;
            if (*p == '*') {
                sp.precision = va_arg(ap, int);
                p++;
            } else {
                while (*p >= '0' && *p <= '9' && sp.precision < 10000)
                    sp.precision = sp.precision * 10 + (*p++ - '0');
            }
        }
        enum length len = LEN_INT;
        if (*p == 'h') {
            p++;
            len = LEN_SHORT;
            if (*p == 'h') {
                p++;
                len = LEN_CHAR;
            }
        } else if (*p == 'l') {
            p++;
            len = LEN_LONG;
            if (*p == 'l') {
                p++;
                len = LEN_LLONG;
            }
        } else if (*p == 'z') {
            p++;
            len = LEN_SIZE;
        } else if (*p == 'j') {
            p++;
            len = LEN_MAX;
        } else if (*p == 't') {
            p++;
            len = LEN_PTRDIFF;
        }
        char c = *p;
        if (c)
            p++;
        switch (c) {
        case 'd':
        case 'i': {
            int64_t v = arg_signed(&ap, len);
            uint64_t mag = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;
            number(&o, &sp, mag, v < 0, 10, false);
            break;
        }
        case 'u':
            number(&o, &sp, arg_unsigned(&ap, len), false, 10, false);
            break;
        case 'x':
            number(&o, &sp, arg_unsigned(&ap, len), false, 16, false);
            break;
        case 'X':
            number(&o, &sp, arg_unsigned(&ap, len), false, 16, true);
            break;
        case 'o':
            number(&o, &sp, arg_unsigned(&ap, len), false, 8, false);
            break;
        case 'p': {
            uintptr_t v = (uintptr_t)va_arg(ap, void *);
            struct spec ps = {false, true, 16, -1};
            emit(&o, "0x", 2);
            number(&o, &ps, v, false, 16, false);
            break;
        }
        case 'c': {
            char ch = (char)va_arg(ap, int);
            field(&o, &sp, &ch, 1);
            break;
        }
        case 's': {
            const char *s = va_arg(ap, const char *);
            if (!s)
                s = "(null)";
            size_t n = 0;
            while ((sp.precision < 0 || n < (size_t)sp.precision) && s[n])
                n++;
            field(&o, &sp, s, n);
            break;
        }
        case '%':
            emit(&o, "%", 1);
            break;
        default:
            /* Unknown conversion: print it as written, consume no argument. */
            emit(&o, conv_start, (size_t)(p - conv_start));
            break;
        }
    }
    va_end(ap);
    return o.count;
}

size_t fmt_format(fmt_sink sink, void *ctx, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    size_t n = fmt_vformat(sink, ctx, fmt, ap);
    va_end(ap);
    return n;
}

struct buf_sink {
    char *buf;
    size_t size; /* capacity including the NUL */
    size_t len;  /* bytes stored so far */
};

static void buf_write(void *ctx, const char *s, size_t n)
{
    struct buf_sink *b = ctx;
    for (size_t i = 0; i < n; i++) {
        if (b->len + 1 < b->size)
            b->buf[b->len++] = s[i];
    }
}

size_t fmt_vsnprintf(char *buf, size_t size, const char *fmt, va_list ap)
{
    struct buf_sink b = {buf, size, 0};
    size_t n = fmt_vformat(buf_write, &b, fmt, ap);
    if (size > 0)
        buf[b.len] = 0;
    return n;
}

size_t fmt_snprintf(char *buf, size_t size, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    size_t n = fmt_vsnprintf(buf, size, fmt, ap);
    va_end(ap);
    return n;
}
