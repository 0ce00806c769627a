# Host tests and the fuzzer for the debug shell (kernel/shell/shell.c) and the
# PS/2 keyboard decoder (kernel/dev/kbd.c). Included from kernel/CMakeLists.txt.
set(SHELL_TESTS_DIR ${CMAKE_CURRENT_LIST_DIR})
set(SHELL_SRC_DIR ${CMAKE_CURRENT_LIST_DIR}/..)
# The shell reads struct pt_walk and the PT_* flags from vmm/pt.h but calls no
# vmm function: the header is enough. canopy/bootinfo.h comes from the top-level include/.
set(SHELL_HEADERS ${CMAKE_CURRENT_LIST_DIR}/../../../vmm/include
  ${CMAKE_CURRENT_LIST_DIR}/../../../include)

canopy_host_test(shell_test
  SOURCES ${SHELL_TESTS_DIR}/shell_test.c ${SHELL_TESTS_DIR}/fake_ops.c ${SHELL_SRC_DIR}/shell.c
  LINK pmm klib)
target_include_directories(shell_test PRIVATE ${SHELL_HEADERS})

canopy_host_test(kbd_test
  SOURCES ${SHELL_TESTS_DIR}/kbd_test.c ${SHELL_SRC_DIR}/../dev/kbd.c)

canopy_fuzzer(shell_fuzz
  SOURCES ${SHELL_TESTS_DIR}/shell_fuzz.c ${SHELL_TESTS_DIR}/fake_ops.c ${SHELL_SRC_DIR}/shell.c
  LINK pmm klib
  CORPUS ${SHELL_TESTS_DIR}/corpus
  SECONDS 15)
target_include_directories(shell_fuzz PRIVATE ${SHELL_HEADERS})
