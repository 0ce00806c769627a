/*
 * memmap: turns the firmware's UEFI memory map, as it is, into Canopy's
 * normalised map: sorted, non-overlapping, page-aligned ranges with a Canopy
 * type, the winning EFI type and attributes kept beside it, adjacent equal
 * ranges merged. Stage 1 calls it on the final map after ExitBootServices;
 * pmm_init() consumes the result; the host tests and a fuzzer drive it.
 *
 * Firmware maps are unsorted, may overlap (a reserved range nested in a
 * usable one), carry partial pages and can hold thousands of descriptors, so
 * nothing here assumes otherwise. It allocates nothing: the caller's output
 * buffer is also the work space, laid out as
 *
 *     out[0 .. k)                 finished ranges, growing upwards
 *     out[in .. in + h)           a max-heap of the ranges active at the sweep point
 *     out[in + i .. in + n)       converted descriptors not yet reached, sorted by base
 *
 * where in = capacity - (descriptor count). Each descriptor enters the heap
 * after it leaves the sorted part, so h <= i and the heap never overruns the
 * unread input. A sweep from low to high addresses emits, between consecutive
 * event points, the most restrictive range that covers them. Sorting is a
 * heapsort and each descriptor is pushed and popped once: O(n log n), no
 * recursion.
 *
 * Restrictiveness (later wins where ranges overlap), by what the OS owes each
 * type beyond "do not allocate from it":
 *
 *     usable < reclaimable < acpi-reclaim < persistent < bad < reserved
 *            < acpi-nvs < mmio < runtime
 *
 * Reclaimable memory is free after boot, ACPI tables are read, persistent
 * memory keeps its contents, bad RAM is merely avoided, reserved ranges are
 * the firmware's or a device's, NVS must survive sleep states, MMIO must be
 * mapped uncached, and runtime ranges must be mapped where the firmware
 * expects them for runtime services. Equal Canopy types are ordered by EFI
 * type, then attributes, so the result does not depend on input order.
 */
#include <pmm/pmm.h>

#include <canopy/page.h>

/* EFI_MEMORY_TYPE values (UEFI 2.10, section 7.2). */
#define EFI_RESERVED_MEMORY    0u
#define EFI_LOADER_CODE        1u
#define EFI_LOADER_DATA        2u
#define EFI_BOOT_SERVICES_CODE 3u
#define EFI_BOOT_SERVICES_DATA 4u
#define EFI_RUNTIME_CODE       5u
#define EFI_RUNTIME_DATA       6u
#define EFI_CONVENTIONAL       7u
#define EFI_UNUSABLE           8u
#define EFI_ACPI_RECLAIM       9u
#define EFI_ACPI_NVS           10u
#define EFI_MMIO               11u
#define EFI_MMIO_PORT_SPACE    12u
#define EFI_PAL_CODE           13u
#define EFI_PERSISTENT         14u
#define EFI_UNACCEPTED         15u
#define EFI_OS_DEFINED_FIRST   0x80000000u

#define EFI_MEMORY_RUNTIME (1ull << 63)

/* EFI_MEMORY_DESCRIPTOR field offsets; firmware may append fields (desc_size > 40). */
#define DESC_TYPE      0
#define DESC_PHYS      8
#define DESC_PAGES     24
#define DESC_ATTR      32
#define DESC_MIN_SIZE  40u
#define DESC_VERSION_1 1u

/*
 * The exclusive end no range may pass: the last page of the 64-bit space is
 * never described, so every end fits in a uint64_t. Descriptors that run
 * beyond it are clipped (and counted).
 */
#define ADDR_END page_down(UINT64_MAX)

typedef struct canopy_mem_range range_t;

uint32_t memmap_capacity_for(uint64_t map_size, uint64_t desc_size)
{
    if (desc_size < DESC_MIN_SIZE)
        return 0;
    uint64_t n = map_size / desc_size;
    /* Up to 2n - 1 ranges come out; n more slots hold the sorted input meanwhile. */
    if (n > UINT32_MAX / 3)
        return UINT32_MAX;
    return (uint32_t)(3 * n);
}

