# Initial cache for the sanitizer + fuzz build (cmake -C cmake/SanitizerBuild.cmake -S . -B build-asan), the one
# configuration scripts/test.sh and bench/fuzz.sh both use:
#  - clang, because libFuzzer comes with clang only, and one build then serves both the ASan/UBSan test run and
#    the fuzz targets (on CI's 2 cores a second instrumented build of the core would double the step);
#    clang links against the same libstdc++ as GCC-built LibTorch, so the ABI is the same;
#  - ASan + UBSan (+ float-cast-overflow, cmake/Sanitizers.cmake) on every target, libFuzzer coverage on every
#    target and the fuzz executables (cmake/Fuzzing.cmake);
#  - no GUI (needs Xvfb and Mesa, whose uninstrumented GL drivers add nothing here), no benchmarks, no CUDA
#    (nvcc does not take the sanitizer flags; the CPU references of the kernels are still built and tested).
set(CMAKE_BUILD_TYPE Release CACHE STRING "")
set(CMAKE_CXX_COMPILER clang++-14 CACHE STRING "")
set(MERGESCOPE_SANITIZE address,undefined CACHE STRING "")
set(MERGESCOPE_BUILD_FUZZ ON CACHE BOOL "")
set(MERGESCOPE_BUILD_TESTS ON CACHE BOOL "")
set(MERGESCOPE_BUILD_GUI OFF CACHE BOOL "")
set(MERGESCOPE_BUILD_BENCH OFF CACHE BOOL "")
set(MERGESCOPE_USE_CUDA OFF CACHE STRING "")
