/*
 * platform: what stage 1 takes from the firmware besides files: the memory
 * map, the GOP framebuffer, the ACPI RSDP, a TSC frequency, random bits, and
 * finally ExitBootServices and the reset that ends a failed boot after it.
 *
 * Every buffer is LoaderData: the kernel reclaims it once it has copied what
 * it needs, and everything it needs was copied into PMM frames by main.c.
 */
#include <canopy/fmt.h>
#include <canopy/page.h>
#include <pmm/pmm.h>

#include <canopy/x86/cpu.h>
#include <canopy/x86/reset.h>

#include "fw_efi.h"

/* The TSC rate once fw_tsc_hz has measured it, for the waits after ExitBootServices. */
static uint64_t tsc_hz_known;

static bool guid_eq(const EFI_GUID *a, const EFI_GUID *b)
{
    const uint8_t *x = (const uint8_t *)a, *y = (const uint8_t *)b;
    for (unsigned i = 0; i < sizeof(EFI_GUID); i++)
        if (x[i] != y[i])
            return false;
    return true;
}

void fw_stall_us(uint64_t us)
{
    fw_bs->Stall(us);
}

uint64_t fw_system_table(void)
{
    return (uint64_t)(UINTN)fw_st;
}

/* ---- memory map ------------------------------------------------------------ */

/* Fetches the current map into pool memory; the caller frees *map. */
static EFI_STATUS get_map(EFI_MEMORY_DESCRIPTOR **map, UINTN *size, UINTN *desc_size)
{
    UINTN key;
    UINT32 version;
    *size = 0;
    EFI_STATUS s = fw_bs->GetMemoryMap(size, NULL, &key, desc_size, &version);
    if (s != EFI_BUFFER_TOO_SMALL)
        return EFI_ERROR(s) ? s : EFI_DEVICE_ERROR;
    /* Room for the descriptors the pool allocation itself may add. */
    for (int tries = 0; tries < 4; tries++) {
        UINTN cap = *size + 8 * (*desc_size ? *desc_size : sizeof(EFI_MEMORY_DESCRIPTOR));
        s = fw_bs->AllocatePool(EfiLoaderData, cap, (void **)map);
        if (EFI_ERROR(s))
            return s;
        *size = cap;
        s = fw_bs->GetMemoryMap(size, *map, &key, desc_size, &version);
        if (!EFI_ERROR(s))
            return *desc_size >= sizeof(EFI_MEMORY_DESCRIPTOR) ? EFI_SUCCESS
                                                               : EFI_INCOMPATIBLE_VERSION;
        fw_bs->FreePool(*map);
        if (s != EFI_BUFFER_TOO_SMALL)
            return s;
    }
    return EFI_BUFFER_TOO_SMALL;
}

/* A run of conventional memory, compacted over the map buffer that held its descriptor. */
struct run {
    uint64_t start, end; /* bytes, [start, end) */
};

/* The largest naturally aligned power-of-two block inside [start, end). */
static uint64_t largest_block(uint64_t start, uint64_t end)
{
    uint64_t best = 0;
    for (unsigned k = PAGE_SHIFT; k < 63; k++) {
        uint64_t size = 1ull << k;
        uint64_t at = align_up(start, size);
        if (at < start || at > end || end - at < size)
            break;
        best = size;
    }
    return best;
}

enum fw_status fw_memory_summary(uint64_t *conventional_bytes, uint64_t *largest_block_bytes)
{
    EFI_MEMORY_DESCRIPTOR *map;
    UINTN size, desc_size;
    EFI_STATUS s = get_map(&map, &size, &desc_size);
    if (EFI_ERROR(s))
        return fw_from_efi(s);
    /*
     * Conventional runs above the first MiB (the PMM never hands that out),
     * written over the buffer: run i lands at i * 16 bytes, never past
     * descriptor i, which has been read already (desc_size >= 40).
     */
    struct run *runs = (struct run *)map;
    uint64_t n = 0, total = 0;
    for (UINTN off = 0; off + desc_size <= size; off += desc_size) {
        const EFI_MEMORY_DESCRIPTOR *d = (const void *)((const uint8_t *)map + off);
        if (d->Type != EfiConventionalMemory || d->NumberOfPages == 0)
            continue;
        uint64_t start = d->PhysicalStart, end = start + d->NumberOfPages * PAGE_SIZE;
        if (end <= start || end <= PMM_LOW_RESERVED)
            continue;
        if (start < PMM_LOW_RESERVED)
            start = PMM_LOW_RESERVED;
        total += end - start;
        /* Insertion by start address, so touching runs can be merged below. */
        uint64_t j = n++;
        while (j > 0 && runs[j - 1].start > start) {
            runs[j] = runs[j - 1];
            j--;
        }
        runs[j] = (struct run){start, end};
    }
    uint64_t largest = 0;
    for (uint64_t i = 0; i < n;) {
        uint64_t start = runs[i].start, end = runs[i].end;
        for (i++; i < n && runs[i].start <= end; i++)
            if (runs[i].end > end)
                end = runs[i].end;
        uint64_t b = largest_block(start, end);
        if (b > largest)
            largest = b;
    }
    fw_bs->FreePool(map);
    *conventional_bytes = total;
    *largest_block_bytes = largest;
    return FW_OK;
}

