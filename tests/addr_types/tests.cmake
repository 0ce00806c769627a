# addr_types: a virtual and a physical address swapped at the page-table or
# mapping-plan boundary does not compile (include/canopy/addr.h). check.py
# compiles swap.c with the project's compiler once correctly (must compile)
# and once per swap (must fail on the address's type).
#
# Included from tests/CMakeLists.txt.

canopy_tests_need(_addr_python "the address-type compile test" CANOPY_PYTHON3)
if(NOT _addr_python)
  return()
endif()

add_test(NAME addr_types_swap_fails
  COMMAND ${CANOPY_PYTHON3} ${CMAKE_CURRENT_LIST_DIR}/check.py ${CMAKE_C_COMPILER}
    ${CMAKE_SOURCE_DIR}/include ${CMAKE_SOURCE_DIR}/vmm/include ${CMAKE_SOURCE_DIR}/stage1)
set_tests_properties(addr_types_swap_fails PROPERTIES LABELS host TIMEOUT 120)
