/*
 * hooks: the boot-service wrappers of the fault-injecting firmware layer.
 *
 * Each wrapper looks at its return address: calls from stage 1's image get
 * the scenario's fault, calls from anywhere else (the firmware's own drivers
 * share the same table) go straight to the original function. So the faults
 * hit exactly the calls stage 1 makes, and the firmware itself keeps working.
 *
 * Invariants: a rewritten memory map keeps the firmware's map key (nothing is
 * allocated while rewriting, all buffers are static); nothing the firmware
 * really uses is reported usable (see mapx.c). Lines printed around
 * ExitBootServices go to COM1 by port I/O, so they cannot change the map.
 *
 * Called by faultfw.c: hooks_prepare before stage 1 is loaded, hooks_install
 * and hooks_remove around StartImage, hooks_report when stage 1 returned.
 */
#include "faultfw.h"
#include "guard.h"

#include <canopy/x86/cpu.h>

#define RAW_BYTES  (512u * 1024u)
#define MAX_DESC   16384u
#define FOUR_GIB   (4ull << 30)
#define OWN_PAGES  256u /* the overlap scenario's own allocation: 1 MiB */
#define KEEP_LOW_M 24u  /* high-memory: MiB left free below 4 GiB for the firmware's DMA */
#define MAX_LIVE   64u  /* stage 1 allocations tracked for the leak report */
#define GUARD_TABS 256u /* free-guard: tables for splitting large pages (1 MiB) */

EFI_BOOT_SERVICES ff_orig;

static struct {
    struct ff_config cfg;
    uint64_t image_lo, image_hi;
    struct mapx_params mapx;
    bool rewrite_map;
    unsigned allocs; /* AllocatePages + AllocatePool calls from stage 1 */
    unsigned allocs_failed;
    unsigned denied;    /* protocol lookups refused */
    unsigned maps;      /* memory maps rewritten */
    unsigned map_count; /* descriptors in the last rewritten map */
    unsigned ebs_calls;
    unsigned refused;    /* AllocateAddress calls answered EFI_NOT_FOUND */
    unsigned live_count; /* stage 1's allocations not yet freed (first MAX_LIVE tracked) */
    struct {
        uint64_t addr, size; /* size: pages for AllocatePages, bytes for AllocatePool */
        bool pages;
    } live[MAX_LIVE];
    bool live_overflow;
    EFI_GUID hidden;
    const char *hidden_name;
    bool broken_handlers;
    struct {
        uint16_t limit;
        uint64_t base;
    } __attribute__((packed)) fw_idtr;
} h;

/*
 * broken-handlers: the firmware's IDT with vectors 0-31 not present, as a
 * firmware whose exception handlers run away would be (any exception then
 * ends in a triple fault), and an RNG protocol whose GetRNG executes ud2.
 */
static uint8_t broken_idt[256 * 16] __attribute__((aligned(16)));

static EFI_STATUS EFIAPI faulting_get_rng(EFI_RNG_PROTOCOL *self, EFI_RNG_ALGORITHM *alg, UINTN len,
                                          UINT8 *out)
{
    (void)self;
    (void)alg;
    (void)len;
    (void)out;
    __asm__ volatile("ud2");
    return EFI_DEVICE_ERROR;
}

static EFI_STATUS EFIAPI no_rng_info(EFI_RNG_PROTOCOL *self, UINTN *size, EFI_RNG_ALGORITHM *list)
{
    (void)self;
    (void)list;
    *size = 0;
    return EFI_UNSUPPORTED;
}

static EFI_RNG_PROTOCOL faulting_rng = {.GetInfo = no_rng_info, .GetRNG = faulting_get_rng};

static void break_handlers(void)
{
    __asm__ volatile("sidt %0" : "=m"(h.fw_idtr));
    uint64_t bytes = (uint64_t)h.fw_idtr.limit + 1;
    if (bytes > sizeof(broken_idt))
        bytes = sizeof(broken_idt);
    __builtin_memcpy(broken_idt, (const void *)(UINTN)h.fw_idtr.base, bytes);
    __builtin_memset(broken_idt, 0, 32 * 16); /* vectors 0-31: not present */
    struct {
        uint16_t limit;
        uint64_t base;
    } __attribute__((packed)) idtr = {(uint16_t)(bytes - 1), (uint64_t)(UINTN)broken_idt};
    __asm__ volatile("lidt %0" : : "m"(idtr));
}

