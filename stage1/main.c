/*
 * main: the boot flow of stage 1, from the config file to the jump into the
 * kernel.
 *
 *   while boot services live             every failure: one line, a pause,
 *     read canopy.cfg                    and an error back to the firmware
 *       verified: its hash = the pin     (with everything it took given back)
 *     read the kernel, validate it whole
 *       verified: its hash = kernel_sha256, before any parsing
 *     framebuffer, RSDP, CPU, TSC, seed
 *     claim memory                       the current map into the exit's
 *                                        buffers; the plan of what is mapped;
 *                                        AllocatePages at chosen places for all
 *                                        that is written after the exit: boot
 *                                        info, PMM state, boot stack, segments,
 *                                        page tables (load/claim.h)
 *   ExitBootServices
 *   after it                             every failure: one line on serial,
 *     normalise the map, pmm_create      a pause, and a reset
 *       (no free lists: only its state array is written)
 *     segments, boot stack               copied and zeroed in their claims
 *     boot info (owner BOOTINFO) <- the PMM itself moves in here
 *     page tables (owner PAGE_TABLE)     the direct map of RAM (read-only
 *                                        aliases of .text, .rodata and the
 *                                        trampoline page), framebuffer (WC),
 *                                        segments, stack, the trampoline page
 *                                        and its GDT/IDT
 *   IA32_PAT; trampoline: CR3, EFER.NXE, CR0.WP, jump
 *
 * Invariant after ExitBootServices: stage 1 writes only memory the firmware
 * gave it (its claims, the map buffers, its own image), so a firmware that
 * unmaps free memory at the exit (a freed-memory guard) cannot fault it;
 * every frame it hands to the kernel is a claim the PMM records with its
 * owner, and nothing the kernel needs stays in loader memory (which the
 * kernel reclaims): the boot info holds copies of the memory maps, the
 * manifest and the PMM state.
 *
 * Verified boot (docs/secure-boot.md): when the firmware enforces Secure Boot
 * or this stage 1 carries a pinned hash of canopy.cfg (load/pin.h), the
 * configuration must match the pin and the kernel file the configuration's
 * kernel_sha256=, each checked on the whole file before a byte of it is used,
 * and the configuration's debug_* keys are ignored. A mismatch is one line
 * (file, expected hash, hash found) and a return to the firmware.
 *
 * Called by efi_main (efi/entry.c); stage1_main returns only on a failure
 * before ExitBootServices.
 */
#include <canopy/bootinfo.h>
#include <canopy/compiler.h>
#include <canopy/fmt.h>
#include <canopy/hwrng.h>
#include <canopy/page.h>
#include <canopy/rt.h>
#include <canopy/sha256.h>
#include <canopy/str.h>
#include <pmm/pmm.h>
#include <vmm/pt.h>

#include "efi/fw.h"
#include "load/claim.h"
#include "load/config.h"
#include "load/elf.h"
#include "load/mapplan.h"
#include "load/pin.h"

#define KERNEL_FILE_MAX (256ull << 20)
#define ERROR_PAUSE_US  3000000 /* how long an error line stays up before the firmware returns */

/*
 * Requests beyond the direct map's one per range: segments, the boot stack,
 * the trampoline page, the pages of the descriptor tables it loads, the
 * framebuffer, and two more direct-map pieces for each read-only alias cut
 * out of a run of RAM (the segments and the trampoline page).
 */
#define NON_HHDM_REQUESTS (CANOPY_MAX_SEGMENTS + 4)
#define ALIAS_SPLITS      (2 * (CANOPY_MAX_SEGMENTS + 1))
#define FIXED_REQUESTS    (NON_HHDM_REQUESTS + ALIAS_SPLITS)
/* Scratch per range slot: a direct-map request, also as a pt_span. */
#define SCRATCH_PER_RANGE (sizeof(struct map_request) + sizeof(struct pt_span))
#define SCRATCH_FIXED     (FIXED_REQUESTS * (sizeof(struct map_request) + sizeof(struct pt_span)))
/* The boot stack's place in the dynamic area: CANOPY_DYNAMIC_BASE stays unmapped, a guard page. */
#define BOOT_STACK_VA (CANOPY_DYNAMIC_BASE + PAGE_SIZE)

static struct {
    struct config cfg;
    struct cpu_info cpu;
    unsigned levels;
    uint64_t hhdm;
    uint64_t tsc_hz;
    uint64_t phase_tsc[CANOPY_PHASE_COUNT];
    enum canopy_phase phase; /* the last phase reached */
    const uint8_t *kernel;   /* the file, in LoaderData */
    uint64_t kernel_size;
    struct elf_plan plan;
    struct canopy_framebuffer fb;
    uint64_t rsdp;
    uint64_t system_table;
    uint64_t seed;
    bool secure_boot;                /* the firmware enforces Secure Boot */
    bool cfg_pinned;                 /* this image carries canopy.cfg's hash */
    struct sha256_digest cfg_pin;    /* ... which is this */
    bool verify;                     /* secure_boot or cfg_pinned: every file is checked */
    bool kernel_verified;            /* the kernel matched a verified kernel_sha256= */
    struct sha256_digest kernel_sha; /* the kernel file's hash, when it was checked */
} s1;

static void phase(enum canopy_phase p)
{
    s1.phase_tsc[p] = cpu_tsc();
    s1.phase = p;
    /* debug_fault=: a fault here; at kernel-entry the trampoline jumps to an unmapped address. */
    fw_fault_phase(p, p >= CONFIG_FAULT_FIRST && p < CANOPY_PHASE_KERNEL_ENTRY &&
                          (unsigned)p == s1.cfg.debug_fault);
    /* debug_smash=: an overrun the canary check catches. */
    if (p >= CONFIG_FAULT_FIRST && p <= CONFIG_SMASH_LAST && (unsigned)p == s1.cfg.debug_smash)
        fw_smash_stack();
}

static void *phys_ptr(uint64_t pa)
{
    return (void *)(uintptr_t)pa; /* the firmware's tables map memory 1:1 until the switch */
}

/* Shows one line and pauses, then hands the status back (before ExitBootServices). */
PRINTF_LIKE(2, 3) static enum fw_status give_up(enum fw_status st, const char *fmt, ...)
{
    va_list ap;
    con_printf("canopy: ");
    va_start(ap, fmt);
    con_vprintf(fmt, ap);
    va_end(ap);
    con_printf("\n");
    fw_stall_us(ERROR_PAUSE_US);
    return st;
}

#define FATAL(...) fw_fatal_after_exit(s1.tsc_hz, __VA_ARGS__)

/* ---- before ExitBootServices ------------------------------------------------ */

static void report_config(void *ctx, unsigned line, const char *problem)
{
    (void)ctx;
    con_printf("canopy: canopy.cfg:%u: %s\n", line, problem);
}

