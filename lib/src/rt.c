/*
 * rt: the stack protector's canary and failure path, and the sinks that
 * UBSan's handlers (ubsan.c) report through. Linked into stage 1 and the
 * kernel (the kmem objects); the host uses its compiler's runtime instead.
 *
 * Both ABIs' symbols are defined, so the same file serves the PE and the ELF
 * build without a target #if; each links only what its compiler referenced:
 *
 *   ELF (kernel)  frame slot = __stack_chk_guard
 *                 mismatch   -> __stack_chk_fail()
 *   PE (stage 1)  frame slot = __security_cookie ^ rsp
 *                 before ret -> __security_check_cookie(slot ^ rsp)
 *
 * Invariant: the canary's low byte is zero (a runaway string copy stops
 * before it can write the canary back) and the rest is random once
 * rt_canary_seed ran. This file is built without the stack protector and
 * without sanitizers: it is what they call.
 */
#include <stddef.h>
#include <stdint.h>

#include <canopy/fmt.h>
#include <canopy/hwrng.h>
#include <canopy/rt.h>

/* Placeholders until rt_canary_seed: arbitrary, low byte zero. */
uintptr_t __stack_chk_guard = 0x595e9fbd94fda700ull;
uintptr_t __security_cookie = 0x2b992ddfa200ull;

void __stack_chk_fail(void);
void __security_check_cookie(uintptr_t cookie);

static rt_report_fn report_sink;
static rt_fatal_fn fatal_sink;

/* Used by ubsan.c: the registered sinks, or NULL. */
rt_report_fn rt_report_sink(void);
rt_fatal_fn rt_fatal_sink(void);

void rt_set_sinks(rt_report_fn report, rt_fatal_fn fatal)
{
    report_sink = report;
    fatal_sink = fatal;
}

rt_report_fn rt_report_sink(void)
{
    return report_sink;
}

rt_fatal_fn rt_fatal_sink(void)
{
    return fatal_sink;
}

/* ---- the stack protector ------------------------------------------------------ */

__attribute__((noreturn, noinline)) static void smashed(uintptr_t where)
{
    if (fatal_sink)
        fatal_sink("stack protector: canary overwritten in the function containing 0x%016llx",
                   (unsigned long long)where);
    __builtin_trap();
}

/* Called by protected ELF functions whose canary changed; reports and stops. */
void __stack_chk_fail(void)
{
    /* The return address is just past the failed check's call, in the smashed function. */
    smashed((uintptr_t)__builtin_return_address(0) - 1);
}

/* Called by every protected PE function before it returns; stops on a mismatch. */
void __security_check_cookie(uintptr_t cookie)
{
    if (cookie != __security_cookie)
        smashed((uintptr_t)__builtin_return_address(0) - 1);
}

/* ---- seeding -------------------------------------------------------------------- */

/* splitmix64's finaliser: every input bit reaches every output bit. */
static uint64_t mix(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

static void cpuid(uint32_t leaf, uint32_t sub, uint32_t r[4])
{
    __asm__ volatile("cpuid"
                     : "=a"(r[0]), "=b"(r[1]), "=c"(r[2]), "=d"(r[3])
                     : "a"(leaf), "c"(sub));
}

static uint64_t rdtsc(void)
{
    uint32_t lo, hi;
    __asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
    return ((uint64_t)hi << 32) | lo;
}

/* One RDSEED or RDRAND: true and *v when the carry flag says it delivered. */
static bool try_rdseed(uint64_t *v)
{
    uint8_t ok;
    __asm__ volatile("rdseed %0; setc %1" : "=r"(*v), "=qm"(ok));
    return ok;
}

static bool try_rdrand(uint64_t *v)
{
    uint8_t ok;
    __asm__ volatile("rdrand %0; setc %1" : "=r"(*v), "=qm"(ok));
    return ok;
}

bool rt_cpu_random(uint64_t *out, struct hwrng_result *res)
{
    uint32_t r[4];
    cpuid(0, 0, r);
    uint32_t max_leaf = r[0];
    cpuid(1, 0, r);
    bool rdrand = (r[2] >> 30) & 1;
    bool rdseed = false;
    if (max_leaf >= 7) {
        cpuid(7, 0, r);
        rdseed = (r[1] >> 18) & 1;
    }
    return hwrng_pick(rdseed ? try_rdseed : NULL, rdrand ? try_rdrand : NULL, out, res);
}

/* The last resort: the TSC's low bits over uneven work. Weak; callers say so. */
static uint64_t tsc_entropy(void)
{
    uint64_t h = rdtsc();
    for (int i = 0; i < 64; i++) {
        volatile uint64_t spin = 0;
        for (uint64_t n = h & 0x3f; n > 0; n--)
            spin = spin + n;
        h = mix(h ^ rdtsc() ^ spin);
    }
    return h;
}

enum rt_seed rt_canary_seed(uint64_t given, bool given_ok, struct hwrng_result *hw)
{
    uint64_t cpu = 0;
    bool cpu_ok = rt_cpu_random(&cpu, hw);
    enum rt_seed src;
    uint64_t seed;
    if (cpu_ok && given_ok) {
        src = RT_SEED_CPU_AND_GIVEN;
        seed = mix(cpu) ^ mix(given ^ 0x9e3779b97f4a7c15ull);
    } else if (cpu_ok) {
        src = RT_SEED_CPU;
        seed = mix(cpu);
    } else if (given_ok) {
        src = RT_SEED_GIVEN;
        seed = mix(given);
    } else {
        src = RT_SEED_TSC;
        seed = tsc_entropy();
    }
    uint64_t canary = seed & ~(uint64_t)0xff;
    if (canary == 0)
        canary = 0x5a00; /* never zero, which memory cleared by mistake would match */
    __stack_chk_guard = canary;
    __security_cookie = canary;
    return src;
}

void rt_seed_describe(enum rt_seed seed, const struct hwrng_result *hw, char *buf, size_t cap)
{
    const char *cpu = hwrng_source_name(hw->used);
    switch (seed) {
    case RT_SEED_CPU:
        fmt_snprintf(buf, cap, "%s", cpu);
        break;
    case RT_SEED_GIVEN:
        fmt_snprintf(buf, cap, "the boot seed");
        break;
    case RT_SEED_CPU_AND_GIVEN:
        fmt_snprintf(buf, cap, "%s and the boot seed", cpu);
        break;
    case RT_SEED_TSC:
    default:
        fmt_snprintf(buf, cap,
                     "the TSC only (no RDRAND, RDSEED or other random source; guessable)");
        break;
    }
    char why[96];
    if (*hwrng_discarded(hw, why, sizeof(why))) {
        size_t n = 0;
        while (n < cap && buf[n])
            n++;
        fmt_snprintf(buf + n, cap - n, " (%s)", why);
    }
}
