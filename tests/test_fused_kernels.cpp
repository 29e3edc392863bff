// Fused reducer kernels: the CPU references equal the ATen computations the reducers use, and the CUDA
// kernels equal the CPU references (normalised error, fresh random inputs, every output written). The CUDA
// comparisons report "skipped" when the build has no kernels or the machine no GPU.
#include "fused_kernels.h"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <vector>

namespace ms {
namespace {

constexpr double kNormalizedTol = 1e-5;  // ||ours - ref|| / ||ref|| for float32 sums over <= 1024 terms

at::Tensor unit_keys(int64_t B, int64_t T, int64_t D, uint64_t seed) {
  const at::Tensor k = at::randn({B, T, D}, at::detail::createCPUGenerator(seed));
  return (k / k.norm(2, -1, true)).contiguous();
}

double normalized_error(const std::vector<float>& a, const std::vector<float>& b) {
  double num = 0, den = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    num += (a[i] - b[i]) * (a[i] - b[i]);
    den += b[i] * b[i];
  }
  return std::sqrt(num / std::max(den, 1e-30));
}

TEST(FusedKernels, EnergyReferenceEqualsAtenPath) {
  c10::InferenceMode guard;
  const at::Tensor k = unit_keys(3, 150, 64, 1);
  const float margin = 0.4375f;
  // pitome-code's energy: mean over j of ELU(cos - m), self included (core/reduce/pitome.cpp)
  const at::Tensor ref = at::elu(at::bmm(k, k.transpose(1, 2)) - margin).mean(-1).contiguous();
  std::vector<float> ours(3 * 150, std::nanf(""));
  fused::pitome_energy_cpu(k.data_ptr<float>(), 3, 150, 64, margin, 1.0f, ours.data());
  const std::vector<float> want(ref.data_ptr<float>(), ref.data_ptr<float>() + ref.numel());
  EXPECT_LT(normalized_error(ours, want), kNormalizedTol);
}

TEST(FusedKernels, MatchingReferenceEqualsAtenPath) {
  c10::InferenceMode guard;
  for (const bool distill : {false, true}) {
    const at::Tensor m = unit_keys(2, 197, 64, 2);
    const at::Tensor a = m.slice(1, 0, 197, 2).contiguous(), b = m.slice(1, 1, 197, 2).contiguous();
    at::Tensor scores = at::bmm(a, b.transpose(1, 2));
    scores.select(1, 0).fill_(-INFINITY);
    if (distill) scores.select(2, 0).fill_(-INFINITY);
    const auto [max_val, max_idx] = scores.max(-1);
    const int64_t Na = a.size(1), Nb = b.size(1);
    std::vector<int64_t> idx(2 * Na, -1);
    std::vector<float> val(2 * Na, std::nanf(""));
    fused::bipartite_match_cpu(a.data_ptr<float>(), b.data_ptr<float>(), 2, Na, Nb, 64, true, distill, idx.data(), val.data());
    for (int64_t n = 0; n < 2; ++n)
      for (int64_t i = 1; i < Na; ++i) {  // row 0 is all -inf: any index is a valid arg-max there
        EXPECT_EQ(idx[n * Na + i], max_idx[n][i].item<int64_t>()) << "image " << n << " row " << i;
        EXPECT_NEAR(val[n * Na + i], max_val[n][i].item<float>(), 1e-5);
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

TEST(FusedKernels, CudaEnergyEqualsReference) {
  if (!fused::cuda_kernels_built() || !fused::cuda_device_available()) GTEST_SKIP() << fused::cuda_status();
  for (const int64_t T : {1, 37, 196, 1024}) {
    const at::Tensor k = unit_keys(2, T, 64, 10 + T);
    std::vector<float> ref(2 * T), gpu(2 * T, std::nanf(""));
    fused::pitome_energy_cpu(k.data_ptr<float>(), 2, T, 64, 0.5f, 1.0f, ref.data());
    fused::pitome_energy_cuda_host(k.data_ptr<float>(), 2, T, 64, 0.5f, 1.0f, gpu.data());
    EXPECT_LT(normalized_error(gpu, ref), kNormalizedTol) << "T = " << T;
  }
}

TEST(FusedKernels, CudaMatchingEqualsReference) {
  if (!fused::cuda_kernels_built() || !fused::cuda_device_available()) GTEST_SKIP() << fused::cuda_status();
  for (const int64_t N : {3, 98, 513}) {
    const at::Tensor a = unit_keys(2, N, 64, 20 + N), b = unit_keys(2, N - 1, 64, 30 + N);
    std::vector<int64_t> ri(2 * N), gi(2 * N, -1);
    std::vector<float> rs(2 * N), gs(2 * N, std::nanf(""));
    fused::bipartite_match_cpu(a.data_ptr<float>(), b.data_ptr<float>(), 2, N, N - 1, 64, true, true, ri.data(), rs.data());
    fused::bipartite_match_cuda_host(a.data_ptr<float>(), b.data_ptr<float>(), 2, N, N - 1, 64, true, true, gi.data(), gs.data());
    for (int64_t i = 0; i < 2 * N; ++i) {
      if (i % N == 0) continue;  // protected rows: all -inf
      EXPECT_EQ(gi[i], ri[i]) << "N = " << N << " row " << i;
      EXPECT_NEAR(gs[i], rs[i], 1e-5);
    }
  }
}

}  // namespace
}  // namespace ms