/*
 * The pin, as sb-pin.py left it in this image's section. Read byte by byte
 * through the volatile object: the compiler saw only the unpinned initialiser.
 */
static void read_pin(void)
{
    s1.cfg_pinned = stage1_cfg_pin.pinned != 0;
    for (unsigned i = 0; i < SHA256_DIGEST_BYTES; i++)
        s1.cfg_pin.bytes[i] = stage1_cfg_pin.cfg_sha256[i];
}

/* The refusal: one line naming the file, the hash it must have and the hash it has. */
static enum fw_status refuse(const char *path, const struct sha256_digest *expected,
                             const struct sha256_digest *found)
{
    char want[SHA256_HEX_CHARS + 1], got[SHA256_HEX_CHARS + 1];
    sha256_to_hex(expected, want);
    sha256_to_hex(found, got);
    return give_up(FW_REFUSED, "%s: refused: sha256 expected %s, found %s", path, want, got);
}

/* Reads canopy.cfg over the defaults; every problem is reported and the boot goes on. */
static void read_plain_config(void)
{
    void *text;
    uint64_t len;
    config_defaults(&s1.cfg);
    enum fw_status st = fw_read_file(CONFIG_FILE_PATH, CONFIG_FILE_MAX, &text, &len);
    switch (st) {
    case FW_OK:
        config_parse(&s1.cfg, text, len, report_config, NULL);
        fw_free_file(text, len);
        break;
    case FW_EMPTY:
        break;
    case FW_NOT_FOUND:
        con_printf("canopy: no %s; using the defaults\n", CONFIG_FILE_PATH);
        break;
    case FW_TOO_BIG:
        con_printf("canopy: canopy.cfg: larger than %llu KiB; using the defaults\n",
                   (unsigned long long)bytes_to_kib(CONFIG_FILE_MAX));
        break;
    default:
        con_printf("canopy: canopy.cfg: cannot read it (%s); using the defaults\n",
                   fw_status_str(st));
        break;
    }
}

/*
 * Verified boot: canopy.cfg must exist and hash to the pin, and it must pin
 * the kernel. No defaults stand in for a file that is missing or differs: the
 * boot stops. Secure Boot with nothing pinned stops too: the firmware vouched
 * for this stage 1 only, and a stage 1 that starts whatever kernel an
 * unsigned file names would carry the firmware's trust to any code.
 */
static enum fw_status read_verified_config(void)
{
    if (!s1.cfg_pinned)
        return give_up(FW_REFUSED,
                       "%s: refused: Secure Boot is on and this stage 1 pins no configuration "
                       "(build it with CANOPY_SB_KEY, docs/secure-boot.md)",
                       CONFIG_FILE_PATH);
    void *text;
    uint64_t len;
    enum fw_status st = fw_read_file(CONFIG_FILE_PATH, CONFIG_FILE_MAX, &text, &len);
    if (st == FW_EMPTY) {
        text = NULL;
        len = 0;
    } else if (st != FW_OK) {
        return give_up(st, "%s: refused: the pinned configuration cannot be read (%s)",
                       CONFIG_FILE_PATH, fw_status_str(st));
    }
    struct sha256_digest found;
    sha256_digest(text, len, &found);
    if (!sha256_equal(&found, &s1.cfg_pin)) {
        if (text)
            fw_free_file(text, len);
        return refuse(CONFIG_FILE_PATH, &s1.cfg_pin, &found);
    }
    config_defaults(&s1.cfg);
    s1.cfg.verified = true;
    config_parse(&s1.cfg, text, len, report_config, NULL);
    if (text)
        fw_free_file(text, len);
    if (s1.cfg.debug_ignored)
        con_printf("canopy: canopy.cfg: %u debug_* line%s ignored: the configuration is "
                   "verified\n",
                   s1.cfg.debug_ignored, s1.cfg.debug_ignored == 1 ? "" : "s");
    if (!s1.cfg.kernel_pinned)
        return give_up(FW_REFUSED, "%s: refused: it pins no kernel (no valid kernel_sha256=)",
                       CONFIG_FILE_PATH);
    return FW_OK;
}

/*
 * The kernel file's hash against kernel_sha256=, before anything parses it.
 * A verified configuration always pins it; an unverified one may, and is held
 * to it, but proves nothing (whoever edits the file edits both).
 */
static enum fw_status check_kernel(void)
{
    if (!s1.cfg.kernel_pinned)
        return FW_OK;
    sha256_digest(s1.kernel, s1.kernel_size, &s1.kernel_sha);
    if (!sha256_equal(&s1.kernel_sha, &s1.cfg.kernel_sha256)) {
        fw_free_file((void *)s1.kernel, s1.kernel_size);
        s1.kernel = NULL;
        return refuse(s1.cfg.kernel, &s1.cfg.kernel_sha256, &s1.kernel_sha);
    }
    s1.kernel_verified = s1.verify;
    return FW_OK;
}

static enum fw_status read_kernel(void)
{
    const char *path = s1.cfg.kernel;
    void *data;
    uint64_t size;
    enum fw_status st = fw_read_file(path, KERNEL_FILE_MAX, &data, &size);
    switch (st) {
    case FW_OK:
        s1.kernel = data;
        s1.kernel_size = size;
        return check_kernel();
    case FW_NOT_FOUND:
        return give_up(st, "%s: file not found", path);
    case FW_EMPTY:
        return give_up(st, "%s: the file is empty", path);
    case FW_TOO_BIG:
        return give_up(st, "%s: the file is larger than %llu MiB", path,
                       (unsigned long long)bytes_to_mib(KERNEL_FILE_MAX));
    case FW_IS_DIR:
        return give_up(st, "%s: is a directory, not a kernel", path);
    default:
        return give_up(st, "%s: cannot read the file (%s)", path, fw_status_str(st));
    }
}

/*
 * The ELF checked completely, its segments against the conventional memory
 * there is; whether everything stage 1 needs fits, contiguous where it must
 * be, is claim_memory's question, once the platform is known.
 */
static enum fw_status validate_kernel(void)
{
    const char *path = s1.cfg.kernel;
    uint64_t conventional;
    enum fw_status st = fw_memory_summary(&conventional);
    if (st != FW_OK)
        return give_up(st, "cannot read the memory map (%s)", fw_status_str(st));
    struct elf_error err;
    if (elf_validate(s1.kernel, s1.kernel_size, conventional, &s1.plan, &err) != ELF_OK)
        return give_up(FW_FAILED, "%s: %s", path, err.reason);
    return FW_OK;
}

