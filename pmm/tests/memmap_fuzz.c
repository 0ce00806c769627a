/*
 * memmap_fuzz: bytes -> a UEFI memory map -> memmap_normalise_stats ->
 * properties of the result.
 *
 * Input: byte 0 picks the descriptor size (40, 48, 56 or 72) and whether the
 * output buffer is exactly memmap_capacity_for() or a random smaller size;
 * then 8 bytes per descriptor:
 *   [0] type (0..16, or an OS-defined type)   [1] attribute bits (runtime, WB)
 *   [2..3] start page   [4] sub-page offset (0 most of the time)
 *   [5..6] page count   [7] flags: a high base near 2^64, a huge page count
 *
 * Checked: output sorted, non-overlapping, page aligned, no mergeable
 * neighbours; each descriptor's span (usable/reclaimable trimmed inward,
 * others widened) is covered without gaps by ranges at least as restrictive;
 * and the output covers no page outside the union of those spans.
 */
#include "pmm_sim.h"

typedef struct canopy_mem_range range_t;

struct span {
    uint64_t start, end; /* page aligned, end exclusive, end <= ADDR_END */
    range_t key;         /* type, efi_type, efi_attr of the descriptor */
};

#define ADDR_END page_down(UINT64_MAX)

static int beats_or_equal(const range_t *a, const range_t *b)
{
    unsigned ra = memmap_restrictiveness(a->type), rb = memmap_restrictiveness(b->type);
    if (ra != rb)
        return ra > rb;
    if (a->efi_type != b->efi_type)
        return a->efi_type > b->efi_type;
    return a->efi_attr >= b->efi_attr;
}

static int cmp_span(const void *x, const void *y)
{
    const struct span *a = x, *b = y;
    return a->start < b->start ? -1 : a->start > b->start;
}

static uint64_t rd16(const uint8_t *p)
{
    return (uint64_t)p[0] | (uint64_t)p[1] << 8;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    static const size_t desc_sizes[] = {40, 48, 56, 72};
    size_t desc_size = desc_sizes[data[0] & 3];
    int squeeze = (data[0] >> 2) & 1;
    data++;
    size--;
    size_t n = size / 8;
    if (n == 0)
        return 0;

    struct efimap m;
    efimap_init(&m, desc_size);
    struct span *spans = calloc(n, sizeof(*spans));
    size_t ns = 0;
    for (size_t i = 0; i < n; i++) {
        const uint8_t *d = data + 8 * i;
        uint32_t type = d[0] <= 16 ? d[0] : (d[0] < 0xf0 ? d[0] % 16 : 0x80000000u + d[0]);
        uint64_t attr = ((d[1] & 1) ? EFI_ATTR_RUNTIME : 0) | ((d[1] & 2) ? EFI_ATTR_WB : 0);
        uint64_t start = rd16(d + 2) * PAGE_SIZE + ((d[4] & 0x80) ? (d[4] & 0x7f) * 32 : 0);
        uint64_t pages = rd16(d + 5);
        if (d[7] & 1)
            start += 0xffffffffff000000ull; /* near the top: may wrap */
        if (d[7] & 2)
            pages <<= 40;
        if (d[7] & 4)
            start += (uint64_t)d[7] << 32; /* RAM and MMIO above 4 GiB */
        efimap_add(&m, type, start, pages, attr);

        /* The span the normaliser must honour, computed here independently. */
        if (pages == 0 || start >= ADDR_END)
            continue;
        uint64_t end =
            pages > (ADDR_END - start) / PAGE_SIZE ? ADDR_END : start + pages * PAGE_SIZE;
        if (end > ADDR_END)
            end = ADDR_END;
        uint32_t t = memmap_type_of(type, attr);
        uint64_t s, e;
        if (t == CANOPY_MEM_USABLE || t == CANOPY_MEM_RECLAIMABLE) {
            s = page_up(start);
            e = page_down(end);
        } else {
            s = page_down(start);
            e = page_up(end);
        }
        if (s >= e)
            continue;
        spans[ns].start = s;
        spans[ns].end = e;
        spans[ns].key.type = t;
        spans[ns].key.efi_type = type;
        spans[ns].key.efi_attr = attr;
        ns++;
    }

    uint32_t cap = memmap_capacity_for(efimap_size(&m), desc_size);
    if (squeeze && cap > 0)
        cap = (uint32_t)(data[0] % cap);
    /* Exactly cap entries, so ASan sees any write past the end. */
    range_t *out = malloc((cap ? cap : 1) * sizeof(*out));
    uint32_t count = 12345;
    struct memmap_stats st;
    enum pmm_status status =
        memmap_normalise_stats(m.buf, efimap_size(&m), desc_size, 1, out, cap, &count, &st);
    if (st.descriptors != n)
        FUZZ_FAIL();
    if (status == PMM_ERR_NO_SPACE) {
        if (!squeeze || count != 0)
            FUZZ_FAIL(); /* memmap_capacity_for() must always suffice */
        goto done;
    }
    if (status != PMM_OK)
        FUZZ_FAIL();

    /* Well formed. */
    for (uint32_t i = 0; i < count; i++) {
        const range_t *r = &out[i];
        if (r->base % PAGE_SIZE || r->page_count == 0 ||
            r->page_count > (ADDR_END - r->base) / PAGE_SIZE)
            FUZZ_FAIL();
        if (i > 0) {
            const range_t *q = &out[i - 1];
            uint64_t qend = q->base + q->page_count * PAGE_SIZE;
            if (r->base < qend)
                FUZZ_FAIL();
            if (r->base == qend && r->type == q->type && r->efi_type == q->efi_type &&
                r->efi_attr == q->efi_attr)
                FUZZ_FAIL();
        }
    }

    /* Every span covered, without gaps, by ranges at least as restrictive. */
    for (size_t i = 0; i < ns; i++) {
        uint32_t lo = 0, hi = count; /* first range ending after spans[i].start */
        while (lo < hi) {
            uint32_t mid = (lo + hi) / 2;
            if (out[mid].base + out[mid].page_count * PAGE_SIZE <= spans[i].start)
                lo = mid + 1;
            else
                hi = mid;
        }
        uint64_t pos = spans[i].start;
        for (uint32_t j = lo; pos < spans[i].end; j++) {
            if (j >= count || out[j].base > pos || !beats_or_equal(&out[j], &spans[i].key))
                FUZZ_FAIL();
            pos = out[j].base + out[j].page_count * PAGE_SIZE;
        }
    }

    /* Nothing outside the union of the spans. */
    qsort(spans, ns, sizeof(*spans), cmp_span);
    uint64_t union_pages = 0, cur_s = 0, cur_e = 0;
    for (size_t i = 0; i < ns; i++) {
        if (spans[i].start > cur_e) {
            union_pages += (cur_e - cur_s) / PAGE_SIZE;
            cur_s = spans[i].start;
            cur_e = spans[i].end;
        } else if (spans[i].end > cur_e) {
            cur_e = spans[i].end;
        }
    }
    union_pages += (cur_e - cur_s) / PAGE_SIZE;
    uint64_t out_pages = 0;
    for (uint32_t i = 0; i < count; i++)
        out_pages += out[i].page_count;
    if (out_pages != union_pages)
        FUZZ_FAIL();

done:
    free(out);
    free(spans);
    efimap_free(&m);
    return 0;
}