static uint8_t raw[RAW_BYTES];
static struct mapx_desc in_desc[MAX_DESC / 2], out_desc[MAX_DESC];
/* In the layer's image (loader code), so the guard never hides its own tables. */
static uint64_t guard_tables[GUARD_TABS][512] __attribute__((aligned(4096)));

static uint32_t firmware_map(void);

static bool from_stage1(void *ret)
{
    uint64_t a = (uint64_t)(UINTN)ret;
    return a >= h.image_lo && a < h.image_hi;
}

static bool guid_eq(const EFI_GUID *a, const EFI_GUID *b)
{
    return a && __builtin_memcmp(a, b, sizeof(*a)) == 0;
}

/* ---- memory map ----------------------------------------------------------------- */

static EFI_STATUS EFIAPI hook_get_memory_map(UINTN *size, EFI_MEMORY_DESCRIPTOR *map, UINTN *key,
                                             UINTN *desc_size, UINT32 *version)
{
    if (!from_stage1(__builtin_return_address(0)) || !h.rewrite_map || !size || !key ||
        !desc_size || !version)
        return ff_orig.GetMemoryMap(size, map, key, desc_size, version);
    UINTN raw_size = sizeof(raw), raw_desc = 0;
    EFI_STATUS s =
        ff_orig.GetMemoryMap(&raw_size, (EFI_MEMORY_DESCRIPTOR *)raw, key, &raw_desc, version);
    if (EFI_ERROR(s) || raw_desc < MAPX_DESC_MIN || raw_size / raw_desc > MAX_DESC / 2)
        return EFI_ERROR(s) ? EFI_DEVICE_ERROR : EFI_UNSUPPORTED; /* our buffer, not theirs */
    uint32_t n = (uint32_t)(raw_size / raw_desc);
    mapx_decode(raw, raw_desc, n, in_desc);
    uint32_t m = mapx_transform(&h.mapx, in_desc, n, out_desc, MAX_DESC, NULL);
    if (m == UINT32_MAX)
        return EFI_DEVICE_ERROR;
    UINTN need = (UINTN)m * h.mapx.out_stride;
    *desc_size = h.mapx.out_stride;
    if (*size < need || !map) {
        *size = need;
        return EFI_BUFFER_TOO_SMALL;
    }
    mapx_encode(out_desc, m, h.mapx.out_stride, map);
    *size = need;
    h.maps++;
    h.map_count = m;
    return EFI_SUCCESS;
}

/* ---- allocations ---------------------------------------------------------------- */

/* Counts one allocation from stage 1 and says whether the scenario fails it. */
static bool alloc_fails(bool pages, uint64_t amount)
{
    unsigned nth = ++h.allocs;
    bool fail = false;
    switch (h.cfg.scenario) {
    case FF_ALLOC_FAIL_NTH:
    case FF_MEMATTR_XP:
        fail = nth == h.cfg.arg;
        break;
    case FF_ALLOC_FAIL_AFTER:
        fail = nth > h.cfg.arg;
        break;
    case FF_PAGES_FAIL_OVER:
        fail = pages && amount > h.cfg.arg;
        break;
    case FF_POOL_FAIL_OVER:
        fail = !pages && amount > h.cfg.arg;
        break;
    default:
        return false;
    }
    ff_printf("faultfw: allocation #%u from stage 1: %s of %llu %s%s\n", nth,
              pages ? "AllocatePages" : "AllocatePool", (unsigned long long)amount,
              pages ? "pages" : "bytes", fail ? " -> EFI_OUT_OF_RESOURCES (injected)" : "");
    if (fail)
        h.allocs_failed++;
    return fail;
}

static void track(bool pages, uint64_t addr, uint64_t size)
{
    if (h.live_count == MAX_LIVE) {
        h.live_overflow = true;
        return;
    }
    h.live[h.live_count].addr = addr;
    h.live[h.live_count].size = size;
    h.live[h.live_count].pages = pages;
    h.live_count++;
}

/* Forgets a tracked allocation that is being freed (pages: the whole range). */
static void untrack(bool pages, uint64_t addr, uint64_t size)
{
    for (unsigned i = 0; i < h.live_count; i++) {
        if (h.live[i].pages != pages || h.live[i].addr != addr || (pages && h.live[i].size != size))
            continue;
        h.live[i] = h.live[--h.live_count];
        return;
    }
}

