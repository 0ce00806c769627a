# Host test of the mapping manifest (kernel/mm/manifest.c) against vmm/pt on a
# host buffer. Included from kernel/CMakeLists.txt.
canopy_host_test(kernel_manifest_test
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/manifest_test.c ${CMAKE_CURRENT_LIST_DIR}/../manifest.c
  LINK pmm vmm klib)
target_include_directories(kernel_manifest_test PRIVATE ${CMAKE_CURRENT_LIST_DIR}/../../include)

# Host test of `pt check`'s frame and direct-map rules (kernel/mm/ptcheck.c).
canopy_host_test(kernel_ptcheck_test
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/ptcheck_test.c ${CMAKE_CURRENT_LIST_DIR}/../ptcheck.c
  LINK pmm vmm klib)
target_include_directories(kernel_ptcheck_test PRIVATE ${CMAKE_CURRENT_LIST_DIR}/../../include)