/*
 * The kernel's random seed: RDSEED, else RDRAND (values that are all ones or
 * repeat are discarded, canopy/hwrng.h), else the firmware's RNG, else 0.
 * Says so in one line when a CPU source was discarded; returns the source's name.
 */
static const char *choose_seed(void)
{
    struct hwrng_result hw;
    const char *from;
    if (rt_cpu_random(&s1.seed, &hw)) {
        from = hwrng_source_name(hw.used);
    } else if (fw_random(&s1.seed)) {
        from = "the firmware's RNG";
    } else {
        s1.seed = 0;
        from = "nowhere (no random source)";
    }
    char why[96];
    if (*hwrng_discarded(&hw, why, sizeof(why)))
        con_printf("canopy: %s; the boot seed comes from %s\n", why, from);
    return from;
}

static void gather_platform(void)
{
    cpu_identify(&s1.cpu);
    s1.levels = s1.cpu.la57 ? 5 : 4;
    s1.hhdm = s1.cpu.la57 ? CANOPY_HHDM_BASE_5L : CANOPY_HHDM_BASE_4L;

    const char *note;
    enum fw_status st = fw_framebuffer(s1.cfg.fb_width, s1.cfg.fb_height, &s1.fb, &note);
    if (st == FW_NOT_FOUND)
        con_printf("canopy: no graphics output; serial console only\n");
    else if (st != FW_OK)
        con_printf("canopy: %s; serial console only\n", note);
    else if (note)
        con_printf("canopy: %s\n", note);

    s1.rsdp = fw_rsdp();
    if (!s1.rsdp)
        con_printf("canopy: no ACPI RSDP in the firmware tables\n");
    s1.system_table = fw_system_table();
    s1.tsc_hz = fw_tsc_hz();
    const char *seed_from = choose_seed();

    if (s1.cfg.verbose >= 1) {
        con_printf("canopy: cpu: nx %d, 1 GiB pages %d, %u-level paging, tsc %llu MHz, boot seed "
                   "from %s\n",
                   s1.cpu.nx, s1.cpu.pdpe1gb, s1.levels, (unsigned long long)(s1.tsc_hz / 1000000),
                   seed_from);
        if (s1.fb.format != CANOPY_FB_NONE)
            con_printf("canopy: framebuffer %ux%u, pitch %u, at 0x%llx\n", s1.fb.width,
                       s1.fb.height, s1.fb.pitch_bytes, (unsigned long long)s1.fb.base);
    }
}

/* ---- the mapping plan, on both sides of ExitBootServices -------------------- */

/* The boot info block: the struct, then the copies the kernel needs. Offsets in bytes. */
struct bi_layout {
    uint64_t pmm, ranges, efi_map, manifest, total;
    uint32_t manifest_cap;
};

static struct bi_layout bi_layout(uint32_t range_count, uint64_t efi_map_size,
                                  uint32_t request_count)
{
    struct bi_layout l;
    l.pmm = align_up(sizeof(struct canopy_bootinfo), 64);
    l.ranges = align_up(l.pmm + sizeof(struct pmm), 64);
    l.efi_map = align_up(l.ranges + (uint64_t)range_count * sizeof(struct canopy_mem_range), 64);
    l.manifest = align_up(l.efi_map + efi_map_size, 64);
    l.manifest_cap = request_count * MAPPLAN_ENTRIES_PER_REQUEST;
    l.total = l.manifest + (uint64_t)l.manifest_cap * sizeof(struct canopy_mapping);
    return l;
}

/*
 * What stage 1 claims before ExitBootServices (load/claim.h), by kind; the
 * segments' claims follow CLAIM_SEGMENT0 in program-header order.
 */
enum {
    CLAIM_BOOTINFO,
    CLAIM_PMM,
    CLAIM_STACK,
    CLAIM_PAGE_TABLES,
    CLAIM_SEGMENT0,
    CLAIM_MAX = CLAIM_SEGMENT0 + CANOPY_MAX_SEGMENTS
};
#define CLAIM_REFUSALS 32 /* places the firmware may refuse before stage 1 gives up */

struct claims {
    struct claim_span span[CLAIM_MAX]; /* page_count 0: not claimed */
    struct claim_span refused[CLAIM_REFUSALS];
    uint32_t refused_count;
};

static struct claims claimed; /* read after the exit, so not on the firmware's stack */

/* What the steps before and after ExitBootServices hand on to each other. */
struct handoff {
    const struct fw_exit *ex;
    const struct claims *claims; /* where the frames stage 1 writes lie */
    uint32_t range_count;        /* normalised ranges at ex->ranges */
    struct map_request *req;     /* in ex->scratch: what gets mapped, the direct map's first */
    uint32_t req_count, req_cap;
    uint64_t pa_limit;     /* the direct map's reach: the PMM tracks nothing beyond it */
    uint64_t fb_va;        /* where the framebuffer goes (0 without one) */
    struct pt_span *spans; /* in ex->scratch after req: the same, for pt_min_tables */
    uint64_t max_page;     /* the HHDM's largest page */
    uint64_t min_tables;   /* the page-table frames the requests need (pt_min_tables) */
    struct bi_layout layout;
    uint64_t bi_pa;
    struct canopy_bootinfo *bi; /* at bi_pa */
    struct pmm *pmm;            /* inside the boot info */
    struct pt pt;
    uint64_t pt_next; /* the next frame of the page-table claim to use */
    uint32_t manifest_count;
};

/*
 * The normalised map of ex's raw map in ex->ranges, less what lies above the
 * CPU's physical address width: CPUID gives 32 to 52 bits and anything else is
 * not trusted. A map that reports memory there is wrong, and a PMM that handed
 * it out would fail much later. Returns the bytes dropped in *above.
 */
static enum pmm_status normalise_map(struct handoff *h, uint64_t *above)
{
    const struct fw_exit *ex = h->ex;
    enum pmm_status ps =
        memmap_normalise(ex->efi_map, ex->efi_map_size, ex->desc_size, ex->desc_version, ex->ranges,
                         ex->range_capacity, &h->range_count);
    *above = 0;
    unsigned bits = s1.cpu.phys_bits;
    if (ps == PMM_OK && bits >= 32 && bits <= 52)
        *above = memmap_clip(ex->ranges, &h->range_count, 1ull << bits);
    /* The direct map ends where the dynamic area begins (64 TiB of physical space with 4 levels).
     */
    h->pa_limit = CANOPY_DYNAMIC_BASE - s1.hhdm;
    return ps;
}

/* Gives the direct-map alias of [pa, pa + size) the flags; false if the room was miscounted. */
static bool protect_alias(struct handoff *h, uint64_t pa, uint64_t size, uint16_t flags)
{
    return mapplan_hhdm_protect(h->req, &h->req_count, h->req_cap - NON_HHDM_REQUESTS, pa_init(pa),
                                size, flags);
}