static EFI_STATUS EFIAPI hook_allocate_pages(EFI_ALLOCATE_TYPE type, EFI_MEMORY_TYPE mem,
                                             UINTN pages, EFI_PHYSICAL_ADDRESS *addr)
{
    if (!from_stage1(__builtin_return_address(0)))
        return ff_orig.AllocatePages(type, mem, pages, addr);
    if (alloc_fails(true, pages))
        return EFI_OUT_OF_RESOURCES;
    /* As a firmware whose map changed since stage 1 read it: the place is taken. */
    if (h.cfg.scenario == FF_ADDRESS_REFUSE && type == AllocateAddress && addr &&
        h.refused < h.cfg.arg) {
        h.refused++;
        ff_printf("faultfw: AllocatePages at 0x%llx (%llu pages) from stage 1 -> EFI_NOT_FOUND "
                  "(injected, %u of %llu)\n",
                  (unsigned long long)*addr, (unsigned long long)pages, h.refused,
                  (unsigned long long)h.cfg.arg);
        return EFI_NOT_FOUND;
    }
    EFI_STATUS s = ff_orig.AllocatePages(type, mem, pages, addr);
    if (!EFI_ERROR(s))
        track(true, *addr, pages);
    return s;
}

static EFI_STATUS EFIAPI hook_allocate_pool(EFI_MEMORY_TYPE mem, UINTN bytes, void **buf)
{
    if (!from_stage1(__builtin_return_address(0)))
        return ff_orig.AllocatePool(mem, bytes, buf);
    if (alloc_fails(false, bytes)) {
        if (buf)
            *buf = NULL;
        return EFI_OUT_OF_RESOURCES;
    }
    EFI_STATUS s = ff_orig.AllocatePool(mem, bytes, buf);
    if (!EFI_ERROR(s))
        track(false, (uint64_t)(UINTN)*buf, bytes);
    return s;
}

static EFI_STATUS EFIAPI hook_free_pages(EFI_PHYSICAL_ADDRESS addr, UINTN pages)
{
    EFI_STATUS s = ff_orig.FreePages(addr, pages);
    if (from_stage1(__builtin_return_address(0)) && !EFI_ERROR(s))
        untrack(true, addr, pages);
    return s;
}

static EFI_STATUS EFIAPI hook_free_pool(void *buf)
{
    EFI_STATUS s = ff_orig.FreePool(buf);
    if (from_stage1(__builtin_return_address(0)) && !EFI_ERROR(s))
        untrack(false, (uint64_t)(UINTN)buf, 0);
    return s;
}

/* ---- protocols ------------------------------------------------------------------ */

static bool hide(void *ret, const EFI_GUID *guid, const char *service)
{
    if (!h.hidden_name || !from_stage1(ret) || !guid_eq(guid, &h.hidden))
        return false;
    h.denied++;
    ff_printf("faultfw: %s(%s) from stage 1 -> not found (injected)\n", service, h.hidden_name);
    return true;
}

static EFI_STATUS EFIAPI hook_handle_protocol(EFI_HANDLE handle, EFI_GUID *guid, void **iface)
{
    if (hide(__builtin_return_address(0), guid, "HandleProtocol")) {
        if (iface)
            *iface = NULL;
        return EFI_UNSUPPORTED; /* what the specification says for a handle without it */
    }
    return ff_orig.HandleProtocol(handle, guid, iface);
}

static EFI_STATUS EFIAPI hook_open_protocol(EFI_HANDLE handle, EFI_GUID *guid, void **iface,
                                            EFI_HANDLE agent, EFI_HANDLE controller, UINT32 attrs)
{
    if (hide(__builtin_return_address(0), guid, "OpenProtocol")) {
        if (iface)
            *iface = NULL;
        return EFI_UNSUPPORTED;
    }
    return ff_orig.OpenProtocol(handle, guid, iface, agent, controller, attrs);
}

/*
 * FF_MEMATTR_XP: EFI_MEMORY_ATTRIBUTE_PROTOCOL (UEFI 2.10), which OVMF 2022.11
 * lacks, as a firmware that maps everything non-executable would answer it.
 * It changes no page table (OVMF maps stage 1's code executable anyway); it
 * records what stage 1 clears and sets, for hooks_report.
 */
#define MEMATTR_GUID                                                                               \
    {                                                                                              \
        0xf4560cf6, 0x40ec, 0x4b4a,                                                                \
        {                                                                                          \
            0xa1, 0x92, 0xbf, 0x1d, 0x57, 0xd0, 0xb1, 0x89                                         \
        }                                                                                          \
    }
#define MEMATTR_XP      0x4000ull
#define MEMATTR_RO      0x20000ull
#define MEMATTR_CHANGES 8

