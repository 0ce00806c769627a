/*
 * pt_fuzz: bytes -> pt_map / pt_unmap / pt_protect calls, each mirrored in
 * a page-by-page model; see pt_fuzz_run.h for the input format and what is
 * checked. After each step the tables the step reached are checked against
 * the model; the whole hierarchy every PTZ_FULL_EVERY steps and at the end.
 */
#include "pt_fuzz_run.h"

#include <canopy/check.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const struct ptz_opts opts = {.full_every = PTZ_FULL_EVERY};
    struct ptz_result res;
    if (!pt_fuzz_run(data, size, &opts, &res)) {
        static const char *const by[] = {"model", "step check", "full check"};
        fprintf(stderr, "pt_fuzz: step %zu (%s): %s\n", res.step, by[res.by], res.msg);
        FUZZ_FAIL();
    }
    return 0;
}
