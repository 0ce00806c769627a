/*
 * efirt: the EFI address space and the runtime calls the kernel makes:
 * ResetSystem (power.c) and SetVariable, to delete stage 1's fault record
 * once a boot reached `canopy: ready` (include/canopy/faultrec.h).
 *
 * Stage 1 never calls SetVirtualAddressMap, so the firmware's runtime code
 * runs where the memory map puts it and expects identity mappings of every
 * EFI_MEMORY_RUNTIME region. Like Linux's efi_mm, the kernel keeps those out
 * of its own address space (whose lower half stays empty) and builds, once,
 * a second hierarchy:
 *
 *   EFI root  [0..255]   identity maps of the runtime regions (its own tables)
 *             [256..511] copied from the kernel's root just before each call
 *                        and cleared right after, so the kernel half is the
 *                        live one and pt_* only ever see the lower half
 *
 * Permissions: runtime data, MMIO and everything else is RW + NX. Runtime
 * code holds the firmware drivers' PE images, whose .data their code writes
 * (ResetSystem itself counts its nesting depth in a global); only the EFI
 * Memory Attributes Table says which pages are code (RO) and which are data
 * (XP). With it, each entry gets exactly that; without it, or if an entry
 * must be both writable and executable, no runtime service is used at all,
 * since nothing is ever mapped W+X. efirt_init checks all of that without
 * building anything, so what it says at boot is what a call later finds.
 *
 * Not every firmware keeps every service after ExitBootServices: the EFI RT
 * properties table (UEFI 2.8) says which it does, and a service it leaves
 * out is never called (U-Boot keeps no SetVariable). U-Boot's x86
 * ResetSystem also resets the machine when asked to power it off (its x86
 * sysreset driver), so it is not used for EfiResetShutdown there.
 *
 * Its tables are PMM frames owned by CANOPY_OWNER_RUNTIME (not PAGE_TABLE:
 * the audit matches those against the kernel's own hierarchy). Called by
 * power.c and main.c; each call runs with interrupts off on efi_stack.
 */
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <arch/cpu.h>
#include <arch/power.h>
#include <canopy/faultrec.h>
#include <canopy/fmt.h>
#include <canopy/compiler.h>
#include <canopy/page.h>
#include <canopy/vaddr.h>
#include <kernel/console.h>
#include <kernel/efirt.h>
#include <kernel/kmm.h>

#define EFI_SYSTEM_TABLE_SIGNATURE     0x5453595320494249ull /* "IBI SYST" */
#define EFI_RUNTIME_SERVICES_SIGNATURE 0x56524553544e5552ull /* "RUNTSERV" */
#define EFI_REVISION_2_0               (2u << 16)
#define EFI_TABLE_MAX_BYTES            4096u /* far above any real header size */

/* Offsets in the x64 tables (UEFI 2.10, 4.3 and 4.5). */
#define HDR_SIGNATURE   0
#define HDR_REVISION    8
#define HDR_SIZE        12
#define HDR_CRC32       16
#define ST_VENDOR       24
#define ST_FW_REVISION  32
#define ST_RUNTIME      88
#define ST_TABLE_COUNT  104
#define ST_CONFIG_TABLE 112
#define ST_MIN_BYTES    120
#define RT_SET_VARIABLE 88
#define RT_RESET_SYSTEM 104
#define RT_MIN_BYTES    112

/* EFI memory map. */
#define EFI_RUNTIME_CODE   5
#define EFI_MMIO           11
#define EFI_MMIO_PORT      12
#define EFI_MEMORY_UC      0x1ull
#define EFI_MEMORY_WB      0x8ull
#define EFI_MEMORY_XP      0x4000ull
#define EFI_MEMORY_RO      0x20000ull
#define EFI_MEMORY_RUNTIME (1ull << 63)
#define EFI_DESC_MIN_BYTES 40u
#define EFI_DESC_MAX_COUNT 65536u

/* EFI_MEMORY_ATTRIBUTES_TABLE_GUID dcfa911d-26eb-469f-a220-38b7dc461220, as bytes. */
static const uint8_t mat_guid[16] = {0x1d, 0x91, 0xfa, 0xdc, 0xeb, 0x26, 0x9f, 0x46,
                                     0xa2, 0x20, 0x38, 0xb7, 0xdc, 0x46, 0x12, 0x20};