struct memattr_protocol;
typedef EFI_STATUS(EFIAPI *memattr_get_fn)(struct memattr_protocol *self, EFI_PHYSICAL_ADDRESS base,
                                           UINT64 length, UINT64 *attributes);
typedef EFI_STATUS(EFIAPI *memattr_change_fn)(struct memattr_protocol *self,
                                              EFI_PHYSICAL_ADDRESS base, UINT64 length,
                                              UINT64 attributes);
struct memattr_protocol {
    memattr_get_fn get;
    memattr_change_fn set;
    memattr_change_fn clear;
};

static struct {
    struct {
        char what; /* 'c'leared or 's'et */
        uint64_t base, length, attributes;
    } change[MEMATTR_CHANGES];
    unsigned count;
} memattr;

static EFI_STATUS EFIAPI memattr_get(struct memattr_protocol *self, EFI_PHYSICAL_ADDRESS base,
                                     UINT64 length, UINT64 *attributes)
{
    (void)self;
    (void)base;
    (void)length;
    *attributes = MEMATTR_XP | MEMATTR_RO;
    return EFI_SUCCESS;
}

static void memattr_record(char what, uint64_t base, uint64_t length, uint64_t attributes)
{
    if (memattr.count < MEMATTR_CHANGES)
        memattr.change[memattr.count++] =
            (__typeof__(memattr.change[0])){what, base, length, attributes};
}

static EFI_STATUS EFIAPI memattr_set(struct memattr_protocol *self, EFI_PHYSICAL_ADDRESS base,
                                     UINT64 length, UINT64 attributes)
{
    (void)self;
    memattr_record('s', base, length, attributes);
    return EFI_SUCCESS;
}

static EFI_STATUS EFIAPI memattr_clear(struct memattr_protocol *self, EFI_PHYSICAL_ADDRESS base,
                                       UINT64 length, UINT64 attributes)
{
    (void)self;
    memattr_record('c', base, length, attributes);
    return EFI_SUCCESS;
}

static struct memattr_protocol fake_memattr = {memattr_get, memattr_set, memattr_clear};

static EFI_STATUS EFIAPI hook_locate_protocol(EFI_GUID *guid, void *registration, void **iface)
{
    void *ret = __builtin_return_address(0);
    EFI_GUID rng = EFI_RNG_PROTOCOL_GUID;
    if (h.broken_handlers && from_stage1(ret) && guid_eq(guid, &rng)) {
        ff_printf("faultfw: LocateProtocol(RNG) from stage 1 -> one whose GetRNG faults "
                  "(injected)\n");
        *iface = &faulting_rng;
        return EFI_SUCCESS;
    }
    if (hide(ret, guid, "LocateProtocol")) {
        if (iface)
            *iface = NULL;
        return EFI_NOT_FOUND;
    }
    EFI_GUID memattr_guid = MEMATTR_GUID;
    if (h.cfg.scenario == FF_MEMATTR_XP && from_stage1(ret) && guid_eq(guid, &memattr_guid) &&
        iface) {
        ff_printf("faultfw: LocateProtocol(memory attributes) from stage 1 -> the layer's, "
                  "every page XP\n");
        *iface = &fake_memattr;
        return EFI_SUCCESS;
    }
    return ff_orig.LocateProtocol(guid, registration, iface);
}

static EFI_STATUS EFIAPI hook_locate_handle(EFI_LOCATE_SEARCH_TYPE type, EFI_GUID *guid, void *key,
                                            UINTN *size, EFI_HANDLE *buf)
{
    if (type == ByProtocol && hide(__builtin_return_address(0), guid, "LocateHandle"))
        return EFI_NOT_FOUND;
    return ff_orig.LocateHandle(type, guid, key, size, buf);
}

static EFI_STATUS EFIAPI hook_locate_handle_buffer(EFI_LOCATE_SEARCH_TYPE type, EFI_GUID *guid,
                                                   void *key, UINTN *count, EFI_HANDLE **buf)
{
    if (type == ByProtocol && hide(__builtin_return_address(0), guid, "LocateHandleBuffer")) {
        if (count)
            *count = 0;
        if (buf)
            *buf = NULL;
        return EFI_NOT_FOUND;
    }
    return ff_orig.LocateHandleBuffer(type, guid, key, count, buf);
}

/* ---- ExitBootServices ------------------------------------------------------------- */

/*
 * Adds about `extra` descriptors to the firmware's map: single boot-services
 * pages every other page inside a large conventional run, each between two
 * conventional pieces. Only memory allocation, which the specification still
 * allows the firmware (and the loader) after a failed ExitBootServices.
 */
