// Fused reducer kernels behind the shared ops of core/reduce/ops.h, which call the CUDA versions for CUDA tensors
// (the ATen path stays the reference for CPU tensors). Each has a CPU reference (always built) and a CUDA kernel
// (built when nvcc is found); tests/test_fused_kernels compares both with the shared op, the CUDA one on a GPU
// (skipped without one). Plain pointers and sizes, no LibTorch, so nvcc never sees LibTorch headers.
#pragma once

#include <cmath>
#include <cstdint>
#include <string>

#ifdef __CUDACC__
#define MS_HOST_DEVICE __host__ __device__
#else
#define MS_HOST_DEVICE
#endif

namespace ms::fused {

// One term of the released energy for a pair with similarity `dot`: ELU(dot - margin, alpha). Shared by the CPU and
// CUDA kernels so both sum the same terms (the ATen path computes the same with at::elu).
inline MS_HOST_DEVICE float released_energy_term(float dot, float margin, float alpha) {
  const float x = dot - margin;
  return x > 0.f ? x : alpha * expm1f(x);
}

// reduce::energy with EnergyFormula::Code from unit-normalised keys [B, T, D] (row-major), ELU's alpha given:
// one pass per row, no T x T matrix.
void pitome_energy_cpu(const float* keys, int64_t B, int64_t T, int64_t D, float margin, float alpha, float* energy);

// reduce::best_b without the gap, on the A rows a [B, Na, D] and B rows b [B, Nb, D] of unit-normalised keys: every
// A row's most similar B row, ties to the lowest B index. protect_first_a / protect_first_b: CLS / distillation.
void bipartite_match_cpu(const float* a, const float* b, int64_t B, int64_t Na, int64_t Nb, int64_t D,
                         bool protect_first_a, bool protect_first_b, int64_t* best_index, float* best_score);

// True when this build has the CUDA kernels (nvcc was found); cuda_status() says which, or why not.
bool cuda_kernels_built();
bool cuda_device_available();
std::string cuda_status();

// Device versions: pointers are device memory; they throw std::runtime_error naming the failing CUDA call.
// Without CUDA kernels in the build they throw "built without CUDA".
void pitome_energy_cuda(const float* keys, int64_t B, int64_t T, int64_t D, float margin, float alpha, float* energy);
void bipartite_match_cuda(const float* a, const float* b, int64_t B, int64_t Na, int64_t Nb, int64_t D,
                          bool protect_first_a, bool protect_first_b, int64_t* best_index, float* best_score);

// Host-memory convenience for tests and tools: copy in, run the kernel, copy out.
void pitome_energy_cuda_host(const float* keys, int64_t B, int64_t T, int64_t D, float margin, float alpha,
                             float* energy);
void bipartite_match_cuda_host(const float* a, const float* b, int64_t B, int64_t Na, int64_t Nb, int64_t D,
                               bool protect_first_a, bool protect_first_b, int64_t* best_index, float* best_score);

}  // namespace ms::fused