/* ---- GOP --------------------------------------------------------------------- */

static uint32_t mask_top_bit(uint32_t m)
{
    return m ? 32 - (uint32_t)__builtin_clz(m) : 0;
}

static enum fw_status describe_mode(EFI_GRAPHICS_OUTPUT_PROTOCOL *gop,
                                    struct canopy_framebuffer *fb, const char **note);

static EFI_GRAPHICS_OUTPUT_PROTOCOL *find_gop(void)
{
    EFI_GUID guid = EFI_GRAPHICS_OUTPUT_PROTOCOL_GUID;
    EFI_GRAPHICS_OUTPUT_PROTOCOL *gop = NULL;
    /* The GOP behind the console is the one the user is looking at. */
    if (fw_st->ConsoleOutHandle &&
        !EFI_ERROR(fw_bs->HandleProtocol(fw_st->ConsoleOutHandle, &guid, (void **)&gop)) && gop)
        return gop;
    gop = NULL;
    if (!EFI_ERROR(fw_bs->LocateProtocol(&guid, NULL, (void **)&gop)))
        return gop;
    return NULL;
}

/* A mode the console can draw on: a linear framebuffer with known pixels. */
static bool mode_is_linear(const EFI_GRAPHICS_OUTPUT_MODE_INFORMATION *info)
{
    return info->PixelFormat == PixelRedGreenBlueReserved8BitPerColor ||
           info->PixelFormat == PixelBlueGreenRedReserved8BitPerColor ||
           info->PixelFormat == PixelBitMask;
}

#define GOP_MODES_MAX  1024
#define FB_PREFERRED_W 1920 /* the largest mode picked on our own: plenty for a text console */
#define FB_PREFERRED_H 1200

/*
 * Picks a mode: exactly width x height when asked (0, 0: none asked), else the
 * largest linear mode within FB_PREFERRED_W x FB_PREFERRED_H, else the smallest
 * linear one. Returns false if no mode qualifies.
 */
static bool pick_mode(EFI_GRAPHICS_OUTPUT_PROTOCOL *gop, uint32_t width, uint32_t height,
                      UINT32 *out)
{
    bool found = false, found_fit = false;
    uint64_t best_area = 0;
    /* Real adapters offer tens of modes; the cap bounds the loop whatever MaxMode says. */
    for (UINT32 m = 0; m < gop->Mode->MaxMode && m < GOP_MODES_MAX; m++) {
        EFI_GRAPHICS_OUTPUT_MODE_INFORMATION *info;
        UINTN size;
        if (EFI_ERROR(gop->QueryMode(gop, m, &size, &info)))
            continue;
        uint32_t w = info->HorizontalResolution, h = info->VerticalResolution;
        bool linear = mode_is_linear(info);
        fw_bs->FreePool(info);
        if (!linear)
            continue;
        if (width && height) {
            if (w == width && h == height) {
                *out = m;
                return true;
            }
            continue;
        }
        uint64_t area = (uint64_t)w * h;
        bool fits = w <= FB_PREFERRED_W && h <= FB_PREFERRED_H;
        if ((fits && (!found_fit || area > best_area)) ||
            (!fits && !found_fit && (!found || area < best_area))) {
            *out = m;
            best_area = area;
            found = true;
            found_fit = found_fit || fits;
        }
    }
    return found;
}