static void grow_map(uint64_t extra)
{
    uint32_t n = firmware_map();
    const struct mapx_desc *big = NULL;
    for (uint32_t i = 0; i < n; i++)
        if (in_desc[i].type == MAPX_EFI_CONVENTIONAL && in_desc[i].phys >= (1ull << 20) &&
            (!big || in_desc[i].pages > big->pages))
            big = &in_desc[i];
    if (!big)
        return;
    uint64_t singles = extra / 2 + 1;
    for (uint64_t k = 0; k < singles && 2 * k + 2 < big->pages; k++) {
        EFI_PHYSICAL_ADDRESS a = big->phys + (2 * k + 1) * PAGE_SIZE;
        (void)ff_orig.AllocatePages(AllocateAddress, EfiBootServicesData, 1, &a);
    }
}

/*
 * FF_FREE_GUARD, right after a successful ExitBootServices: every page the
 * final map calls free (EfiConventionalMemory) becomes not-present in the
 * page tables the CPU runs on (the firmware's, identity-mapped), as EDK2's
 * freed-memory guard does to pages freed during boot. Memory of any other
 * type stays mapped: the loader's own allocations and image, the runtime
 * services, the firmware's tables and this layer. CR0.WP is cleared while
 * the tables are edited (firmware may map its tables read-only), and the
 * TLB is flushed, global entries included. Lines go to COM1.
 */
static void guard_free_memory(const uint8_t *map, UINTN size, UINTN desc_size)
{
    uint64_t rflags, cr0, cr3, cr4;
    __asm__ volatile("pushfq; popq %0; cli" : "=r"(rflags) : : "memory");
    __asm__ volatile("mov %%cr0, %0" : "=r"(cr0));
    __asm__ volatile("mov %%cr3, %0" : "=r"(cr3));
    __asm__ volatile("mov %%cr4, %0" : "=r"(cr4));
    struct guard g = {.root = cr3 & 0x000ffffffffff000ull,
                      .levels = (cr4 & (1ull << 12)) ? 5 : 4, /* CR4.LA57 */
                      .virt_offset = 0,
                      .pool = (uint64_t)(UINTN)guard_tables,
                      .pool_frames = GUARD_TABS};
    unsigned ranges = 0;
    bool ok = true;
    __asm__ volatile("mov %0, %%cr0" : : "r"(cr0 & ~(1ull << 16)) : "memory");
    for (UINTN off = 0; ok && off + desc_size <= size; off += desc_size) {
        const EFI_MEMORY_DESCRIPTOR *d = (const EFI_MEMORY_DESCRIPTOR *)(map + off);
        if (d->Type != EfiConventionalMemory || d->NumberOfPages == 0)
            continue;
        ok = guard_hide(&g, d->PhysicalStart, d->PhysicalStart + d->NumberOfPages * PAGE_SIZE);
        ranges++;
    }
    __asm__ volatile("mov %0, %%cr0" : : "r"(cr0) : "memory");
    __asm__ volatile("mov %0, %%cr3" : : "r"(cr3) : "memory");
    if (cr4 & (1ull << 7)) { /* CR4.PGE: toggling it drops global entries too */
        __asm__ volatile("mov %0, %%cr4" : : "r"(cr4 & ~(1ull << 7)) : "memory");
        __asm__ volatile("mov %0, %%cr4" : : "r"(cr4) : "memory");
    }
    if (rflags & (1ull << 9))
        __asm__ volatile("sti");
    ff_serial_printf("faultfw: free-guard: %llu KiB of free memory in %u ranges made not-present "
                     "in the firmware's page tables (%u tables split, %u-level paging)%s\r\n",
                     (unsigned long long)(g.pages_hidden * 4), ranges, g.pool_used, g.levels,
                     ok ? "" : "; OUT OF TABLES, the rest stays mapped");
}

