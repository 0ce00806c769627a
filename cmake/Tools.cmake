# The programs the tests run, found once for the whole tree, and what happens
# when one is missing. In CI (CANOPY_CI: on by default when the environment
# sets CI or CANOPY_CI, as .ci/run does) a missing tool fails the configure
# step, so no test can vanish from a CI run. Elsewhere the configure step says
# which tests it leaves out and names them again in a summary at its end.

if(DEFINED ENV{CI} OR DEFINED ENV{CANOPY_CI})
  set(_canopy_ci_default ON)
else()
  set(_canopy_ci_default OFF)
endif()
option(CANOPY_CI "fail the configure step when a tool some test needs is missing"
  ${_canopy_ci_default})

# canopy_find_tool(VAR NAMES name...): find_program, remembering the first
# name for the messages below.
function(canopy_find_tool var)
  cmake_parse_arguments(A "" "" "NAMES" ${ARGN})
  find_program(${var} NAMES ${A_NAMES})
  list(GET A_NAMES 0 first)
  set_property(GLOBAL PROPERTY CANOPY_TOOL_NAME_${var} ${first})
endfunction()

canopy_find_tool(CANOPY_PYTHON3 NAMES python3)             # every test script
canopy_find_tool(CANOPY_QEMU NAMES qemu-system-x86_64)     # boot tests, ptdump against QEMU
canopy_find_tool(CANOPY_LD_LLD NAMES ld.lld ld.lld-14)     # the kernel, ptdump's multiboot stub
canopy_find_tool(CANOPY_GDB NAMES gdb)                     # boot_shell_gdb

# canopy_tests_need(RESULT WHAT TOOL_VAR...): sets RESULT true when every tool
# was found. Otherwise a CI configure stops here; a local one says that WHAT
# (the tests that need the tools) is left out, and RESULT is false.
function(canopy_tests_need result what)
  set(missing)
  foreach(var ${ARGN})
    if(NOT ${var})
      get_property(name GLOBAL PROPERTY CANOPY_TOOL_NAME_${var})
      list(APPEND missing ${name})
    endif()
  endforeach()
  if(NOT missing)
    set(${result} TRUE PARENT_SCOPE)
    return()
  endif()
  list(JOIN missing ", " missing)
  if(CANOPY_CI)
    message(FATAL_ERROR "${missing} not found, needed by ${what} "
      "(CANOPY_CI is on: CI runs every test; scripts/deps.sh installs the tools)")
  endif()
  message(WARNING "${missing} not found: ${what} left out (scripts/deps.sh installs it)")
  set_property(GLOBAL APPEND PROPERTY CANOPY_LEFT_OUT "${what} (no ${missing})")
  set(${result} FALSE PARENT_SCOPE)
endfunction()

# The summary, called at the end of the top-level CMakeLists.txt.
function(canopy_report_left_out)
  get_property(left_out GLOBAL PROPERTY CANOPY_LEFT_OUT)
  if(left_out)
    list(JOIN left_out "\n  " left_out)
    message(WARNING "Tests left out of this build directory:\n  ${left_out}")
  endif()
endfunction()
