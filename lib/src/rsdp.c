/*
 * rsdp: the ACPI RSDP's checks (canopy/rsdp.h). Pure: memory is read only
 * through the caller's map function, each range before it is used.
 */
#include <stdbool.h>
#include <stddef.h>

#include <canopy/rsdp.h>

static bool sum_is_zero(const uint8_t *p, uint64_t len)
{
    uint8_t sum = 0;
    for (uint64_t i = 0; i < len; i++)
        sum = (uint8_t)(sum + p[i]);
    return sum == 0;
}

const char *rsdp_check(rsdp_map_fn map, void *ctx, uint64_t phys)
{
    static const char sig[8] = {'R', 'S', 'D', ' ', 'P', 'T', 'R', ' '};
    const uint8_t *r = map(ctx, phys, RSDP_V1_BYTES);
    if (r == NULL)
        return "not mapped";
    for (int i = 0; i < 8; i++)
        if (r[i] != (uint8_t)sig[i])
            return "bad signature";
    if (!sum_is_zero(r, RSDP_V1_BYTES))
        return "bad checksum";
    if (r[15] < 2)
        return NULL;
    const uint8_t *r2 = map(ctx, phys, RSDP_V2_BYTES);
    if (r2 == NULL)
        return "ACPI 2.0 part not mapped";
    uint32_t len =
        (uint32_t)r2[20] | (uint32_t)r2[21] << 8 | (uint32_t)r2[22] << 16 | (uint32_t)r2[23] << 24;
    if (len < RSDP_V2_BYTES || len > RSDP_MAX_BYTES)
        return "ACPI 2.0 length out of range";
    const uint8_t *all = map(ctx, phys, len);
    if (all == NULL)
        return "ACPI 2.0 part not mapped";
    if (!sum_is_zero(all, len))
        return "bad extended checksum";
    return NULL;
}
