# Malformed kernels and bad configuration (issue 6, sections 1 and 2).
#
#   malformed_host        gen.py derives broken kernels from kernel.elf;
#                         elf_check (stage 1's validator, built for the host)
#                         must reject each with its own status and reason
#   malformed_boot_a/_b   eight of them, each in its own image, booted
#                         one after another under QEMU + OVMF: stage 1's error
#                         line on serial and screen, then back to the firmware
#   malformed_boot_uboot  the same eight under U-Boot's UEFI (serial only)
#   malformed_boot_config_ready   no config file; a config full of problems:
#                         each problem gets its line and the kernel still boots
#   malformed_boot_config_errors  kernel= naming no file, a directory; an
#                         empty kernel file: one line each, back to the firmware
#
# Included from tests/CMakeLists.txt. Python 3 (standard library) for the
# scripts; the boot scenarios reuse tests/boot/harness.py.

canopy_tests_need(_malformed_python "the malformed-kernel tests" CANOPY_PYTHON3)
if(NOT _malformed_python)
  return()
endif()

set(MALFORMED_DIR ${CMAKE_CURRENT_LIST_DIR})
set(MALFORMED_WORK ${CMAKE_CURRENT_BINARY_DIR}/malformed)

# The validator's verdict on files, for the host test.
add_executable(malformed_elf_check ${MALFORMED_DIR}/elf_check.c)
target_include_directories(malformed_elf_check PRIVATE ${CMAKE_SOURCE_DIR}/stage1)
target_link_libraries(malformed_elf_check PRIVATE canopy_flags_host s1load_host)

add_test(NAME malformed_host
  COMMAND ${CANOPY_PYTHON3} ${MALFORMED_DIR}/host_test.py
    --kernel ${CANOPY_KERNEL_ELF}
    --checker $<TARGET_FILE:malformed_elf_check>
    --bootinfo-header ${CMAKE_SOURCE_DIR}/include/canopy/bootinfo.h
    --workdir ${MALFORMED_WORK}/host)
set_tests_properties(malformed_host PROPERTIES LABELS host TIMEOUT 120)

# ---- boot scenarios ---------------------------------------------------------

canopy_tests_need(_malformed_qemu "the malformed-kernel boot tests" CANOPY_QEMU)
if(NOT _malformed_qemu)
  return()
endif()

# The same options the boot tests take (BOOT_COMMON_ARGS, tests/CMakeLists.txt);
# each scenario builds its own variant images with scripts/mkimage.sh.
set(MALFORMED_BOOT_ARGS
  --image ${CANOPY_IMAGE} ${BOOT_COMMON_ARGS} --workdir ${MALFORMED_WORK}/boot --quiet)

# malformed_boot_test(NAME script timeout [args...]): one CTest entry that may
# boot several images in turn; the script bounds each boot, TIMEOUT bounds all.
# boot_image (tests/CMakeLists.txt) checks that the binaries and OVMF exist.
function(malformed_boot_test name script timeout)
  add_test(NAME ${name}
    COMMAND ${CANOPY_PYTHON3} ${MALFORMED_DIR}/${script} ${MALFORMED_BOOT_ARGS} ${ARGN})
  set_tests_properties(${name} PROPERTIES
    LABELS boot FIXTURES_REQUIRED boot_image TIMEOUT ${timeout})
endfunction()

# Eight broken kernels in two halves, so that two cores boot them side by
# side; a boot takes 10 s on an idle machine and up to 30 s on a busy one.
malformed_boot_test(malformed_boot_a boot_malformed.py 300
  --cases trunc-text magic-byte0 wx-text lower-half)
malformed_boot_test(malformed_boot_b boot_malformed.py 300
  --cases overlap entry-zero memsz-huge phnum-past-eof)
# The same eight under U-Boot's UEFI, back to its boot manager each time; on
# QEMU's pc machine, where U-Boot reaches the disk in about 5 s, not 15.
malformed_boot_test(malformed_boot_uboot boot_malformed.py 400 --firmware uboot --machine pc
  --cases trunc-text magic-byte0 wx-text lower-half overlap entry-zero memsz-huge phnum-past-eof)
malformed_boot_test(malformed_boot_config_ready boot_config.py 240 --cases no-cfg problems)
malformed_boot_test(malformed_boot_config_errors boot_config.py 300
  --cases kernel-not-found kernel-dir kernel-empty)
