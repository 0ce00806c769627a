/*
 * memmap: the firmware's memory map while boot services live, for what stage
 * 1 checks before it commits to a boot: how much conventional memory there is
 * and the largest block the buddy PMM could give. The final map, taken at
 * ExitBootServices, is exit.c's.
 *
 * Called by main.c (validate_kernel).
 */
#include <canopy/page.h>
#include <pmm/pmm.h>

#include "fw_efi.h"

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
