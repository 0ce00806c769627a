/*
 * The host test executable for stage1/load: the ELF validator, the config
 * parser, the mapping plan (checked against vmm/'s page-table code) and the
 * claims' places and page-table bound, run under ASan and UBSan. Prints
 * `N passed, M failed` last.
 */
#include "check.h"

unsigned check_passed, check_failed;

int main(void)
{
    elf_tests();
    config_tests();
    mapplan_tests();
    manifest_pt_tests();
    claim_tests();
    return check_finish();
}
