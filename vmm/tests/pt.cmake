# Page-table tests: pt.c and ptdump.c over a simulated physical memory, and a
# fuzzer that mirrors map/unmap/protect in a simple model.
canopy_host_test(vmm_pt_test SOURCES tests/pt_test.c LINK vmm)
canopy_host_test(vmm_ptdump_test SOURCES tests/ptdump_test.c LINK vmm)
canopy_fuzzer(vmm_pt_fuzz SOURCES tests/pt_fuzz.c LINK vmm
  CORPUS ${CMAKE_CURRENT_SOURCE_DIR}/tests/corpus/pt_fuzz SECONDS 15)
# pt_fuzz's step check against entries corrupted between two steps.
canopy_host_test(vmm_pt_fuzz_check_test SOURCES tests/pt_fuzz_check_test.c LINK vmm)

# ptdump against the oracle: QEMU's monitor (`info mem`, `info tlb`) over page
# tables pt.c builds on the host and a multiboot stub loads into a guest.
canopy_tests_need(_ptdump_qemu_tools vmm_ptdump_qemu_test CANOPY_PYTHON3 CANOPY_QEMU CANOPY_LD_LLD)
if(_ptdump_qemu_tools)
  add_executable(ptdump_qemu_gen tests/ptdump_qemu_gen.c)
  target_link_libraries(ptdump_qemu_gen PRIVATE canopy_flags_host vmm_host)
  # The stub is 32-bit code entered by QEMU's multiboot loader, linked flat at 1 MiB.
  set(PTDUMP_STUB ${CMAKE_CURRENT_BINARY_DIR}/ptdump_qemu_stub.bin)
  add_custom_command(OUTPUT ${PTDUMP_STUB}
    COMMAND ${CMAKE_C_COMPILER} --target=i386-unknown-none-elf -c
            ${CMAKE_CURRENT_SOURCE_DIR}/tests/ptdump_qemu_stub.S -o ptdump_qemu_stub.o
    COMMAND ${CANOPY_LD_LLD} -m elf_i386 -Ttext=0x100000 --oformat=binary
            ptdump_qemu_stub.o -o ${PTDUMP_STUB}
    DEPENDS tests/ptdump_qemu_stub.S
    WORKING_DIRECTORY ${CMAKE_CURRENT_BINARY_DIR}
    COMMENT "ptdump QEMU stub")
  add_custom_target(ptdump_qemu_stub ALL DEPENDS ${PTDUMP_STUB})
  add_test(NAME vmm_ptdump_qemu_test
    COMMAND ${CANOPY_PYTHON3} ${CMAKE_CURRENT_SOURCE_DIR}/tests/ptdump_qemu_test.py
            $<TARGET_FILE:ptdump_qemu_gen> ${PTDUMP_STUB} ${CMAKE_CURRENT_BINARY_DIR})
  set_tests_properties(vmm_ptdump_qemu_test PROPERTIES LABELS qemu TIMEOUT 180)
endif()
