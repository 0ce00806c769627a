/*
 * memmap: the firmware's memory map while boot services live, for what stage
 * 1 checks before it commits to a boot (how much conventional memory there
 * is), and the allocations at addresses stage 1 chose from the map (its
 * claims of the memory it writes after ExitBootServices). The final map,
 * taken at ExitBootServices, is exit.c's.
 *
 * Called by main.c (validate_kernel, claim_memory).
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

enum fw_status fw_memory_summary(uint64_t *conventional_bytes)
{
    EFI_MEMORY_DESCRIPTOR *map;
    UINTN size, desc_size;
    EFI_STATUS s = get_map(&map, &size, &desc_size);
    if (EFI_ERROR(s))
        return fw_from_efi(s);
    /* Conventional memory above the first MiB (the PMM never hands that out). */
    uint64_t total = 0;
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
    }
    fw_bs->FreePool(map);
    *conventional_bytes = total;
    return FW_OK;
}

enum fw_status fw_claim_pages(uint64_t pa, uint64_t page_count)
{
    EFI_PHYSICAL_ADDRESS at = pa;
    EFI_STATUS s = fw_bs->AllocatePages(AllocateAddress, EfiLoaderData, page_count, &at);
    if (!EFI_ERROR(s) && at != pa) { /* a firmware that moved it: not what was asked */
        fw_bs->FreePages(at, page_count);
        return FW_FAILED;
    }
    return fw_from_efi(s);
}

void fw_release_pages(uint64_t pa, uint64_t page_count)
{
    fw_bs->FreePages(pa, page_count);
}