/* EFI_RT_PROPERTIES_TABLE_GUID eb66918a-7eef-402a-842e-931d21c38ae9, as bytes. */
static const uint8_t rt_properties_guid[16] = {0x8a, 0x91, 0x66, 0xeb, 0xef, 0x7e, 0x2a, 0x40,
                                               0x84, 0x2e, 0x93, 0x1d, 0x21, 0xc3, 0x8a, 0xe9};
#define CONFIG_ENTRY_BYTES        24u
#define CONFIG_MAX_ENTRIES        1024u
#define MAT_HEADER_BYTES          16u
#define RT_PROPERTIES_BYTES       8u /* UINT16 version, UINT16 length, UINT32 supported */
#define RT_SUPPORTED_SET_VARIABLE 0x0040u
#define RT_SUPPORTED_RESET_SYSTEM 0x0400u
#define RT_SUPPORTED_ALL          0x3fffu /* every service: what no table means */

#define EFI_NOT_FOUND_STATUS 0x800000000000000eull /* EFI_NOT_FOUND */
#define VENDOR_CHARS         48                    /* of the firmware vendor's name that are kept */

#define EFI_STACK_BYTES (32 * 1024)
#define MAT_COPY_BYTES  (16 * 1024) /* 341 entries of 48 bytes; OVMF uses a few dozen */

/* ResetSystem: VOID (EFIAPI *)(EFI_RESET_TYPE, EFI_STATUS, UINTN, VOID *). */
typedef void(__attribute__((ms_abi)) * efi_reset_system_fn)(uint32_t type, uint64_t status,
                                                            uint64_t data_size, void *data);
/* SetVariable: EFI_STATUS (EFIAPI *)(CHAR16 *, EFI_GUID *, UINT32, UINTN, VOID *). */
typedef uint64_t(__attribute__((ms_abi)) *
                 efi_set_variable_fn)(const uint16_t *name, const struct canopy_guid *guid,
                                      uint32_t attrs, uint64_t size, const void *data);

static struct {
    bool checked;
    const char *problem; /* the first problem found, kept */
    char why[160];
    const struct canopy_bootinfo *bi;
    struct pt pt;
    bool pt_built;
    uint64_t reset_system;            /* physical (= identity) address of ResetSystem */
    uint64_t set_variable;            /* and of SetVariable */
    const char *set_variable_problem; /* why SetVariable cannot be called, or NULL */
    char set_variable_why[96];
    uint32_t rt_supported; /* the RT properties table's mask, RT_SUPPORTED_ALL without one */
    char vendor[VENDOR_CHARS + 1]; /* the firmware vendor's name, printable ASCII */
    uint32_t fw_revision, uefi_revision;
    const uint8_t *memmap; /* HHDM view of the raw EFI memory map */
    uint64_t desc_size, desc_count;
    const uint8_t *mat; /* mat_copy when there is a MAT, else NULL */
    uint64_t mat_desc_size, mat_count;
} efi;

static uint8_t efi_stack[EFI_STACK_BYTES] __attribute__((aligned(16)));

/* The MAT lives in boot-services memory, which the kernel reclaims: a copy. */
static uint8_t mat_copy[MAT_COPY_BYTES] __attribute__((aligned(8)));

static uint32_t rd32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t rd64(const uint8_t *p)
{
    return (uint64_t)rd32(p) | (uint64_t)rd32(p + 4) << 32;
}

/*
 * Firmware tables are read through kmm_boot_view: the system table and the
 * configuration table lie in runtime-services data, which the direct map
 * leaves out, so they come through early maps. Those last until efirt_init
 * returns.
 */

static const char *fail(const char *fmt, ...) PRINTF_LIKE(1, 2);
static const char *fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fmt_vsnprintf(efi.why, sizeof(efi.why), fmt, ap);
    va_end(ap);
    return efi.why;
}

