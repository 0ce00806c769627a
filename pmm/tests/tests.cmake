# pmm's host tests and fuzzers (included from pmm/CMakeLists.txt).
canopy_host_test(pmm_memmap_test SOURCES tests/memmap_test.c LINK pmm)
canopy_host_test(pmm_test SOURCES tests/pmm_test.c LINK pmm)
# pmm_fuzz's step check against corruptions made between two steps.
canopy_host_test(pmm_fuzz_check_test SOURCES tests/pmm_fuzz_check_test.c LINK pmm)

# A longer run: build-dir/pmm/pmm_memmap_fuzz -max_total_time=600 DIR (DIR a writable
# copy of pmm/tests/corpus/memmap_fuzz), or scripts/fuzz.sh
# (canopy_fuzzer links pmm's coverage-instrumented fuzz flavour).
canopy_fuzzer(pmm_memmap_fuzz SOURCES tests/memmap_fuzz.c LINK pmm
  CORPUS ${CMAKE_CURRENT_SOURCE_DIR}/tests/corpus/memmap_fuzz SECONDS 15)
canopy_fuzzer(pmm_fuzz SOURCES tests/pmm_fuzz.c LINK pmm
  CORPUS ${CMAKE_CURRENT_SOURCE_DIR}/tests/corpus/pmm_fuzz SECONDS 15)

# Several threads on one PMM: nothing lost, nothing handed out twice.
find_package(Threads REQUIRED)
canopy_host_test(pmm_smp_test SOURCES tests/pmm_smp_test.c LINK pmm)
target_link_libraries(pmm_smp_test PRIVATE Threads::Threads)
