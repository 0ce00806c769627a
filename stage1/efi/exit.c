/*
 * exit: the final memory map and ExitBootServices. The buffers for the final
 * map, room to normalise it and main.c's scratch are allocated first, as
 * LoaderData, and the current map is read into them: main.c plans with that
 * map what it claims before the exit, and the final map, read into the same
 * buffers, is no larger than they are. The kernel reclaims them once it has
 * what it needs, which main.c copies into the boot info.
 *
 * Called by main.c (claim_memory, boot) once, last thing before the handover.
 */
#include <canopy/page.h>
#include <canopy/x86/cpu.h>
#include <pmm/pmm.h>

#include "fw_efi.h"

/* The buffers allocated for ExitBootServices, sized from one probe of the map. */
struct exit_buffers {
    EFI_PHYSICAL_ADDRESS map, work;
    UINTN map_cap;
    uint64_t work_bytes, ranges_bytes;
    uint32_t range_cap;
};

static struct exit_buffers buffers; /* between fw_exit_prepare and the exit or its cancel */

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
 * (normalised ranges + scratch). The map buffer gets `spare` extra slots for
 * the descriptors the map gains until the exit: each allocation can split
 * one (Linux adds 8; two allocations follow the probe here, and the caller's
 * claims more). The range capacity assumes the smallest legal descriptor, so
 * it holds whatever descriptor size the final map has.
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

static bool format_known(UINTN desc_size, UINT32 desc_version)
{
    return desc_version == EFI_MEMORY_DESCRIPTOR_VERSION &&
           desc_size >= sizeof(EFI_MEMORY_DESCRIPTOR);
}

enum fw_status fw_exit_prepare(uint64_t spare_descriptors, uint64_t scratch_per_range,
                               uint64_t scratch_fixed, struct fw_exit *out)
{
    struct exit_buffers *b = &buffers;
    UINTN map_size, key = 0, desc_size = 0;
    UINT32 desc_version = 0;
    EFI_STATUS s;

    /*
     * Before the first ExitBootServices call the firmware is untouched, so a map
     * that outgrew its buffer (other agents allocate too) just means starting
     * over with more room.
     */
    for (uint64_t spare = spare_descriptors;; spare *= 4) {
        enum fw_status st = alloc_exit_buffers(spare, scratch_per_range, scratch_fixed, b);
        if (st != FW_OK)
            return st;
        map_size = b->map_cap;
        s = fw_bs->GetMemoryMap(&map_size, (EFI_MEMORY_DESCRIPTOR *)(UINTN)b->map, &key, &desc_size,
                                &desc_version);
        if (!EFI_ERROR(s))
            break;
        free_exit_buffers(b);
        if (s != EFI_BUFFER_TOO_SMALL || spare >= 64 * spare_descriptors)
            return FW_FAILED;
    }
    if (!format_known(desc_size, desc_version)) {
        free_exit_buffers(b);
        return FW_UNSUPPORTED;
    }
    *out = (struct fw_exit){
        .efi_map = (const void *)(UINTN)b->map,
        .efi_map_size = map_size,
        .map_capacity = b->map_cap,
        .desc_size = desc_size,
        .desc_version = desc_version,
        .range_capacity = b->range_cap,
        .ranges = (struct canopy_mem_range *)(UINTN)b->work,
        .scratch = (uint8_t *)(UINTN)b->work + b->ranges_bytes,
        .scratch_bytes = b->work_bytes - b->ranges_bytes,
    };
    return FW_OK;
}

void fw_exit_cancel(struct fw_exit *ex)
{
    free_exit_buffers(&buffers);
    *ex = (struct fw_exit){0};
}

enum fw_status fw_exit_boot_services(struct fw_exit *ex)
{
    struct exit_buffers *b = &buffers;
    EFI_MEMORY_DESCRIPTOR *map = (EFI_MEMORY_DESCRIPTOR *)(UINTN)b->map;
    UINTN map_size = b->map_cap, key = 0, desc_size = 0;
    UINT32 desc_version = 0;

    /*
     * Last, so that a failure up to here (a fault at phase before-ebs) is
     * still counted; before the final map, as a SetVariable may allocate.
     */
    fault_before_exit();

    /*
     * The final map goes into the buffer the plan was made with. It may not
     * outgrow it: what stage 1 claimed for the boot info holds a copy of at
     * most this many bytes. Nothing is allocated from here on.
     */
    EFI_STATUS s = fw_bs->GetMemoryMap(&map_size, map, &key, &desc_size, &desc_version);
    if (s == EFI_BUFFER_TOO_SMALL)
        return FW_TOO_BIG;
    if (EFI_ERROR(s))
        return FW_FAILED;
    if (!format_known(desc_size, desc_version) || desc_size != ex->desc_size)
        return FW_UNSUPPORTED;

    /*
     * A failed call (a stale key: EFI_INVALID_PARAMETER) may have shut part of
     * the firmware down. UEFI then allows only GetMemoryMap, the memory
     * allocation services and ExitBootServices. Linux re-reads the map into the
     * same buffer and retries once; the retries here are bounded by count.
     */
    unsigned calls = 0;
    const char *why = NULL;
    for (;;) {
        calls++;
        s = fw_bs->ExitBootServices(fw_image, key);
        if (!EFI_ERROR(s) || calls == 3)
            break;
        map_size = b->map_cap;
        s = fw_bs->GetMemoryMap(&map_size, map, &key, &desc_size, &desc_version);
        if (s == EFI_BUFFER_TOO_SMALL) {
            why = "the memory map outgrew the room claimed for it";
            break;
        }
        if (EFI_ERROR(s)) {
            why = "GetMemoryMap failed after a failed ExitBootServices";
            break;
        }
        if (!format_known(desc_size, desc_version) || desc_size != ex->desc_size) {
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
    ex->efi_map_size = map_size;
    ex->desc_version = desc_version;
    return FW_OK;
}