/* CRC-32 (IEEE 802.3, reflected), as the table headers use it; the CRC field counts as 0. */
static uint32_t header_crc32(const uint8_t *p, uint32_t len)
{
    uint32_t crc = 0xffffffffu;
    for (uint32_t i = 0; i < len; i++) {
        uint8_t b = (i >= HDR_CRC32 && i < HDR_CRC32 + 4) ? 0 : p[i];
        crc ^= b;
        for (int k = 0; k < 8; k++)
            crc = (crc >> 1) ^ (0xedb88320u & (0u - (crc & 1u)));
    }
    return ~crc;
}

/*
 * Checks a table header: signature, revision >= 2.0, a header size between
 * min_bytes and EFI_TABLE_MAX_BYTES, and the CRC. Returns the table's view.
 */
static const uint8_t *table_check(uint64_t phys, uint64_t sig, uint32_t min_bytes, const char *what,
                                  const char **problem)
{
    const uint8_t *h = kmm_boot_view(phys, 24);
    if (h == NULL) {
        *problem = fail("%s at 0x%llx is not mapped", what, (unsigned long long)phys);
        return NULL;
    }
    if (rd64(h + HDR_SIGNATURE) != sig) {
        *problem = fail("%s at 0x%llx: bad signature 0x%016llx", what, (unsigned long long)phys,
                        (unsigned long long)rd64(h + HDR_SIGNATURE));
        return NULL;
    }
    uint32_t rev = rd32(h + HDR_REVISION), size = rd32(h + HDR_SIZE);
    if (rev < EFI_REVISION_2_0) {
        *problem =
            fail("%s: revision %u.%u is older than UEFI 2.0", what, rev >> 16, rev & 0xffffu);
        return NULL;
    }
    if (size < min_bytes || size > EFI_TABLE_MAX_BYTES || kmm_boot_view(phys, size) == NULL) {
        *problem = fail("%s: header size %u out of range (%u..%u) or not mapped", what, size,
                        min_bytes, EFI_TABLE_MAX_BYTES);
        return NULL;
    }
    uint32_t crc = header_crc32(h, size);
    if (crc != rd32(h + HDR_CRC32)) {
        *problem = fail("%s: CRC32 0x%08x, computed 0x%08x", what, rd32(h + HDR_CRC32), crc);
        return NULL;
    }
    return h;
}

static const uint8_t *desc_at(uint64_t i)
{
    return efi.memmap + i * efi.desc_size;
}

/* The runtime descriptor holding [phys, phys + len) whole, or NULL. */
static const uint8_t *runtime_desc_of(uint64_t phys, uint64_t len)
{
    for (uint64_t i = 0; i < efi.desc_count; i++) {
        const uint8_t *d = desc_at(i);
        uint64_t start = rd64(d + 8), pages = rd64(d + 24);
        if (!(rd64(d + 32) & EFI_MEMORY_RUNTIME) || pages > (UINT64_MAX - start) / PAGE_SIZE)
            continue;
        if (phys >= start && len <= pages * PAGE_SIZE && phys - start <= pages * PAGE_SIZE - len)
            return d;
    }
    return NULL;
}

static const char *memmap_check(void)
{
    const struct canopy_bootinfo *bi = efi.bi;
    if (bi->efi_desc_version != 1 || bi->efi_desc_size < EFI_DESC_MIN_BYTES ||
        bi->efi_desc_size % 8 != 0 || bi->efi_desc_size > 4096)
        return fail("EFI memory map: descriptor version %u, size %llu unsupported",
                    bi->efi_desc_version, (unsigned long long)bi->efi_desc_size);
    uint64_t count = bi->efi_memmap_size / bi->efi_desc_size;
    if (count == 0 || count > EFI_DESC_MAX_COUNT || bi->efi_memmap_size % bi->efi_desc_size != 0)
        return fail("EFI memory map: %llu bytes is not a whole number of %llu-byte descriptors",
                    (unsigned long long)bi->efi_memmap_size, (unsigned long long)bi->efi_desc_size);
    efi.memmap = kmm_direct_view(bi->efi_memmap, bi->efi_memmap_size); /* kept: the boot info's */
    if (efi.memmap == NULL)
        return fail("EFI memory map at 0x%llx is not in the direct map",
                    (unsigned long long)bi->efi_memmap);
    efi.desc_size = bi->efi_desc_size;
    efi.desc_count = count;
    return NULL;
}

