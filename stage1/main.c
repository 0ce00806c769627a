/*
 * main: the boot flow of stage 1, from the config file to the jump into the
 * kernel.
 *
 *   while boot services live             every failure: one line, a pause,
 *     read canopy.cfg                    and an error back to the firmware
 *       verified: its hash = the pin
 *     read the kernel, validate it whole
 *       verified: its hash = kernel_sha256, before any parsing
 *     framebuffer, RSDP, CPU, TSC, seed
 *   ExitBootServices
 *   after it                             every failure: one line on serial,
 *     normalise the map, pmm_init_below  a pause, and a reset
 *     boot info (owner BOOTINFO) <- the PMM itself moves in here
 *     segments, boot stack                from PMM frames
 *     page tables (owner PAGE_TABLE)      the direct map of RAM (read-only
 *                                         aliases of .text, .rodata and the
 *                                         trampoline page), framebuffer (WC),
 *                                         segments, stack, the trampoline page
 *                                         and its GDT/IDT
 *   IA32_PAT; trampoline: CR3, EFER.NXE, CR0.WP, jump
 *
 * Invariant after ExitBootServices: every frame stage 1 hands to the kernel
 * comes from the PMM with an owner, and nothing the kernel needs stays in
 * loader memory (which the kernel reclaims): the boot info holds copies of the
 * memory maps, the manifest and the PMM state.
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

static enum fw_status validate_kernel(void)
{
    const char *path = s1.cfg.kernel;
    uint64_t conventional, largest;
    enum fw_status st = fw_memory_summary(&conventional, &largest);
    if (st != FW_OK)
        return give_up(st, "cannot read the memory map (%s)", fw_status_str(st));
    struct elf_error err;
    if (elf_validate(s1.kernel, s1.kernel_size, conventional, &s1.plan, &err) != ELF_OK)
        return give_up(FW_FAILED, "%s: %s", path, err.reason);
    /*
     * Each segment becomes one contiguous PMM run, carved from a free buddy
     * block of the next power of two (at most 2^PMM_MAX_ORDER pages). Refuse
     * here, with boot services alive, what could only fail after them.
     */
    for (uint32_t i = 0; i < s1.plan.count; i++) {
        const struct elf_segment_plan *s = &s1.plan.seg[i];
        uint64_t block = 1;
        while (block < s->page_count)
            block <<= 1;
        if (block > (1ull << PMM_MAX_ORDER) || block * PAGE_SIZE > largest)
            return give_up(FW_FAILED,
                           "%s: segment %u needs %llu KiB of contiguous memory; the largest "
                           "free block is %llu KiB",
                           path, s->phdr_index, (unsigned long long)pages_to_kib(s->page_count),
                           (unsigned long long)bytes_to_kib(largest));
    }
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

/* ---- after ExitBootServices ---------------------------------------------------- */

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

static bool pt_frame_alloc(void *ctx, uint64_t *phys)
{
    if (pmm_alloc(ctx, 0, CANOPY_OWNER_PAGE_TABLE, phys) != PMM_OK)
        return false;
    __builtin_memset(phys_ptr(*phys), 0, PAGE_SIZE);
    return true;
}

static void pt_frame_free(void *ctx, uint64_t phys)
{
    (void)pmm_free(ctx, phys, 0);
}

static uint32_t pt_attrs(uint16_t map_flags)
{
    _Static_assert(CANOPY_MAP_WB == PT_CACHE_WB && CANOPY_MAP_UC == PT_CACHE_UC &&
                       CANOPY_MAP_WC == PT_CACHE_WC && CANOPY_MAP_CACHE_MASK == PT_CACHE_MASK,
                   "the manifest's memory types are pt's");
    return ((map_flags & CANOPY_MAP_W) ? PT_W : 0) | ((map_flags & CANOPY_MAP_X) ? PT_X : 0) |
           (map_flags & CANOPY_MAP_CACHE_MASK);
}

/* Copies one PT_LOAD into fresh frames: file bytes at their offset, zeros everywhere else. */
static uint64_t load_segment(struct pmm *pmm, const struct elf_segment_plan *s)
{
    uint64_t pa;
    enum pmm_status ps = pmm_alloc_run(pmm, s->page_count, CANOPY_OWNER_KERNEL_IMAGE, &pa);
    if (ps != PMM_OK)
        FATAL("%s: no %llu KiB of contiguous memory for segment %u (%s)", s1.cfg.kernel,
              (unsigned long long)pages_to_kib(s->page_count), s->phdr_index, pmm_status_str(ps));
    uint8_t *dst = phys_ptr(pa);
    __builtin_memset(dst, 0, s->page_count * PAGE_SIZE);
    __builtin_memcpy(dst + s->page_offset, s1.kernel + s->file_offset, s->file_size);
    return pa;
}

