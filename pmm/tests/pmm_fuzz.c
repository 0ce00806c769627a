/*
 * pmm_fuzz: bytes -> a UEFI map inside 4 MiB of simulated memory -> the
 * normaliser -> pmm_init -> a sequence of operations, each mirrored in the
 * naive frame model (pmm_model.h), with pmm_check after every step.
 *
 * Input: byte 0 = descriptor count (1..16), then 4 bytes per descriptor
 *   [0] type selector   [1] start (in 4-page units)   [2] pages   [3] extra pages * 256
 * then 4 bytes per operation: opcode, and three argument bytes.
 * Every status must be the one the model predicts; a failed call must change
 * nothing; free and reclaimable counts must match the model.
 */
#include "pmm_model.h"

#define SIM_FRAMES 1024u /* 4 MiB */

typedef struct canopy_mem_range range_t;

static struct sim sim;

static int same_state(const struct pmm *a, const struct pmm *b, const unsigned char *saved)
{
    return memcmp(a, b, sizeof(*a)) == 0 &&
           memcmp(saved, (void *)(uintptr_t)(b->state + b->virt_offset), b->state_bytes) == 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const uint32_t types[] = {EFI_CONVENTIONAL, EFI_CONVENTIONAL, EFI_CONVENTIONAL,
                                     EFI_BS_DATA,      EFI_LOADER_CODE,  EFI_RESERVED,
                                     EFI_ACPI_NVS,     EFI_MMIO};
    if (size < 1)
        return 0;
    if (sim.buf == NULL)
        sim_open(&sim, 0, SIM_FRAMES * PAGE_SIZE);
    size_t nd = 1 + data[0] % 16;
    data++;
    size--;
    if (size < 4 * nd)
        return 0;

    struct efimap m;
    efimap_init(&m, 48);
    for (size_t i = 0; i < nd; i++) {
        const uint8_t *d = data + 4 * i;
        uint32_t type = types[d[0] % 8];
        uint64_t start = (uint64_t)d[1] * 4;
        uint64_t pages = d[2] + (uint64_t)(d[3] % 4) * 256;
        if (d[0] & 0x80)
            type = EFI_MMIO, start += 0x100000000ull; /* far above: never touched */
        else if (start + pages > SIM_FRAMES)
            pages = SIM_FRAMES - start; /* RAM stays inside the simulated memory */
        efimap_add(&m, type, start * PAGE_SIZE, pages, 0);
    }
    data += 4 * nd;
    size -= 4 * nd;

    range_t *r;
    uint32_t n;
    if (efimap_normalise(&m, &r, &n) != PMM_OK)
        FUZZ_FAIL();
    struct pmm p;
    enum pmm_status st = pmm_init(&p, r, n, sim.offset);
    if (st != PMM_OK) {
        if (st != PMM_ERR_BAD_MAP && st != PMM_ERR_NOMEM)
            FUZZ_FAIL();
        free(r);
        efimap_free(&m);
        return 0;
    }
    char msg[160];
    if (pmm_check(&p, msg, sizeof(msg)) != PMM_OK) {
        fprintf(stderr, "after init: %s\n", msg);
        FUZZ_FAIL();
    }
    struct model md;
    if (!model_init(&md, p.frame_count, r, n, &p) || p.base_frame != 0)
        FUZZ_FAIL();
    unsigned char *saved = malloc(p.state_bytes);

    for (size_t i = 0; i + 4 <= size; i += 4) {
        const uint8_t *op = data + i;
        uint64_t a, phys;
        unsigned order = op[1] % 12, owner = 1 + op[2] % 15;
        struct pmm before = p;
        memcpy(saved, (void *)(uintptr_t)(p.state + p.virt_offset), p.state_bytes);
        switch (op[0] % 8) {
        case 0:
        case 1:
            st = pmm_alloc(&p, order, owner, &a);
            if (owner == CANOPY_OWNER_PMM) {
                if (st != PMM_ERR_INVALID)
                    FUZZ_FAIL();
            } else if (model_has_block(&md, order, UINT64_MAX)) {
                if (st != PMM_OK || a % (PAGE_SIZE << order))
                    FUZZ_FAIL();
                for (uint64_t j = 0; j < (1ull << order); j++)
                    if (md.state[(a >> PAGE_SHIFT) + j] != M_FREE)
                        FUZZ_FAIL();
                model_take(&md, a, order, owner);
            } else if (st != PMM_ERR_NOMEM) {
                FUZZ_FAIL();
            }
            break;
        case 2:
        case 3:
            if (md.live_count == 0)
                break;
            a = md.live[(op[1] | (unsigned)op[2] << 8) % md.live_count];
            phys = page_down(a);
            order = (unsigned)(a & (PAGE_SIZE - 1));
            if (pmm_free(&p, phys, order) != PMM_OK)
                FUZZ_FAIL();
            model_release(&md, phys, order);
            break;
        case 4: {
            phys = ((uint64_t)op[1] | (uint64_t)(op[2] & 0x07) << 8) << PAGE_SHIFT;
            if (op[2] & 0x10)
                phys += op[3];
            order = op[3] % 20;
            enum pmm_status want = model_free_status(&md, phys, order);
            st = pmm_free(&p, phys, order);
            if (st != want)
                FUZZ_FAIL();
            if (st == PMM_OK)
                model_release(&md, phys, order);
            else if (!same_state(&before, &p, saved))
                FUZZ_FAIL();
            break;
        }
        case 5: {
            uint64_t limit = ((uint64_t)op[2] | (uint64_t)(op[3] & 0x07) << 8) << PAGE_SHIFT;
            st = pmm_alloc_below(&p, order, limit, owner == CANOPY_OWNER_PMM ? 1 : owner, &a);
            if (model_has_block(&md, order, limit >> PAGE_SHIFT)) {
                if (st != PMM_OK || a + (PAGE_SIZE << order) > limit || a % (PAGE_SIZE << order))
                    FUZZ_FAIL();
                model_take(&md, a, order, owner == CANOPY_OWNER_PMM ? 1 : owner);
            } else if (st != PMM_ERR_NOMEM) {
                FUZZ_FAIL();
            } else if (before.cpu[0].count == 0 && !same_state(&before, &p, saved)) {
                FUZZ_FAIL(); /* a failure changes nothing, except that it drains the cache */
            }
            break;
        }
        case 6: {
            uint64_t count = 1 + op[1] % 64;
            if (op[3] & 1 && md.live_count) {
                phys = page_down(md.live[op[2] % md.live_count]);
                count = 1 + op[1] % 4;
                enum pmm_status want = PMM_OK;
                if ((phys >> PAGE_SHIFT) + count > md.frames)
                    want = PMM_ERR_NOT_OWNED;
                for (uint64_t j = 0; j < count && want == PMM_OK; j++)
                    want = model_free_status(&md, phys + j * PAGE_SIZE, 0);
                st = pmm_free_run(&p, phys, count);
                if (st != want)
                    FUZZ_FAIL();
                if (st == PMM_OK) {
                    for (uint64_t j = 0; j < count; j++)
                        model_release(&md, phys + j * PAGE_SIZE, 0);
                } else if (!same_state(&before, &p, saved)) {
                    FUZZ_FAIL();
                }
                break;
            }
            unsigned o = 0;
            while ((1ull << o) < count)
                o++;
            st = pmm_alloc_run(&p, count, CANOPY_OWNER_VMM, &a);
            if (model_has_block(&md, o, UINT64_MAX)) {
                if (st != PMM_OK)
                    FUZZ_FAIL();
                for (uint64_t j = 0; j < count; j++)
                    model_take(&md, a + j * PAGE_SIZE, 0, CANOPY_OWNER_VMM);
            } else if (st != PMM_ERR_NOMEM) {
                FUZZ_FAIL();
            }
            break;
        }
        case 7: {
            if (op[1] == 0xff) {
                uint64_t want = model_reclaim(&md);
                if (pmm_reclaim(&p) != want)
                    FUZZ_FAIL();
                break;
            }
            uint64_t f = ((uint64_t)op[2] | (uint64_t)op[3] << 8) % md.frames;
            if (pmm_is_free(&p, f << PAGE_SHIFT) != (md.state[f] == M_FREE) ||
                pmm_owner_of(&p, f << PAGE_SHIFT) != model_owner(&md, f))
                FUZZ_FAIL();
            break;
        }
        }
        if (pmm_check(&p, msg, sizeof(msg)) != PMM_OK) {
            fprintf(stderr, "after op %zu (%u): %s\n", i / 4, op[0] % 8, msg);
            FUZZ_FAIL();
        }
        struct pmm_counts c;
        pmm_counts(&p, &c);
        if (c.free != md.free_count || c.reclaimable != md.reclaim_count)
            FUZZ_FAIL();
    }

    free(saved);
    model_free(&md);
    free(r);
    efimap_free(&m);
    return 0;
}