static bool guid_is(const uint8_t *entry, const uint8_t guid[16])
{
    for (int k = 0; k < 16; k++)
        if (entry[k] != guid[k])
            return false;
    return true;
}

/* Copies the MAT's entries (the table at phys); NULL if that worked or it is empty. */
static const char *mat_copy_from(uint64_t phys)
{
    const uint8_t *h = kmm_boot_view(phys, MAT_HEADER_BYTES);
    if (h == NULL)
        return fail("memory attributes table at 0x%llx is not mapped", (unsigned long long)phys);
    uint32_t version = rd32(h), count = rd32(h + 4), size = rd32(h + 8);
    if (version < 1 || version > 2 || size < EFI_DESC_MIN_BYTES || size % 8 != 0 || size > 4096 ||
        count > EFI_DESC_MAX_COUNT)
        return fail("memory attributes table: version %u, %u entries of %u bytes unsupported",
                    version, count, size);
    if (count == 0)
        return NULL; /* an empty table says nothing: as if absent */
    uint64_t bytes = (uint64_t)count * size;
    const uint8_t *entries = kmm_boot_view(phys + MAT_HEADER_BYTES, bytes);
    if (entries == NULL)
        return fail("memory attributes table entries at 0x%llx are not mapped",
                    (unsigned long long)(phys + MAT_HEADER_BYTES));
    if (bytes > sizeof(mat_copy))
        return fail("memory attributes table: %u entries are more than %u bytes", count,
                    (unsigned)sizeof(mat_copy));
    __builtin_memcpy(mat_copy, entries, bytes);
    efi.mat = mat_copy;
    efi.mat_desc_size = size;
    efi.mat_count = count;
    return NULL;
}

/* Reads the RT properties table at phys: which services work after ExitBootServices. */
static const char *rt_properties_from(uint64_t phys)
{
    const uint8_t *t = kmm_boot_view(phys, RT_PROPERTIES_BYTES);
    if (t == NULL)
        return fail("RT properties table at 0x%llx is not mapped", (unsigned long long)phys);
    uint32_t length = (uint32_t)t[2] | (uint32_t)t[3] << 8;
    if (length < RT_PROPERTIES_BYTES)
        return fail("RT properties table: length %u", length);
    efi.rt_supported = rd32(t + 4);
    return NULL;
}

/*
 * The configuration tables the kernel reads: the EFI Memory Attributes
 * Table (its entries copied) and the RT properties table. NULL if what is
 * there could be read.
 */
static const char *config_tables(const uint8_t *st)
{
    efi.rt_supported = RT_SUPPORTED_ALL;
    uint64_t n = rd64(st + ST_TABLE_COUNT), table = rd64(st + ST_CONFIG_TABLE);
    if (n == 0)
        return NULL;
    const uint8_t *cfg =
        n <= CONFIG_MAX_ENTRIES ? kmm_boot_view(table, n * CONFIG_ENTRY_BYTES) : NULL;
    if (cfg == NULL)
        return fail("configuration table (%llu entries at 0x%llx) unreadable",
                    (unsigned long long)n, (unsigned long long)table);
    bool mat_seen = false, rtp_seen = false;
    for (uint64_t i = 0; i < n; i++) {
        const uint8_t *e = cfg + i * CONFIG_ENTRY_BYTES;
        const char *why = NULL;
        if (!mat_seen && guid_is(e, mat_guid)) {
            mat_seen = true;
            why = mat_copy_from(rd64(e + 16));
        } else if (!rtp_seen && guid_is(e, rt_properties_guid)) {
            rtp_seen = true;
            why = rt_properties_from(rd64(e + 16));
        }
        if (why != NULL)
            return why;
    }
    return NULL;
}

