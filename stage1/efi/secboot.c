/*
 * secboot: whether the firmware enforces Secure Boot, from its global
 * SecureBoot variable (UEFI 2.10, 3.3): 1 when it verifies every image it
 * starts against db/dbx, 0 in setup mode or with Secure Boot disabled.
 */
#include "fw_efi.h"

bool fw_secure_boot(void)
{
    EFI_GUID global = EFI_GLOBAL_VARIABLE;
    UINT8 value = 0;
    UINTN size = sizeof(value);
    UINT32 attrs = 0;
    EFI_STATUS s = fw_rt->GetVariable(L"SecureBoot", &global, &attrs, &size, &value);
    /* Missing (firmware without Secure Boot) or malformed: not enforcing. */
    return !EFI_ERROR(s) && size == sizeof(value) && value == 1;
}
