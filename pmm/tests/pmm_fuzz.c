/*
 * pmm_fuzz: bytes -> a memory map -> pmm_init -> a sequence of operations,
 * each mirrored in the frame model; see pmm_fuzz_run.h for the input format
 * and what is checked after each step. The whole-structure check (pmm_check)
 * runs every PFZ_FULL_EVERY steps and at the end of each input; the step
 * check in between (pmm_fuzz_check.h) costs what the step touched.
 */
#include "pmm_fuzz_run.h"

#include <canopy/check.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const struct pfz_opts opts = {.full_every = PFZ_FULL_EVERY};
    struct pfz_result res;
    if (!pmm_fuzz_run(data, size, &opts, &res)) {
        static const char *const by[] = {"model", "step check", "pmm_check"};
        fprintf(stderr, "pmm_fuzz: step %zu (%s): %s\n", res.step, by[res.by], res.msg);
        FUZZ_FAIL();
    }
    return 0;
}