/* The firmware vendor's name (a UCS-2 string), as far as it can be read; "?" for the rest. */
static void read_vendor(const uint8_t *st)
{
    uint64_t p = rd64(st + ST_VENDOR);
    efi.fw_revision = rd32(st + ST_FW_REVISION);
    efi.uefi_revision = rd32(st + HDR_REVISION);
    size_t n = 0;
    while (p != 0 && n < VENDOR_CHARS) {
        /* A page at a time: the name may end right before memory nothing maps. */
        uint64_t chunk = PAGE_SIZE - (p & (PAGE_SIZE - 1));
        if (chunk > 2 * (VENDOR_CHARS - n))
            chunk = 2 * (VENDOR_CHARS - n);
        const uint8_t *c = kmm_boot_view(p, chunk);
        if (c == NULL)
            break;
        uint64_t i = 0;
        for (; i + 1 < chunk; i += 2) {
            uint16_t ch = (uint16_t)(c[i] | c[i + 1] << 8);
            if (ch == 0)
                break;
            efi.vendor[n++] = ch >= 0x20 && ch < 0x7f ? (char)ch : '?';
        }
        if (i + 1 < chunk)
            break; /* the terminating NUL */
        p += chunk;
    }
    efi.vendor[n] = '\0';
}

static bool efi_frame_alloc(void *ctx, uint64_t *phys)
{
    (void)ctx;
    if (pmm_alloc(kmm_pmm(), 0, CANOPY_OWNER_RUNTIME, phys) != PMM_OK)
        return false;
    __builtin_memset(kmm_phys_to_virt(*phys), 0, PAGE_SIZE);
    return true;
}

static void efi_frame_free(void *ctx, uint64_t phys)
{
    (void)ctx;
    (void)pmm_free(kmm_pmm(), phys, 0); /* our own frame: cannot fail */
}

/* The memory type of a runtime region: kmm_firmware_cache's rule, over the raw descriptor. */
static uint32_t cache_attrs(const uint8_t *desc)
{
    uint32_t type = rd32(desc);
    if (type == EFI_MMIO || type == EFI_MMIO_PORT)
        return PT_CACHE_UC;
    return (rd64(desc + 32) & EFI_MEMORY_WB) ? PT_CACHE_WB : PT_CACHE_UC;
}

/* Why [pa, pa + size) cannot be identity mapped in the lower half, or NULL. */
static const char *identity_problem(uint64_t pa, uint64_t size)
{
    uint64_t lower_end = va_lower_end(efi.bi->paging_levels);
    if (!page_is_aligned(pa) || !page_is_aligned(size) || size == 0 || pa >= lower_end ||
        size > lower_end - pa)
        return fail("runtime region 0x%llx (%llu bytes) cannot be identity mapped",
                    (unsigned long long)pa, (unsigned long long)size);
    return NULL;
}

static const char *map_identity(uint64_t pa, uint64_t size, uint32_t attrs)
{
    uint64_t max_page = (efi.bi->cpu_flags & CANOPY_CPU_PDPE1G) ? PAGE_SIZE_1G : PAGE_SIZE_2M;
    const char *why = identity_problem(pa, size);
    if (why != NULL)
        return why;
    enum pt_status st = pt_map(&efi.pt, va_init(pa), pa_init(pa), size, attrs, max_page);
    if (st != PT_OK)
        return fail("mapping runtime region 0x%llx (%llu bytes): %s", (unsigned long long)pa,
                    (unsigned long long)size, pt_status_str(st));
    return NULL;
}

/*
 * The MAT's entries, each with its own permissions (never W+X): mapped into
 * efi.pt, or with map false only checked.
 */
static const char *mat_entries(bool map)
{
    for (uint64_t i = 0; i < efi.mat_count; i++) {
        const uint8_t *m = efi.mat + i * efi.mat_desc_size;
        uint64_t pa = rd64(m + 8), pages = rd64(m + 24), attr = rd64(m + 32);
        if (pages == 0 || pages > (UINT64_MAX - pa) / PAGE_SIZE)
            return fail("memory attributes table entry %llu: bad range", (unsigned long long)i);
        uint64_t size = pages * PAGE_SIZE;
        const uint8_t *d = runtime_desc_of(pa, size);
        if (d == NULL || rd32(d) != rd32(m))
            return fail("memory attributes table entry 0x%llx (%llu pages) is not inside a "
                        "runtime region of its type",
                        (unsigned long long)pa, (unsigned long long)pages);
        bool code = rd32(m) == EFI_RUNTIME_CODE;
        bool w = !(attr & EFI_MEMORY_RO), x = code && !(attr & EFI_MEMORY_XP);
        if (w && x)
            return fail("runtime code 0x%llx-0x%llx would have to be writable and executable",
                        (unsigned long long)pa, (unsigned long long)(pa + size - 1));
        const char *p =
            map ? map_identity(pa, size, (w ? PT_W : 0) | (x ? PT_X : 0) | cache_attrs(d))
                : identity_problem(pa, size);
        if (p != NULL)
            return p;
    }
    return NULL;
}