static EFI_STATUS EFIAPI hook_exit_boot_services(EFI_HANDLE image, UINTN key)
{
    if (!from_stage1(__builtin_return_address(0)))
        return ff_orig.ExitBootServices(image, key);
    unsigned call = ++h.ebs_calls;
    if (h.cfg.scenario == FF_EBS_FAIL_ALWAYS) {
        ff_serial_printf("faultfw: ExitBootServices call %u -> EFI_INVALID_PARAMETER "
                         "(injected)\r\n",
                         call);
        return EFI_INVALID_PARAMETER;
    }
    if ((h.cfg.scenario == FF_EBS_STALE_KEY || h.cfg.scenario == FF_EBS_STALE_GROW) && call == 1) {
        /* Change the map for real, so the firmware itself finds stage 1's key stale. */
        EFI_PHYSICAL_ADDRESS page;
        EFI_STATUS a = ff_orig.AllocatePages(AllocateAnyPages, EfiBootServicesData, 1, &page);
        if (!EFI_ERROR(a) && h.cfg.scenario == FF_EBS_STALE_GROW)
            grow_map(h.cfg.arg);
        UINTN size = sizeof(raw), new_key = key, dsize;
        UINT32 ver;
        if (EFI_ERROR(
                ff_orig.GetMemoryMap(&size, (EFI_MEMORY_DESCRIPTOR *)raw, &new_key, &dsize, &ver)))
            new_key = key;
        EFI_STATUS s = EFI_INVALID_PARAMETER;
        if (!EFI_ERROR(a) && new_key != key)
            s = ff_orig.ExitBootServices(image, key);
        ff_serial_printf("faultfw: ExitBootServices call 1 with a stale key (map changed: %s) -> "
                         "%s\r\n",
                         !EFI_ERROR(a) && new_key != key ? "yes" : "no", ff_status_name(s));
        if (!EFI_ERROR(s))
            ff_serial_printf("faultfw: the firmware accepted the stale key\r\n");
        return s;
    }
    /* The guard needs the final map: the one whose key is stage 1's (reading it changes nothing).
     */
    UINTN size = sizeof(raw), map_key = 0, dsize = 0;
    UINT32 ver;
    EFI_STATUS m = EFI_NOT_STARTED;
    if (h.cfg.scenario == FF_FREE_GUARD)
        m = ff_orig.GetMemoryMap(&size, (EFI_MEMORY_DESCRIPTOR *)raw, &map_key, &dsize, &ver);
    EFI_STATUS s = ff_orig.ExitBootServices(image, key);
    if (EFI_ERROR(s))
        return s;
    ff_serial_printf("faultfw: ExitBootServices call %u succeeded; injected: %u failed "
                     "allocations, %u hidden protocol lookups, %u rewritten maps "
                     "(last %u descriptors, %u bytes each)\r\n",
                     call, h.allocs_failed, h.denied, h.maps, h.map_count,
                     h.rewrite_map ? h.mapx.out_stride : 0);
    if (h.cfg.scenario == FF_FREE_GUARD) {
        if (!EFI_ERROR(m) && map_key == key && dsize >= MAPX_DESC_MIN)
            guard_free_memory(raw, size, dsize);
        else
            ff_serial_printf("faultfw: free-guard: the final map is not known; nothing "
                             "guarded\r\n");
    }
    return s;
}

/* ---- scenario set-up ----------------------------------------------------------------- */

/* Reads the firmware's map into in_desc; returns the count, 0 on failure. */
static uint32_t firmware_map(void)
{
    UINTN size = sizeof(raw), key, dsize;
    UINT32 ver;
    if (EFI_ERROR(ff_st->BootServices->GetMemoryMap(&size, (EFI_MEMORY_DESCRIPTOR *)raw, &key,
                                                    &dsize, &ver)) ||
        dsize < MAPX_DESC_MIN || size / dsize > MAX_DESC / 2)
        return 0;
    mapx_decode(raw, dsize, (uint32_t)(size / dsize), in_desc);
    return (uint32_t)(size / dsize);
}

/* Takes conventional memory below 4 GiB as boot-services data, leaving `keep` MiB. */
static EFI_STATUS take_low_memory(uint64_t keep_mib)
{
    uint32_t n = firmware_map();
    if (n == 0)
        return EFI_DEVICE_ERROR;
    uint64_t keep = keep_mib << 8, kept = 0, taken = 0, high = 0;
    for (uint32_t i = 0; i < n; i++) {
        const struct mapx_desc *d = &in_desc[i];
        if (d->type != MAPX_EFI_CONVENTIONAL)
            continue;
        if (d->phys >= FOUR_GIB) {
            high += d->pages;
            continue;
        }
        uint64_t pages = d->pages;
        if (d->phys + pages * PAGE_SIZE > FOUR_GIB)
            pages = (FOUR_GIB - d->phys) / PAGE_SIZE;
        /* The top of a run stays free until `keep` pages are left. */
        uint64_t leave = kept < keep ? (keep - kept < pages ? keep - kept : pages) : 0;
        kept += leave;
        EFI_PHYSICAL_ADDRESS a = d->phys;
        if (pages > leave && !EFI_ERROR(ff_st->BootServices->AllocatePages(
                                 AllocateAddress, EfiBootServicesData, pages - leave, &a)))
            taken += pages - leave;
    }
    ff_printf("faultfw: high-memory: took %llu MiB below 4 GiB, left %llu MiB free there; "
              "%llu MiB free above\n",
              (unsigned long long)(taken >> 8), (unsigned long long)(kept >> 8),
              (unsigned long long)(high >> 8));
    return taken ? EFI_SUCCESS : EFI_OUT_OF_RESOURCES;
}

