# MERGESCOPE_SANITIZE: a comma-separated -fsanitize list (e.g. address,undefined) added to the compile and link
# flags of every target of the project. scripts/test.sh builds ./build-asan this way and runs the suite in it.
#
# LibTorch, OpenBLAS and libgomp come from Debian and stay uninstrumented. ASan still replaces malloc/new in the
# whole process, so their heap traffic is checked; their own stack and global accesses are not.
# MERGESCOPE_SANITIZER_ENV holds the runtime options every test gets (see below for why each); the fuzz targets
# set theirs in tests/fuzz/run_target.sh.
set(MERGESCOPE_SANITIZE "" CACHE STRING "Sanitizers for every target, e.g. address,undefined (empty: none)")
set(MERGESCOPE_SANITIZER_ENV "")

if(MERGESCOPE_SANITIZE)
  string(REPLACE "," ";" _ms_sanitizers "${MERGESCOPE_SANITIZE}")
  set(_ms_sanitize_flags -fsanitize=${MERGESCOPE_SANITIZE})
  if("undefined" IN_LIST _ms_sanitizers)
    # GCC leaves float-cast-overflow out of -fsanitize=undefined; a double from a config (crop_pct, mlp_ratio)
    # converted to an out-of-range int is exactly the UB we hunt, so ask for it by name with either compiler.
    list(APPEND _ms_sanitize_flags -fsanitize=float-cast-overflow)
  endif()
  # Whole stacks in every report (frame pointers are cheap), and a UBSan finding ends the process with an
  # error, so a test or fuzz run fails instead of printing a line nobody reads.
  list(APPEND _ms_sanitize_flags -fno-omit-frame-pointer -fno-sanitize-recover=all)
  # Line numbers in the stacks without the cost of full debug info for every ATen header.
  set(_ms_sanitize_compile_flags ${_ms_sanitize_flags} -g1)
  # CXX only: nvcc (core/cuda) does not take these flags.
  add_compile_options("$<$<COMPILE_LANGUAGE:CXX>:${_ms_sanitize_compile_flags}>")
  add_link_options(${_ms_sanitize_flags})

  # Runtime options every test gets (through MS_TEST_ENV, and on to the CLI runs a test starts). Measured with
  # Debian 12's uninstrumented LibTorch 1.13, OpenBLAS 0.3.21 (OpenMP) and libgomp, whole suite:
  #   abort_on_error=1   a report ends in SIGABRT, not exit status 1: tests that run the CLI on bad input expect
  #                      exactly 1, so a report there must not look like a clean refusal.
  #   handle_abort=1     a stack for SIGABRT too (std::terminate from an exception nobody catches).
  #   detect_leaks=1     the default, stated: LibTorch, OpenBLAS and libgomp keep their process-wide state
  #                      reachable, so LeakSanitizer reports nothing from them; fontconfig's caches (through
  #                      Cairo's text) are the one suppression (lsan.supp).
  # Left at their defaults because nothing needed them: alloc_dealloc_mismatch (LibTorch allocates and frees
  # through the same operators, which ASan intercepts process-wide), detect_container_overflow (libstdc++
  # annotates containers only under _GLIBCXX_SANITIZE_VECTOR, which nothing here defines), protect_shadow_gap
  # (matters only to the CUDA driver, which maps memory there; this build has no CUDA).
  set(MERGESCOPE_ASAN_OPTIONS "abort_on_error=1:handle_abort=1:detect_leaks=1")
  # UBSan: a stack for each report; -fno-sanitize-recover=all already makes every report fatal.
  set(MERGESCOPE_UBSAN_OPTIONS "print_stacktrace=1:abort_on_error=1")
  # LeakSanitizer: fontconfig's process-wide caches, which Cairo's text fills (cmake/lsan.supp says why).
  set(MERGESCOPE_LSAN_OPTIONS "suppressions=${CMAKE_CURRENT_LIST_DIR}/lsan.supp:print_suppressions=0")
  set(MERGESCOPE_SANITIZER_ENV "ASAN_OPTIONS=${MERGESCOPE_ASAN_OPTIONS}" "UBSAN_OPTIONS=${MERGESCOPE_UBSAN_OPTIONS}"
                               "LSAN_OPTIONS=${MERGESCOPE_LSAN_OPTIONS}")
  # File:line in the stacks: the runtimes look for "llvm-symbolizer" on PATH, which Debian's llvm-14 installs
  # only as llvm-symbolizer-14.
  find_program(MERGESCOPE_LLVM_SYMBOLIZER NAMES llvm-symbolizer llvm-symbolizer-14)
  if(MERGESCOPE_LLVM_SYMBOLIZER)
    list(APPEND MERGESCOPE_SANITIZER_ENV "ASAN_SYMBOLIZER_PATH=${MERGESCOPE_LLVM_SYMBOLIZER}")
  endif()
  message(STATUS "mergescope: sanitizers ${_ms_sanitize_flags}")
endif()

# Clang stamps a precompiled header with its build time, which makes ccache miss on every file that uses it
# (ccache's manual: "-Xclang -fno-pch-timestamp"). The sanitizer and fuzz builds use clang.
if(CMAKE_CXX_COMPILER_ID STREQUAL "Clang")
  add_compile_options("$<$<COMPILE_LANGUAGE:CXX>:SHELL:-Xclang -fno-pch-timestamp>")
endif()
