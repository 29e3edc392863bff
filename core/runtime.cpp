#include "runtime.h"

#include "precision.h"

#include "blas_select.h"

#include <ATen/Parallel.h>
#include <torch/version.h>

#include <dlfcn.h>
#include <link.h>
#include <malloc.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <sstream>
#include <thread>

namespace ms {
namespace {

int find_blas(struct dl_phdr_info* info, size_t, void* data) {
  auto* out = static_cast<std::string*>(data);
  if (info->dlpi_name && std::strstr(info->dlpi_name, "libblas.so")) *out = info->dlpi_name;
  return 0;
}

}  // namespace

int core_count() {
  const unsigned n = std::thread::hardware_concurrency();
  return n == 0 ? 1 : static_cast<int>(n);
}

void init_runtime(int threads) {
  at::set_num_threads(threads > 0 ? threads : core_count());
  // glibc serves blocks over 128 KiB with fresh mmaps and unmaps them on free; every forward would then
  // fault its activations in again. Keep them in the heap for reuse.
  mallopt(M_MMAP_THRESHOLD, 1 << 30);
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
}

std::string libtorch_version() {
  return std::to_string(TORCH_VERSION_MAJOR) + "." + std::to_string(TORCH_VERSION_MINOR) + "." +
         std::to_string(TORCH_VERSION_PATCH);
}

std::string blas_description() {
  std::string path;
  dl_iterate_phdr(find_blas, &path);
  char resolved[4096];
  if (!path.empty() && realpath(path.c_str(), resolved)) path = resolved;
  std::string name = "unknown BLAS";
  using ConfigFn = char* (*)();
  if (auto fn = reinterpret_cast<ConfigFn>(dlsym(RTLD_DEFAULT, "openblas_get_config"))) {
    name = fn();
  } else if (path.find("blas/libblas") != std::string::npos) {
    name = "reference BLAS (slow: install libopenblas0-openmp)";
  }
  return name + (path.empty() ? "" : " at " + path);
}

std::string version_report() {
  std::ostringstream s;
  s << "mergescope 0.1.0\n"
    << "LibTorch " << libtorch_version() << "\n"
    << "BLAS: " << blas_description() << "\n";
  if (const std::string kernel = blas_kernel_report(); !kernel.empty()) s << kernel << "\n";
  s << bf16_report() << "\n";
  s << "threads: " << at::get_num_threads() << " of " << core_count() << " cores\n"
#ifdef MERGESCOPE_WITH_CUDA
    << "CUDA: built with CUDA\n";
#else
    << "CUDA: built without CUDA\n";
#endif
  return s.str();
}

}  // namespace ms
