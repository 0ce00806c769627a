# Tests of the AVL tree and the address space (avl.c, space.c).
canopy_host_test(vmm_avl_test SOURCES tests/avl_test.c LINK vmm)
# Unit tests, then 300,000 random operations against the naive model in
# space_oracle.c. A longer run: vmm_space_test --ops 5000000 (or set
# CANOPY_VMM_DIFF_OPS); --seed N picks another sequence.
canopy_host_test(vmm_space_test SOURCES tests/space_test.c tests/space_oracle.c LINK vmm)
# The fuzzer's step check (full_every > 1) against corruptions between two commands.
canopy_host_test(vmm_space_fuzz_check_test
  SOURCES tests/space_fuzz_check_test.c tests/space_oracle.c LINK vmm)
# The same operations decoded from fuzz bytes; 15 s per ctest run from the
# committed seeds. A longer run: vmm_space_fuzz -max_total_time=3600 DIR
# (DIR a writable copy of tests/corpus/space_fuzz).
canopy_fuzzer(vmm_space_fuzz SOURCES tests/space_fuzz.c tests/space_oracle.c LINK vmm
  CORPUS ${CMAKE_CURRENT_SOURCE_DIR}/tests/corpus/space_fuzz SECONDS 15)