/*
 * Everything stage 1 maps, as requests, sorted by va, and the page-table
 * frames they need (h->min_tables): the direct map of RAM from h's ranges,
 * then the kernel's segments at their claimed frames, the boot stack above
 * its guard page, the trampoline page and the descriptor tables' pages
 * (identity-mapped: the kernel drops them), the framebuffer. The direct-map
 * aliases of the read-only segments and of the trampoline page become
 * read-only first (while the requests are still the direct map's alone).
 * Pure: the same plan is made from the map before the exit (to claim the
 * page tables) and from the final one. Returns NULL or what went wrong;
 * *clipped gets the RAM beyond the direct map's reach.
 */
static const char *plan_mappings(struct handoff *h, uint64_t *clipped)
{
    const struct claims *c = h->claims;
    h->req = h->ex->scratch;
    h->req_cap = h->ex->range_capacity + FIXED_REQUESTS;
    h->spans = (struct pt_span *)(h->req + h->req_cap);
    h->max_page = s1.cpu.pdpe1gb ? PAGE_SIZE_1G : PAGE_SIZE_2M;
    h->fb_va = 0;
    uint32_t n = mapplan_hhdm(h->ex->ranges, h->range_count, va_init(s1.hhdm), pa_init(h->pa_limit),
                              h->max_page, h->req, h->req_cap, clipped);
    if (n == UINT32_MAX)
        return "too many direct-map ranges";
    h->req_count = n;

    uint64_t tramp = (uint64_t)(uintptr_t)trampoline_start;
    for (uint32_t i = 0; i < s1.plan.count; i++) {
        const struct elf_segment_plan *s = &s1.plan.seg[i];
        if (!(s->flags & CANOPY_SEG_W) &&
            !protect_alias(h, c->span[CLAIM_SEGMENT0 + i].pa, s->page_count * PAGE_SIZE, 0))
            return "no room to protect a segment's direct-map alias";
    }
    if (!protect_alias(h, tramp, PAGE_SIZE, 0))
        return "no room to protect the trampoline's direct-map alias";

    for (uint32_t i = 0; i < s1.plan.count; i++) {
        const struct elf_segment_plan *s = &s1.plan.seg[i];
        uint16_t flags = (uint16_t)(((s->flags & CANOPY_SEG_W) ? CANOPY_MAP_W : 0) |
                                    ((s->flags & CANOPY_SEG_X) ? CANOPY_MAP_X : 0));
        h->req[h->req_count++] =
            mapplan_request_4k(va_init(s->vaddr), pa_init(c->span[CLAIM_SEGMENT0 + i].pa),
                               s->page_count * PAGE_SIZE, flags, CANOPY_OWNER_KERNEL_IMAGE);
    }
    h->req[h->req_count++] =
        mapplan_request_4k(va_init(BOOT_STACK_VA), pa_init(c->span[CLAIM_STACK].pa),
                           CANOPY_BOOT_STACK_SIZE, CANOPY_MAP_W, CANOPY_OWNER_STACK);
    h->req[h->req_count++] = mapplan_request_4k(va_init(tramp), pa_init(tramp), PAGE_SIZE,
                                                CANOPY_MAP_X, CANOPY_OWNER_TRAMPOLINE);
    /* The GDT and IDT the trampoline loads before CR3 changes: mapped on both sides of it. */
    uint64_t tables, tables_bytes;
    fw_fault_tables_pages(&tables, &tables_bytes);
    h->req[h->req_count++] = mapplan_request_4k(va_init(tables), pa_init(tables), tables_bytes,
                                                CANOPY_MAP_W, CANOPY_OWNER_TRAMPOLINE);
    if (s1.fb.format != CANOPY_FB_NONE)
        h->req[h->req_count++] =
            mapplan_framebuffer(pa_init(s1.fb.base), s1.fb.size_bytes, s1.cpu.pat, &h->fb_va);

    mapplan_sort(h->req, h->req_count);
    if (mapplan_overlaps(h->req, h->req_count))
        return "two mappings overlap";
    for (uint32_t i = 0; i < h->req_count; i++)
        h->spans[i] = (struct pt_span){.va = h->req[i].va,
                                       .pa = h->req[i].pa,
                                       .size = h->req[i].size,
                                       .max_page_size = h->req[i].max_page_size};
    if (pt_min_tables(h->spans, h->req_count, s1.levels, &h->min_tables) != PT_OK)
        return "the mappings are not valid for the page tables";
    return NULL;
}

/* ---- claims, before ExitBootServices -------------------------------------------- */

/*
 * Room in the map buffer for the descriptors the map gains until the exit:
 * two for each allocation in between (the work space, every claim), and 64
 * for the firmware's own (and for a stale key's new map, which must fit the
 * same buffer: the boot info's copy was claimed for this size).
 */
#define EXIT_SPARE_DESCRIPTORS (2 * (CLAIM_MAX + 1) + 64)

/* What a claim is for, in a refusal line. */
static const char *claim_name(unsigned k, char *buf, size_t size)
{
    static const char *const names[CLAIM_SEGMENT0] = {
        [CLAIM_BOOTINFO] = "the boot info",
        [CLAIM_PMM] = "the PMM's state",
        [CLAIM_STACK] = "the boot stack",
        [CLAIM_PAGE_TABLES] = "the page tables",
    };
    if (k < CLAIM_SEGMENT0)
        return names[k];
    fmt_snprintf(buf, size, "segment %u", s1.plan.seg[k - CLAIM_SEGMENT0].phdr_index);
    return buf;
}

/* The claims made and the places refused: what a new claim must not overlap. */
static uint32_t claim_avoid(const struct claims *c, struct claim_span *out)
{
    uint32_t n = 0;
    for (unsigned k = 0; k < CLAIM_MAX; k++)
        if (c->span[k].page_count)
            out[n++] = c->span[k];
    for (uint32_t i = 0; i < c->refused_count; i++)
        out[n++] = c->refused[i];
    return n;
}

/* The highest place for claim k in the plan's map, avoiding c's claims; false if none. */
static bool claim_find(const struct handoff *h, const struct claims *c, uint64_t pages,
                       uint64_t *pa)
{
    struct claim_span avoid[CLAIM_MAX + CLAIM_REFUSALS];
    uint32_t n = claim_avoid(c, avoid);
    return claim_place(h->ex->ranges, h->range_count, PMM_LOW_RESERVED, h->pa_limit, avoid, n,
                       pages, pa);
}

