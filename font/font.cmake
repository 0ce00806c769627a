# The console font for stage 1's last-words screen and the kernel's console:
# a gzipped PSF1/PSF2 file, unpacked once into the build directory and
# embedded by console_font.S with .incbin. Both consoles parse its header at
# run time, so any PSF font of Debian's console-setup-linux package works.
#
# Included by stage1/ and kernel/, whichever comes first defining the rule:
#   CANOPY_FONT_PSF          the unpacked file (also for host tests that read it)
#   canopy_font              the target that unpacks it
#   canopy_embed_font(tgt)   adds console_font.S to tgt (canopy_font_psf and
#                            canopy_font_psf_end, declared in <canopy/font.h>)

# Set in every including directory; what follows the guard runs once.
set(CANOPY_FONT_PSF ${CMAKE_BINARY_DIR}/font/console.psf)
include_guard(GLOBAL)

set(CANOPY_KERNEL_FONT /usr/share/consolefonts/Lat15-Fixed16.psf.gz
  CACHE FILEPATH "gzipped PSF font for the consoles of stage 1 and the kernel")
if(NOT EXISTS ${CANOPY_KERNEL_FONT})
  message(FATAL_ERROR "console font ${CANOPY_KERNEL_FONT} not found: "
    "install Debian's console-setup-linux package (apt-get install console-setup-linux) "
    "or set CANOPY_KERNEL_FONT to another .psf.gz")
endif()
get_filename_component(_canopy_font_dir ${CANOPY_FONT_PSF} DIRECTORY)
add_custom_command(
  OUTPUT ${CANOPY_FONT_PSF}
  COMMAND ${CMAKE_COMMAND} -E make_directory ${_canopy_font_dir}
  COMMAND sh -c "gzip -dc '${CANOPY_KERNEL_FONT}' > '${CANOPY_FONT_PSF}.tmp'"
  COMMAND ${CMAKE_COMMAND} -E rename ${CANOPY_FONT_PSF}.tmp ${CANOPY_FONT_PSF}
  DEPENDS ${CANOPY_KERNEL_FONT}
  COMMENT "Unpacking the console font"
  VERBATIM)
add_custom_target(canopy_font DEPENDS ${CANOPY_FONT_PSF})

# Compiles console_font.S into `target` with that target's flags; .incbin finds
# the unpacked file through the assembler's include path.
function(canopy_embed_font target)
  set(src ${CMAKE_CURRENT_FUNCTION_LIST_DIR}/console_font.S)
  get_filename_component(dir ${CANOPY_FONT_PSF} DIRECTORY)
  target_sources(${target} PRIVATE ${src})
  set_source_files_properties(${src} TARGET_DIRECTORY ${target} PROPERTIES
    COMPILE_OPTIONS "-Wa,-I,${dir}"
    OBJECT_DEPENDS ${CANOPY_FONT_PSF})
  add_dependencies(${target} canopy_font)
endfunction()
