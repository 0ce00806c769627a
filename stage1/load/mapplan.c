/*
 * mapplan: what stage 1 maps, decided before any table is written.
 *
 * The HHDM is the memory map's ranges, merged where they touch, shifted to
 * hhdm_base. Every range is mapped write-back in the page tables: with the
 * power-on PAT that defers to the MTRRs, which firmware sets to uncached for
 * MMIO, so this matches the firmware's own identity map. The manifest splits
 * each request into runs of equal page size with the same rule pt_map uses
 * (largest page the alignment of va and pa and the remaining size allow), so
 * `pt check` can compare the live tables against an independent statement of
 * intent.
 *
 * Called by stage 1 after ExitBootServices, and by the host tests.
 */
#include "mapplan.h"

struct map_request mapplan_request_4k(uint64_t va, uint64_t pa, uint64_t size, uint16_t flags,
                                      uint16_t owner)
{
    return (struct map_request){.va = va,
                                .pa = pa,
                                .size = size,
                                .max_page_size = PAGE_SIZE,
                                .flags = flags,
                                .owner = owner};
}

uint64_t mapplan_page_size(uint64_t va, uint64_t pa, uint64_t remaining, uint64_t max_page_size)
{
    static const uint64_t sizes[] = {PAGE_SIZE_1G, PAGE_SIZE_2M};
    for (unsigned i = 0; i < 2; i++) {
        uint64_t ps = sizes[i];
        if (ps <= max_page_size && ((va | pa) & (ps - 1)) == 0 && remaining >= ps)
            return ps;
    }
    return PAGE_SIZE;
}

uint32_t mapplan_hhdm(const struct canopy_mem_range *ranges, uint32_t range_count,
                      uint64_t hhdm_base, uint64_t pa_limit, uint64_t max_page_size,
                      struct map_request *out, uint32_t cap, uint64_t *clipped_bytes)
{
    uint32_t n = 0;
    uint64_t clipped = 0;
    for (uint32_t i = 0; i < range_count; i++) {
        uint64_t base = ranges[i].base;
        uint64_t size = ranges[i].page_count * PAGE_SIZE;
        if (base >= pa_limit) {
            clipped += size;
            continue;
        }
        if (size > pa_limit - base) {
            clipped += size - (pa_limit - base);
            size = pa_limit - base;
        }
        if (size == 0)
            continue;
        if (n > 0 && out[n - 1].pa + out[n - 1].size == base) {
            out[n - 1].size += size;
            continue;
        }
        if (n == cap)
            return UINT32_MAX;
        out[n++] = (struct map_request){.va = hhdm_base + base,
                                        .pa = base,
                                        .size = size,
                                        .max_page_size = max_page_size,
                                        .flags = CANOPY_MAP_W,
                                        .owner = CANOPY_OWNER_HHDM};
    }
    if (clipped_bytes)
        *clipped_bytes = clipped;
    return n;
}

uint32_t mapplan_uncovered(const struct map_request *hhdm, uint32_t n, uint64_t hhdm_base,
                           uint64_t base, uint64_t size, uint64_t max_page_size, uint16_t flags,
                           uint16_t owner, struct map_request *out, uint32_t cap)
{
    if (size == 0)
        return 0;
    uint64_t lo = page_down(base);
    uint64_t hi = page_up(base + size); /* exclusive */
    uint32_t written = 0;
    uint64_t cur = lo;
    for (uint32_t i = 0; i <= n && cur < hi; i++) {
        /* The next covered piece, or [hi, hi) past the last request. */
        uint64_t c_lo = i < n ? hhdm[i].pa : hi;
        uint64_t c_hi = i < n ? hhdm[i].pa + hhdm[i].size : hi;
        if (c_hi <= cur)
            continue;
        if (c_lo > cur) {
            uint64_t gap_end = c_lo < hi ? c_lo : hi;
            if (written == cap)
                return UINT32_MAX;
            out[written++] = (struct map_request){.va = hhdm_base + cur,
                                                  .pa = cur,
                                                  .size = gap_end - cur,
                                                  .max_page_size = max_page_size,
                                                  .flags = flags,
                                                  .owner = owner};
        }
        cur = c_hi;
    }
    return written;
}

void mapplan_sort(struct map_request *r, uint32_t n)
{
    for (uint32_t i = 1; i < n; i++) {
        struct map_request x = r[i];
        uint32_t j = i;
        while (j > 0 && r[j - 1].va > x.va) {
            r[j] = r[j - 1];
            j--;
        }
        r[j] = x;
    }
}

bool mapplan_overlaps(const struct map_request *r, uint32_t n)
{
    for (uint32_t i = 0; i + 1 < n; i++)
        if (r[i].va + (r[i].size - 1) >= r[i + 1].va)
            return true;
    return false;
}

bool mapplan_manifest_add(const struct map_request *r, struct canopy_mapping *out, uint32_t cap,
                          uint32_t *count)
{
    uint32_t n = *count;
    uint64_t off = 0;
    while (off < r->size) {
        uint64_t ps = mapplan_page_size(r->va + off, r->pa + off, r->size - off, r->max_page_size);
        struct canopy_mapping *last = n > *count ? &out[n - 1] : NULL;
        if (last && last->page_size == ps) {
            last->size_bytes += ps;
        } else {
            if (n == cap)
                return false;
            out[n++] = (struct canopy_mapping){.va = r->va + off,
                                               .pa = r->pa + off,
                                               .size_bytes = ps,
                                               .page_size = (uint32_t)ps,
                                               .flags = r->flags,
                                               .owner = r->owner};
        }
        off += ps;
    }
    *count = n;
    return true;
}