/* The line for a claim that has no place: how much it needs, how much there is. */
static enum fw_status claim_no_room(const struct handoff *h, const struct claims *c, unsigned k,
                                    uint64_t pages)
{
    struct claim_span avoid[CLAIM_MAX + CLAIM_REFUSALS];
    uint32_t n = claim_avoid(c, avoid);
    uint64_t largest;
    claim_free_pages(h->ex->ranges, h->range_count, PMM_LOW_RESERVED, h->pa_limit, avoid, n,
                     &largest);
    char buf[32];
    return give_up(FW_NOMEM,
                   "%s: no %llu KiB of contiguous memory for %s; the largest free run left is "
                   "%llu KiB",
                   s1.cfg.kernel, (unsigned long long)pages_to_kib(pages),
                   claim_name(k, buf, sizeof(buf)), (unsigned long long)pages_to_kib(largest));
}

/* Claims k's pages at the highest place the firmware gives: a refused place is avoided next. */
static enum fw_status claim_one(const struct handoff *h, unsigned k, uint64_t pages)
{
    struct claims *c = &claimed;
    for (;;) {
        uint64_t pa;
        if (!claim_find(h, c, pages, &pa))
            return claim_no_room(h, c, k, pages);
        enum fw_status st = fw_claim_pages(pa, pages);
        if (st == FW_OK) {
            c->span[k] = (struct claim_span){pa, pages};
            return FW_OK;
        }
        char buf[32];
        if (st != FW_NOT_FOUND || c->refused_count == CLAIM_REFUSALS)
            return give_up(st, "cannot claim %llu KiB at 0x%llx for %s (%s)",
                           (unsigned long long)pages_to_kib(pages), (unsigned long long)pa,
                           claim_name(k, buf, sizeof(buf)), fw_status_str(st));
        c->refused[c->refused_count++] = (struct claim_span){pa, pages};
    }
}

/* Gives every claim back (a boot that stops before the exit leaves the firmware as it was). */
static void release_claims(void)
{
    for (unsigned k = 0; k < CLAIM_MAX; k++)
        if (claimed.span[k].page_count)
            fw_release_pages(claimed.span[k].pa, claimed.span[k].page_count);
    claimed = (struct claims){0};
}

/*
 * The boot info's size for the largest final map ex's buffer can take: at
 * most 2n - 1 ranges for n descriptors, a request per range (the direct map)
 * plus the fixed ones.
 */
static uint64_t bootinfo_bound(const struct fw_exit *ex)
{
    uint64_t descs = ex->map_capacity / ex->desc_size;
    uint32_t ranges = (uint32_t)(2 * descs);
    return bi_layout(ranges, ex->map_capacity, ranges + FIXED_REQUESTS).total;
}

/*
 * The page-table frames to claim: the plan's need with the segments where c
 * puts them. *clipped: the RAM the direct map cannot reach.
 */
static const char *claim_pt_need(struct handoff *h, const struct claims *c, uint64_t *pages,
                                 uint64_t *clipped)
{
    h->claims = c;
    const char *why = plan_mappings(h, clipped);
    *pages = claim_pt_bound(h->min_tables);
    return why;
}

/*
 * Whether every claim fits the plan's map at once, before any is made: the
 * total against the free memory, then each at its place as claim_one would
 * find them (a dry run on a copy). One line if not.
 */
static enum fw_status claims_fit(struct handoff *h, const uint64_t pages[CLAIM_MAX])
{
    static struct claims dry; /* large: off the firmware's stack */
    dry = (struct claims){0};
    uint64_t total = 0, segs = 0;
    for (unsigned k = 0; k < CLAIM_MAX; k++) {
        if (k == CLAIM_PAGE_TABLES || !pages[k])
            continue;
        if (!claim_find(h, &dry, pages[k], &dry.span[k].pa))
            return claim_no_room(h, &dry, k, pages[k]);
        dry.span[k].page_count = pages[k];
        total += pages[k];
        if (k >= CLAIM_SEGMENT0)
            segs += pages[k];
    }
    uint64_t pt, clipped;
    const char *why = claim_pt_need(h, &dry, &pt, &clipped);
    if (why)
        return give_up(FW_FAILED, "internal error: %s", why);
    total += pt;
    uint64_t largest, free = claim_free_pages(h->ex->ranges, h->range_count, PMM_LOW_RESERVED,
                                              h->pa_limit, NULL, 0, &largest);
    if (total > free)
        return give_up(FW_NOMEM,
                       "not enough memory: the kernel needs %llu KiB (segments %llu, page "
                       "tables %llu, boot info %llu, PMM state %llu, boot stack %llu); %llu KiB "
                       "are free",
                       (unsigned long long)pages_to_kib(total),
                       (unsigned long long)pages_to_kib(segs), (unsigned long long)pages_to_kib(pt),
                       (unsigned long long)pages_to_kib(pages[CLAIM_BOOTINFO]),
                       (unsigned long long)pages_to_kib(pages[CLAIM_PMM]),
                       (unsigned long long)pages_to_kib(pages[CLAIM_STACK]),
                       (unsigned long long)pages_to_kib(free));
    if (!claim_find(h, &dry, pt, &dry.span[CLAIM_PAGE_TABLES].pa))
        return claim_no_room(h, &dry, CLAIM_PAGE_TABLES, pt);
    return FW_OK;
}

/*
 * Claims, through boot services, all the memory stage 1 writes after
 * ExitBootServices, so that it writes nothing the firmware did not give it
 * (firmware with a freed-memory guard unmaps the rest). The plan is made
 * from the current map, read into the buffers the final map goes to; each
 * claim is loader data at a place stage 1 chose: the highest that fits in
 * usable memory between 1 MiB and the direct map's reach. Prints what the
 * map says is wrong with it (once, here, where the screen shows it).
 * => FW_OK: ex is ready for fw_exit_boot_services and `claimed` holds every
 *    claim. Otherwise one line was shown and nothing is left claimed or
 *    allocated.
 */
static enum fw_status claim_memory(struct fw_exit *ex)
{
    enum fw_status st =
        fw_exit_prepare(EXIT_SPARE_DESCRIPTORS, SCRATCH_PER_RANGE, SCRATCH_FIXED, ex);
    if (st != FW_OK)
        return give_up(st, "cannot read the memory map (%s)", fw_status_str(st));
    struct handoff h = {.ex = ex, .claims = &claimed};
    uint64_t above, clipped;
    enum pmm_status ps = normalise_map(&h, &above);
    if (ps != PMM_OK) {
        st = give_up(FW_FAILED, "the firmware's memory map is unusable: %s", pmm_status_str(ps));
        goto cancel;
    }
    if (above)
        con_printf("canopy: the memory map lists %llu KiB above the CPU's %u-bit physical address "
                   "limit (MAXPHYADDR); ignored\n",
                   (unsigned long long)bytes_to_kib(above), s1.cpu.phys_bits);
    /*
     * A framebuffer the map calls RAM would need two memory types for its
     * frames (write-back in the direct map, write-combining for the console):
     * it is given up, as Linux's ioremap refuses RAM.
     */
    if (s1.fb.format != CANOPY_FB_NONE &&
        mapplan_touches_ram(ex->ranges, h.range_count, pa_init(s1.fb.base), s1.fb.size_bytes)) {
        con_printf("canopy: the framebuffer at 0x%llx lies in RAM per the memory map; serial "
                   "console only\n",
                   (unsigned long long)s1.fb.base);
        s1.fb = (struct canopy_framebuffer){.format = CANOPY_FB_NONE};
    }

