# The disk image: canopy.img at the top of the build directory, a GPT disk with
# one FAT32 EFI System Partition holding stage 1, the kernel and its config.
# scripts/mkimage.sh does the work with sgdisk and mtools (no root, no loop
# devices); the image is reproducible byte for byte (see that script).
#
# The image depends on both binaries, the config and the script, so it is
# rebuilt whenever one of them changes. The build ends by printing its sha256.

add_custom_command(
  OUTPUT ${CANOPY_IMAGE}
  COMMAND ${CANOPY_MKIMAGE}
          --out ${CANOPY_IMAGE}
          --efi ${CANOPY_STAGE1_EFI}
          --kernel ${CANOPY_KERNEL_ELF}
          --cfg ${CANOPY_ESP_CFG}
          --quiet
  DEPENDS stage1 kernel ${CANOPY_STAGE1_EFI} ${CANOPY_KERNEL_ELF}
          ${CANOPY_ESP_CFG} ${CANOPY_MKIMAGE}
  COMMENT "Assembling canopy.img (GPT, FAT32 ESP)"
  VERBATIM)
add_custom_target(image ALL DEPENDS ${CANOPY_IMAGE})

# Always runs, after the image: the hash a reproducible build can be checked by.
add_custom_target(image_sha256 ALL
  COMMAND sha256sum canopy.img
  DEPENDS image
  WORKING_DIRECTORY ${CMAKE_BINARY_DIR}
  VERBATIM)