/* Runtime code's pages [pa, pa + run pages) that no MAT entry covers: why they cannot be mapped. */
static const char *uncovered_code(uint64_t pa, uint64_t run)
{
    return fail("runtime code 0x%llx-0x%llx: %s", (unsigned long long)pa,
                (unsigned long long)(pa + run * PAGE_SIZE - 1),
                efi.mat == NULL ? "no memory attributes table to say which pages are code (it "
                                  "would have to be W+X)"
                                : "not in the memory attributes table");
}

/* Whether a MAT entry of runtime code holds the page at pa. */
static bool mat_holds_code(uint64_t pa)
{
    for (uint64_t i = 0; i < efi.mat_count; i++) {
        const uint8_t *m = efi.mat + i * efi.mat_desc_size;
        uint64_t start = rd64(m + 8), pages = rd64(m + 24);
        if (rd32(m) == EFI_RUNTIME_CODE && pa >= start && pa - start < pages * PAGE_SIZE)
            return true;
    }
    return false;
}

/*
 * Each runtime region's pages that no MAT entry covers: RW + NX unless it is
 * runtime code, whose permissions only the MAT can give. With map false only
 * checked (by the MAT's entries, not the tables, which do not exist yet).
 */
static const char *map_rest(bool map)
{
    for (uint64_t i = 0; i < efi.desc_count; i++) {
        const uint8_t *d = desc_at(i);
        if (!(rd64(d + 32) & EFI_MEMORY_RUNTIME))
            continue;
        uint64_t start = rd64(d + 8), pages = rd64(d + 24);
        if (pages == 0 || pages > (UINT64_MAX - start) / PAGE_SIZE)
            return fail("runtime region 0x%llx: bad page count %llu", (unsigned long long)start,
                        (unsigned long long)pages);
        uint64_t run = 0; /* uncovered pages ending at the current one */
        for (uint64_t p = 0; p <= pages; p++) {
            uint64_t pa_p = start + p * PAGE_SIZE;
            struct pt_leaf leaf;
            bool hole = p < pages && (map ? pt_query(&efi.pt, va_init(pa_p), &leaf) != PT_OK
                                          : rd32(d) != EFI_RUNTIME_CODE || !mat_holds_code(pa_p));
            if (hole) {
                run++;
                continue;
            }
            if (run == 0)
                continue;
            uint64_t pa = start + (p - run) * PAGE_SIZE;
            if (rd32(d) == EFI_RUNTIME_CODE)
                return uncovered_code(pa, run);
            const char *why = map ? map_identity(pa, run * PAGE_SIZE, PT_W | cache_attrs(d))
                                  : identity_problem(pa, run * PAGE_SIZE);
            if (why != NULL)
                return why;
            run = 0;
        }
    }
    return NULL;
}

static const char *build_address_space(void)
{
    const struct pt *k = kmm_pt();
    struct pt_frames frames = {.alloc = efi_frame_alloc, .free = efi_frame_free, .ctx = NULL};
    enum pt_status st = pt_init(&efi.pt, k->levels, k->nx, k->virt_offset, frames);
    if (st != PT_OK)
        return fail("EFI page table: %s", pt_status_str(st));
    const char *why = mat_entries(true);
    if (why == NULL)
        why = map_rest(true);
    if (why != NULL) {
        pt_destroy(&efi.pt);
        return why;
    }
    efi.pt_built = true;
    return NULL;
}

/* A service's address from the runtime services table: it must lie in runtime code. */
static const char *service_at(const uint8_t *rt, unsigned offset, const char *name, uint64_t *fn)
{
    *fn = rd64(rt + offset);
    const uint8_t *d = runtime_desc_of(*fn, 1);
    if (d == NULL || rd32(d) != EFI_RUNTIME_CODE)
        return fail("%s at 0x%llx is not in runtime code", name, (unsigned long long)*fn);
    return NULL;
}

