/*
 * mapplan: what stage 1 maps, decided before any table is written.
 *
 * The direct map is the memory map's RAM, and only its RAM (as Linux maps
 * only E820 RAM into its direct map, and splits large pages at the edges):
 * speculative reads through a write-back mapping of device memory can raise
 * machine checks on real CPUs, and a frame mapped with two memory types is
 * undefined (Intel SDM vol. 3, 11.12.4). Device memory is mapped where it is
 * needed, with its own type: the framebuffer write-combining in the dynamic
 * area, the rest by the kernel on request. The frames of the read-only kernel
 * segments and of the trampoline page are read-only in the direct map too, so
 * no mapping can write what another executes:
 *
 *   pa ->  [ RAM run ........................................ ]
 *   req:   [ hhdm RW ][ .text alias R ][ hhdm RW ][ .rodata R ][ hhdm RW ]
 *
 * pt_map then picks the largest page each piece allows, so 4 KiB pages
 * appear only around the edges of RAM and of the aliases. The manifest splits
 * each request into runs of equal page size with the same rule pt_map uses
 * (largest page the alignment of va and pa and the remaining size allow), so
 * `pt check` can compare the live tables against an independent statement of
 * intent.
 *
 * Called by stage 1 after ExitBootServices, and by the host tests.
 */
#include "mapplan.h"

struct map_request mapplan_request_4k(vaddr_t va, paddr_t pa, uint64_t size, uint16_t flags,
                                      uint16_t owner)
{
    return (struct map_request){.va = va_addr(va),
                                .pa = pa_addr(pa),
                                .size = size,
                                .max_page_size = PAGE_SIZE,
                                .flags = flags,
                                .owner = owner};
}

uint64_t mapplan_page_size(vaddr_t va_at, paddr_t pa_at, uint64_t remaining, uint64_t max_page_size)
{
    uint64_t va = va_addr(va_at), pa = pa_addr(pa_at);
    static const uint64_t sizes[] = {PAGE_SIZE_1G, PAGE_SIZE_2M};
    for (unsigned i = 0; i < 2; i++) {
        uint64_t ps = sizes[i];
        if (ps <= max_page_size && ((va | pa) & (ps - 1)) == 0 && remaining >= ps)
            return ps;
    }
    return PAGE_SIZE;
}

uint32_t mapplan_hhdm(const struct canopy_mem_range *ranges, uint32_t range_count,
                      vaddr_t hhdm_base, paddr_t pa_limit_at, uint64_t max_page_size,
                      struct map_request *out, uint32_t cap, uint64_t *clipped_bytes)
{
    uint64_t pa_limit = pa_addr(pa_limit_at);
    uint32_t n = 0;
    uint64_t clipped = 0;
    for (uint32_t i = 0; i < range_count; i++) {
        if (!canopy_mem_is_direct_mapped(ranges[i].type))
            continue;
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
        out[n++] = (struct map_request){.va = va_addr(hhdm_base) + base,
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

bool mapplan_hhdm_protect(struct map_request *req, uint32_t *n, uint32_t cap, paddr_t pa_at,
                          uint64_t size, uint16_t flags)
{
    uint64_t pa = pa_addr(pa_at);
    uint64_t end = pa + size;
    uint32_t extra = 0;
    for (uint32_t i = 0; i < *n; i++) {
        uint64_t r_end = req[i].pa + req[i].size;
        if (req[i].pa >= end || r_end <= pa)
            continue;
        extra += (req[i].pa < pa) + (r_end > end);
    }
    if (extra > cap - *n)
        return false;
    /* From the last request down, so each split shifts only what is already done. */
    uint32_t count = *n + extra;
    for (uint32_t i = *n; i-- > 0;) {
        struct map_request r = req[i];
        uint64_t r_end = r.pa + r.size;
        uint32_t at = i + extra; /* where req[i]'s last piece goes */
        if (r.pa >= end || r_end <= pa) {
            req[at] = r;
            continue;
        }
        uint64_t lo = r.pa > pa ? r.pa : pa, hi = r_end < end ? r_end : end;
        if (hi < r_end) {
            req[at] = r;
            req[at].va += hi - r.pa;
            req[at].pa = hi;
            req[at].size = r_end - hi;
            at--;
            extra--;
        }
        req[at] = r;
        req[at].va += lo - r.pa;
        req[at].pa = lo;
        req[at].size = hi - lo;
        req[at].flags = (uint16_t)(flags & ~CANOPY_MAP_X); /* an alias is never executable */
        if (lo > r.pa) {
            at--;
            extra--;
            req[at] = r;
            req[at].size = lo - r.pa;
        }
    }
    *n = count;
    return true;
}

bool mapplan_touches_ram(const struct canopy_mem_range *ranges, uint32_t range_count,
                         paddr_t base_at, uint64_t size)
{
    uint64_t base = pa_addr(base_at), end = base + size;
    for (uint32_t i = 0; i < range_count; i++) {
        uint64_t r_end = ranges[i].base + ranges[i].page_count * PAGE_SIZE;
        if (ranges[i].base < end && base < r_end && canopy_mem_is_direct_mapped(ranges[i].type))
            return true;
    }
    return false;
}

struct map_request mapplan_framebuffer(paddr_t base_at, uint64_t size, bool pat, uint64_t *fb_va)
{
    uint64_t base = pa_addr(base_at), first = page_down(base);
    *fb_va = MAPPLAN_FB_VA + (base - first);
    return mapplan_request_4k(va_init(MAPPLAN_FB_VA), pa_init(first), page_up(base + size) - first,
                              (uint16_t)(CANOPY_MAP_W | (pat ? CANOPY_MAP_WC : CANOPY_MAP_UC)),
                              CANOPY_OWNER_FRAMEBUFFER);
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
        uint64_t ps = mapplan_page_size(va_init(r->va + off), pa_init(r->pa + off), r->size - off,
                                        r->max_page_size);
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
