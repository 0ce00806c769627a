/*
 * acpi: what stage 1 passes on from the firmware's configuration tables: the
 * ACPI RSDP (checked before it is handed over, 2.0's extended checksum
 * included: canopy/rsdp.h) and the system table itself.
 *
 * Called by main.c (gather_platform).
 */
#include <canopy/rsdp.h>

#include "fw_efi.h"

static bool guid_eq(const EFI_GUID *a, const EFI_GUID *b)
{
    const uint8_t *x = (const uint8_t *)a, *y = (const uint8_t *)b;
    for (unsigned i = 0; i < sizeof(EFI_GUID); i++)
        if (x[i] != y[i])
            return false;
    return true;
}

/* Boot services run on the firmware's identity map: physical is virtual. */
static const void *identity(void *ctx, uint64_t phys, uint64_t len)
{
    (void)ctx;
    (void)len;
    return (const void *)(uintptr_t)phys;
}

uint64_t fw_rsdp(void)
{
    EFI_GUID acpi20 = ACPI_20_TABLE_GUID, acpi10 = ACPI_TABLE_GUID;
    const EFI_GUID *want[2] = {&acpi20, &acpi10};
    static const char *const name[2] = {"ACPI 2.0", "ACPI 1.0"};
    for (int w = 0; w < 2; w++) {
        for (UINTN i = 0; i < fw_st->NumberOfTableEntries; i++) {
            const EFI_CONFIGURATION_TABLE *t = &fw_st->ConfigurationTable[i];
            if (!guid_eq(&t->VendorGuid, want[w]) || !t->VendorTable)
                continue;
            uint64_t at = (uint64_t)(UINTN)t->VendorTable;
            const char *bad = rsdp_check(identity, NULL, at);
            if (!bad)
                return at;
            con_printf("canopy: the firmware's %s RSDP at 0x%llx is unusable (%s); ignored\n",
                       name[w], (unsigned long long)at, bad);
        }
    }
    return 0;
}

uint64_t fw_system_table(void)
{
    return (uint64_t)(UINTN)fw_st;
}
