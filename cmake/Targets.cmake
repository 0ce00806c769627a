# Canopy builds the same freestanding sources for three targets in one CMake
# project. Each target's flags live here, each flag with its reason.
#
#   host    unit tests and fuzzers: ASan + UBSan, normal libc
#   bench   benchmarks: the host build optimised, without sanitizers
#   uefi    stage 1, a PE32+ EFI application (MS x64 ABI), linked by lld-link
#   kernel  the higher-half ELF64 kernel, linked by ld.lld

set(CANOPY_WARNINGS -Wall -Wextra -Werror -Wno-unused-parameter
  -Wshadow              # an inner name hiding an outer one reads as the outer one
  -Wvla                 # no stack arrays sized at run time: kernel and firmware stacks are small
  -Wstrict-prototypes   # f() is f(void): no unchecked calls through old-style declarations
  -Wmissing-prototypes) # a non-static function is declared in a header the caller shares, or static

# Host builds catch memory and UB errors at the first bad access.
set(CANOPY_HOST_CFLAGS
  ${CANOPY_WARNINGS} -g -O1
  -fsanitize=address,undefined   # every host test runs under both
  -fno-sanitize-recover=all      # a UB report fails the test instead of scrolling by
  -fno-omit-frame-pointer)       # readable sanitizer stack traces
set(CANOPY_HOST_LDFLAGS -fsanitize=address,undefined)

# Benchmarks time the code as the kernel runs it: optimised like the kernel
# (-O2), no sanitizer checks in the hot paths, still with asserts. Host ABI and
# libc, like the host flavour.
set(CANOPY_BENCH_CFLAGS
  ${CANOPY_WARNINGS} -O2
  -gdwarf-4)  # profilers show lines; Debian's valgrind 3.19 cannot read clang 14's DWARF 5

set(CANOPY_UEFI_CFLAGS
  ${CANOPY_WARNINGS} -O2 -g
  -gdwarf                          # DWARF, not CodeView, so gdb can read stage 1's symbols
  --target=x86_64-unknown-windows  # PE/COFF objects and the MS x64 ABI UEFI uses
  -ffreestanding                   # no hosted libc: memset & co come from lib/
  -fshort-wchar                    # CHAR16 is 16 bits in UEFI
  -mno-red-zone                    # firmware interrupts run on our stack
  -mgeneral-regs-only              # no x87/MMX/SSE: UEFI promises SSE only to EDK2-like firmware;
                                   # U-Boot leaves CR4.OSFXSR clear, so the first SSE instruction
                                   # (a compiler-made movups copy) is #UD (Linux's stub, Limine: same)
  -fstack-protector-strong         # canary in frames with arrays or escaping locals (lib/src/rt.c);
                                   # efi_main seeds __security_cookie before anything else
  -fno-builtin                     # keep our mem* from being turned into calls to themselves
  -isystem/usr/include/efi -isystem/usr/include/efi/x86_64)  # gnu-efi's types and protocols
set(CANOPY_UEFI_LDFLAGS
  --target=x86_64-unknown-windows -fuse-ld=lld  # the clang driver runs lld-link
  -nostdlib                              # no CRT, no default libraries
  -Wl,-nodefaultlib                      # nor those objects ask for (-fsanitize embeds clang_rt.ubsan's)
  -Wl,-subsystem:efi_application         # PE subsystem 10: what firmware loads
  -Wl,-entry:efi_main
  -Wl,-debug:dwarf                       # keep DWARF in the PE for gdb
  -Wl,-Brepro)                           # no timestamp in the PE header: reproducible image

set(CANOPY_KERNEL_CFLAGS
  ${CANOPY_WARNINGS} -O2 -g
  --target=x86_64-unknown-none-elf  # bare ELF64, SysV ABI
  -ffreestanding -fno-builtin
  -fno-pic -fno-pie                 # linked at a fixed higher-half address
  -mcmodel=kernel                   # code and data in the top 2 GiB: sign-extended 32-bit addresses
  -mno-red-zone                     # interrupts push onto the interrupted stack
  -mgeneral-regs-only               # no x87/MMX/SSE/AVX: no FPU state to save in interrupt paths,
                                    # and none the firmware had to enable (U-Boot leaves CR4.OSFXSR
                                    # clear); -mno-sse alone still lets float and long double use x87
  -fstack-protector-strong          # canary in frames with arrays or escaping locals (lib/src/rt.c);
                                    # kernel_main seeds __stack_chk_guard first (a global: no TLS here)
  -fno-omit-frame-pointer)          # backtraces in panics and gdb
set(CANOPY_KERNEL_LDFLAGS
  --target=x86_64-unknown-none-elf -fuse-ld=lld
  -nostdlib -static
  -Wl,--build-id=none               # nothing host-specific in the image
  -Wl,-z,max-page-size=4096         # segments page aligned, no 2 MiB padding
  -Wl,--no-dynamic-linker)

