# pmm's host tests and fuzzers (included from pmm/CMakeLists.txt).
canopy_host_test(memmap_test SOURCES tests/memmap_test.c LINK pmm)
if(EXISTS ${CMAKE_CURRENT_SOURCE_DIR}/tests/pmm_test.c)
  canopy_host_test(pmm_test SOURCES tests/pmm_test.c LINK pmm)
endif()
