/*
 * ubsan: a minimal UBSan runtime for stage 1 and the kernel, the handlers
 * clang 14 calls under -fsanitize=undefined (minus vptr and function, which
 * need C++ type information). Each prints one line through the sink the
 * target registered with rt_set_sinks,
 *
 *   ubsan: kernel/core/faultdemo.c:97:19: signed integer overflow: 2147483647 + 1 (int)
 *
 * and returns, so a debug boot shows every site once and keeps going; the
 * _abort variants (-fno-sanitize-recover) print the same line through the
 * fatal sink instead. A site reports once: its column is overwritten with
 * ~0 in the compiler's (writable) check data, as compiler-rt does.
 *
 * The structures below are the compiler's ABI (compiler-rt's
 * ubsan_handlers.h, ubsan_value.h); only the leading fields this file reads
 * are declared. Built without sanitizers and without the stack protector.
 */
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <canopy/fmt.h>
#include <canopy/rt.h>

rt_report_fn rt_report_sink(void);
rt_fatal_fn rt_fatal_sink(void);

struct src_loc {
    const char *file;
    uint32_t line;
    uint32_t column;
};

struct type_desc {
    uint16_t kind; /* 0 integer, 1 float, 0xffff anything else */
    uint16_t info; /* integers: bit 0 signed, bits 1.. log2 of the width in bits */
    char name[];
};

struct type_mismatch_data {
    struct src_loc loc;
    const struct type_desc *type;
    uint8_t log_alignment;
    uint8_t check_kind;
};
struct alignment_assumption_data {
    struct src_loc loc;
    struct src_loc assumption_loc;
    const struct type_desc *type;
};
struct overflow_data {
    struct src_loc loc;
    const struct type_desc *type;
};
struct shift_data {
    struct src_loc loc;
    const struct type_desc *lhs_type;
    const struct type_desc *rhs_type;
};
struct bounds_data {
    struct src_loc loc;
    const struct type_desc *array_type;
    const struct type_desc *index_type;
};
struct loc_only_data {
    struct src_loc loc;
};
struct typed_data { /* vla bound, invalid value */
    struct src_loc loc;
    const struct type_desc *type;
};
struct float_cast_data {
    struct src_loc loc;
    const struct type_desc *from;
    const struct type_desc *to;
};
struct invalid_builtin_data {
    struct src_loc loc;
    uint8_t kind;
};
struct nonnull_arg_data {
    struct src_loc loc;
    struct src_loc attr_loc;
    int arg_index;
};

typedef uintptr_t value_t; /* a value of at most 64 bits, or a pointer to a wider one */

static bool busy; /* a check failing inside the report itself is not reported */

/* ---- formatting ------------------------------------------------------------------ */

struct line {
    char buf[192];
    size_t len;
};

PRINTF_LIKE(2, 3) static void add(struct line *l, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (l->len < sizeof(l->buf))
        l->len += fmt_vsnprintf(l->buf + l->len, sizeof(l->buf) - l->len, fmt, ap);
    va_end(ap);
}

static unsigned int_width(const struct type_desc *t)
{
    return 1u << (t->info >> 1);
}

/* Appends a value of type t as the compiler passed it. */
static void add_value(struct line *l, const struct type_desc *t, value_t v)
{
    if (t->kind != 0) {
        add(l, "<%s value>", t->name);
        return;
    }
    unsigned width = int_width(t);
    if (width > 64) {
        add(l, "<%u-bit value>", width);
        return;
    }
    uint64_t bits = (uint64_t)v;
    if (t->info & 1) {
        unsigned shift = 64 - width; /* sign-extend from the type's width */
        int64_t s = (int64_t)(bits << shift) >> shift;
        add(l, "%lld", (long long)s);
    } else {
        if (width < 64)
            bits &= (1ull << width) - 1;
        add(l, "%llu", (unsigned long long)bits);
    }
}

static bool value_negative(const struct type_desc *t, value_t v)
{
    if (t->kind != 0 || !(t->info & 1) || int_width(t) > 64)
        return false;
    return ((uint64_t)v >> (int_width(t) - 1)) & 1;
}

/* Claims a site: false if it was reported already (or a report is under way). */
static bool claim(struct src_loc *loc)
{
    if (busy || loc->column == UINT32_MAX)
        return false;
    busy = true;
    return true;
}