enum canopy_mem_type memmap_type_of(uint32_t efi_type, uint64_t efi_attr)
{
    if (efi_attr & EFI_MEMORY_RUNTIME)
        return CANOPY_MEM_RUNTIME;
    switch (efi_type) {
    case EFI_CONVENTIONAL:
        return CANOPY_MEM_USABLE;
    case EFI_LOADER_CODE:
    case EFI_LOADER_DATA:
    case EFI_BOOT_SERVICES_CODE:
    case EFI_BOOT_SERVICES_DATA:
        return CANOPY_MEM_RECLAIMABLE;
    case EFI_ACPI_RECLAIM:
        return CANOPY_MEM_ACPI_RECLAIM;
    case EFI_ACPI_NVS:
        return CANOPY_MEM_ACPI_NVS;
    case EFI_RUNTIME_CODE:
    case EFI_RUNTIME_DATA:
        return CANOPY_MEM_RUNTIME;
    case EFI_MMIO:
    case EFI_MMIO_PORT_SPACE:
        return CANOPY_MEM_MMIO;
    case EFI_PERSISTENT:
        return CANOPY_MEM_PERSISTENT;
    case EFI_UNUSABLE:
        return CANOPY_MEM_BAD;
    default: /* reserved, PAL code, unaccepted, OS-defined and unknown types */
        return CANOPY_MEM_RESERVED;
    }
}

const char *memmap_type_name(uint32_t canopy_type)
{
    switch (canopy_type) {
    case CANOPY_MEM_USABLE:
        return "usable";
    case CANOPY_MEM_RECLAIMABLE:
        return "reclaimable";
    case CANOPY_MEM_ACPI_RECLAIM:
        return "acpi-reclaim";
    case CANOPY_MEM_ACPI_NVS:
        return "acpi-nvs";
    case CANOPY_MEM_RUNTIME:
        return "runtime";
    case CANOPY_MEM_MMIO:
        return "mmio";
    case CANOPY_MEM_RESERVED:
        return "reserved";
    case CANOPY_MEM_PERSISTENT:
        return "persistent";
    case CANOPY_MEM_BAD:
        return "bad";
    default:
        return "unknown";
    }
}

const char *memmap_efi_type_name(uint32_t efi_type)
{
    static const char *const names[] = {
        "reserved",     "loader-code",  "loader-data", "boot-code",    "boot-data", "runtime-code",
        "runtime-data", "conventional", "unusable",    "acpi-reclaim", "acpi-nvs",  "mmio",
        "mmio-port",    "pal-code",     "persistent",  "unaccepted",
    };
    if (efi_type < sizeof(names) / sizeof(names[0]))
        return names[efi_type];
    if (efi_type >= EFI_OS_DEFINED_FIRST)
        return "os-defined";
    return "unknown";
}

unsigned memmap_restrictiveness(uint32_t canopy_type)
{
    switch (canopy_type) {
    case CANOPY_MEM_USABLE:
        return 0;
    case CANOPY_MEM_RECLAIMABLE:
        return 1;
    case CANOPY_MEM_ACPI_RECLAIM:
        return 2;
    case CANOPY_MEM_PERSISTENT:
        return 3;
    case CANOPY_MEM_BAD:
        return 4;
    case CANOPY_MEM_RESERVED:
        return 5;
    case CANOPY_MEM_ACPI_NVS:
        return 6;
    case CANOPY_MEM_MMIO:
        return 7;
    case CANOPY_MEM_RUNTIME:
        return 8;
    default:
        return 5; /* unknown Canopy types behave as reserved */
    }
}

/* True if a yields to b where they overlap. */
static bool range_yields(const range_t *a, const range_t *b)
{
    unsigned ra = memmap_restrictiveness(a->type), rb = memmap_restrictiveness(b->type);
    if (ra != rb)
        return ra < rb;
    if (a->efi_type != b->efi_type)
        return a->efi_type < b->efi_type;
    return a->efi_attr < b->efi_attr;
}

static uint64_t range_end(const range_t *r)
{
    return r->base + (r->page_count << PAGE_SHIFT);
}

static uint64_t load64(const unsigned char *p)
{
    uint64_t v;
    __builtin_memcpy(&v, p, sizeof(v));
    return v;
}

static uint32_t load32(const unsigned char *p)
{
    uint32_t v;
    __builtin_memcpy(&v, p, sizeof(v));
    return v;
}