enum fw_status fw_framebuffer(uint32_t width, uint32_t height, struct canopy_framebuffer *fb,
                              const char **note)
{
    *fb = (struct canopy_framebuffer){.format = CANOPY_FB_NONE};
    *note = NULL;
    EFI_GRAPHICS_OUTPUT_PROTOCOL *gop = find_gop();
    if (!gop || !gop->Mode || !gop->Mode->Info)
        return FW_NOT_FOUND;
    /*
     * The firmware's current mode is kept unless the config asks for another
     * or the current one cannot be drawn on (blit only).
     */
    UINT32 mode;
    if (width && height) {
        if (!pick_mode(gop, width, height, &mode) || EFI_ERROR(gop->SetMode(gop, mode)))
            *note = "the configured resolution is not offered; keeping the current mode";
    } else if (!mode_is_linear(gop->Mode->Info) && pick_mode(gop, 0, 0, &mode)) {
        gop->SetMode(gop, mode);
    }
    enum fw_status st = describe_mode(gop, fb, note);
    fbtext_use(fb);
    return st;
}

void fw_framebuffer_for_reports(void)
{
    struct canopy_framebuffer fb = {.format = CANOPY_FB_NONE};
    const char *note;
    EFI_GRAPHICS_OUTPUT_PROTOCOL *gop = find_gop();
    if (gop && gop->Mode && gop->Mode->Info)
        (void)describe_mode(gop, &fb, &note);
    fbtext_use(&fb);
}

/* Fills *fb from the GOP's current mode; FW_UNSUPPORTED (and *note) if it cannot be drawn on. */
static enum fw_status describe_mode(EFI_GRAPHICS_OUTPUT_PROTOCOL *gop,
                                    struct canopy_framebuffer *fb, const char **note)
{
    const EFI_GRAPHICS_OUTPUT_MODE_INFORMATION *info = gop->Mode->Info;
    uint32_t bpp = 32;
    switch (info->PixelFormat) {
    case PixelRedGreenBlueReserved8BitPerColor:
        fb->format = CANOPY_FB_RGBX;
        fb->red_mask = 0x0000ff;
        fb->green_mask = 0x00ff00;
        fb->blue_mask = 0xff0000;
        fb->reserved_mask = 0xff000000;
        break;
    case PixelBlueGreenRedReserved8BitPerColor:
        fb->format = CANOPY_FB_BGRX;
        fb->red_mask = 0xff0000;
        fb->green_mask = 0x00ff00;
        fb->blue_mask = 0x0000ff;
        fb->reserved_mask = 0xff000000;
        break;
    case PixelBitMask: {
        const EFI_PIXEL_BITMASK *m = &info->PixelInformation;
        fb->format = CANOPY_FB_BITMASK;
        fb->red_mask = m->RedMask;
        fb->green_mask = m->GreenMask;
        fb->blue_mask = m->BlueMask;
        fb->reserved_mask = m->ReservedMask;
        bpp = (mask_top_bit(m->RedMask | m->GreenMask | m->BlueMask | m->ReservedMask) + 7) & ~7u;
        break;
    }
    default:
        *fb = (struct canopy_framebuffer){.format = CANOPY_FB_NONE};
        *note = "the display has no linear framebuffer (blit only)";
        return FW_UNSUPPORTED;
    }
    if (bpp == 0 || gop->Mode->FrameBufferBase == 0 || info->PixelsPerScanLine == 0) {
        fb->format = CANOPY_FB_NONE;
        *note = "the display reports an unusable framebuffer";
        return FW_UNSUPPORTED;
    }
    fb->base = gop->Mode->FrameBufferBase;
    fb->size_bytes = gop->Mode->FrameBufferSize;
    fb->width = info->HorizontalResolution;
    fb->height = info->VerticalResolution;
    fb->bpp = bpp;
    fb->pitch_bytes = info->PixelsPerScanLine * (bpp / 8);
    /* Some firmware reports a size of 0 or too small; what the mode needs is what gets mapped. */
    uint64_t need = (uint64_t)fb->pitch_bytes * fb->height;
    if (fb->size_bytes < need)
        fb->size_bytes = need;
    return FW_OK;
}

/* ---- the trampoline page's attributes ------------------------------------------ */

/*
 * EFI_MEMORY_ATTRIBUTE_PROTOCOL, new in UEFI 2.10, declared here because
 * gnu-efi's headers predate it: Get, Set and Clear of EFI_MEMORY_RP/XP/RO.
 */
#define MEMORY_ATTRIBUTE_PROTOCOL_GUID                                                             \
    {                                                                                              \
        0xf4560cf6, 0x40ec, 0x4b4a,                                                                \
        {                                                                                          \
            0xa1, 0x92, 0xbf, 0x1d, 0x57, 0xd0, 0xb1, 0x89                                         \
        }                                                                                          \
    }
