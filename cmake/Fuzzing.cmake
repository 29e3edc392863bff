# MERGESCOPE_BUILD_FUZZ: libFuzzer targets for the parsers (tests/fuzz), clang only. Every translation unit of
# the project gets libFuzzer's coverage instrumentation (-fsanitize=fuzzer-no-link) so the fuzzer sees which
# branches of core/ an input reaches; the fuzz executables alone link libFuzzer's main (-fsanitize=fuzzer).
# Normally combined with MERGESCOPE_SANITIZE=address,undefined (scripts/test.sh, bench/fuzz.sh).
option(MERGESCOPE_BUILD_FUZZ "Build the libFuzzer targets under tests/fuzz (clang only)" OFF)

if(MERGESCOPE_BUILD_FUZZ)
  if(NOT CMAKE_CXX_COMPILER_ID STREQUAL "Clang")
    message(FATAL_ERROR "MERGESCOPE_BUILD_FUZZ needs clang (libFuzzer); configure with "
                        "-DCMAKE_CXX_COMPILER=clang++-14 (Debian: clang-14, libclang-rt-14-dev)")
  endif()
  add_compile_options("$<$<COMPILE_LANGUAGE:CXX>:-fsanitize=fuzzer-no-link>")
endif()
