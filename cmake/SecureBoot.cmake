# The Secure Boot image: canopy-sb.img beside canopy.img, built only when a
# signing key is configured (docs/secure-boot.md):
#
#   -DCANOPY_SB_KEY=key.pem -DCANOPY_SB_CERT=cert.pem
#       your own db key (scripts/sb-keys.sh makes one); unencrypted PEM,
#       since sbsign cannot be given a passphrase
#   -DCANOPY_SB_SNAKEOIL=ON
#       Debian's OVMF test key, which OVMF_VARS_4M.snakeoil.fd trusts: what
#       scripts/test.sh (and so CI) configures, for the Secure Boot boot tests.
#       The key ships encrypted (passphrase "snakeoil"); the build derives an
#       unencrypted copy inside the build directory with openssl. No key
#       material is ever part of the tree.
#
# scripts/sb-image.sh does the work: the kernel as it goes on the ESP, the
# configuration pinning its hash, stage 1 pinning the configuration's hash,
# sbsign, sbverify, mkimage.sh. Without a key nothing here is built.

option(CANOPY_SB_SNAKEOIL "sign canopy-sb.img with Debian's OVMF snakeoil test key" OFF)
set(CANOPY_SB_KEY "" CACHE FILEPATH "private key (PEM, unencrypted) that signs canopy-sb.img")
set(CANOPY_SB_CERT "" CACHE FILEPATH "certificate (PEM) of CANOPY_SB_KEY")
set(CANOPY_SB_SNAKEOIL_DIR /usr/share/ovmf
  CACHE PATH "where Debian's ovmf keeps PkKek-1-snakeoil.key and .pem")

set(CANOPY_SB_IMAGE ${CMAKE_BINARY_DIR}/canopy-sb.img)
set(CANOPY_SB_DIR ${CMAKE_BINARY_DIR}/secureboot)

if(CANOPY_SB_SNAKEOIL)
  if(CANOPY_SB_KEY OR CANOPY_SB_CERT)
    message(FATAL_ERROR "CANOPY_SB_SNAKEOIL and CANOPY_SB_KEY/CANOPY_SB_CERT exclude each other")
  endif()
  set(_sb_snakeoil_key ${CANOPY_SB_SNAKEOIL_DIR}/PkKek-1-snakeoil.key)
  set(_sb_cert ${CANOPY_SB_SNAKEOIL_DIR}/PkKek-1-snakeoil.pem)
  foreach(f ${_sb_snakeoil_key} ${_sb_cert})
    if(NOT EXISTS ${f})
      message(FATAL_ERROR "${f} not found (Debian's ovmf package; scripts/deps.sh installs it)")
    endif()
  endforeach()
  find_program(CANOPY_OPENSSL openssl REQUIRED)
  set(_sb_key ${CANOPY_SB_DIR}/snakeoil.key)
  # umask 077: the derived key is readable by its owner only.
  add_custom_command(
    OUTPUT ${_sb_key}
    COMMAND ${CMAKE_COMMAND} -E make_directory ${CANOPY_SB_DIR}
    COMMAND sh -c "umask 077 && '${CANOPY_OPENSSL}' pkey -in '${_sb_snakeoil_key}' -passin pass:snakeoil -out '${_sb_key}.tmp' && mv -f '${_sb_key}.tmp' '${_sb_key}'"
    DEPENDS ${_sb_snakeoil_key}
    COMMENT "Deriving an unencrypted copy of the OVMF snakeoil test key"
    VERBATIM)
elseif(CANOPY_SB_KEY OR CANOPY_SB_CERT)
  if(NOT CANOPY_SB_KEY OR NOT CANOPY_SB_CERT)
    message(FATAL_ERROR "CANOPY_SB_KEY and CANOPY_SB_CERT go together")
  endif()
  get_filename_component(_sb_key ${CANOPY_SB_KEY} ABSOLUTE)
  get_filename_component(_sb_cert ${CANOPY_SB_CERT} ABSOLUTE)
  foreach(f ${_sb_key} ${_sb_cert})
    if(NOT EXISTS ${f})
      message(FATAL_ERROR "${f}: no such file")
    endif()
  endforeach()
else()
  return()
endif()

# The tools sb-image.sh runs; a missing one stops the configure step, since a
# key was asked for.
foreach(tool sbsign sbverify faketime llvm-objcopy)
  string(TOUPPER ${tool} _var)
  string(REPLACE "-" "_" _var ${_var})
  find_program(CANOPY_${_var} ${tool})
  if(NOT CANOPY_${_var})
    message(FATAL_ERROR "${tool} not found: needed for canopy-sb.img (scripts/deps.sh installs it)")
  endif()
endforeach()
if(NOT CANOPY_PYTHON3)
  message(FATAL_ERROR "python3 not found: scripts/sb-pin.py writes the pin of canopy-sb.img")
endif()

set(CANOPY_SB_KEY_FILE ${_sb_key})
set(CANOPY_SB_CERT_FILE ${_sb_cert})
set(_sb_scripts ${CMAKE_SOURCE_DIR}/scripts/sb-image.sh ${CMAKE_SOURCE_DIR}/scripts/sb-pin.py
  ${CANOPY_MKIMAGE})
add_custom_command(
  OUTPUT ${CANOPY_SB_IMAGE} ${CANOPY_SB_DIR}/BOOTX64.EFI ${CANOPY_SB_DIR}/kernel.elf
         ${CANOPY_SB_DIR}/canopy.cfg
  COMMAND ${CMAKE_SOURCE_DIR}/scripts/sb-image.sh
          --key ${_sb_key} --cert ${_sb_cert}
          --efi ${CANOPY_STAGE1_EFI} --kernel ${CANOPY_KERNEL_ELF} --cfg ${CANOPY_ESP_CFG}
          --dir ${CANOPY_SB_DIR} --out ${CANOPY_SB_IMAGE}
  DEPENDS stage1 kernel ${CANOPY_STAGE1_EFI} ${CANOPY_KERNEL_ELF} ${CANOPY_ESP_CFG}
          ${_sb_key} ${_sb_cert} ${_sb_scripts}
  COMMENT "Signing stage 1 and assembling canopy-sb.img"
  VERBATIM)
add_custom_target(image_sb ALL DEPENDS ${CANOPY_SB_IMAGE})
add_custom_target(image_sb_sha256 ALL
  COMMAND sha256sum canopy-sb.img
  DEPENDS image_sb
  WORKING_DIRECTORY ${CMAKE_BINARY_DIR}
  VERBATIM)

include(${CMAKE_SOURCE_DIR}/tests/secureboot/tests.cmake)
