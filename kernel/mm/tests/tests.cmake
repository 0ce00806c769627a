# Host tests of the kernel's memory manager parts that run unchanged on the
# host: the heap's size-class allocator (mm/slab.c).
canopy_host_test(kernel_slab_test
  SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/mm/tests/slab_test.c ${CMAKE_CURRENT_SOURCE_DIR}/mm/slab.c)
target_include_directories(kernel_slab_test PRIVATE ${CMAKE_SOURCE_DIR}/include)
