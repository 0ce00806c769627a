# pmm's host tests and fuzzers (included from pmm/CMakeLists.txt).
canopy_host_test(memmap_test SOURCES tests/memmap_test.c LINK pmm)
canopy_host_test(pmm_test SOURCES tests/pmm_test.c LINK pmm)

# A longer run: build-dir/pmm/memmap_fuzz -max_total_time=600 pmm/tests/corpus/memmap_fuzz
# The library sources are compiled into each fuzzer (not linked from pmm_host) so
# that libFuzzer's coverage instrumentation sees the code under test.
canopy_fuzzer(memmap_fuzz SOURCES tests/memmap_fuzz.c src/memmap.c LINK klib
  CORPUS ${CMAKE_CURRENT_SOURCE_DIR}/tests/corpus/memmap_fuzz SECONDS 15)
canopy_fuzzer(pmm_fuzz SOURCES tests/pmm_fuzz.c src/pmm.c src/memmap.c LINK klib
  CORPUS ${CMAKE_CURRENT_SOURCE_DIR}/tests/corpus/pmm_fuzz SECONDS 15)
foreach(fuzzer memmap_fuzz pmm_fuzz)
  target_include_directories(${fuzzer} PRIVATE
    ${CMAKE_CURRENT_SOURCE_DIR}/include ${CMAKE_SOURCE_DIR}/include)
endforeach()