static const char *check_tables(void)
{
    const struct canopy_bootinfo *bi = efi.bi;
    if (bi->efi_system_table == 0)
        return "no EFI system table in the boot info";
    const char *why = memmap_check();
    if (why != NULL)
        return why;
    const uint8_t *st = table_check(bi->efi_system_table, EFI_SYSTEM_TABLE_SIGNATURE, ST_MIN_BYTES,
                                    "EFI system table", &why);
    if (st == NULL)
        return why;
    read_vendor(st);
    uint64_t rt_phys = rd64(st + ST_RUNTIME);
    const uint8_t *rt = table_check(rt_phys, EFI_RUNTIME_SERVICES_SIGNATURE, RT_MIN_BYTES,
                                    "EFI runtime services table", &why);
    if (rt == NULL)
        return why;
    if (runtime_desc_of(bi->efi_system_table, ST_MIN_BYTES) == NULL ||
        runtime_desc_of(rt_phys, RT_MIN_BYTES) == NULL)
        return fail("the system table (0x%llx) or runtime services table (0x%llx) is not in "
                    "runtime memory",
                    (unsigned long long)bi->efi_system_table, (unsigned long long)rt_phys);
    why = service_at(rt, RT_RESET_SYSTEM, "ResetSystem", &efi.reset_system);
    if (why == NULL) {
        /* Not the end of ResetSystem: only the one call that needs it. */
        const char *p = service_at(rt, RT_SET_VARIABLE, "SetVariable", &efi.set_variable);
        if (p != NULL) {
            fmt_snprintf(efi.set_variable_why, sizeof(efi.set_variable_why), "%s", p);
            efi.set_variable_problem = efi.set_variable_why;
        }
        why = config_tables(st);
    }
    /* What building the EFI address space would find, found now, without building it. */
    if (why == NULL)
        why = mat_entries(false);
    if (why == NULL)
        why = map_rest(false);
    return why;
}

static const char *build(void)
{
    const char *why = build_address_space();
    if (why != NULL)
        return why;
    struct pt_leaf leaf;
    if (pt_query(&efi.pt, va_init(efi.reset_system), &leaf) != PT_OK || !(leaf.attrs & PT_X))
        return fail("ResetSystem at 0x%llx is not executable in the EFI address space",
                    (unsigned long long)efi.reset_system);
    return NULL;
}

/* U-Boot, whose x86 ResetSystem treats EfiResetShutdown as a warm reset (its sysreset driver). */
static bool vendor_is_u_boot(void)
{
    const char *want = "Das U-Boot";
    size_t i = 0;
    for (; want[i] != '\0'; i++)
        if (efi.vendor[i] != want[i])
            return false;
    return efi.vendor[i] == '\0';
}

const char *efirt_init(const struct canopy_bootinfo *bi)
{
    efi.bi = bi;
    efi.problem = check_tables();
    efi.checked = true;
    kmm_early_unmap_all(); /* what check_tables kept is copied: the MAT, ResetSystem's address */
    return efi.problem;
}

const char *efirt_firmware(uint32_t *fw_revision, uint32_t *uefi_revision)
{
    *fw_revision = efi.fw_revision;
    *uefi_revision = efi.uefi_revision;
    return efi.vendor;
}

const char *efirt_reset_problem(enum efirt_reset_type type)
{
    if (!efi.checked)
        return "efirt_init was not called";
    if (efi.problem != NULL)
        return efi.problem;
    if (!(efi.rt_supported & RT_SUPPORTED_RESET_SYSTEM))
        return "the firmware's RT properties table says ResetSystem does not work after "
               "ExitBootServices";
    if (type == EFIRT_RESET_SHUTDOWN && vendor_is_u_boot())
        return "U-Boot's x86 ResetSystem resets the machine instead of powering it off";
    return NULL;
}

const char *efirt_prepare(void)
{
    if (!efi.checked)
        return "efirt_init was not called";
    if (efi.problem == NULL && !efi.pt_built)
        efi.problem = build();
    return efi.problem;
}

const struct pt *efirt_pt(const char **why)
{
    *why = efirt_prepare();
    return efi.pt_built ? &efi.pt : NULL;
}

uint64_t efirt_table_frames(void)
{
    return efi.pt_built ? efi.pt.table_count : 0;
}

