# The image is reproducible: a second build of a copy of the tree, at another
# path and in a differently named build directory, gives the same canopy.img.
add_test(NAME image_reproducible
  COMMAND ${CMAKE_CURRENT_LIST_DIR}/check.sh ${CMAKE_SOURCE_DIR} ${CMAKE_BINARY_DIR}/canopy.img
          ${CMAKE_CURRENT_BINARY_DIR}/repro-work)
set_tests_properties(image_reproducible PROPERTIES LABELS image TIMEOUT 600)