#define MEMORY_RP 0x0000000000002000ull
#define MEMORY_XP 0x0000000000004000ull
#define MEMORY_RO 0x0000000000020000ull

struct memory_attribute_protocol;
typedef EFI_STATUS(EFIAPI *memory_attr_get_fn)(struct memory_attribute_protocol *self,
                                               EFI_PHYSICAL_ADDRESS base, UINT64 length,
                                               UINT64 *attributes);
typedef EFI_STATUS(EFIAPI *memory_attr_change_fn)(struct memory_attribute_protocol *self,
                                                  EFI_PHYSICAL_ADDRESS base, UINT64 length,
                                                  UINT64 attributes);
struct memory_attribute_protocol {
    memory_attr_get_fn get;
    memory_attr_change_fn set;
    memory_attr_change_fn clear;
};

void fw_trampoline_exec(void)
{
    EFI_GUID guid = MEMORY_ATTRIBUTE_PROTOCOL_GUID;
    struct memory_attribute_protocol *mem = NULL;
    /* Absent (UEFI before 2.10, OVMF 2022.11): the image loader mapped .text executable. */
    if (EFI_ERROR(fw_bs->LocateProtocol(&guid, NULL, (void **)&mem)) || !mem)
        return;
    EFI_PHYSICAL_ADDRESS page = (EFI_PHYSICAL_ADDRESS)(UINTN)trampoline_start;
    UINT64 attrs = 0;
    EFI_STATUS s = mem->get(mem, page, PAGE_SIZE, &attrs);
    if (EFI_ERROR(s)) {
        con_printf("canopy: cannot read the trampoline page's attributes (%s)\n",
                   fw_status_str(fw_from_efi(s)));
        return;
    }
    /*
     * Only execute and read access matter: the page is never written, so a
     * read-only mapping (EFI_MEMORY_RO) is kept.
     */
    UINT64 clear = attrs & (MEMORY_XP | MEMORY_RP);
    if (!clear)
        return;
    s = mem->clear(mem, page, PAGE_SIZE, clear);
    con_printf("canopy: the firmware maps the trampoline page %s; %s\n",
               (clear & MEMORY_XP) ? "non-executable" : "read-protected",
               EFI_ERROR(s) ? "the memory attribute protocol cannot change that"
                            : "changed through the memory attribute protocol");
}

/* ---- ACPI, RNG, TSC ----------------------------------------------------------- */

/* An RSDP whose signature and 20-byte checksum hold. */
static bool rsdp_ok(const void *p)
{
    const uint8_t *b = p;
    static const char sig[8] = {'R', 'S', 'D', ' ', 'P', 'T', 'R', ' '};
    for (int i = 0; i < 8; i++)
        if (b[i] != (uint8_t)sig[i])
            return false;
    uint8_t sum = 0;
    for (int i = 0; i < 20; i++)
        sum += b[i];
    return sum == 0;
}

uint64_t fw_rsdp(void)
{
    EFI_GUID acpi20 = ACPI_20_TABLE_GUID, acpi10 = ACPI_TABLE_GUID;
    const EFI_GUID *want[2] = {&acpi20, &acpi10};
    for (int w = 0; w < 2; w++) {
        for (UINTN i = 0; i < fw_st->NumberOfTableEntries; i++) {
            const EFI_CONFIGURATION_TABLE *t = &fw_st->ConfigurationTable[i];
            if (guid_eq(&t->VendorGuid, want[w]) && t->VendorTable && rsdp_ok(t->VendorTable))
                return (uint64_t)(UINTN)t->VendorTable;
        }
    }
    return 0;
}

bool fw_random(uint64_t *out)
{
    EFI_GUID guid = EFI_RNG_PROTOCOL_GUID;
    EFI_RNG_PROTOCOL *rng = NULL;
    if (EFI_ERROR(fw_bs->LocateProtocol(&guid, NULL, (void **)&rng)) || !rng)
        return false;
    uint64_t v = 0;
    if (EFI_ERROR(rng->GetRNG(rng, NULL, sizeof(v), (UINT8 *)&v)))
        return false;
    *out = v;
    return true;
}

