/*
 * Calls to the page-table and mapping-plan entry points, compiled (never run)
 * by check.py once per CASE. Case 0 passes every address as its own kind and
 * must compile; every other case gets one call wrong the way a plain-integer
 * interface would let it through, and must not compile.
 */
#include <stdbool.h>
#include <stdint.h>

#include <load/mapplan.h>
#include <vmm/pt.h>

void swap_calls(struct pt *pt, struct canopy_mem_range *ranges, struct map_request *req);

void swap_calls(struct pt *pt, struct canopy_mem_range *ranges, struct map_request *req)
{
    vaddr_t va = va_init(0xffffffff80000000ull);
    paddr_t pa = pa_init(0x200000);
    uint32_t n = 0;
    enum pt_status st = PT_OK;
    struct pt_walk w;
    (void)pt, (void)ranges, (void)req, (void)va, (void)pa, (void)n, (void)w;
#if CASE == 0
    st = pt_map(pt, va, pa, 4096, PT_W, 4096);
    st = pt_unmap(pt, va, 4096);
    pt_walk(pt, va, &w);
    req[0] = mapplan_request_4k(va, pa, 4096, 0, 0);
    (void)mapplan_page_size(va, pa, 4096, 4096);
    n = mapplan_hhdm(ranges, 1, va, pa, 4096, req, 1, NULL);
    (void)mapplan_hhdm_protect(req, &n, 1, pa, 4096, 0);
#elif CASE == 1
    st = pt_map(pt, pa, va, 4096, PT_W, 4096); /* va and pa swapped */
#elif CASE == 2
    req[0] = mapplan_request_4k(pa, va, 4096, 0, 0); /* va and pa swapped */
#elif CASE == 3
    (void)mapplan_page_size(pa, va, 4096, 4096); /* va and pa swapped */
#elif CASE == 4
    n = mapplan_hhdm(ranges, 1, pa, va, 4096, req, 1, NULL); /* hhdm_base and pa_limit swapped */
#elif CASE == 5
    pt_walk(pt, pa, &w); /* a physical address walked as a virtual one */
#elif CASE == 6
    st = pt_map(pt, 0xffffffff80000000ull, 0x200000, 4096, PT_W, 4096); /* bare integers */
#else
#error "unknown CASE"
#endif
    (void)st;
}
