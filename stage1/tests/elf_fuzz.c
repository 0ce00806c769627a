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
#include <stdlib.h>

#include "../load/elf.h"

#define REQUIRE(c)                                                                                 \
    do {                                                                                           \
        if (!(c))                                                                                  \
            abort();                                                                               \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint64_t avail = size ? (uint64_t)data[0] << 16 : 0; /* 0 .. 16 MiB in 64 KiB steps */
    struct elf_plan plan;
    struct elf_error err;
    enum elf_status st = elf_validate(data, size, avail, &plan, &err);
    REQUIRE(err.status == st);
    if (st != ELF_OK) {
        REQUIRE(st < ELF_STATUS_COUNT && err.reason[0] != '\0');
        return 0;
    }
    REQUIRE(plan.count >= 1 && plan.count <= CANOPY_MAX_SEGMENTS);
    uint64_t pages = 0;
    int entry_ok = 0;
    for (uint32_t i = 0; i < plan.count; i++) {
        const struct elf_segment_plan *s = &plan.seg[i];
        REQUIRE(s->vaddr % PAGE_SIZE == 0 && s->vaddr >= CANOPY_KERNEL_BASE);
        REQUIRE(s->page_count >= 1 && s->page_offset < PAGE_SIZE);
        REQUIRE(s->file_size <= s->mem_size && s->mem_size > 0);
        REQUIRE(s->file_offset <= size && s->file_size <= size - s->file_offset);
        REQUIRE((s->flags & (CANOPY_SEG_W | CANOPY_SEG_X)) != (CANOPY_SEG_W | CANOPY_SEG_X));
        uint64_t last_page = s->vaddr + (s->page_count - 1) * PAGE_SIZE;
        REQUIRE(last_page >= s->vaddr); /* no wrap */
        REQUIRE(s->page_offset + s->mem_size <= s->page_count * PAGE_SIZE);
        if (i + 1 < plan.count)
            REQUIRE(last_page < plan.seg[i + 1].vaddr);
        uint64_t start = s->vaddr + s->page_offset;
        if (plan.entry >= start && plan.entry - start < s->mem_size && (s->flags & CANOPY_SEG_X))
            entry_ok = 1;
        pages += s->page_count;
    }
    REQUIRE(entry_ok);
    REQUIRE(pages == plan.total_pages && pages * PAGE_SIZE <= avail);
    return 0;
}