uint64_t fw_tsc_hz(void)
{
    if (tsc_hz_known)
        return tsc_hz_known;
    uint32_t max_leaf = arch_cpuid(0, 0).eax;
    uint64_t hz = 0;
    if (max_leaf >= 0x15) {
        /* TSC = crystal * EBX / EAX, when the CPU names its crystal. */
        struct arch_cpuid_regs r = arch_cpuid(0x15, 0);
        if (r.eax && r.ebx && r.ecx)
            hz = (uint64_t)r.ecx * r.ebx / r.eax;
    }
    if (!hz && max_leaf >= 0x16)
        hz = (uint64_t)(arch_cpuid(0x16, 0).eax & 0xffff) * 1000000;
    if (!hz) {
        /* Measure: 20 ms of Stall against the TSC. */
        uint64_t t0 = cpu_tsc();
        fw_bs->Stall(20000);
        hz = (cpu_tsc() - t0) * 50;
    }
    tsc_hz_known = hz;
    return hz;
}

/* ---- ExitBootServices ----------------------------------------------------------- */

/* The buffers allocated for ExitBootServices, sized from one probe of the map. */
struct exit_buffers {
    EFI_PHYSICAL_ADDRESS map, work;
    UINTN map_cap;
    uint64_t work_bytes, ranges_bytes;
    uint32_t range_cap;
};

static void free_exit_buffers(struct exit_buffers *b)
{
    if (b->work)
        fw_bs->FreePages(b->work, pages_for_bytes(b->work_bytes));
    if (b->map)
        fw_bs->FreePages(b->map, pages_for_bytes(b->map_cap));
    *b = (struct exit_buffers){0};
}

/*
 * Probes the map's size and allocates the map buffer and the work space
 * (normalised ranges + scratch). Each allocation can split a descriptor, so
 * the map buffer gets `spare` extra slots (Linux adds 8; two allocations
 * follow the probe). The range capacity assumes the smallest legal
 * descriptor, so it holds whatever descriptor size the final map has.
 */
static enum fw_status alloc_exit_buffers(uint64_t spare, uint64_t scratch_per_range,
                                         uint64_t scratch_fixed, struct exit_buffers *b)
{
    UINTN map_size = 0, key, desc_size = 0;
    UINT32 desc_version;
    *b = (struct exit_buffers){0};
    EFI_STATUS s = fw_bs->GetMemoryMap(&map_size, NULL, &key, &desc_size, &desc_version);
    if (s != EFI_BUFFER_TOO_SMALL)
        return FW_FAILED;
    if (desc_size < sizeof(EFI_MEMORY_DESCRIPTOR))
        desc_size = sizeof(EFI_MEMORY_DESCRIPTOR); /* not every firmware fills it in here */
    b->map_cap = map_size + spare * desc_size;
    if (EFI_ERROR(fw_bs->AllocatePages(AllocateAnyPages, EfiLoaderData, pages_for_bytes(b->map_cap),
                                       &b->map))) {
        b->map = 0;
        return FW_NOMEM;
    }
    b->range_cap = memmap_capacity_for(b->map_cap, sizeof(EFI_MEMORY_DESCRIPTOR));
    b->ranges_bytes = (uint64_t)b->range_cap * sizeof(struct canopy_mem_range);
    b->work_bytes = b->ranges_bytes + (uint64_t)b->range_cap * scratch_per_range + scratch_fixed;
    if (b->range_cap == 0 || b->range_cap == UINT32_MAX ||
        EFI_ERROR(fw_bs->AllocatePages(AllocateAnyPages, EfiLoaderData,
                                       pages_for_bytes(b->work_bytes), &b->work))) {
        b->work = 0;
        free_exit_buffers(b);
        return FW_NOMEM;
    }
    return FW_OK;
}

enum fw_status fw_exit_boot_services(uint64_t scratch_per_range, uint64_t scratch_fixed,
                                     struct fw_exit *out)
{
    struct exit_buffers b;
    UINTN map_size, key = 0, desc_size = 0;
    UINT32 desc_version = 0;
    EFI_STATUS s;

    /*
     * Until the first ExitBootServices call the firmware is untouched, so a map
     * that outgrew its buffer (other agents allocate too) just means starting
     * over with more room.
     */
    for (uint64_t spare = 16;; spare *= 4) {
        enum fw_status st = alloc_exit_buffers(spare, scratch_per_range, scratch_fixed, &b);
        if (st != FW_OK)
            return st;
        map_size = b.map_cap;
        s = fw_bs->GetMemoryMap(&map_size, (EFI_MEMORY_DESCRIPTOR *)(UINTN)b.map, &key, &desc_size,
                                &desc_version);
        if (!EFI_ERROR(s))
            break;
        free_exit_buffers(&b);
        if (s != EFI_BUFFER_TOO_SMALL || spare >= 1024)
            return FW_FAILED;
    }
    if (desc_version != EFI_MEMORY_DESCRIPTOR_VERSION ||
        desc_size < sizeof(EFI_MEMORY_DESCRIPTOR)) {
        free_exit_buffers(&b);
        return FW_UNSUPPORTED;
    }

