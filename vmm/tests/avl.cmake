# Tests of the AVL tree and the address space (avl.c, space.c).
canopy_host_test(vmm_avl_test SOURCES tests/avl_test.c LINK vmm)