    uint64_t pages[CLAIM_MAX] = {0};
    pages[CLAIM_BOOTINFO] = pages_for_bytes(bootinfo_bound(ex));
    pages[CLAIM_PMM] = pmm_state_bytes(ex->ranges, h.range_count, h.pa_limit) / PAGE_SIZE;
    pages[CLAIM_STACK] = pages_for_bytes(CANOPY_BOOT_STACK_SIZE);
    for (uint32_t i = 0; i < s1.plan.count; i++)
        pages[CLAIM_SEGMENT0 + i] = s1.plan.seg[i].page_count;
    if (pages[CLAIM_PMM] == 0) {
        st = give_up(FW_NOMEM, "the memory map has no usable memory");
        goto cancel;
    }
    st = claims_fit(&h, pages);
    if (st != FW_OK)
        goto cancel;

    /* In this order: the page tables last, when the segments' places are known. */
    claimed = (struct claims){0};
    for (unsigned k = 0; k < CLAIM_MAX; k++) {
        if (k == CLAIM_PAGE_TABLES || !pages[k])
            continue;
        st = claim_one(&h, k, pages[k]);
        if (st != FW_OK)
            goto release;
    }
    const char *why = claim_pt_need(&h, &claimed, &pages[CLAIM_PAGE_TABLES], &clipped);
    if (why) {
        st = give_up(FW_FAILED, "internal error: %s", why);
        goto release;
    }
    st = claim_one(&h, CLAIM_PAGE_TABLES, pages[CLAIM_PAGE_TABLES]);
    if (st != FW_OK)
        goto release;
    if (clipped)
        con_printf("canopy: %llu MiB of RAM lie beyond the direct map's reach; not used\n",
                   (unsigned long long)bytes_to_mib(clipped));
    if (s1.cfg.verbose >= 1) {
        uint64_t total = 0;
        for (unsigned k = 0; k < CLAIM_MAX; k++)
            total += claimed.span[k].page_count;
        con_printf("canopy: claimed %llu KiB before ExitBootServices (page tables: %llu frames "
                   "for %llu planned)%s\n",
                   (unsigned long long)pages_to_kib(total),
                   (unsigned long long)claimed.span[CLAIM_PAGE_TABLES].page_count,
                   (unsigned long long)h.min_tables,
                   claimed.refused_count ? "; places refused" : "");
    }
    return FW_OK;

release:
    release_claims();
cancel:
    fw_exit_cancel(ex);
    return st;
}

/* ---- after ExitBootServices ---------------------------------------------------- */

/*
 * Page-table frames come from the claim, in order, each handed to its owner
 * in the PMM as it is taken.
 */
static bool pt_frame_alloc(void *ctx, uint64_t *phys)
{
    struct handoff *h = ctx;
    const struct claim_span *pool = &h->claims->span[CLAIM_PAGE_TABLES];
    if (h->pt_next == pool->page_count)
        return false;
    uint64_t pa = pool->pa + h->pt_next * PAGE_SIZE;
    if (pmm_claim(h->pmm, pa, 1, CANOPY_OWNER_PAGE_TABLE) != PMM_OK)
        return false;
    h->pt_next++;
    __builtin_memset(phys_ptr(pa), 0, PAGE_SIZE);
    *phys = pa;
    return true;
}

/* pt gives frames back only when a pt_map fails, and that stops the boot: nothing to do. */
static void pt_frame_free(void *ctx, uint64_t phys)
{
    (void)ctx;
    (void)phys;
}

static uint32_t pt_attrs(uint16_t map_flags)
{
    _Static_assert(CANOPY_MAP_WB == PT_CACHE_WB && CANOPY_MAP_UC == PT_CACHE_UC &&
                       CANOPY_MAP_WC == PT_CACHE_WC && CANOPY_MAP_CACHE_MASK == PT_CACHE_MASK,
                   "the manifest's memory types are pt's");
    return ((map_flags & CANOPY_MAP_W) ? PT_W : 0) | ((map_flags & CANOPY_MAP_X) ? PT_X : 0) |
           (map_flags & CANOPY_MAP_CACHE_MASK);
}

/* Hands claim k to `owner` in the PMM, or stops: the final map must still call it loader data. */
static void hand_over(struct pmm *pmm, unsigned k, uint64_t page_count, enum canopy_owner owner)
{
    const struct claim_span *c = &claimed.span[k];
    enum pmm_status ps = pmm_claim(pmm, c->pa, page_count, owner);
    char buf[32];
    if (ps != PMM_OK)
        FATAL("the memory claimed for %s at 0x%llx is not loader memory in the final map: %s",
              claim_name(k, buf, sizeof(buf)), (unsigned long long)c->pa, pmm_status_str(ps));
}

/* Copies one PT_LOAD into its claimed frames: file bytes at their offset, zeros everywhere else. */
static void load_segment(uint32_t i)
{
    const struct elf_segment_plan *s = &s1.plan.seg[i];
    uint8_t *dst = phys_ptr(claimed.span[CLAIM_SEGMENT0 + i].pa);
    __builtin_memset(dst, 0, s->page_count * PAGE_SIZE);
    __builtin_memcpy(dst + s->page_offset, s1.kernel + s->file_offset, s->file_size);
}

/*
 * The final map normalised, and the PMM on it, on the stack until the boot
 * info has room for it: without free lists, so it writes nothing but its state
 * array, into the claim made for it. The segments and the boot stack are
 * handed to their owners and filled.
 */