    /*
     * A failed call (a stale key: EFI_INVALID_PARAMETER) may have shut part of
     * the firmware down. UEFI then allows only GetMemoryMap, the memory
     * allocation services and ExitBootServices. Linux re-reads the map into the
     * same buffer and retries once; when the map has outgrown the buffer, a
     * larger one is still allowed, so the retries are bounded by count, not by
     * the buffer's luck.
     */
    unsigned calls = 0;
    const char *why = NULL;
    for (uint64_t spare = 64;; spare *= 4) {
        calls++;
        s = fw_bs->ExitBootServices(fw_image, key);
        if (!EFI_ERROR(s) || calls == 3)
            break;
        map_size = b.map_cap;
        s = fw_bs->GetMemoryMap(&map_size, (EFI_MEMORY_DESCRIPTOR *)(UINTN)b.map, &key, &desc_size,
                                &desc_version);
        if (s == EFI_BUFFER_TOO_SMALL) {
            free_exit_buffers(&b);
            if (alloc_exit_buffers(spare, scratch_per_range, scratch_fixed, &b) != FW_OK) {
                why = "no memory for a larger memory map";
                break;
            }
            map_size = b.map_cap;
            s = fw_bs->GetMemoryMap(&map_size, (EFI_MEMORY_DESCRIPTOR *)(UINTN)b.map, &key,
                                    &desc_size, &desc_version);
        }
        if (EFI_ERROR(s)) {
            why = "GetMemoryMap failed after a failed ExitBootServices";
            break;
        }
        if (desc_version != EFI_MEMORY_DESCRIPTOR_VERSION ||
            desc_size < sizeof(EFI_MEMORY_DESCRIPTOR)) {
            s = EFI_INCOMPATIBLE_VERSION;
            why = "the memory map changed its descriptor format";
            break;
        }
    }
    arch_cli();
    fw_bs = NULL;
    if (EFI_ERROR(s)) {
        if (why)
            fw_fatal_after_exit(0, "ExitBootServices: %s", why);
        fw_fatal_after_exit(0, "ExitBootServices failed %u times (%s)", calls,
                            s == EFI_INVALID_PARAMETER ? "stale memory map key" : "firmware error");
    }
    con_after_exit();
    *out = (struct fw_exit){
        .efi_map = (const void *)(UINTN)b.map,
        .efi_map_size = map_size,
        .desc_size = desc_size,
        .desc_version = desc_version,
        .range_capacity = b.range_cap,
        .ranges = (struct canopy_mem_range *)(UINTN)b.work,
        .scratch = (uint8_t *)(UINTN)b.work + b.ranges_bytes,
        .scratch_bytes = b.work_bytes - b.ranges_bytes,
    };
    return FW_OK;
}

_Noreturn void fw_reset(void)
{
    uint64_t hz = tsc_hz_known;
    fw_rt->ResetSystem(EfiResetCold, EFI_LOAD_ERROR, 0, NULL);
    /* ResetSystem must not return; if it does, the keyboard controller and port 0xcf9. */
    arch_i8042_pulse_reset();
    cpu_delay_us(hz, 100000);
    arch_rst_cnt_reset();
    cpu_delay_us(hz, 100000);
    arch_triple_fault(); /* the last resort */
}

_Noreturn void fw_fatal_after_exit(uint64_t tsc_hz, const char *fmt, ...)
{
    char line[160];
    va_list ap;
    if (tsc_hz == 0)
        tsc_hz = tsc_hz_known;
    va_start(ap, fmt);
    fmt_vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    /* The screen too (a PC may have no serial port), and a record the next boot shows. */
    char shown[170];
    fmt_snprintf(shown, sizeof(shown), "canopy: %s", line);
    fbtext_line(shown);
    fbtext_line("canopy: resetting in 5 seconds");
    con_set_serial(true);
    con_after_exit();
    con_printf("%s\ncanopy: resetting in 5 seconds\n", shown);
    fault_record_fatal(line);
    cpu_delay_us(tsc_hz, 5000000);
    fw_reset();
}