# The debug build (-DCANOPY_UBSAN=ON, or `cmake --preset debug`): stage 1 and
# the kernel check for undefined behaviour with the minimal runtime in
# lib/src/ubsan.c, which prints `ubsan: FILE:LINE:COLUMN: what` once per site
# and carries on. vptr and function are left out: they need C++ type
# information and compiler-rt's full runtime.
option(CANOPY_UBSAN "UBSan in stage 1 and the kernel (lib/src/ubsan.c reports)" OFF)
if(CANOPY_UBSAN)
  # Reports name files from the top of the tree, like __FILE__ under
  # -ffile-prefix-map (which clang 14 does not apply to UBSan's file names).
  string(REGEX MATCHALL "/[^/]+" _source_components "${CMAKE_SOURCE_DIR}")
  list(LENGTH _source_components _source_depth)
  math(EXPR _source_depth_root "${_source_depth} + 1") # the root / counts as one
  set(CANOPY_UBSAN_CFLAGS -fsanitize=undefined -fno-sanitize=vptr,function
    -fsanitize-undefined-strip-path-components=${_source_depth_root})
  list(APPEND CANOPY_UEFI_CFLAGS ${CANOPY_UBSAN_CFLAGS})
  list(APPEND CANOPY_KERNEL_CFLAGS ${CANOPY_UBSAN_CFLAGS})
endif()

# Strip the source directory from debug info and __FILE__, and name the build
# directory (DW_AT_comp_dir) `build` whatever it is called, so binaries do not
# depend on where the tree was checked out or built. lld-link's -Brepro hashes
# the whole PE, debug info included, into its timestamp, so this matters even
# though the image carries stripped binaries. Clang 14 ignores
# -ffile-prefix-map for assembly files, so they get no debug info rather than
# absolute paths.
set(CANOPY_PATH_FLAGS -ffile-prefix-map=${CMAKE_SOURCE_DIR}/=
  -ffile-prefix-map=${CMAKE_BINARY_DIR}=build $<$<COMPILE_LANGUAGE:ASM>:-g0>)
list(APPEND CANOPY_UEFI_CFLAGS ${CANOPY_PATH_FLAGS})
list(APPEND CANOPY_KERNEL_CFLAGS ${CANOPY_PATH_FLAGS})

# Each flag set as an INTERFACE target: a target gets a flavour's flags by
# linking canopy_flags_<set>, privately, so they never leak into its users.
#   host    the host compile and link flags above
#   bench   the benchmark flavour (compile only; links with the host libc)
#   fuzz    the host flags with coverage for libFuzzer (-fsanitize=fuzzer-no-link:
#           the libraries' edges count, but main stays the harness's)
#   uefi    C gets CANOPY_UEFI_CFLAGS, assembly only the target (the C-only
#           flags would go unused there); links with CANOPY_UEFI_LDFLAGS
#   kernel  CANOPY_KERNEL_CFLAGS for C and assembly alike (the --target and the
#           code model matter for both); kernel/link translates the link flags
#           for ld.lld itself
add_library(canopy_flags_host INTERFACE)
target_compile_options(canopy_flags_host INTERFACE ${CANOPY_HOST_CFLAGS})
target_link_options(canopy_flags_host INTERFACE ${CANOPY_HOST_LDFLAGS})
add_library(canopy_flags_bench INTERFACE)
target_compile_options(canopy_flags_bench INTERFACE ${CANOPY_BENCH_CFLAGS})
add_library(canopy_flags_fuzz INTERFACE)
target_compile_options(canopy_flags_fuzz INTERFACE ${CANOPY_HOST_CFLAGS} -fsanitize=fuzzer-no-link
  -fsanitize-coverage-ignorelist=${CMAKE_SOURCE_DIR}/cmake/fuzz-coverage-ignore.txt)
add_library(canopy_flags_uefi INTERFACE)
target_compile_options(canopy_flags_uefi INTERFACE
  "$<$<COMPILE_LANGUAGE:C>:${CANOPY_UEFI_CFLAGS}>"
  $<$<COMPILE_LANGUAGE:ASM>:--target=x86_64-unknown-windows>)
target_link_options(canopy_flags_uefi INTERFACE ${CANOPY_UEFI_LDFLAGS})
add_library(canopy_flags_kernel INTERFACE)
target_compile_options(canopy_flags_kernel INTERFACE ${CANOPY_KERNEL_CFLAGS})

# What host tests share: tests/include (canopy/check.h, the assertion macros,
# and canopy/rng.h, the seeded generators).
add_library(canopy_test_support INTERFACE)
target_include_directories(canopy_test_support INTERFACE ${CMAKE_SOURCE_DIR}/tests/include)

