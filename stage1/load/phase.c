/*
 * phase: the table of boot-phase names. One name per enum canopy_phase value,
 * lowercase with dashes, so a name on the console can be typed back into
 * canopy.cfg unchanged. Called by the config parser and by stage 1's
 * post-mortem report (efi/fault.c).
 */
#include "phase.h"

static const char *const names[CANOPY_PHASE_COUNT] = {
    [CANOPY_PHASE_STAGE1_ENTRY] = "stage1-entry",
    [CANOPY_PHASE_CONFIG_READ] = "config-read",
    [CANOPY_PHASE_KERNEL_READ] = "kernel-read",
    [CANOPY_PHASE_VALIDATED] = "validated",
    [CANOPY_PHASE_BEFORE_EBS] = "before-ebs",
    [CANOPY_PHASE_PMM_READY] = "pmm-ready",
    [CANOPY_PHASE_PAGE_TABLES_BUILT] = "page-tables-built",
    [CANOPY_PHASE_KERNEL_ENTRY] = "kernel-entry",
    [CANOPY_PHASE_CONSOLES_UP] = "consoles-up",
    [CANOPY_PHASE_PMM_RECLAIM] = "pmm-reclaim",
    [CANOPY_PHASE_VMM_READY] = "vmm-ready",
    [CANOPY_PHASE_SHELL_READY] = "shell-ready",
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
