# Tests for scripts/flash-usb.sh: each refusal and a full write + verify, run
# against a fake sysfs/procfs and a file target, so no hardware or root is
# needed. Included from tests/CMakeLists.txt; one CTest test per case so a
# failure names the check that broke. Needs python3, sgdisk and mtools.

canopy_tests_need(_flash_python "the flash-usb tests" CANOPY_PYTHON3)
if(NOT _flash_python)
  return()
endif()

set(CANOPY_FLASH_TEST ${CMAKE_CURRENT_LIST_DIR}/flash_test.py)
# The case names come from the script itself, so the two cannot drift apart.
execute_process(
  COMMAND ${CANOPY_PYTHON3} ${CANOPY_FLASH_TEST} --list
  OUTPUT_VARIABLE CANOPY_FLASH_CASES
  RESULT_VARIABLE CANOPY_FLASH_LIST_RESULT
  OUTPUT_STRIP_TRAILING_WHITESPACE)
if(NOT CANOPY_FLASH_LIST_RESULT EQUAL 0 OR CANOPY_FLASH_CASES STREQUAL "")
  message(FATAL_ERROR "${CANOPY_FLASH_TEST} --list failed")
endif()
string(REPLACE "\n" ";" CANOPY_FLASH_CASES "${CANOPY_FLASH_CASES}")
set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS ${CANOPY_FLASH_TEST})

foreach(case IN LISTS CANOPY_FLASH_CASES)
  add_test(NAME flash.${case} COMMAND ${CANOPY_PYTHON3} ${CANOPY_FLASH_TEST} ${case})
  set_tests_properties(flash.${case} PROPERTIES LABELS flash TIMEOUT 60)
endforeach()