/* Prints the line for loc (claimed) and releases; stops if abort. */
static void finish(struct src_loc *loc, struct line *l, bool abort)
{
    const char *file = loc->file ? loc->file : "<unknown>";
    uint32_t line = loc->line, column = loc->column;
    loc->column = UINT32_MAX;
    if (abort) {
        rt_fatal_fn fatal = rt_fatal_sink();
        if (fatal)
            fatal("ubsan: %s:%u:%u: %s", file, line, column, l->buf);
        __builtin_trap();
    }
    rt_report_fn report = rt_report_sink();
    if (report)
        report("ubsan: %s:%u:%u: %s\n", file, line, column, l->buf);
    busy = false;
}

/* ---- the checks ---------------------------------------------------------------------- */

static void type_mismatch(struct type_mismatch_data *d, value_t ptr, bool abort)
{
    static const char *const what[] = {"load of",
                                       "store to",
                                       "reference binding to",
                                       "member access within",
                                       "member call on",
                                       "constructor call on",
                                       "downcast of",
                                       "downcast of",
                                       "upcast of",
                                       "cast to virtual base of",
                                       "_Nonnull binding to",
                                       "dynamic operation on"};
    if (!claim(&d->loc))
        return;
    struct line l = {.len = 0};
    const char *kind =
        d->check_kind < sizeof(what) / sizeof(what[0]) ? what[d->check_kind] : "access to";
    uint64_t align = d->log_alignment < 64 ? 1ull << d->log_alignment : 0;
    if (ptr == 0)
        add(&l, "%s null pointer of type %s", kind, d->type->name);
    else if (align && (ptr & (align - 1)))
        add(&l, "%s misaligned address 0x%llx for type %s, which needs %llu-byte alignment", kind,
            (unsigned long long)ptr, d->type->name, (unsigned long long)align);
    else
        add(&l, "%s address 0x%llx with too little room for type %s", kind, (unsigned long long)ptr,
            d->type->name);
    finish(&d->loc, &l, abort);
}

static void overflow(struct overflow_data *d, value_t a, value_t b, char op, bool abort)
{
    if (!claim(&d->loc))
        return;
    struct line l = {.len = 0};
    add(&l, "%s integer overflow: ", (d->type->info & 1) ? "signed" : "unsigned");
    add_value(&l, d->type, a);
    add(&l, " %c ", op);
    add_value(&l, d->type, b);
    add(&l, " (%s)", d->type->name);
    finish(&d->loc, &l, abort);
}

static void negate(struct overflow_data *d, value_t a, bool abort)
{
    if (!claim(&d->loc))
        return;
    struct line l = {.len = 0};
    add(&l, "negation of ");
    add_value(&l, d->type, a);
    add(&l, " overflows %s", d->type->name);
    finish(&d->loc, &l, abort);
}

static void divrem(struct overflow_data *d, value_t a, value_t b, bool abort)
{
    if (!claim(&d->loc))
        return;
    struct line l = {.len = 0};
    if (d->type->kind == 0 && (uint64_t)b != 0) {
        add(&l, "division overflow: ");
        add_value(&l, d->type, a);
        add(&l, " / ");
        add_value(&l, d->type, b);
        add(&l, " (%s)", d->type->name);
    } else {
        add(&l, "division by zero (%s)", d->type->name);
    }
    finish(&d->loc, &l, abort);
}

static void shift(struct shift_data *d, value_t a, value_t b, bool abort)
{
    if (!claim(&d->loc))
        return;
    struct line l = {.len = 0};
    if (value_negative(d->rhs_type, b)) {
        add(&l, "shift by a negative amount ");
        add_value(&l, d->rhs_type, b);
    } else if (d->lhs_type->kind == 0 && (uint64_t)b >= int_width(d->lhs_type)) {
        add(&l, "shift by ");
        add_value(&l, d->rhs_type, b);
        add(&l, ", not less than the width of %s", d->lhs_type->name);
    } else {
        add(&l, "left shift of ");
        add_value(&l, d->lhs_type, a);
        add(&l, " by ");
        add_value(&l, d->rhs_type, b);
        add(&l, " overflows %s", d->lhs_type->name);
    }
    finish(&d->loc, &l, abort);
}

static void bounds(struct bounds_data *d, value_t index, bool abort)
{
    if (!claim(&d->loc))
        return;
    struct line l = {.len = 0};
    add(&l, "index ");
    add_value(&l, d->index_type, index);
    add(&l, " out of bounds for %s", d->array_type->name);
    finish(&d->loc, &l, abort);
}

static void simple(struct src_loc *loc, const char *what, bool abort)
{
    if (!claim(loc))
        return;
    struct line l = {.len = 0};
    add(&l, "%s", what);
    finish(loc, &l, abort);
}

