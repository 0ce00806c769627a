/*
 * The fake kernel behind the shell's tests: plain data and callbacks that
 * record what they were asked. See fake_ops.h.
 */
#include "fake_ops.h"

#include <canopy/fmt.h>
#include <canopy/page.h>

#include <stdlib.h>
#include <string.h>

static void fake_write(void *ctx, const char *s, size_t n)
{
    struct fake *f = ctx;
    f->out_total += n;
    f->writes++;
    size_t room = f->out_cap - f->out_len;
    size_t k = n < room ? n : room;
    memcpy(f->out + f->out_len, s, k);
    f->out_len += k;
    f->out[f->out_len] = 0;
}

static const struct pmm *fake_pmm(void *ctx)
{
    struct fake *f = ctx;
    return &f->pmm;
}

static const struct canopy_mem_range *fake_memmap(void *ctx, size_t *count)
{
    struct fake *f = ctx;
    *count = f->map_count;
    return f->map;
}

static void fake_vma_bounds(void *ctx, uint64_t *start, uint64_t *last)
{
    struct fake *f = ctx;
    *start = f->space_start;
    *last = f->space_last;
}

static bool fake_vma_next(void *ctx, uint64_t from, struct shell_vma *out)
{
    struct fake *f = ctx;
    for (size_t i = 0; i < f->vma_count; i++) {
        if (f->vmas[i].last >= from) {
            *out = f->vmas[i];
            return true;
        }
    }
    return false;
}

static void fake_pt(void *ctx, enum shell_pt_mode mode, uint64_t start, uint64_t last,
                    fmt_sink sink, void *sink_ctx)
{
    struct fake *f = ctx;
    f->pt_calls++;
    f->pt_mode = mode;
    f->pt_start = start;
    f->pt_last = last;
    if (f->pt_direct)
        fake_write(f, "direct\n", 7);
    fmt_format(sink, sink_ctx, "dump %d %016llx %016llx\n", (int)mode, (unsigned long long)start,
               (unsigned long long)last);
}

/*
 * The fake page tables: FAKE_MEM_VA's two pages are mapped 4K, RW NX, at
 * physical 0x200000; everything else stops at a non-present PD entry.
 */
static void fake_walk(void *ctx, uint64_t va, struct shell_walk *out)
{
    struct fake *f = ctx;
    f->walk_calls++;
    f->walk_va = va;
    memset(out, 0, sizeof(*out));
    out->root = 0x1000;
    out->levels = 4;
    for (unsigned i = 0; i < 4; i++)
        out->walk.level[i].index = (unsigned)((va >> (39 - 9 * i)) & 511);
    out->walk.level[0].entry = 0x2003;
    out->walk.level[1].entry = 0x3003;
    if (va >= FAKE_MEM_VA && va - FAKE_MEM_VA < FAKE_MEM_BYTES) {
        uint64_t page = page_down(va - FAKE_MEM_VA);
        out->walk.depth = 4;
        out->walk.level[2].entry = 0x4003;
        out->walk.level[3].entry = (0x200000 + page) | 0x8000000000000163ull;
        out->walk.present = true;
        out->walk.leaf = (struct pt_leaf){.va = FAKE_MEM_VA + page,
                                          .pa = 0x200000 + page,
                                          .page_size = PAGE_SIZE,
                                          .entry = out->walk.level[3].entry,
                                          .attrs = PT_W | PT_G};
    } else {
        out->walk.depth = 3;
        out->walk.level[2].entry = 0;
    }
}

static bool fake_peek(void *ctx, uint64_t va, void *buf, size_t len)
{
    struct fake *f = ctx;
    f->peek_calls++;
    if (len == 0 || page_down(va) != page_down(va + len - 1))
        f->peek_crossed_page = true;
    if (va < FAKE_MEM_VA || va - FAKE_MEM_VA > FAKE_MEM_BYTES ||
        len > FAKE_MEM_BYTES - (va - FAKE_MEM_VA))
        return false;
    memcpy(buf, f->mem + (va - FAKE_MEM_VA), len);
    return true;
}

static bool fake_selftest(void *ctx, fmt_sink sink, void *sink_ctx)
{
    struct fake *f = ctx;
    f->selftest_calls++;
    fmt_format(sink, sink_ctx, "selftest: fake test ran\n");
    return f->selftest_result;
}

static void fake_boottime(void *ctx, struct shell_boottime *out)
{
    struct fake *f = ctx;
    *out = f->boot;
}

