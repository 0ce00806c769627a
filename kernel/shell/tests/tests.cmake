# Host tests and the fuzzer for the debug shell (kernel/shell/shell.c) and the
# PS/2 keyboard decoder (kernel/dev/kbd.c). Included from kernel/CMakeLists.txt.
set(SHELL_TESTS_DIR ${CMAKE_CURRENT_LIST_DIR})
set(SHELL_SRC_DIR ${CMAKE_CURRENT_LIST_DIR}/..)
# kernel/shell.h and kernel/kbd.h live in kernel/include/.
set(KERNEL_HEADERS ${CMAKE_CURRENT_LIST_DIR}/../../include)

canopy_host_test(kernel_shell_test
  SOURCES ${SHELL_TESTS_DIR}/shell_test.c ${SHELL_TESTS_DIR}/fake_ops.c ${SHELL_SRC_DIR}/shell.c
  LINK pmm vmm klib)
target_include_directories(kernel_shell_test PRIVATE ${KERNEL_HEADERS})

canopy_host_test(kernel_kbd_test
  SOURCES ${SHELL_TESTS_DIR}/kbd_test.c ${SHELL_SRC_DIR}/../dev/kbd.c)
# kernel/kbd.h takes the controller's port names from canopy/x86/i8042.h.
target_include_directories(kernel_kbd_test PRIVATE ${KERNEL_HEADERS} ${CMAKE_SOURCE_DIR}/include)

canopy_fuzzer(kernel_shell_fuzz
  SOURCES ${SHELL_TESTS_DIR}/shell_fuzz.c ${SHELL_TESTS_DIR}/fake_ops.c ${SHELL_SRC_DIR}/shell.c
  LINK pmm vmm klib
  CORPUS ${SHELL_TESTS_DIR}/corpus
  SECONDS 15)
target_include_directories(kernel_shell_fuzz PRIVATE ${KERNEL_HEADERS})
