# The Secure Boot tests (docs/secure-boot.md), registered when the build signs
# canopy-sb.img (cmake/SecureBoot.cmake includes this file).
#
#   secureboot_image    the signed image's chain without booting: sbverify, the
#                       pin, the kernel hash, the files on the ESP
#   secureboot_pin      scripts/sb-pin.py on the linked stage 1 and on bad input
#   secureboot_keys     scripts/sb-keys.sh's key set signs and verifies a stage 1
#   boot_sb_*           boots under OVMF with Secure Boot enforced (snakeoil key only)
#   boot_sb_shim        shim, MokManager and the whole chain under Microsoft's keys
set(_sb_tests ${CMAKE_SOURCE_DIR}/tests/secureboot)
# Debian's signed shim and MokManager, fetched (not installed) by
# scripts/shim-fetch.sh into the build directory; scripts/shim-image.sh fetches
# them itself if they are missing.
set(CANOPY_SHIM_DIR ${CMAKE_BINARY_DIR}/shim CACHE PATH
  "where shimx64.efi.signed and mmx64.efi.signed are (scripts/shim-fetch.sh)")
set(_sb_boot ${CMAKE_SOURCE_DIR}/tests/boot)

add_test(NAME secureboot_image
  COMMAND ${CANOPY_PYTHON3} ${_sb_tests}/sb_image_test.py
    --image ${CANOPY_SB_IMAGE} --dir ${CANOPY_SB_DIR} --cert ${CANOPY_SB_CERT_FILE}
    --efi ${CANOPY_STAGE1_EFI} --pin-script ${CMAKE_SOURCE_DIR}/scripts/sb-pin.py)
set_tests_properties(secureboot_image PROPERTIES LABELS image TIMEOUT 120)
add_test(NAME secureboot_pin
  COMMAND ${CANOPY_PYTHON3} ${_sb_tests}/sb_pin_test.py
    --efi ${CANOPY_STAGE1_EFI} --pin-script ${CMAKE_SOURCE_DIR}/scripts/sb-pin.py
    --workdir ${CMAKE_CURRENT_BINARY_DIR}/secureboot-tests)
set_tests_properties(secureboot_pin PROPERTIES LABELS image TIMEOUT 60)
add_test(NAME secureboot_keys
  COMMAND ${_sb_tests}/sb_keys_test.sh ${CMAKE_SOURCE_DIR}/scripts/sb-keys.sh
    ${CANOPY_SB_DIR}/BOOTX64.unsigned.efi ${CMAKE_CURRENT_BINARY_DIR}/secureboot-tests/keys)
set_tests_properties(secureboot_keys PROPERTIES LABELS image TIMEOUT 120)

canopy_tests_need(_sb_qemu "the Secure Boot boot tests" CANOPY_QEMU)
if(NOT _sb_qemu)
  return()
endif()
set(_sb_boot_args
  --image ${CANOPY_IMAGE}
  --efi ${CANOPY_STAGE1_EFI}
  --kernel ${CANOPY_KERNEL_ELF}
  --cfg ${CANOPY_ESP_CFG}
  --mkimage ${CANOPY_MKIMAGE}
  --workdir ${CMAKE_BINARY_DIR}/tests/boot
  --sb-image ${CANOPY_SB_IMAGE}
  --sb-dir ${CANOPY_SB_DIR}
  --sb-key ${CANOPY_SB_KEY_FILE}
  --sb-cert ${CANOPY_SB_CERT_FILE}
  --sb-image-script ${CMAKE_SOURCE_DIR}/scripts/sb-image.sh)
# The boots under the snakeoil firmware need the snakeoil key: the firmware's db
# trusts nothing else.
if(CANOPY_SB_SNAKEOIL)
  foreach(c ready unsigned refusals debug)
    add_test(NAME boot_sb_${c}
      COMMAND ${CANOPY_PYTHON3} ${_sb_boot}/boot_secureboot.py ${_sb_boot_args} --case ${c})
    set_tests_properties(boot_sb_${c} PROPERTIES
      LABELS boot FIXTURES_REQUIRED boot_image TIMEOUT 400)
  endforeach()
endif()
# shim under Microsoft's keys: MokManager enrolls the build's certificate from
# the disk, driven on the serial console, and the whole chain boots. Any key
# works here: the enrolled MOK is the build's own certificate.
add_test(NAME boot_sb_shim
  COMMAND ${CANOPY_PYTHON3} ${_sb_boot}/boot_shim.py
    --workdir ${CMAKE_BINARY_DIR}/tests/boot
    --sb-image ${CANOPY_SB_IMAGE} --sb-cert ${CANOPY_SB_CERT_FILE}
    --shim-image-script ${CMAKE_SOURCE_DIR}/scripts/shim-image.sh)
set_tests_properties(boot_sb_shim PROPERTIES LABELS boot FIXTURES_REQUIRED boot_image TIMEOUT 500
  ENVIRONMENT CANOPY_SHIM_DIR=${CANOPY_SHIM_DIR})
# flash-usb.sh --shim against a fake sysfs and a file as the stick (tests/flash).
foreach(case shim_writes_the_shim_layout shim_refuses_a_certificate_stage1_is_not_signed_with
        shim_refuses_an_image_without_a_canopy_esp shim_wants_a_certificate)
  add_test(NAME flash.${case}
    COMMAND ${CANOPY_PYTHON3} ${CMAKE_SOURCE_DIR}/tests/flash/flash_test.py
      --sb-image ${CANOPY_SB_IMAGE} --sb-cert ${CANOPY_SB_CERT_FILE} ${case})
  set_tests_properties(flash.${case} PROPERTIES LABELS flash TIMEOUT 120
    ENVIRONMENT CANOPY_SHIM_DIR=${CANOPY_SHIM_DIR})
endforeach()
