/*
 * memattr: makes sure the trampoline page can run, through the memory
 * attribute protocol where the firmware has one (docs/stage1.md, "The
 * trampoline page and NX loader data").
 *
 * What it cleared it sets again when stage 1 hands control back to the
 * firmware (fw_trampoline_exec_undo): the page belongs to stage 1's image,
 * which the firmware frees and may reuse for data it expects to be NX.
 *
 * Called by fault.c (fw_fault_init, fw_fault_fini), boot services alive.
 */
#include <canopy/page.h>

#include "fw_efi.h"

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

/* What fw_trampoline_exec cleared, for fw_trampoline_exec_undo. */
static struct {
    struct memory_attribute_protocol *mem;
    UINT64 cleared;
} undo;

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
    if (!EFI_ERROR(s))
        undo = (__typeof__(undo)){.mem = mem, .cleared = clear};
    con_printf("canopy: the firmware maps the trampoline page %s; %s\n",
               (clear & MEMORY_XP) ? "non-executable" : "read-protected",
               EFI_ERROR(s) ? "the memory attribute protocol cannot change that"
                            : "changed through the memory attribute protocol");
}

void fw_trampoline_exec_undo(void)
{
    if (!undo.mem)
        return;
    EFI_PHYSICAL_ADDRESS page = (EFI_PHYSICAL_ADDRESS)(UINTN)trampoline_start;
    EFI_STATUS s = undo.mem->set(undo.mem, page, PAGE_SIZE, undo.cleared);
    if (EFI_ERROR(s))
        con_printf("canopy: cannot give the trampoline page its attributes back (%s)\n",
                   fw_status_str(fw_from_efi(s)));
    undo.mem = NULL;
}