#define ROOT_HALF  256u
#define ROOT_COUNT 512u

/*
 * Runs fn(arg) on the EFI address space and efi_stack with interrupts off;
 * the CR3 and the interrupt flag are as before when it returns.
 * => efirt_prepare() returned NULL.
 */
static void efi_call(void (*fn)(void *), void *arg)
{
    uint64_t rflags = arch_read_rflags();
    arch_cli();
    /* The kernel half as it is now: the VMM may have added top-level entries since. */
    uint64_t old_cr3 = arch_read_cr3();
    const uint64_t *kroot = kmm_phys_to_virt(old_cr3 & ARCH_CR3_ADDR);
    uint64_t *root = kmm_phys_to_virt(efi.pt.root);
    for (unsigned i = ROOT_HALF; i < ROOT_COUNT; i++)
        root[i] = kroot[i];
    arch_write_cr3(efi.pt.root);
    arch_call_on_stack(fn, arg, efi_stack + sizeof(efi_stack));
    arch_write_cr3(old_cr3);
    for (unsigned i = ROOT_HALF; i < ROOT_COUNT; i++)
        root[i] = 0;
    if (rflags & ARCH_RFLAGS_IF)
        arch_sti();
}

struct reset_call {
    efi_reset_system_fn fn;
    uint32_t type;
};

static void call_reset(void *arg)
{
    const struct reset_call *c = arg;
    c->fn(c->type, 0 /* EFI_SUCCESS */, 0, NULL);
}

const char *efirt_reset(enum efirt_reset_type type)
{
    if (!efi.pt_built)
        return "the EFI address space was not built";
    struct reset_call c = {.fn = (efi_reset_system_fn)(uintptr_t)efi.reset_system, .type = type};
    efi_call(call_reset, &c);
    return "ResetSystem returned without resetting";
}

struct set_variable_call {
    efi_set_variable_fn fn;
    const uint16_t *name;
    const struct canopy_guid *guid;
    uint64_t status;
};

static void call_delete_variable(void *arg)
{
    struct set_variable_call *c = arg;
    c->status = c->fn(c->name, c->guid, 0, 0, NULL); /* size 0: delete (UEFI 2.10, 8.2) */
}

static const uint16_t fault_record_name[] = CANOPY_FAULT_RECORD_NAME;
static const struct canopy_guid vendor_guid = CANOPY_VENDOR_GUID_INIT;

/* Why stage 1's fault record cannot be deleted now, or NULL when it was (or was not there). */
static const char *delete_fault_record(void)
{
    if (!(efi.rt_supported & RT_SUPPORTED_SET_VARIABLE))
        return "the firmware's RT properties table says SetVariable does not work after "
               "ExitBootServices";
    if (efi.set_variable_problem != NULL)
        return efi.set_variable_problem;
    const char *why = efirt_prepare();
    if (why != NULL)
        return why;
    struct pt_leaf leaf;
    if (pt_query(&efi.pt, va_init(efi.set_variable), &leaf) != PT_OK || !(leaf.attrs & PT_X))
        return fail("SetVariable at 0x%llx is not executable in the EFI address space",
                    (unsigned long long)efi.set_variable);
    struct set_variable_call c = {.fn = (efi_set_variable_fn)(uintptr_t)efi.set_variable,
                                  .name = fault_record_name,
                                  .guid = &vendor_guid};
    efi_call(call_delete_variable, &c);
    if (c.status != 0 && c.status != EFI_NOT_FOUND_STATUS)
        return fail("SetVariable returned status 0x%llx", (unsigned long long)c.status);
    return NULL;
}

void efirt_fault_record_clear(void)
{
    if (!efi.checked || efi.bi->failed_boots == 0)
        return; /* no record: a healthy boot writes no flash */
    unsigned n = efi.bi->failed_boots;
    const char *why = delete_fault_record();
    if (why == NULL)
        kprintf("canopy: this boot got to ready; the record of %u failed boot%s before it is "
                "cleared\n",
                n, n == 1 ? "" : "s");
    else
        kprintf("canopy: cannot clear the record of %u failed boot%s: %s; the next boot counts "
                "on from it\n",
                n, n == 1 ? "" : "s", why);
}