/* The overlap scenario's own megabyte: its top half becomes a reserved window with a canary. */
static EFI_STATUS prepare_overlap(void)
{
    EFI_PHYSICAL_ADDRESS own;
    EFI_STATUS s =
        ff_st->BootServices->AllocatePages(AllocateAnyPages, EfiLoaderData, OWN_PAGES, &own);
    if (EFI_ERROR(s))
        return s;
    h.mapx.own_base = own;
    h.mapx.own_pages = OWN_PAGES;
    h.mapx.canary_base = own + OWN_PAGES / 2 * PAGE_SIZE;
    h.mapx.canary_pages = OWN_PAGES / 2;
    uint64_t *w = (uint64_t *)(UINTN)h.mapx.canary_base;
    for (uint64_t i = 0; i < h.mapx.canary_pages * PAGE_SIZE / 8; i++)
        w[i] = 0xfa017f1c0ffee000ull ^ (h.mapx.canary_base + i * 8);
    /* The overlay as the final map will show it (the firmware's map as it is now). */
    uint32_t n = firmware_map();
    struct mapx_overlay ov = {0};
    if (n == 0 || mapx_transform(&h.mapx, in_desc, n, out_desc, MAX_DESC, &ov) == UINT32_MAX)
        return EFI_DEVICE_ERROR;
    ff_printf("faultfw: overlap: usable 0x%llx+%u pages (own), reserved canary 0x%llx+%llu pages\n",
              (unsigned long long)own, OWN_PAGES, (unsigned long long)h.mapx.canary_base,
              (unsigned long long)h.mapx.canary_pages);
    ff_printf("faultfw: overlap: boot-services data 0x%llx+%llu pages, duplicate 0x%llx+%llu "
              "pages, reserved straddle 0x%llx+%llu pages\n",
              (unsigned long long)ov.bs_base, (unsigned long long)ov.bs_pages,
              (unsigned long long)ov.dup_base, (unsigned long long)ov.dup_pages,
              (unsigned long long)ov.straddle_base, (unsigned long long)ov.straddle_pages);
    return EFI_SUCCESS;
}

EFI_STATUS hooks_prepare(const struct ff_config *cfg)
{
    h.cfg = *cfg;
    h.mapx = (struct mapx_params){.kind = MAPX_IDENTITY, .out_stride = 48, .seed = 0x5eed};
    switch (cfg->scenario) {
    case FF_DESC_SIZE:
        if (cfg->arg < MAPX_DESC_MIN || cfg->arg % 8 || cfg->arg > 4096)
            return EFI_INVALID_PARAMETER;
        h.mapx.out_stride = (uint32_t)cfg->arg;
        h.rewrite_map = true;
        return EFI_SUCCESS;
    case FF_UNSORTED:
        h.mapx.kind = MAPX_SHUFFLE;
        h.rewrite_map = true;
        return EFI_SUCCESS;
    case FF_REVERSED:
        h.mapx.kind = MAPX_REVERSE;
        h.rewrite_map = true;
        return EFI_SUCCESS;
    case FF_MANY_DESCRIPTORS:
        h.mapx.kind = MAPX_SPLIT;
        h.mapx.split_pages = cfg->arg ? cfg->arg : 64;
        h.rewrite_map = true;
        return EFI_SUCCESS;
    case FF_OVERLAP:
        h.mapx.kind = MAPX_OVERLAP;
        h.rewrite_map = true;
        return prepare_overlap();
    case FF_NO_GOP:
        h.hidden = (EFI_GUID)EFI_GRAPHICS_OUTPUT_PROTOCOL_GUID;
        h.hidden_name = "GOP";
        return EFI_SUCCESS;
    case FF_NO_RNG:
        h.hidden = (EFI_GUID)EFI_RNG_PROTOCOL_GUID;
        h.hidden_name = "RNG";
        return EFI_SUCCESS;
    case FF_ABOVE_MAXPHYADDR: {
        /* The CPU's physical address width, as stage 1 reads it (36 bits without the leaf). */
        unsigned bits = 36;
        if (arch_cpuid(0x80000000u, 0).eax >= 0x80000008u)
            bits = arch_cpuid(0x80000008u, 0).eax & 0xff;
        h.mapx.kind = MAPX_ADD_ABOVE;
        h.mapx.limit = 1ull << bits;
        h.mapx.above_pages = (1ull << 30) / PAGE_SIZE;
        h.rewrite_map = true;
        ff_printf("faultfw: 1 GiB of conventional memory listed at 0x%llx (%u-bit MAXPHYADDR)\n",
                  (unsigned long long)h.mapx.limit, bits);
        return EFI_SUCCESS;
    }
    case FF_BROKEN_HANDLERS:
        h.broken_handlers = true;
        return EFI_SUCCESS;
    case FF_HIGH_MEMORY:
        /* What the firmware still needs below 4 GiB is hidden from stage 1 as boot-services data.
         */
        h.mapx.kind = MAPX_HIDE_LOW;
        h.mapx.limit = FOUR_GIB;
        h.rewrite_map = true;
        return take_low_memory(cfg->arg ? cfg->arg : KEEP_LOW_M);
    default:
        return EFI_SUCCESS;
    }
}