static void start_pmm(struct handoff *h, struct pmm *boot_pmm)
{
    uint64_t above;
    enum pmm_status ps = normalise_map(h, &above);
    if (ps != PMM_OK)
        FATAL("the firmware's memory map is unusable: %s", pmm_status_str(ps));
    const struct claim_span *state = &claimed.span[CLAIM_PMM];
    ps = pmm_create(boot_pmm, h->ex->ranges, h->range_count, 0, h->pa_limit, state->pa,
                    state->page_count * PAGE_SIZE);
    if (ps == PMM_ERR_NO_SPACE)
        FATAL("the final memory map needs %llu KiB of PMM state; %llu KiB were claimed",
              (unsigned long long)bytes_to_kib(
                  pmm_state_bytes(h->ex->ranges, h->range_count, h->pa_limit)),
              (unsigned long long)pages_to_kib(state->page_count));
    if (ps != PMM_OK)
        FATAL("cannot set up the physical memory manager: %s", pmm_status_str(ps));
    for (uint32_t i = 0; i < s1.plan.count; i++) {
        hand_over(boot_pmm, CLAIM_SEGMENT0 + i, s1.plan.seg[i].page_count,
                  CANOPY_OWNER_KERNEL_IMAGE);
        load_segment(i);
    }
    hand_over(boot_pmm, CLAIM_STACK, pages_for_bytes(CANOPY_BOOT_STACK_SIZE), CANOPY_OWNER_STACK);
    __builtin_memset(phys_ptr(claimed.span[CLAIM_STACK].pa), 0, CANOPY_BOOT_STACK_SIZE);
}

/* verbose=2: the normalised map, one line a range. */
static void show_ranges(const struct handoff *h)
{
    for (uint32_t i = 0; i < h->range_count; i++) {
        const struct canopy_mem_range *r = &h->ex->ranges[i];
        con_printf("canopy: mem 0x%012llx-0x%012llx %-12s (%s)\n", (unsigned long long)r->base,
                   (unsigned long long)(r->base + r->page_count * PAGE_SIZE - 1),
                   memmap_type_name(r->type), memmap_efi_type_name(r->efi_type));
    }
}

/*
 * The boot info, in its claim, with room for the copies the kernel needs;
 * the PMM moves into it, so every later claim is recorded there. What the
 * final map does not need of the claim stays loader memory, which the kernel
 * reclaims.
 */
static void place_bootinfo(struct handoff *h, struct pmm *boot_pmm)
{
    h->layout = bi_layout(h->range_count, h->ex->efi_map_size, h->req_count);
    const struct bi_layout *l = &h->layout;
    const struct claim_span *c = &claimed.span[CLAIM_BOOTINFO];
    uint64_t pages = pages_for_bytes(l->total);
    if (pages > c->page_count)
        FATAL("the boot info needs %llu KiB; %llu KiB were claimed",
              (unsigned long long)bytes_to_kib(l->total),
              (unsigned long long)pages_to_kib(c->page_count));
    hand_over(boot_pmm, CLAIM_BOOTINFO, pages, CANOPY_OWNER_BOOTINFO);
    h->bi_pa = c->pa;
    uint8_t *bi_bytes = phys_ptr(h->bi_pa);
    __builtin_memset(bi_bytes, 0, pages * PAGE_SIZE);
    h->bi = (struct canopy_bootinfo *)bi_bytes;
    h->pmm = (struct pmm *)(bi_bytes + l->pmm);
    *h->pmm = *boot_pmm;
    __builtin_memcpy(bi_bytes + l->ranges, h->ex->ranges,
                     h->range_count * sizeof(struct canopy_mem_range));
    __builtin_memcpy(bi_bytes + l->efi_map, h->ex->efi_map, h->ex->efi_map_size);
}

/* The page tables from the claimed frames, and the manifest written from the same requests. */
static void build_tables(struct handoff *h)
{
    const struct claim_span *pool = &claimed.span[CLAIM_PAGE_TABLES];
    if (h->min_tables > pool->page_count)
        FATAL("the final memory map needs %llu page-table frames; %llu were claimed",
              (unsigned long long)h->min_tables, (unsigned long long)pool->page_count);
    struct pt_frames frames = {.alloc = pt_frame_alloc, .free = pt_frame_free, .ctx = h};
    enum pt_status pst = pt_init(&h->pt, s1.levels, s1.cpu.nx, 0, frames);
    if (pst != PT_OK)
        FATAL("cannot create page tables: %s", pt_status_str(pst));
    struct canopy_mapping *manifest =
        (struct canopy_mapping *)((uint8_t *)h->bi + h->layout.manifest);
    for (uint32_t i = 0; i < h->req_count; i++) {
        const struct map_request *r = &h->req[i];
        pst = pt_map(&h->pt, va_init(r->va), pa_init(r->pa), r->size, pt_attrs(r->flags),
                     r->max_page_size);
        if (pst != PT_OK)
            FATAL("cannot map 0x%llx-0x%llx: %s", (unsigned long long)r->va,
                  (unsigned long long)(r->va + r->size - 1), pt_status_str(pst));
        if (!mapplan_manifest_add(r, manifest, h->layout.manifest_cap, &h->manifest_count))
            FATAL("internal error: the mapping manifest is full");
    }
}

/* The boot info itself. */
static void fill_bootinfo(const struct handoff *h)
{
    struct canopy_bootinfo *bi = h->bi;
    const struct bi_layout *l = &h->layout;
    bi->magic = CANOPY_BOOTINFO_MAGIC;
    bi->version = CANOPY_BOOTINFO_VERSION;
    bi->size = sizeof(*bi);
    bi->hhdm_base = s1.hhdm;
    bi->paging_levels = s1.levels;
    bi->cpu_flags = (s1.cpu.nx ? CANOPY_CPU_NX : 0) | (s1.cpu.pdpe1gb ? CANOPY_CPU_PDPE1G : 0) |
                    (s1.cpu.la57 ? CANOPY_CPU_LA57 : 0) | (s1.cpu.pat ? CANOPY_CPU_PAT : 0);
    bi->mem_ranges = h->bi_pa + l->ranges;
    bi->mem_range_count = h->range_count;
    bi->mem_range_capacity = h->range_count;
    bi->pmm = h->bi_pa + l->pmm;
    for (uint32_t i = 0; i < s1.plan.count; i++) {
        const struct elf_segment_plan *s = &s1.plan.seg[i];
        bi->segments[i] = (struct canopy_segment){.vaddr = s->vaddr,
                                                  .paddr = claimed.span[CLAIM_SEGMENT0 + i].pa,
                                                  .page_count = s->page_count,
                                                  .flags = s->flags};
    }
    bi->segment_count = s1.plan.count;
    bi->kernel_entry_va = s1.plan.entry;
    bi->stack_top_va = BOOT_STACK_VA + CANOPY_BOOT_STACK_SIZE;
    bi->trampoline_page = (uint64_t)(uintptr_t)trampoline_start;
    bi->pt_root = h->pt.root;
    bi->pt_frames_used = (uint32_t)h->pt.table_count;
    bi->pt_frames_minimum = (uint32_t)h->min_tables;
    bi->fb = s1.fb;
    bi->fb_va = h->fb_va;
    bi->rsdp = s1.rsdp;
    bi->efi_system_table = s1.system_table;
    bi->efi_memmap = h->bi_pa + l->efi_map;
    bi->efi_memmap_size = h->ex->efi_map_size;
    bi->efi_desc_size = h->ex->desc_size;
    bi->efi_desc_version = h->ex->desc_version;
    bi->mappings = h->bi_pa + l->manifest;
    bi->mapping_count = h->manifest_count;
    bi->mapping_capacity = l->manifest_cap;
    bi->tsc_hz = s1.tsc_hz;
    bi->random_seed = s1.seed;
    bi->failed_boots = fw_fault_failed_boots();
    str_copy(bi->cmdline, s1.cfg.cmdline, sizeof(bi->cmdline));
    bi->boot_flags = (s1.secure_boot ? CANOPY_BOOT_SECURE_BOOT : 0) |
                     (s1.verify ? CANOPY_BOOT_CONFIG_VERIFIED : 0) |
                     (s1.kernel_verified ? CANOPY_BOOT_KERNEL_VERIFIED : 0);
    if (s1.kernel_verified)
        __builtin_memcpy(bi->kernel_sha256, s1.kernel_sha.bytes, sizeof(bi->kernel_sha256));
}

