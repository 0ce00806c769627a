# The images are reproducible: a second build of a copy of the tree, at another
# path and in a differently named build directory, gives the same canopy.img,
# and the same canopy-sb.img when this build signs one (same key, same bytes).
set(_repro_images ${CANOPY_IMAGE})
set(_repro_options)
if(CANOPY_SB_SNAKEOIL)
  list(APPEND _repro_images ${CMAKE_BINARY_DIR}/canopy-sb.img)
  list(APPEND _repro_options -DCANOPY_SB_SNAKEOIL=ON)
elseif(CANOPY_SB_KEY)
  list(APPEND _repro_images ${CMAKE_BINARY_DIR}/canopy-sb.img)
  list(APPEND _repro_options -DCANOPY_SB_KEY=${CANOPY_SB_KEY} -DCANOPY_SB_CERT=${CANOPY_SB_CERT})
endif()
add_test(NAME image_reproducible
  COMMAND ${CMAKE_CURRENT_LIST_DIR}/check.sh ${CMAKE_SOURCE_DIR}
          ${CMAKE_CURRENT_BINARY_DIR}/repro-work ${_repro_images} -- ${_repro_options})
set_tests_properties(image_reproducible PROPERTIES LABELS image TIMEOUT 600)
