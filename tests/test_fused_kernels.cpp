// Fused reducer kernels against the shared ops they stand in for (core/reduce/ops.h: reduce::energy with the
// released formula, reduce::best_b), on fresh random inputs with every output written: the CPU references always,
// the CUDA kernels where the build has them and the machine a GPU (else "skipped"). On a GPU also the shared ops
// themselves on CUDA tensors, as the reducers call them (sliced views included), with the kernels and with
// MERGESCOPE_FUSED=0 (the ATen path), against the same ops on the CPU.
#include "fused_kernels.h"
#include "reduce/ops.h"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <limits>
#include <vector>

namespace ms {
namespace {

constexpr double kNormalizedTol = 1e-5;  // ||ours - ref|| / ||ref|| for float32 sums over <= 1024 terms

at::Tensor unit_keys(int64_t B, int64_t T, int64_t D, uint64_t seed) {
  return reduce::normalize(at::randn({B, T, D}, at::detail::createCPUGenerator(seed))).contiguous();
}

double normalized_error(const std::vector<float>& a, const std::vector<float>& b) {
  double num = 0, den = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    num += (a[i] - b[i]) * (a[i] - b[i]);
    den += b[i] * b[i];
  }
  return std::sqrt(num / std::max(den, 1e-30));
}

// The shared op's energy (CPU: the ATen path the reducers and the trace run).
std::vector<float> shared_energy(const at::Tensor& unit_keys, float margin) {
  const at::Tensor e = reduce::energy(unit_keys, margin, reduce::EnergyFormula::Code).contiguous();
  return std::vector<float>(e.data_ptr<float>(), e.data_ptr<float>() + e.numel());
}

// ToMe's layout: A = even rows of `metric`, B = odd rows, as the kernels take them.
struct SplitKeys {
  at::Tensor a, b;
  int64_t Na, Nb;
};
SplitKeys split(const at::Tensor& metric) {
  const reduce::AbSplit ab = reduce::alternate(metric);
  return {ab.a.contiguous(), ab.b.contiguous(), ab.a.size(1), ab.b.size(1)};
}

TEST(FusedKernels, EnergyReferenceEqualsSharedOp) {
  c10::InferenceMode guard;
  const at::Tensor k = unit_keys(3, 150, 64, 1);
  const float margin = 0.4375f;
  std::vector<float> ours(3 * 150, std::nanf(""));
  fused::pitome_energy_cpu(k.data_ptr<float>(), 3, 150, 64, margin, 1.0f, ours.data());
  EXPECT_LT(normalized_error(ours, shared_energy(k, margin)), kNormalizedTol);
}

TEST(FusedKernels, MatchingReferenceEqualsSharedOp) {
  c10::InferenceMode guard;
  for (const bool distill : {false, true}) {
    const at::Tensor m = unit_keys(2, 197, 64, 2);
    const reduce::RowBest want = reduce::best_b(m, true, distill, false);
    const SplitKeys s = split(m);
    std::vector<int64_t> idx(2 * s.Na, -1);
    std::vector<float> val(2 * s.Na, std::nanf(""));
    fused::bipartite_match_cpu(s.a.data_ptr<float>(), s.b.data_ptr<float>(), 2, s.Na, s.Nb, 64, true, distill,
                               idx.data(), val.data());
    for (int64_t n = 0; n < 2; ++n)
      for (int64_t i = 1; i < s.Na; ++i) {  // row 0 is all -inf: any index is a valid arg-max there
        EXPECT_EQ(idx[n * s.Na + i], want.index[n][i].item<int64_t>()) << "image " << n << " row " << i;
        EXPECT_NEAR(val[n * s.Na + i], want.value[n][i].item<float>(), 1e-5);
      }
    EXPECT_TRUE(std::isinf(val[0]) && val[0] < 0);
  }
}

TEST(FusedKernels, BuildReportsItsCudaState) {
  // Without kernels the device entry points refuse clearly instead of doing nothing.
  if (!fused::cuda_kernels_built()) {
    EXPECT_NE(fused::cuda_status().find("built without CUDA"), std::string::npos);
    float e = 0;
    EXPECT_THROW(fused::pitome_energy_cuda_host(&e, 1, 1, 1, 0.f, 1.f, &e), std::runtime_error);
  } else {
    EXPECT_NE(fused::cuda_status().find("CUDA kernels built"), std::string::npos);
  }
}

TEST(FusedKernels, CudaEnergyEqualsSharedOp) {
  if (!fused::cuda_kernels_built() || !fused::cuda_device_available()) GTEST_SKIP() << fused::cuda_status();
  for (const int64_t T : {1, 37, 196, 1024}) {
    const at::Tensor k = unit_keys(2, T, 64, 10 + T);
    std::vector<float> gpu(2 * T, std::nanf(""));
    fused::pitome_energy_cuda_host(k.data_ptr<float>(), 2, T, 64, 0.5f, 1.0f, gpu.data());
    EXPECT_LT(normalized_error(gpu, shared_energy(k, 0.5f)), kNormalizedTol) << "T = " << T;
  }
}

TEST(FusedKernels, CudaMatchingEqualsSharedOp) {
  if (!fused::cuda_kernels_built() || !fused::cuda_device_available()) GTEST_SKIP() << fused::cuda_status();
  for (const int64_t N : {5, 197, 1025}) {
    const at::Tensor m = unit_keys(2, N, 64, 20 + N);
    const reduce::RowBest want = reduce::best_b(m, true, true, false);
    const SplitKeys s = split(m);
    std::vector<int64_t> gi(2 * s.Na, -1);
    std::vector<float> gs(2 * s.Na, std::nanf(""));
    fused::bipartite_match_cuda_host(s.a.data_ptr<float>(), s.b.data_ptr<float>(), 2, s.Na, s.Nb, 64, true, true,
                                     gi.data(), gs.data());
    for (int64_t n = 0; n < 2; ++n)
      for (int64_t i = 1; i < s.Na; ++i) {  // protected row 0: all -inf
        EXPECT_EQ(gi[n * s.Na + i], want.index[n][i].item<int64_t>()) << "N = " << N << " row " << i;
        EXPECT_NEAR(gs[n * s.Na + i], want.value[n][i].item<float>(), 1e-5);
      }
  }
}

// ---- the shared ops on CUDA tensors (what the reducers run on --device cuda)

bool cuda_ops_available() { return at::hasCUDA(); }

// Sets MERGESCOPE_FUSED for the scope (the ops read it on every call) and restores it.
class FusedSwitch {
 public:
  explicit FusedSwitch(bool on) {
    const char* old = std::getenv("MERGESCOPE_FUSED");
    had_ = old != nullptr;
    if (had_) old_ = old;
    setenv("MERGESCOPE_FUSED", on ? "1" : "0", 1);
  }
  ~FusedSwitch() {
    if (had_)
      setenv("MERGESCOPE_FUSED", old_.c_str(), 1);
    else
      unsetenv("MERGESCOPE_FUSED");
  }