/* The last check of the PMM, the last line, and the jump through the trampoline. */
static _Noreturn void enter_kernel(const struct handoff *h)
{
    struct canopy_bootinfo *bi = h->bi;
    char msg[128];
    if (pmm_check(h->pmm, msg, sizeof(msg)) != PMM_OK)
        FATAL("physical memory manager inconsistent: %s", msg);
    con_printf("canopy: %llu MiB free, %u page-table frames (%llu needed), entering the kernel "
               "at 0x%llx\n",
               (unsigned long long)pages_to_mib(h->pmm->free_frames), bi->pt_frames_used,
               (unsigned long long)h->min_tables, (unsigned long long)s1.plan.entry);

    phase(CANOPY_PHASE_KERNEL_ENTRY);
    __builtin_memcpy(bi->phase_tsc, s1.phase_tsc, sizeof(bi->phase_tsc));
    uint64_t entry =
        s1.cfg.debug_fault == CANOPY_PHASE_KERNEL_ENTRY ? FW_FAULT_INJECT_VA : s1.plan.entry;
    /*
     * The memory types the new tables name: entry 5 write-combining, 0-3 as at
     * power-on. The firmware's tables never set the PAT bit, so nothing they
     * map changes meaning, and no line is cached under entry 5's old type.
     */
    if (s1.cpu.pat)
        cpu_set_pat(CANOPY_PAT);
    trampoline_enter(h->pt.root, bi->stack_top_va, entry, s1.hhdm + h->bi_pa, s1.cpu.nx,
                     fw_fault_tables(s1.hhdm));
}

/*
 * Everything between ExitBootServices and the kernel, step by step (the
 * picture at the top of this file), writing only what was claimed before
 * the exit, the buffers of the final map and stage 1's own image. Any
 * failure is FATAL: one line, a reset.
 */
static _Noreturn void after_exit(const struct fw_exit *ex)
{
    struct handoff h = {.ex = ex, .claims = &claimed};
    static struct pmm boot_pmm; /* static: beyond a 4 KiB frame, the MS ABI wants stack probes */
    start_pmm(&h, &boot_pmm);
    phase(CANOPY_PHASE_PMM_READY);
    if (s1.cfg.verbose >= 2)
        show_ranges(&h);
    uint64_t clipped;
    const char *why = plan_mappings(&h, &clipped);
    if (why)
        FATAL("internal error: %s", why);
    place_bootinfo(&h, &boot_pmm);
    build_tables(&h);
    phase(CANOPY_PHASE_PAGE_TABLES_BUILT);
    fill_bootinfo(&h);
    enter_kernel(&h);
}

static enum fw_status boot(void)
{
    phase(CANOPY_PHASE_STAGE1_ENTRY);
    s1.secure_boot = fw_secure_boot();
    read_pin();
    s1.verify = s1.secure_boot || s1.cfg_pinned;
    con_printf("canopy: stage 1\n");
    /* Only a verified boot says so here: an unverified one prints what it always has. */
    if (s1.verify)
        con_printf("canopy: secure boot: %s, configuration %s\n", s1.secure_boot ? "on" : "off",
                   s1.cfg_pinned ? "pinned" : "not pinned");
    enum fw_status st = fw_fault_previous();
    if (st != FW_OK)
        return st; /* failed boots in a row: back to the firmware's boot manager */
    if (s1.verify) {
        st = read_verified_config();
        if (st != FW_OK)
            return st;
    } else {
        read_plain_config();
    }
    con_set_serial(s1.cfg.serial);
    phase(CANOPY_PHASE_CONFIG_READ);

    st = read_kernel();
    if (st != FW_OK)
        return st;
    phase(CANOPY_PHASE_KERNEL_READ);
    if (s1.cfg.kernel_pinned) {
        char hex[SHA256_HEX_CHARS + 1];
        sha256_to_hex(&s1.kernel_sha, hex);
        con_printf("canopy: %s: sha256 %s as pinned; kernel verified: %s\n", s1.cfg.kernel, hex,
                   s1.kernel_verified ? "yes" : "no (the configuration is not verified)");
    }
    st = validate_kernel();
    if (st == FW_OK && (!page_is_aligned((uintptr_t)trampoline_start) ||
                        trampoline_end - trampoline_start > (long)PAGE_SIZE))
        st = give_up(FW_FAILED, "internal error: the trampoline does not fit one page");
    if (st != FW_OK)
        goto free_kernel;
    phase(CANOPY_PHASE_VALIDATED);
    con_printf("canopy: %s: %llu byte%s, %u segment%s, %llu KiB\n", s1.cfg.kernel,
               (unsigned long long)s1.kernel_size, s1.kernel_size == 1 ? "" : "s", s1.plan.count,
               s1.plan.count == 1 ? "" : "s",
               (unsigned long long)pages_to_kib(s1.plan.total_pages));

    gather_platform();
    static struct fw_exit ex; /* read after the firmware's stack is given up */
    st = claim_memory(&ex);
    if (st != FW_OK)
        goto free_kernel;
    phase(CANOPY_PHASE_BEFORE_EBS);
    st = fw_exit_boot_services(&ex);
    if (st == FW_OK)
        cpu_run_on_own_stack(after_exit, &ex);
    if (st == FW_TOO_BIG)
        give_up(st,
                "cannot exit boot services: the memory map grew past the room set aside for "
                "it (%llu descriptors)",
                (unsigned long long)(ex.map_capacity / ex.desc_size));
    else
        give_up(st, "cannot exit boot services (%s)", fw_status_str(st));
    release_claims();
    fw_exit_cancel(&ex);
free_kernel:
    fw_free_file((void *)s1.kernel, s1.kernel_size);
    return st;
}

enum fw_status stage1_main(void)
{
    return boot();
}
