# The fault-injecting firmware layer (test only): FAULTFW.EFI wraps the real
# OVMF boot services and starts Canopy's stage 1 from the same disk; the boot
# scenarios in faultfw_test.py run it under QEMU + OVMF. Included from
# tests/CMakeLists.txt. Also the host test of its memory-map rewriting.

set(FAULTFW_DIR ${CMAKE_CURRENT_LIST_DIR})

# The map rewriting is pure C: checked on the host first.
canopy_host_test(faultfw_mapx_test SOURCES ${FAULTFW_DIR}/mapx_test.c ${FAULTFW_DIR}/mapx.c)
target_include_directories(faultfw_mapx_test PRIVATE ${CMAKE_SOURCE_DIR}/include)
# So is the free-memory guard's page-table editing.
canopy_host_test(faultfw_guard_test SOURCES ${FAULTFW_DIR}/guard_test.c ${FAULTFW_DIR}/guard.c)
target_include_directories(faultfw_guard_test PRIVATE ${CMAKE_SOURCE_DIR}/include ${CMAKE_SOURCE_DIR}/vmm/include)

# FAULTFW.EFI: a PE32+ application built exactly like stage 1 (CANOPY_UEFI_*).
add_executable(faultfw ${FAULTFW_DIR}/faultfw.c ${FAULTFW_DIR}/hooks.c ${FAULTFW_DIR}/mapx.c
  ${FAULTFW_DIR}/guard.c)
target_include_directories(faultfw PRIVATE ${FAULTFW_DIR} ${CMAKE_SOURCE_DIR}/vmm/include)
target_link_libraries(faultfw PRIVATE canopy_flags_uefi klib_uefi kmem_uefi)
set_target_properties(faultfw PROPERTIES OUTPUT_NAME FAULTFW SUFFIX .EFI)

canopy_tests_need(_ff_tools "the faultfw boot scenarios" CANOPY_PYTHON3 CANOPY_QEMU)
if(NOT _ff_tools)
  return()
endif()

# One CTest entry per group of scenarios (faultfw_test.py --list-groups names
# them); each scenario is one QEMU boot bounded by its own timeout.
set(FAULTFW_TEST ${FAULTFW_DIR}/faultfw_test.py)
execute_process(
  COMMAND ${CANOPY_PYTHON3} ${FAULTFW_TEST} --list-groups
  OUTPUT_VARIABLE _ff_groups
  RESULT_VARIABLE _ff_result
  OUTPUT_STRIP_TRAILING_WHITESPACE)
if(NOT _ff_result EQUAL 0 OR _ff_groups STREQUAL "")
  message(FATAL_ERROR "${FAULTFW_TEST} --list-groups failed")
endif()
string(REPLACE "\n" ";" _ff_groups "${_ff_groups}")
set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS ${FAULTFW_TEST})

foreach(line IN LISTS _ff_groups)
  # Each line: "<group> <seconds>".
  string(REPLACE " " ";" _ff_fields "${line}")
  list(GET _ff_fields 0 group)
  list(GET _ff_fields 1 seconds)
  add_test(NAME faultfw_${group}
    COMMAND ${CANOPY_PYTHON3} ${FAULTFW_TEST} --group ${group}
      --faultfw $<TARGET_FILE:faultfw>
      ${BOOT_COMMON_ARGS}
      --workdir ${CMAKE_CURRENT_BINARY_DIR}/faultfw
      --quiet)
  set_tests_properties(faultfw_${group} PROPERTIES LABELS boot TIMEOUT ${seconds})
endforeach()