static void set_crc(EFI_BOOT_SERVICES *bs)
{
    UINT32 crc = 0;
    bs->Hdr.CRC32 = 0;
    ff_orig.CalculateCrc32(bs, bs->Hdr.HeaderSize, &crc);
    bs->Hdr.CRC32 = crc;
}

void hooks_install(EFI_BOOT_SERVICES *bs, uint64_t image_lo, uint64_t image_hi)
{
    h.image_lo = image_lo;
    h.image_hi = image_hi;
    ff_orig = *bs;
    bs->GetMemoryMap = hook_get_memory_map;
    bs->AllocatePages = hook_allocate_pages;
    bs->AllocatePool = hook_allocate_pool;
    bs->FreePages = hook_free_pages;
    bs->FreePool = hook_free_pool;
    bs->HandleProtocol = hook_handle_protocol;
    bs->OpenProtocol = hook_open_protocol;
    bs->LocateProtocol = hook_locate_protocol;
    bs->LocateHandle = hook_locate_handle;
    bs->LocateHandleBuffer = hook_locate_handle_buffer;
    bs->ExitBootServices = hook_exit_boot_services;
    set_crc(bs);
    if (h.broken_handlers) {
        ff_printf("faultfw: the firmware's vectors 0-31 are not present from here on\n");
        break_handlers();
    }
}

void hooks_remove(EFI_BOOT_SERVICES *bs)
{
    if (h.broken_handlers)
        __asm__ volatile("lidt %0" : : "m"(h.fw_idtr));
    *bs = ff_orig;
    set_crc(bs);
}

void hooks_report(void)
{
    uint64_t pages = 0, bytes = 0;
    for (unsigned i = 0; i < h.live_count; i++) {
        if (h.live[i].pages)
            pages += h.live[i].size;
        else
            bytes += h.live[i].size;
    }
    ff_printf("faultfw: stage 1 left %u%s allocations behind (%llu pages, %llu pool bytes)\n",
              h.live_count, h.live_overflow ? "+" : "", (unsigned long long)pages,
              (unsigned long long)bytes);
    for (unsigned i = 0; i < h.live_count && i < 8; i++)
        ff_printf("faultfw:   %s at 0x%llx, %llu %s\n",
                  h.live[i].pages ? "AllocatePages" : "AllocatePool",
                  (unsigned long long)h.live[i].addr, (unsigned long long)h.live[i].size,
                  h.live[i].pages ? "pages" : "bytes");
    for (unsigned i = 0; i < memattr.count; i++)
        ff_printf("faultfw: memory attributes: %s 0x%llx on 0x%llx (%llu bytes)\n",
                  memattr.change[i].what == 'c' ? "cleared" : "set",
                  (unsigned long long)memattr.change[i].attributes,
                  (unsigned long long)memattr.change[i].base,
                  (unsigned long long)memattr.change[i].length);
    ff_printf("faultfw: injected: %u of %u allocations failed, %u places refused, %u hidden "
              "protocol lookups, %u rewritten maps, %u ExitBootServices calls\n",
              h.allocs_failed, h.allocs, h.refused, h.denied, h.maps, h.ebs_calls);
}
