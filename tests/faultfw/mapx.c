/*
 * mapx: memory-map transformations for the fault-injecting firmware layer.
 *
 * Invariant: the set of addresses reported usable (conventional) after a
 * transformation is a subset of those usable before, plus `own` (the layer's
 * own allocation, free once boot services end). Restrictions may be added;
 * memory in use is never offered.
 *
 * Called by hooks.c for each GetMemoryMap from stage 1, and by the host test.
 */
#include "mapx.h"

static void copy_desc(struct mapx_desc *d, const struct mapx_desc *s)
{
    __builtin_memcpy(d, s, sizeof(*d));
}

void mapx_decode(const void *raw, uint64_t stride, uint32_t count, struct mapx_desc *out)
{
    const uint8_t *b = raw;
    for (uint32_t i = 0; i < count; i++)
        __builtin_memcpy(&out[i], b + (uint64_t)i * stride, sizeof(out[i]));
}

void mapx_encode(const struct mapx_desc *d, uint32_t count, uint64_t stride, void *raw)
{
    uint8_t *b = raw;
    for (uint32_t i = 0; i < count; i++) {
        uint8_t *e = b + (uint64_t)i * stride;
        __builtin_memcpy(e, &d[i], MAPX_DESC_MIN);
        for (uint64_t k = MAPX_DESC_MIN; k < stride; k++)
            e[k] = 0xA5;
    }
}

static uint64_t desc_end(const struct mapx_desc *d)
{
    return d->phys + d->pages * PAGE_SIZE;
}

/* Appends one descriptor; false when out is full. */
static bool push(struct mapx_desc *out, uint32_t cap, uint32_t *n, const struct mapx_desc *d)
{
    if (*n >= cap)
        return false;
    copy_desc(&out[(*n)++], d);
    return true;
}

static uint32_t split(const struct mapx_params *p, const struct mapx_desc *in, uint32_t count,
                      struct mapx_desc *out, uint32_t cap)
{
    uint32_t n = 0;
    uint64_t piece = p->split_pages ? p->split_pages : 1;
    for (uint32_t i = 0; i < count; i++) {
        if (in[i].type != MAPX_EFI_CONVENTIONAL) {
            if (!push(out, cap, &n, &in[i]))
                return UINT32_MAX;
            continue;
        }
        for (uint64_t done = 0; done < in[i].pages; done += piece) {
            struct mapx_desc d = in[i];
            d.phys = in[i].phys + done * PAGE_SIZE;
            d.pages = in[i].pages - done < piece ? in[i].pages - done : piece;
            if (!push(out, cap, &n, &d))
                return UINT32_MAX;
        }
    }
    return n;
}

static uint32_t hide_low(const struct mapx_params *p, const struct mapx_desc *in, uint32_t count,
                         struct mapx_desc *out, uint32_t cap)
{
    uint32_t n = 0;
    for (uint32_t i = 0; i < count; i++) {
        struct mapx_desc d = in[i];
        if (d.type != MAPX_EFI_CONVENTIONAL || d.phys >= p->limit) {
            if (!push(out, cap, &n, &d))
                return UINT32_MAX;
            continue;
        }
        if (desc_end(&d) > p->limit) {
            struct mapx_desc hi = d;
            hi.phys = p->limit;
            hi.pages = (desc_end(&d) - p->limit) / PAGE_SIZE;
            d.pages -= hi.pages;
            if (!push(out, cap, &n, &hi))
                return UINT32_MAX;
        }
        d.type = MAPX_EFI_BS_DATA;
        if (!push(out, cap, &n, &d))
            return UINT32_MAX;
    }
    return n;
}

/* The usable descriptor with the most pages, above 1 MiB and apart from `own`. */
static const struct mapx_desc *largest_usable(const struct mapx_desc *d, uint32_t n,
                                              const struct mapx_params *p,
                                              const struct mapx_desc *skip)
{
    const struct mapx_desc *best = NULL;
    for (uint32_t i = 0; i < n; i++) {
        if (d[i].type != MAPX_EFI_CONVENTIONAL || d[i].phys < (1ull << 20) || &d[i] == skip)
            continue;
        if (d[i].phys < p->own_base + p->own_pages * PAGE_SIZE && p->own_base < desc_end(&d[i]))
            continue;
        if (!best || d[i].pages > best->pages)
            best = &d[i];
    }
    return best;
}

/* Whether some descriptor starts where `d` ends and is loader memory (stage 1 itself). */
static bool followed_by_loader(const struct mapx_desc *d, const struct mapx_desc *all, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++)
        if (all[i].phys == desc_end(d) &&
            (all[i].type == MAPX_EFI_LOADER_CODE || all[i].type == MAPX_EFI_LOADER_DATA))
            return true;
    return false;
}

