/*
 * acpi: what stage 1 passes on from the firmware's configuration tables: the
 * ACPI RSDP (checked before it is handed over) and the system table itself.
 *
 * Called by main.c (gather_platform).
 */
#include "fw_efi.h"

static bool guid_eq(const EFI_GUID *a, const EFI_GUID *b)
{
    const uint8_t *x = (const uint8_t *)a, *y = (const uint8_t *)b;
    for (unsigned i = 0; i < sizeof(EFI_GUID); i++)
        if (x[i] != y[i])
            return false;
    return true;
}

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

uint64_t fw_system_table(void)
{
    return (uint64_t)(UINTN)fw_st;
}
