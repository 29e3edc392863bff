#include "fused_kernels.h"

#include <cmath>
#include <limits>
#include <stdexcept>

namespace ms::fused {

void pitome_energy_cpu(const float* keys, int64_t B, int64_t T, int64_t D, float margin, float alpha, float* energy) {
  for (int64_t b = 0; b < B; ++b) {
    const float* k = keys + b * T * D;
    for (int64_t i = 0; i < T; ++i) {
      double sum = 0;
      for (int64_t j = 0; j < T; ++j) {
        float dot = 0;
        for (int64_t d = 0; d < D; ++d) dot += k[i * D + d] * k[j * D + d];
        sum += released_energy_term(dot, margin, alpha);
      }
      energy[b * T + i] = static_cast<float>(sum / T);
    }
  }
}

void bipartite_match_cpu(const float* a, const float* b, int64_t B, int64_t Na, int64_t Nb, int64_t D,
                         bool protect_first_a, bool protect_first_b, int64_t* best_index, float* best_score) {
  const float neg_inf = -std::numeric_limits<float>::infinity();
  for (int64_t n = 0; n < B; ++n)
    for (int64_t i = 0; i < Na; ++i) {
      float best = neg_inf;
      int64_t arg = 0;
      for (int64_t j = 0; j < Nb; ++j) {
        float dot = 0;
        for (int64_t d = 0; d < D; ++d) dot += a[(n * Na + i) * D + d] * b[(n * Nb + j) * D + d];
        if ((protect_first_a && i == 0) || (protect_first_b && j == 0)) dot = neg_inf;
        if (dot > best) best = dot, arg = j;
      }
      best_index[n * Na + i] = arg;
      best_score[n * Na + i] = best;
    }
}

#ifndef MERGESCOPE_WITH_CUDA_KERNELS
bool cuda_kernels_built() { return false; }
bool cuda_device_available() { return false; }
std::string cuda_status() { return "built without CUDA (nvcc was not found at configure time)"; }
void pitome_energy_cuda(const float*, int64_t, int64_t, int64_t, float, float, float*) {
  throw std::runtime_error("pitome_energy_cuda: built without CUDA");
}
void bipartite_match_cuda(const float*, const float*, int64_t, int64_t, int64_t, int64_t, bool, bool, int64_t*,
                          float*) {
  throw std::runtime_error("bipartite_match_cuda: built without CUDA");
}
void pitome_energy_cuda_host(const float*, int64_t, int64_t, int64_t, float, float, float*) {
  throw std::runtime_error("pitome_energy_cuda_host: built without CUDA");
}
void bipartite_match_cuda_host(const float*, const float*, int64_t, int64_t, int64_t, int64_t, bool, bool, int64_t*,
                               float*) {
  throw std::runtime_error("bipartite_match_cuda_host: built without CUDA");
}
#endif

}  // namespace ms::fused