# canopy_library(NAME SOURCES ... INCLUDE dir [LINK libs...] [FUZZ_EDGES_ONLY])
# Builds the same sources five times, one library per flavour:
#   NAME_host      static, host flags (ASan + UBSan): what tests link
#   NAME_benchlib  static, bench flags (not NAME_bench, which names the
#                  benchmark executables)
#   NAME_fuzzlib   static, fuzz flags
#   NAME_uefi      object library for stage 1
#   NAME_kernel    object library for the kernel
# The static flavours are EXCLUDE_FROM_ALL but the host one: built only when a
# benchmark or a fuzzer links them. Each flavour links the same flavour of
# every LINK library, publicly (their headers are part of NAME's interface).
# An executable takes an object library's files by linking it directly:
# object files do not pass on to the users of a library that links one.
# FUZZ_EDGES_ONLY: NAME_fuzzlib traces edges but not comparisons. For a
# library that a fuzzer drives with decoded operations (addresses and sizes
# computed from the input, never compared with its bytes), the traced
# comparisons cost 2 to 3 times the rest of an execution and found no edge
# and no feature more in the same number of runs (docs/fuzzing.md).
set(CANOPY_LIBRARY_FLAVORS host benchlib fuzzlib uefi kernel) # pairwise: the flavour...
set(CANOPY_LIBRARY_FLAGS host bench fuzz uefi kernel)         # ...and its flag set
function(canopy_library name)
  cmake_parse_arguments(A "FUZZ_EDGES_ONLY" "" "SOURCES;LINK;INCLUDE" ${ARGN})
  add_library(${name}_host STATIC ${A_SOURCES})
  add_library(${name}_benchlib STATIC EXCLUDE_FROM_ALL ${A_SOURCES})
  add_library(${name}_fuzzlib STATIC EXCLUDE_FROM_ALL ${A_SOURCES})
  add_library(${name}_uefi OBJECT ${A_SOURCES})
  add_library(${name}_kernel OBJECT ${A_SOURCES})
  foreach(flavor flags IN ZIP_LISTS CANOPY_LIBRARY_FLAVORS CANOPY_LIBRARY_FLAGS)
    target_include_directories(${name}_${flavor} PUBLIC ${A_INCLUDE})
    target_link_libraries(${name}_${flavor} PRIVATE canopy_flags_${flags})
    foreach(dep ${A_LINK})
      target_link_libraries(${name}_${flavor} PUBLIC ${dep}_${flavor})
    endforeach()
  endforeach()
  if(A_FUZZ_EDGES_ONLY)
    target_compile_options(${name}_fuzzlib PRIVATE -fno-sanitize-coverage=trace-cmp)
  endif()
  # Host users link with the sanitizer runtimes the library's objects call.
  target_link_options(${name}_host INTERFACE ${CANOPY_HOST_LDFLAGS})
endfunction()

# canopy_host_test(NAME SOURCES ... LINK libs... [ARGS args...])
# A host test executable registered with CTest (label host).
function(canopy_host_test name)
  cmake_parse_arguments(A "" "" "SOURCES;LINK;ARGS" ${ARGN})
  add_executable(${name} ${A_SOURCES})
  target_link_libraries(${name} PRIVATE canopy_flags_host canopy_test_support)
  foreach(dep ${A_LINK})
    target_link_libraries(${name} PRIVATE ${dep}_host)
  endforeach()
  add_test(NAME ${name} COMMAND ${name} ${A_ARGS})
  set_tests_properties(${name} PROPERTIES LABELS host TIMEOUT 300)
endfunction()

# canopy_fuzzer(NAME SOURCES ... LINK libs... CORPUS dir SECONDS n)
# A libFuzzer target; CTest runs it for a bounded time from its committed corpus.
# Each fuzzer also gets a line "NAME BINARY CORPUS" in fuzzers.txt at the top of
# the build directory, which scripts/fuzz.sh reads for its longer runs.
file(WRITE ${CMAKE_BINARY_DIR}/fuzzers.txt "")
function(canopy_fuzzer name)
  cmake_parse_arguments(A "" "CORPUS;SECONDS" "SOURCES;LINK" ${ARGN})
  add_executable(${name} ${A_SOURCES})
  target_link_libraries(${name} PRIVATE canopy_flags_host canopy_test_support)
  target_compile_options(${name} PRIVATE -fsanitize=fuzzer)
  target_link_options(${name} PRIVATE -fsanitize=fuzzer)
  foreach(dep ${A_LINK})
    target_link_libraries(${name} PRIVATE ${dep}_fuzzlib)
  endforeach()
  if(NOT A_SECONDS)
    set(A_SECONDS 20)
  endif()
  # The corpus is copied so that a test run never writes into the source tree.
  add_test(NAME ${name}
    COMMAND sh -c "rm -rf corpus-${name} && mkdir -p corpus-${name} && cp -r ${A_CORPUS}/. corpus-${name}/ && ./${name} -max_total_time=${A_SECONDS} -print_final_stats=1 corpus-${name}"
    WORKING_DIRECTORY ${CMAKE_CURRENT_BINARY_DIR})
  set_tests_properties(${name} PROPERTIES LABELS fuzz TIMEOUT 600)
  file(APPEND ${CMAKE_BINARY_DIR}/fuzzers.txt
    "${name} ${CMAKE_CURRENT_BINARY_DIR}/${name} ${A_CORPUS}\n")
endfunction()
