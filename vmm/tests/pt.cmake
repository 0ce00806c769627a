# Page-table tests: pt.c and ptdump.c over a simulated physical memory, and a
# fuzzer that mirrors map/unmap/protect in a simple model.
canopy_host_test(pt_test SOURCES tests/pt_test.c LINK vmm)
if(EXISTS ${CMAKE_CURRENT_SOURCE_DIR}/src/ptdump.c)
  canopy_host_test(ptdump_test SOURCES tests/ptdump_test.c LINK vmm)
endif()
# pt.c is compiled into the fuzzer itself: vmm_host is built without
# -fsanitize=fuzzer, so libFuzzer would get no coverage feedback from the code
# under test. The linker then takes no pt.c member from vmm_host.
canopy_fuzzer(pt_fuzz SOURCES tests/pt_fuzz.c src/pt.c LINK vmm
  CORPUS ${CMAKE_CURRENT_SOURCE_DIR}/tests/corpus/pt_fuzz SECONDS 15)