static void fake_reboot(void *ctx)
{
    struct fake *f = ctx;
    f->reboot_calls++;
    f->out_at_reboot = f->out_len;
}

static void fake_poweroff(void *ctx)
{
    struct fake *f = ctx;
    f->poweroff_calls++;
    f->out_at_reboot = f->out_len;
}

void fake_init(struct fake *f, struct shell_ops *ops, size_t out_cap)
{
    memset(f, 0, sizeof(*f));
    f->out_cap = out_cap;
    f->out = malloc(out_cap + 1);
    f->out[0] = 0;

    /* 32 MiB tracked: 8192 frames. */
    f->pmm.frame_count = 8192;
    f->pmm.free_frames = 6000;
    f->pmm.used_frames = 1000;
    f->pmm.reclaimable_frames = 192;
    f->pmm.reserved_frames = 1000;
    f->pmm.free_blocks[0] = 2;  /* 2 frames */
    f->pmm.free_blocks[1] = 1;  /* 2 frames */
    f->pmm.free_blocks[2] = 15; /* 60 frames */
    f->pmm.free_blocks[4] = 3;  /* 48 frames */
    f->pmm.free_blocks[10] = 5; /* 5120 frames */
    f->pmm.free_blocks[8] = 3;  /* 768 frames */
    f->pmm.owner_frames[CANOPY_OWNER_KERNEL_IMAGE] = 600;
    f->pmm.owner_frames[CANOPY_OWNER_PAGE_TABLE] = 400;

    f->map[0] = (struct canopy_mem_range){0, 160, CANOPY_MEM_USABLE, 7, 0xf};
    f->map[1] = (struct canopy_mem_range){0x100000, 0x1f00, CANOPY_MEM_USABLE, 7, 0xf};
    f->map[2] = (struct canopy_mem_range){0x2000000, 0x100, CANOPY_MEM_RECLAIMABLE, 4, 0xf};
    f->map[3] =
        (struct canopy_mem_range){0xffc00000, 0x400, CANOPY_MEM_MMIO, 11, 0x8000000000000001ull};
    f->map_count = 4;

    f->space_start = 0xffff800000000000ull;
    f->space_last = UINT64_MAX;
    f->vmas[0] = (struct shell_vma){0xffff800000000000ull, 0xffff80007fffffffull, PT_W, "hhdm"};
    f->vmas[1] = (struct shell_vma){0xffffc00000000000ull, 0xffffc0000000ffffull, PT_W, "stack"};
    f->vmas[2] = (struct shell_vma){0xffffffff80000000ull, 0xffffffff80003fffull, PT_X, ".text"};
    f->vma_count = 3;

    for (unsigned i = 0; i < FAKE_MEM_BYTES; i++)
        f->mem[i] = (uint8_t)(i * 7 + 3);
    memcpy(f->mem, "Canopy!", 7);

    f->boot.tsc_hz = 1000000; /* 1 MHz: one cycle is a microsecond */
    f->boot.phase_tsc[CANOPY_PHASE_STAGE1_ENTRY] = 5000;
    f->boot.phase_tsc[CANOPY_PHASE_CONFIG_READ] = 17345;
    f->boot.phase_tsc[CANOPY_PHASE_KERNEL_ENTRY] = 1005000;
    f->boot.pt_frames_used = 9;
    f->boot.pt_frames_minimum = 9;
    f->selftest_result = true;

    *ops = (struct shell_ops){
        .ctx = f,
        .write = fake_write,
        .paging_levels = 4,
        .pmm = fake_pmm,
        .memmap = fake_memmap,
        .vma_bounds = fake_vma_bounds,
        .vma_next = fake_vma_next,
        .pt = fake_pt,
        .walk = fake_walk,
        .peek = fake_peek,
        .selftest = fake_selftest,
        .boottime = fake_boottime,
        .reboot = fake_reboot,
        .poweroff = fake_poweroff,
    };
}

void fake_free(struct fake *f)
{
    free(f->out);
    f->out = NULL;
}

void fake_clear(struct fake *f)
{
    f->out_len = 0;
    f->out_total = 0;
    f->writes = 0;
    f->out[0] = 0;
}

void fake_type(struct shell *sh, const char *s)
{
    while (*s)
        shell_input(sh, *s++);
}

void fake_type_n(struct shell *sh, const uint8_t *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        shell_input(sh, (char)s[i]);
}
