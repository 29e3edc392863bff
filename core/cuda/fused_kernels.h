// Fused reducer kernels: each has a CPU reference (always built, tested against the ATen path of the
// reducers) and a CUDA kernel (built when nvcc is found; compared with the reference on a GPU, skipped
// without one). Plain pointers and sizes, no LibTorch, so nvcc never sees LibTorch headers.
#pragma once

#include <cstdint>
#include <string>

namespace ms::fused {

// PiToMe energy as the released code computes it, from unit-normalised keys [B, T, D] (row-major):
// energy[b, i] = 1/T sum_j ELU(cos(k_i, k_j) - margin, alpha), j = i included. One pass per row, no T x T matrix.
void pitome_energy_cpu(const float* keys, int64_t B, int64_t T, int64_t D, float margin, float alpha, float* energy);

// ToMe / PiToMe-BSM matching step: for every A row the most similar B row by dot product of unit-normalised
// keys a [B, Na, D] and b [B, Nb, D]. Ties go to the lowest B index (torch.max's choice). With protect_first_a,
// A row 0 (CLS) scores -inf; with protect_first_b, B column 0 (distillation token) is never chosen.
void bipartite_match_cpu(const float* a, const float* b, int64_t B, int64_t Na, int64_t Nb, int64_t D, bool protect_first_a,
                         bool protect_first_b, int64_t* best_index, float* best_score);

// True when this build has the CUDA kernels (nvcc was found); cuda_status() says which, or why not.
bool cuda_kernels_built();
bool cuda_device_available();
std::string cuda_status();

// Device versions: pointers are device memory; they throw std::runtime_error naming the failing CUDA call.
// Without CUDA kernels in the build they throw "built without CUDA".
void pitome_energy_cuda(const float* keys, int64_t B, int64_t T, int64_t D, float margin, float alpha, float* energy);
void bipartite_match_cuda(const float* a, const float* b, int64_t B, int64_t Na, int64_t Nb, int64_t D, bool protect_first_a,
                          bool protect_first_b, int64_t* best_index, float* best_score);

// Host-memory convenience for tests and tools: copy in, run the kernel, copy out.
void pitome_energy_cuda_host(const float* keys, int64_t B, int64_t T, int64_t D, float margin, float alpha, float* energy);
void bipartite_match_cuda_host(const float* a, const float* b, int64_t B, int64_t Na, int64_t Nb, int64_t D,
                               bool protect_first_a, bool protect_first_b, int64_t* best_index, float* best_score);

}  // namespace ms::fused
