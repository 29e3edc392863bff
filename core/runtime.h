// Process-wide runtime set-up: thread count, allocator tuning, and what the build links (LibTorch, BLAS).
#pragma once

#include <string>

namespace ms {

// Sets LibTorch's intra-op threads (threads <= 0: all cores) and keeps large tensor buffers in the heap
// between forwards instead of returning them to the kernel (which costs a page fault per 4 KiB each time).
void init_runtime(int threads = 0);

int core_count();
std::string libtorch_version();
// The BLAS library LibTorch's libblas.so.3 resolves to, e.g. "OpenBLAS 0.3.21 (openmp) at /usr/lib/.../libblas.so.3".
std::string blas_description();
// One line per fact: versions, BLAS, the OpenBLAS kernel and why it runs (blas_select.h), threads, CUDA.
std::string version_report();

}  // namespace ms
