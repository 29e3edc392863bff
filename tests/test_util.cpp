#include "test_util.h"

#include "blas_select.h"

#include <gtest/gtest.h>

#include <ATen/ATen.h>

#include <sys/wait.h>

#include <unistd.h>
#include <array>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>

namespace ms::test {
namespace {

// CTest runs some suites under each OpenBLAS kernel (tests/CMakeLists.txt). OpenBLAS accepts any name in
// OPENBLAS_CORETYPE and dies on an illegal instruction when the CPU lacks it, so every suite skips all its
// tests then, and CTest reports the run as skipped (SKIP_REGULAR_EXPRESSION).
class BlasKernelGuard : public ::testing::Environment {
 public:
  void SetUp() override {
    const char* kernel = std::getenv("OPENBLAS_CORETYPE");
    if (kernel && !cpu_runs_openblas_kernel(kernel, read_cpu_info()))
      GTEST_SKIP() << "this CPU cannot run the OpenBLAS kernel " << kernel << " (" << describe_cpu(read_cpu_info())
                   << ")";
  }
};
const ::testing::Environment* const kBlasKernelGuard = ::testing::AddGlobalTestEnvironment(new BlasKernelGuard);

std::string env_or(const char* name, const std::string& fallback) {
  const char* v = std::getenv(name);
  return v && *v ? v : fallback;
}

std::string slurp(const std::string& path) {
  std::ifstream f(path);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

}  // namespace

std::string golden_file() {
  return env_or("MERGESCOPE_GOLDEN", "../shared/golden") + "/deit_tiny_merge_reference.safetensors";
}
std::string fixtures_dir() { return env_or("MERGESCOPE_FIXTURES", "build/tests/fixtures"); }
std::string shared_image(const std::string& name) { return "../shared/data/imagenet-sample/" + name; }
std::string cli_path() { return env_or("MERGESCOPE_CLI", "build/app/mergescope-cli"); }

c10::Device test_device() {
  static const c10::Device device = [] {
    const c10::Device d(env_or("MERGESCOPE_TEST_DEVICE", "cpu"));
    if (d.is_cuda() && !at::hasCUDA()) {
      std::fprintf(stderr, "MERGESCOPE_TEST_DEVICE=%s, but this LibTorch has no CUDA or sees no GPU\n",
                   d.str().c_str());
      std::exit(1);
    }
    std::printf("[mergescope] test device: %s\n", d.str().c_str());
    return d;
  }();
  return device;
}

double relative_max_error(const at::Tensor& a, const at::Tensor& b) {
  return (a.to(b.device()) - b).abs().max().item<double>() / b.abs().max().item<double>();
}

CommandResult run_command(const std::string& command_line) {
  char out_name[] = "/tmp/ms_test_outXXXXXX";
  char err_name[] = "/tmp/ms_test_errXXXXXX";
  const int out_fd = mkstemp(out_name), err_fd = mkstemp(err_name);
  close(out_fd);
  close(err_fd);
  const std::string full = command_line + " >" + out_name + " 2>" + err_name + " </dev/null";
  const int status = std::system(full.c_str());
  CommandResult r;
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  r.out = slurp(out_name);
  r.err = slurp(err_name);
  std::remove(out_name);
  std::remove(err_name);
  return r;
}

std::string make_temp_dir(const std::string& prefix) {
  std::string pattern = "/tmp/" + prefix + "XXXXXX";
  if (!mkdtemp(pattern.data())) throw std::runtime_error("mkdtemp " + pattern + " failed");
  return pattern;
}

}  // namespace ms::test
