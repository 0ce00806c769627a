/*
 * rng: random bits from the firmware's EFI_RNG_PROTOCOL, for the stack canary
 * (entry.c) and the kernel's seed (main.c) when neither RDSEED nor RDRAND gives
 * a value that passes the checks of canopy/hwrng.h.
 */
#include "fw_efi.h"

bool fw_random(uint64_t *out)
{
    EFI_GUID guid = EFI_RNG_PROTOCOL_GUID;
    EFI_RNG_PROTOCOL *rng = NULL;
    if (EFI_ERROR(fw_bs->LocateProtocol(&guid, NULL, (void **)&rng)) || !rng)
        return false;
    uint64_t v = 0;
    if (EFI_ERROR(rng->GetRNG(rng, NULL, sizeof(v), (UINT8 *)&v)))
        return false;
    *out = v;
    return true;
}