/* What the steps after ExitBootServices hand on to each other. */
struct handoff {
    const struct fw_exit *ex;
    uint32_t range_count;    /* normalised ranges at ex->ranges */
    struct map_request *req; /* in ex->scratch: what gets mapped, the direct map's first */
    uint32_t req_count, req_cap;
    uint64_t pa_limit;     /* the direct map's reach: the PMM tracks nothing beyond it */
    uint64_t fb_va;        /* where the framebuffer goes (0 without one) */
    struct pt_span *spans; /* in ex->scratch after req: the same, for pt_min_tables */
    uint64_t max_page;     /* the HHDM's largest page */
    struct bi_layout layout;
    uint64_t bi_pa;
    struct canopy_bootinfo *bi; /* at bi_pa */
    struct pmm *pmm;            /* inside the boot info */
    struct pt pt;
    uint64_t min_tables;
    uint32_t manifest_count;
};

/* The normalised map and the PMM, on the stack until the boot info has room for it. */
static void start_pmm(struct handoff *h, struct pmm *boot_pmm)
{
    const struct fw_exit *ex = h->ex;
    enum pmm_status ps =
        memmap_normalise(ex->efi_map, ex->efi_map_size, ex->desc_size, ex->desc_version, ex->ranges,
                         ex->range_capacity, &h->range_count);
    if (ps != PMM_OK)
        FATAL("the firmware's memory map is unusable: %s", pmm_status_str(ps));
    /*
     * No address reaches above the CPU's physical address width; a map that
     * reports memory there is wrong, and a PMM that handed it out would fail
     * much later. CPUID gives 32 to 52 bits; anything else is not trusted.
     */
    unsigned bits = s1.cpu.phys_bits;
    if (bits >= 32 && bits <= 52) {
        uint64_t above = memmap_clip(ex->ranges, &h->range_count, 1ull << bits);
        if (above)
            con_printf("canopy: the memory map lists %llu KiB above the CPU's %u-bit physical "
                       "address limit (MAXPHYADDR); ignored\n",
                       (unsigned long long)bytes_to_kib(above), bits);
    }
    /* The direct map ends where the dynamic area begins (64 TiB of physical space with 4 levels).
     */
    h->pa_limit = CANOPY_DYNAMIC_BASE - s1.hhdm;
    ps = pmm_init_below(boot_pmm, ex->ranges, h->range_count, 0, h->pa_limit);
    if (ps != PMM_OK)
        FATAL("cannot set up the physical memory manager: %s", pmm_status_str(ps));
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
 * What gets mapped first: the direct map, RAM only. A framebuffer the map
 * calls RAM would need two memory types for its frames (write-back in the
 * direct map, write-combining for the console): it is given up, as Linux's
 * ioremap refuses RAM.
 */
static void plan_direct_map(struct handoff *h)
{
    h->req = h->ex->scratch;
    h->req_cap = h->ex->range_capacity + FIXED_REQUESTS;
    h->spans = (struct pt_span *)(h->req + h->req_cap);
    h->max_page = s1.cpu.pdpe1gb ? PAGE_SIZE_1G : PAGE_SIZE_2M;
    uint64_t clipped;
    uint32_t n = mapplan_hhdm(h->ex->ranges, h->range_count, s1.hhdm, h->pa_limit, h->max_page,
                              h->req, h->req_cap, &clipped);
    if (n == UINT32_MAX)
        FATAL("too many HHDM ranges");
    if (clipped)
        con_printf("canopy: %llu MiB of RAM lie beyond the direct map's reach; not used\n",
                   (unsigned long long)bytes_to_mib(clipped));
    if (s1.fb.format != CANOPY_FB_NONE &&
        mapplan_touches_ram(h->ex->ranges, h->range_count, s1.fb.base, s1.fb.size_bytes)) {
        con_printf("canopy: the framebuffer at 0x%llx lies in RAM per the memory map; serial "
                   "console only\n",
                   (unsigned long long)s1.fb.base);
        s1.fb = (struct canopy_framebuffer){.format = CANOPY_FB_NONE};
    }
    h->req_count = n;
}

/*
 * The boot info, with room for the copies the kernel needs; the PMM moves
 * into it, so every later allocation is recorded there.
 */
static void place_bootinfo(struct handoff *h, struct pmm *boot_pmm)
{
    /* Beyond the direct map's: segments, stack, trampoline, tables, framebuffer; alias pieces. */
    uint32_t total_requests = h->req_count + s1.plan.count + 4 + 2 * (s1.plan.count + 1);
    h->layout = bi_layout(h->range_count, h->ex->efi_map_size, total_requests);
    const struct bi_layout *l = &h->layout;
    enum pmm_status ps =
        pmm_alloc_run(boot_pmm, pages_for_bytes(l->total), CANOPY_OWNER_BOOTINFO, &h->bi_pa);
    if (ps != PMM_OK)
        FATAL("no memory for the boot info (%llu KiB): %s",
              (unsigned long long)bytes_to_kib(l->total), pmm_status_str(ps));
    uint8_t *bi_bytes = phys_ptr(h->bi_pa);
    __builtin_memset(bi_bytes, 0, pages_for_bytes(l->total) * PAGE_SIZE);
    h->bi = (struct canopy_bootinfo *)bi_bytes;
    h->pmm = (struct pmm *)(bi_bytes + l->pmm);
    *h->pmm = *boot_pmm;
    __builtin_memcpy(bi_bytes + l->ranges, h->ex->ranges,
                     h->range_count * sizeof(struct canopy_mem_range));
    __builtin_memcpy(bi_bytes + l->efi_map, h->ex->efi_map, h->ex->efi_map_size);
}
/* Gives the direct-map alias of [pa, pa + size) the flags, or stops: the room was counted. */
static void protect_alias(struct handoff *h, uint64_t pa, uint64_t size, uint16_t flags)
{
    if (!mapplan_hhdm_protect(h->req, &h->req_count, h->req_cap - NON_HHDM_REQUESTS, pa, size,
                              flags))
        FATAL("internal error: no room to protect the direct map's alias of 0x%llx",
              (unsigned long long)pa);
}

/*
 * The kernel's segments, the boot stack above its guard page, the trampoline
 * page and the descriptor tables' pages (identity-mapped: the kernel drops
 * them), the framebuffer; the direct-map aliases of the read-only segments
 * and of the trampoline page become read-only first (while the requests are
 * still the direct map's alone).
 */
static void plan_kernel(struct handoff *h)
{
    struct canopy_bootinfo *bi = h->bi;
    uint64_t seg_pa[CANOPY_MAX_SEGMENTS];
    for (uint32_t i = 0; i < s1.plan.count; i++)
        seg_pa[i] = load_segment(h->pmm, &s1.plan.seg[i]);
    uint64_t stack_pa;
    enum pmm_status ps = pmm_alloc_run(h->pmm, pages_for_bytes(CANOPY_BOOT_STACK_SIZE),
                                       CANOPY_OWNER_STACK, &stack_pa);
    if (ps != PMM_OK)
        FATAL("no memory for the boot stack: %s", pmm_status_str(ps));
    __builtin_memset(phys_ptr(stack_pa), 0, CANOPY_BOOT_STACK_SIZE);
    uint64_t tramp = (uint64_t)(uintptr_t)trampoline_start;

    for (uint32_t i = 0; i < s1.plan.count; i++) {
        const struct elf_segment_plan *s = &s1.plan.seg[i];
        if (!(s->flags & CANOPY_SEG_W))
            protect_alias(h, seg_pa[i], s->page_count * PAGE_SIZE, 0);
    }
    protect_alias(h, tramp, PAGE_SIZE, 0);

    for (uint32_t i = 0; i < s1.plan.count; i++) {
        const struct elf_segment_plan *s = &s1.plan.seg[i];
        uint16_t flags = (uint16_t)(((s->flags & CANOPY_SEG_W) ? CANOPY_MAP_W : 0) |
                                    ((s->flags & CANOPY_SEG_X) ? CANOPY_MAP_X : 0));
        h->req[h->req_count++] = mapplan_request_4k(s->vaddr, seg_pa[i], s->page_count * PAGE_SIZE,
                                                    flags, CANOPY_OWNER_KERNEL_IMAGE);
        bi->segments[i] = (struct canopy_segment){
            .vaddr = s->vaddr, .paddr = seg_pa[i], .page_count = s->page_count, .flags = s->flags};
    }
    uint64_t stack_va = CANOPY_DYNAMIC_BASE + PAGE_SIZE; /* CANOPY_DYNAMIC_BASE stays unmapped */
    h->req[h->req_count++] = mapplan_request_4k(stack_va, stack_pa, CANOPY_BOOT_STACK_SIZE,
                                                CANOPY_MAP_W, CANOPY_OWNER_STACK);
    bi->stack_top_va = stack_va + CANOPY_BOOT_STACK_SIZE;
    h->req[h->req_count++] =
        mapplan_request_4k(tramp, tramp, PAGE_SIZE, CANOPY_MAP_X, CANOPY_OWNER_TRAMPOLINE);
    bi->trampoline_page = tramp;
    /* The GDT and IDT the trampoline loads before CR3 changes: mapped on both sides of it. */
    uint64_t tables, tables_bytes;
    fw_fault_tables_pages(&tables, &tables_bytes);
    h->req[h->req_count++] =
        mapplan_request_4k(tables, tables, tables_bytes, CANOPY_MAP_W, CANOPY_OWNER_TRAMPOLINE);
    if (s1.fb.format != CANOPY_FB_NONE)
        h->req[h->req_count++] =
            mapplan_framebuffer(s1.fb.base, s1.fb.size_bytes, s1.cpu.pat, &h->fb_va);
}

/* The page tables, and the manifest written from the same requests. */
static void build_tables(struct handoff *h)
{
    struct map_request *req = h->req;
    uint32_t n = h->req_count;
    mapplan_sort(req, n);
    if (mapplan_overlaps(req, n))
        FATAL("internal error: two mappings overlap");
    for (uint32_t i = 0; i < n; i++)
        h->spans[i] = (struct pt_span){.va = req[i].va,
                                       .pa = req[i].pa,
                                       .size = req[i].size,
                                       .max_page_size = req[i].max_page_size};
    if (pt_min_tables(h->spans, n, s1.levels, &h->min_tables) != PT_OK)
        h->min_tables = 0;
    struct pt_frames frames = {.alloc = pt_frame_alloc, .free = pt_frame_free, .ctx = h->pmm};
    enum pt_status pst = pt_init(&h->pt, s1.levels, s1.cpu.nx, 0, frames);
    if (pst != PT_OK)
        FATAL("cannot create page tables: %s", pt_status_str(pst));
    struct canopy_mapping *manifest =
        (struct canopy_mapping *)((uint8_t *)h->bi + h->layout.manifest);
    for (uint32_t i = 0; i < n; i++) {
        const struct map_request *r = &req[i];
        pst = pt_map(&h->pt, r->va, r->pa, r->size, pt_attrs(r->flags), r->max_page_size);
        if (pst != PT_OK)
            FATAL("cannot map 0x%llx-0x%llx: %s", (unsigned long long)r->va,
                  (unsigned long long)(r->va + r->size - 1), pt_status_str(pst));
        if (!mapplan_manifest_add(r, manifest, h->layout.manifest_cap, &h->manifest_count))
            FATAL("internal error: the mapping manifest is full");
    }
}

/* The boot info itself: every field but the segments, stack and trampoline (plan_kernel). */
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
    bi->segment_count = s1.plan.count;
    bi->kernel_entry_va = s1.plan.entry;
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
 * picture at the top of this file). Any failure is FATAL: one line, a reset.
 */
static _Noreturn void after_exit(const struct fw_exit *ex)
{
    struct handoff h = {.ex = ex};
    struct pmm boot_pmm;
    start_pmm(&h, &boot_pmm);
    phase(CANOPY_PHASE_PMM_READY);
    if (s1.cfg.verbose >= 2)
        show_ranges(&h);
    plan_direct_map(&h);
    place_bootinfo(&h, &boot_pmm);
    plan_kernel(&h);
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
    phase(CANOPY_PHASE_BEFORE_EBS);
    static struct fw_exit ex; /* read after the firmware's stack is given up */
    st = fw_exit_boot_services(SCRATCH_PER_RANGE, SCRATCH_FIXED, &ex);
    if (st == FW_OK)
        cpu_run_on_own_stack(after_exit, &ex);
    give_up(st, "cannot exit boot services (%s)", fw_status_str(st));
free_kernel:
    fw_free_file((void *)s1.kernel, s1.kernel_size);
    return st;
}

enum fw_status stage1_main(void)
{
    return boot();
}