static void typed(struct typed_data *d, const char *what, value_t v, bool abort)
{
    if (!claim(&d->loc))
        return;
    struct line l = {.len = 0};
    add(&l, "%s ", what);
    add_value(&l, d->type, v);
    add(&l, " (%s)", d->type->name);
    finish(&d->loc, &l, abort);
}

static void pointer_overflow(struct loc_only_data *d, value_t base, value_t result, bool abort)
{
    if (!claim(&d->loc))
        return;
    struct line l = {.len = 0};
    if (base == 0 && result == 0)
        add(&l, "applying a zero offset to a null pointer");
    else if (base == 0)
        add(&l, "applying a non-zero offset to a null pointer");
    else
        add(&l, "pointer arithmetic on 0x%llx wrapped to 0x%llx", (unsigned long long)base,
            (unsigned long long)result);
    finish(&d->loc, &l, abort);
}

/* ---- the entry points clang calls --------------------------------------------------- */

/*
 * Each check has a recovering handler (reports the site once, returns) and an
 * _abort one (reports, then the fatal sink stops); these declare and define
 * both. => d is the compiler's check data for the failing site.
 */
#define HANDLER(name, params, call)                                                                \
    void __ubsan_handle_##name params;                                                             \
    void __ubsan_handle_##name##_abort params;                                                     \
    void __ubsan_handle_##name params                                                              \
    {                                                                                              \
        bool abort = false;                                                                        \
        call;                                                                                      \
    }                                                                                              \
    void __ubsan_handle_##name##_abort params                                                      \
    {                                                                                              \
        bool abort = true;                                                                         \
        call;                                                                                      \
    }

HANDLER(type_mismatch_v1, (struct type_mismatch_data * d, value_t p), type_mismatch(d, p, abort))
HANDLER(add_overflow, (struct overflow_data * d, value_t a, value_t b),
        overflow(d, a, b, '+', abort))
HANDLER(sub_overflow, (struct overflow_data * d, value_t a, value_t b),
        overflow(d, a, b, '-', abort))
HANDLER(mul_overflow, (struct overflow_data * d, value_t a, value_t b),
        overflow(d, a, b, '*', abort))
HANDLER(negate_overflow, (struct overflow_data * d, value_t a), negate(d, a, abort))
HANDLER(divrem_overflow, (struct overflow_data * d, value_t a, value_t b), divrem(d, a, b, abort))
HANDLER(shift_out_of_bounds, (struct shift_data * d, value_t a, value_t b), shift(d, a, b, abort))
HANDLER(out_of_bounds, (struct bounds_data * d, value_t i), bounds(d, i, abort))
HANDLER(vla_bound_not_positive, (struct typed_data * d, value_t v),
        typed(d, "variable-length array bound is not positive:", v, abort))
HANDLER(load_invalid_value, (struct typed_data * d, value_t v),
        typed(d, "load of a value not valid for its type:", v, abort))
HANDLER(float_cast_overflow, (struct float_cast_data * d, value_t v),
        simple(&d->loc, "floating-point value out of range for the integer type", abort))
HANDLER(invalid_builtin, (struct invalid_builtin_data * d),
        simple(&d->loc, "zero passed to a builtin that does not accept it", abort))
HANDLER(nonnull_arg, (struct nonnull_arg_data * d),
        simple(&d->loc, "null pointer passed as an argument declared never null", abort))
HANDLER(nonnull_return_v1, (struct loc_only_data * d, struct src_loc *loc),
        simple(loc, "null pointer returned from a function declared never to return null", abort))
HANDLER(pointer_overflow, (struct loc_only_data * d, value_t base, value_t result),
        pointer_overflow(d, base, result, abort))
HANDLER(alignment_assumption,
        (struct alignment_assumption_data * d, value_t p, value_t align, value_t offset),
        simple(&d->loc, "pointer does not have the alignment it was assumed to have", abort))

/* Reaching __builtin_unreachable() or the end of a value-returning C++ function: always stops. */
void __ubsan_handle_builtin_unreachable(struct loc_only_data *d);
void __ubsan_handle_builtin_unreachable(struct loc_only_data *d)
{
    simple(&d->loc, "execution reached __builtin_unreachable()", true);
    __builtin_trap();
}

void __ubsan_handle_missing_return(struct loc_only_data *d);
void __ubsan_handle_missing_return(struct loc_only_data *d)
{
    simple(&d->loc, "execution reached the end of a function without returning a value", true);
    __builtin_trap();
}
