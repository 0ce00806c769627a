/*
 * phase: the boot-phase names, generated from CANOPY_PHASES in bootinfo.h, so
 * the list and its spelling have one home. Called by stage 1's config parser
 * and post-mortem report (efi/fault.c) and by the kernel's `boottime`.
 */
#include <canopy/phase.h>

static const char *const names[CANOPY_PHASE_COUNT] = {
#define PHASE_NAME(id, name) [CANOPY_PHASE_##id] = name,
    CANOPY_PHASES(PHASE_NAME)
#undef PHASE_NAME
};

const char *phase_name(unsigned phase)
{
    if (phase >= CANOPY_PHASE_COUNT || !names[phase])
        return "unknown";
    return names[phase];
}

bool phase_parse(const char *s, size_t n, enum canopy_phase *out)
{
    for (unsigned p = 0; p < CANOPY_PHASE_COUNT; p++) {
        const char *name = names[p];
        size_t i = 0;
        while (i < n && name[i] && name[i] == s[i])
            i++;
        if (i == n && name[i] == '\0') {
            *out = (enum canopy_phase)p;
            return true;
        }
    }
    return false;
}