 private:
  bool had_ = false;
  std::string old_;
};

// Rows 1.. of `got` choose the same B as `want`, or one whose CPU score ties the best (float rounding).
void expect_same_choices(const reduce::RowBest& got, const reduce::RowBest& want, const at::Tensor& metric_cpu,
                         const std::string& what) {
  const at::Tensor gi = got.index.cpu(), gv = got.value.cpu();
  const reduce::AbSplit ab = reduce::alternate(metric_cpu);
  const at::Tensor scores = at::bmm(ab.a, ab.b.transpose(1, 2));
  for (int64_t n = 0; n < gi.size(0); ++n)
    for (int64_t i = 1; i < gi.size(1); ++i) {
      const int64_t g = gi[n][i].item<int64_t>(), w = want.index[n][i].item<int64_t>();
      if (g != w)
        EXPECT_NEAR(scores[n][i][g].item<float>(), want.value[n][i].item<float>(), 1e-6) << what << " row " << i;
      EXPECT_NEAR(gv[n][i].item<float>(), want.value[n][i].item<float>(), 1e-5) << what << " row " << i;
    }
}

TEST(FusedKernels, SharedOpsOnCudaTensorsEqualCpu) {
  if (!cuda_ops_available()) GTEST_SKIP() << "this LibTorch sees no CUDA device; " << fused::cuda_status();
  c10::InferenceMode guard;
  for (const bool fused_on : {true, false}) {
    const FusedSwitch fused_switch(fused_on);
    const std::string mode = fused_on ? "fused" : "MERGESCOPE_FUSED=0";
    for (const int64_t T : {1, 37, 196, 577}) {
      // As PiToMe passes them: the non-prefix rows of [B, 1 + T, D] keys, a non-contiguous view.
      const at::Tensor full = unit_keys(3, T + 1, 64, 40 + T);
      const at::Tensor cpu = reduce::energy(full.slice(1, 1), 0.3125, reduce::EnergyFormula::Code);
      const at::Tensor gpu = reduce::energy(full.to(at::kCUDA).slice(1, 1), 0.3125, reduce::EnergyFormula::Code);
      ASSERT_TRUE(gpu.is_cuda()) << mode;
      const at::Tensor g = gpu.cpu().contiguous(), c = cpu.contiguous();
      EXPECT_LT(normalized_error(std::vector<float>(g.data_ptr<float>(), g.data_ptr<float>() + g.numel()),
                                 std::vector<float>(c.data_ptr<float>(), c.data_ptr<float>() + c.numel())),
                kNormalizedTol)
          << mode << " T = " << T;
    }
    for (const int64_t N : {5, 197, 1025})
      for (const bool distill : {false, true}) {
        const at::Tensor m = unit_keys(2, N, 64, 60 + N);
        const reduce::RowBest want = reduce::best_b(m, true, distill, false);
        const reduce::RowBest got = reduce::best_b(m.to(at::kCUDA), true, distill, false);
        ASSERT_TRUE(got.index.is_cuda() && got.value.is_cuda()) << mode;
        ASSERT_EQ(got.index.scalar_type(), at::kLong);
        expect_same_choices(got, want, m, mode + " N = " + std::to_string(N) + (distill ? " distill" : ""));
      }
  }
}

TEST(FusedKernels, CudaOpsAboveTheKernelDimTakeTheAtenPath) {
  // Keys wider than the kernels' shared-memory row (256) must still work on CUDA tensors (ATen path, no throw).
  if (!cuda_ops_available()) GTEST_SKIP() << "this LibTorch sees no CUDA device; " << fused::cuda_status();
  c10::InferenceMode guard;
  const at::Tensor k = unit_keys(2, 50, 320, 7);
  const at::Tensor e = reduce::energy(k.to(at::kCUDA), 0.5, reduce::EnergyFormula::Code).cpu();
  EXPECT_TRUE(at::allclose(e, reduce::energy(k, 0.5, reduce::EnergyFormula::Code), 1e-5, 1e-6));
  const reduce::RowBest got = reduce::best_b(k.to(at::kCUDA), true, false, false);
  expect_same_choices(got, reduce::best_b(k, true, false, false), k, "D = 320");
}

}  // namespace
}  // namespace ms