static void swap_ranges(range_t *a, range_t *b)
{
    range_t t = *a;
    *a = *b;
    *b = t;
}

/* Heapsort of r[0..n) by base (a max-heap on base, then popped to the end). */
static void sort_by_base(range_t *r, uint32_t n)
{
    for (uint32_t start = n / 2; start-- > 0;) {
        for (uint32_t root = start;;) {
            uint32_t child = 2 * root + 1;
            if (child >= n)
                break;
            if (child + 1 < n && r[child].base < r[child + 1].base)
                child++;
            if (r[root].base >= r[child].base)
                break;
            swap_ranges(&r[root], &r[child]);
            root = child;
        }
    }
    for (uint32_t end = n; end > 1;) {
        end--;
        swap_ranges(&r[0], &r[end]);
        for (uint32_t root = 0;;) {
            uint32_t child = 2 * root + 1;
            if (child >= end)
                break;
            if (child + 1 < end && r[child].base < r[child + 1].base)
                child++;
            if (r[root].base >= r[child].base)
                break;
            swap_ranges(&r[root], &r[child]);
            root = child;
        }
    }
}

/* The active set: a max-heap by restrictiveness. */
static void heap_push(range_t *heap, uint32_t *size, const range_t *r)
{
    uint32_t i = (*size)++;
    heap[i] = *r;
    while (i > 0) {
        uint32_t parent = (i - 1) / 2;
        if (!range_yields(&heap[parent], &heap[i]))
            break;
        swap_ranges(&heap[parent], &heap[i]);
        i = parent;
    }
}

static void heap_pop(range_t *heap, uint32_t *size)
{
    uint32_t n = --(*size);
    heap[0] = heap[n];
    for (uint32_t root = 0;;) {
        uint32_t child = 2 * root + 1;
        if (child >= n)
            break;
        if (child + 1 < n && range_yields(&heap[child], &heap[child + 1]))
            child++;
        if (!range_yields(&heap[root], &heap[child]))
            break;
        swap_ranges(&heap[root], &heap[child]);
        root = child;
    }
}

/*
 * Converts one descriptor into a page-aligned range; false if nothing of it
 * remains. Usable and reclaimable memory is trimmed inward to whole pages (a
 * partial page may be shared with something else); every other type is
 * widened outward, so nothing it touches is ever handed out.
 */
static bool desc_to_range(const unsigned char *d, range_t *r, struct memmap_stats *st)
{
    uint32_t efi_type = load32(d + DESC_TYPE);
    uint64_t start = load64(d + DESC_PHYS);
    uint64_t pages = load64(d + DESC_PAGES);
    uint64_t attr = load64(d + DESC_ATTR);

    if (pages == 0) {
        st->empty++;
        return false;
    }
    if (start >= ADDR_END) {
        st->clipped++;
        return false;
    }
    uint64_t end;
    if (pages > (ADDR_END - start) >> PAGE_SHIFT) {
        end = ADDR_END;
        st->clipped++;
    } else {
        end = start + (pages << PAGE_SHIFT);
        if (end > ADDR_END) {
            end = ADDR_END;
            st->clipped++;
        }
    }

    uint32_t type = memmap_type_of(efi_type, attr);
    if (!page_is_aligned(start)) {
        st->trimmed++;
        if (type == CANOPY_MEM_USABLE || type == CANOPY_MEM_RECLAIMABLE) {
            start = page_up(start); /* start < ADDR_END: cannot wrap */
            end = page_down(end);
        } else {
            start = page_down(start);
            end = page_up(end); /* cannot pass ADDR_END: it is aligned */
        }
    }
    if (start >= end) {
        st->empty++;
        return false;
    }
    r->base = start;
    r->page_count = (end - start) >> PAGE_SHIFT;
    r->type = type;
    r->efi_type = efi_type;
    r->efi_attr = attr;
    return true;
}