static uint32_t overlap(const struct mapx_params *p, const struct mapx_desc *in, uint32_t count,
                        struct mapx_desc *out, uint32_t cap, struct mapx_overlay *ov)
{
    uint32_t n = 0;
    uint64_t own_lo = p->own_base, own_hi = p->own_base + p->own_pages * PAGE_SIZE;
    /* The layer's own loader-data allocation becomes conventional; all else as it is. */
    for (uint32_t i = 0; i < count; i++) {
        const struct mapx_desc *s = &in[i];
        uint64_t lo = s->phys, hi = desc_end(s);
        if (s->type != MAPX_EFI_LOADER_DATA || hi <= own_lo || own_hi <= lo) {
            if (!push(out, cap, &n, s))
                return UINT32_MAX;
            continue;
        }
        uint64_t cut_lo = lo > own_lo ? lo : own_lo, cut_hi = hi < own_hi ? hi : own_hi;
        struct mapx_desc d = *s;
        if (lo < cut_lo) {
            d.phys = lo;
            d.pages = (cut_lo - lo) / PAGE_SIZE;
            if (!push(out, cap, &n, &d))
                return UINT32_MAX;
        }
        d.type = MAPX_EFI_CONVENTIONAL;
        d.phys = cut_lo;
        d.pages = (cut_hi - cut_lo) / PAGE_SIZE;
        if (!push(out, cap, &n, &d))
            return UINT32_MAX;
        if (cut_hi < hi) {
            d = *s;
            d.phys = cut_hi;
            d.pages = (hi - cut_hi) / PAGE_SIZE;
            if (!push(out, cap, &n, &d))
                return UINT32_MAX;
        }
    }
    uint32_t base_count = n;
    struct mapx_overlay o = {0};

    /* 1. A reserved window nested inside the (now conventional) own range. */
    struct mapx_desc r = {
        .type = MAPX_EFI_RESERVED, .phys = p->canary_base, .pages = p->canary_pages, .attr = 0xf};
    if (p->canary_pages && !push(out, cap, &n, &r))
        return UINT32_MAX;

    /* 2. Boot-services data over the first 16 pages of the largest usable descriptor,
     * 3. and an exact duplicate of it. */
    const struct mapx_desc *big = largest_usable(out, base_count, p, NULL);
    if (big && big->pages > 32) {
        struct mapx_desc b = *big;
        b.type = MAPX_EFI_BS_DATA;
        b.pages = 16;
        struct mapx_desc dup = *big;
        o.bs_base = b.phys;
        o.bs_pages = b.pages;
        o.dup_base = dup.phys;
        o.dup_pages = dup.pages;
        if (!push(out, cap, &n, &b) || !push(out, cap, &n, &dup))
            return UINT32_MAX;
    }

    /* 4. A reserved range across the end of another usable descriptor (not into stage 1). */
    const struct mapx_desc *other = NULL;
    for (uint32_t i = 0; i < base_count; i++) {
        const struct mapx_desc *d = &out[i];
        if (d->type != MAPX_EFI_CONVENTIONAL || d == big || d->phys < (1ull << 20) ||
            d->pages < 64 || followed_by_loader(d, out, base_count))
            continue;
        if (d->phys < own_hi && own_lo < desc_end(d))
            continue;
        other = d;
        break;
    }
    if (other) {
        struct mapx_desc s = {.type = MAPX_EFI_RESERVED,
                              .phys = desc_end(other) - 8 * PAGE_SIZE,
                              .pages = 16,
                              .attr = 0xf};
        o.straddle_base = s.phys;
        o.straddle_pages = s.pages;
        if (!push(out, cap, &n, &s))
            return UINT32_MAX;
    }
    if (ov)
        *ov = o;
    return n;
}

uint32_t mapx_transform(const struct mapx_params *p, const struct mapx_desc *in, uint32_t count,
                        struct mapx_desc *out, uint32_t capacity, struct mapx_overlay *ov)
{
    switch (p->kind) {
    case MAPX_SPLIT:
        return split(p, in, count, out, capacity);
    case MAPX_OVERLAP:
        return overlap(p, in, count, out, capacity, ov);
    case MAPX_HIDE_LOW:
        return hide_low(p, in, count, out, capacity);
    default:
        break;
    }
    if (count > capacity)
        return UINT32_MAX;
    for (uint32_t i = 0; i < count; i++)
        copy_desc(&out[i], &in[p->kind == MAPX_REVERSE ? count - 1 - i : i]);
    if (p->kind == MAPX_ADD_ABOVE) {
        struct mapx_desc d = {
            .type = MAPX_EFI_CONVENTIONAL, .phys = p->limit, .pages = p->above_pages, .attr = 0xf};
        uint32_t n = count;
        if (!push(out, capacity, &n, &d))
            return UINT32_MAX;
        return n;
    }
    if (p->kind == MAPX_SHUFFLE) {
        /* Fisher-Yates with a 64-bit LCG: the same order for the same map and seed. */
        uint64_t x = p->seed | 1;
        for (uint32_t i = count; i > 1; i--) {
            x = x * 6364136223846793005ull + 1442695040888963407ull;
            uint32_t j = (uint32_t)((x >> 33) % i);
            struct mapx_desc t = out[i - 1];
            out[i - 1] = out[j];
            out[j] = t;
        }
    }
    return count;
}
