/*
 * libFuzzer target for the ELF validator. The input is the kernel file; the
 * memory limit comes from its first byte so the size check is exercised too.
 * Whatever the bytes, the validator must not read outside them (ASan), and
 * an accepted image must satisfy every promise the plan makes: segments
 * sorted, page aligned, inside the kernel area, not sharing a page, file
 * bytes inside the file, no W+X, the entry in an executable segment, the
 * total within the limit. A rejection must carry its status and a reason.
 */
#include <stddef.h>
#include <stdint.h>

#include <canopy/check.h>

#include "../load/elf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint64_t avail = size ? (uint64_t)data[0] << 16 : 0; /* 0 .. 16 MiB in 64 KiB steps */
    struct elf_plan plan;
    struct elf_error err;
    enum elf_status st = elf_validate(data, size, avail, &plan, &err);
    if (err.status != st)
        FUZZ_FAIL();
    if (st != ELF_OK) {
        if (!(st < ELF_STATUS_COUNT && err.reason[0] != '\0'))
            FUZZ_FAIL();
        return 0;
    }
    if (!(plan.count >= 1 && plan.count <= CANOPY_MAX_SEGMENTS))
        FUZZ_FAIL();
    uint64_t pages = 0;
    int entry_ok = 0;
    for (uint32_t i = 0; i < plan.count; i++) {
        const struct elf_segment_plan *s = &plan.seg[i];
        if (!(s->vaddr % PAGE_SIZE == 0 && s->vaddr >= CANOPY_KERNEL_BASE))
            FUZZ_FAIL();
        if (!(s->page_count >= 1 && s->page_offset < PAGE_SIZE))
            FUZZ_FAIL();
        if (!(s->file_size <= s->mem_size && s->mem_size > 0))
            FUZZ_FAIL();
        if (!(s->file_offset <= size && s->file_size <= size - s->file_offset))
            FUZZ_FAIL();
        if ((s->flags & (CANOPY_SEG_W | CANOPY_SEG_X)) == (CANOPY_SEG_W | CANOPY_SEG_X))
            FUZZ_FAIL();
        uint64_t last_page = s->vaddr + (s->page_count - 1) * PAGE_SIZE;
        if (last_page < s->vaddr) /* a wrap */
            FUZZ_FAIL();
        if (s->page_offset + s->mem_size > s->page_count * PAGE_SIZE)
            FUZZ_FAIL();
        if (i + 1 < plan.count && last_page >= plan.seg[i + 1].vaddr)
            FUZZ_FAIL();
        uint64_t start = s->vaddr + s->page_offset;
        if (plan.entry >= start && plan.entry - start < s->mem_size && (s->flags & CANOPY_SEG_X))
            entry_ok = 1;
        pages += s->page_count;
    }
    if (!entry_ok)
        FUZZ_FAIL();
    if (!(pages == plan.total_pages && pages * PAGE_SIZE <= avail))
        FUZZ_FAIL();
    return 0;
}