/* Appends [start, end) typed like `like`, merging with the previous range if equal. */
static bool emit(range_t *out, uint32_t *k, uint32_t limit, uint64_t start, uint64_t end,
                 const range_t *like)
{
    if (*k > 0) {
        range_t *prev = &out[*k - 1];
        if (range_end(prev) == start && prev->type == like->type &&
            prev->efi_type == like->efi_type && prev->efi_attr == like->efi_attr) {
            prev->page_count += (end - start) >> PAGE_SHIFT;
            return true;
        }
    }
    if (*k >= limit)
        return false;
    out[*k].base = start;
    out[*k].page_count = (end - start) >> PAGE_SHIFT;
    out[*k].type = like->type;
    out[*k].efi_type = like->efi_type;
    out[*k].efi_attr = like->efi_attr;
    (*k)++;
    return true;
}

enum pmm_status memmap_normalise(const void *efi_map, uint64_t map_size, uint64_t desc_size,
                                 uint32_t desc_version, struct canopy_mem_range *out,
                                 uint32_t out_capacity, uint32_t *out_count)
{
    return memmap_normalise_stats(efi_map, map_size, desc_size, desc_version, out, out_capacity,
                                  out_count, NULL);
}

enum pmm_status memmap_normalise_stats(const void *efi_map, uint64_t map_size, uint64_t desc_size,
                                       uint32_t desc_version, struct canopy_mem_range *out,
                                       uint32_t out_capacity, uint32_t *out_count,
                                       struct memmap_stats *stats)
{
    struct memmap_stats st = {0};
    *out_count = 0;
    if (stats)
        *stats = st;

    if (efi_map == NULL || desc_version != DESC_VERSION_1 || desc_size < DESC_MIN_SIZE ||
        map_size == 0 || map_size % desc_size != 0 || map_size / desc_size > UINT32_MAX / 3)
        return PMM_ERR_BAD_MAP;
    uint32_t n_desc = (uint32_t)(map_size / desc_size);
    st.descriptors = n_desc;
    if (out_capacity < n_desc) {
        if (stats)
            *stats = st;
        return PMM_ERR_NO_SPACE;
    }

    /* Convert into the top of the buffer, then sort there. */
    uint32_t in = out_capacity - n_desc;
    uint32_t n = 0;
    const unsigned char *d = efi_map;
    for (uint32_t j = 0; j < n_desc; j++, d += desc_size) {
        range_t r;
        if (desc_to_range(d, &r, &st))
            out[in + n++] = r;
    }
    sort_by_base(&out[in], n);

    /*
     * The sweep. pos is where the next output range starts; the heap holds the
     * ranges that began at or before pos (some may have ended: they are dropped
     * lazily when they reach the top, as only the top decides the type).
     */
    range_t *heap = &out[in];
    uint32_t h = 0, i = 0, k = 0;
    uint64_t pos = 0;
    enum pmm_status status = PMM_OK;
    for (;;) {
        while (h > 0 && range_end(&heap[0]) <= pos)
            heap_pop(heap, &h);
        if (h == 0) {
            if (i == n)
                break;
            pos = out[in + i].base; /* a hole: jump to the next range */
        }
        while (i < n && out[in + i].base == pos) {
            range_t r = out[in + i]; /* its slot may be the one the heap grows into */
            i++;
            if (h > 0)
                st.overlaps++;
            heap_push(heap, &h, &r);
        }
        uint64_t next = range_end(&heap[0]);
        if (i < n && out[in + i].base < next)
            next = out[in + i].base;
        if (!emit(out, &k, in, pos, next, &heap[0])) {
            status = PMM_ERR_NO_SPACE;
            k = 0;
            break;
        }
        pos = next;
    }

    *out_count = k;
    if (stats)
        *stats = st;
    return status;
}

uint64_t memmap_clip(struct canopy_mem_range *ranges, uint32_t *count, uint64_t limit)
{
    uint64_t limit_page = limit / PAGE_SIZE; /* a page number: no overflow near 2^64 */
    uint64_t dropped = 0;
    uint32_t k = 0;
    for (uint32_t i = 0; i < *count; i++) {
        range_t r = ranges[i];
        uint64_t first = r.base / PAGE_SIZE;
        if (first >= limit_page) {
            dropped += r.page_count;
            continue;
        }
        if (r.page_count > limit_page - first) {
            dropped += r.page_count - (limit_page - first);
            r.page_count = limit_page - first;
        }
        ranges[k++] = r;
    }
    *count = k;
    return dropped * PAGE_SIZE;
}
