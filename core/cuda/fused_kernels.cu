// CUDA versions of the fused reducer kernels (see fused_kernels.h). Every CUDA call is checked.
#include "fused_kernels.h"

#include <cuda_runtime.h>

#include <math_constants.h>

#include <stdexcept>
#include <string>

#define MS_CUDA_CHECK(call)                                                                     \
  do {                                                                                          \
    const cudaError_t status_ = (call);                                                         \
    if (status_ != cudaSuccess)                                                                 \
      throw std::runtime_error(std::string(#call) + " failed: " + cudaGetErrorString(status_)); \
  } while (0)

namespace ms::fused {
namespace {

constexpr int kThreads = 128;
constexpr int kMaxDim = 256;  // keys of one row live in shared memory

// One block per (row i, image b): the block's threads stride over j, each computing one dot product and
// the margin function; a shared-memory tree sums the row. No T x T matrix is ever stored.
__global__ void pitome_energy_kernel(const float* __restrict__ keys, int T, int D, float margin, float alpha,
                                     float* __restrict__ energy) {
  __shared__ float row[kMaxDim];
  __shared__ float partial[kThreads];
  const int i = blockIdx.x, b = blockIdx.y;
  const float* k = keys + static_cast<size_t>(b) * T * D;
  for (int d = threadIdx.x; d < D; d += blockDim.x) row[d] = k[static_cast<size_t>(i) * D + d];
  __syncthreads();
  float sum = 0.f;
  for (int j = threadIdx.x; j < T; j += blockDim.x) {
    const float* kj = k + static_cast<size_t>(j) * D;
    float dot = 0.f;
    for (int d = 0; d < D; ++d) dot = fmaf(row[d], kj[d], dot);
    sum += released_energy_term(dot, margin, alpha);
  }
  partial[threadIdx.x] = sum;
  __syncthreads();
  for (int stride = blockDim.x / 2; stride > 0; stride /= 2) {
    if (threadIdx.x < stride) partial[threadIdx.x] += partial[threadIdx.x + stride];
    __syncthreads();
  }
  if (threadIdx.x == 0) energy[static_cast<size_t>(b) * T + i] = partial[0] / T;
}

// One block per (A row, image): threads stride over B rows; an arg-max reduction keeps the lowest index on ties.
__global__ void bipartite_match_kernel(const float* __restrict__ a, const float* __restrict__ bm, int Na, int Nb, int D,
                                       bool protect_first_a, bool protect_first_b, int64_t* __restrict__ best_index,
                                       float* __restrict__ best_score) {
  __shared__ float row[kMaxDim];
  __shared__ float score[kThreads];
  __shared__ int index[kThreads];
  const int i = blockIdx.x, n = blockIdx.y;
  for (int d = threadIdx.x; d < D; d += blockDim.x) row[d] = a[(static_cast<size_t>(n) * Na + i) * D + d];
  __syncthreads();
  float best = -CUDART_INF_F;
  int arg = 0x7fffffff;
  for (int j = threadIdx.x; j < Nb; j += blockDim.x) {
    const float* bj = bm + (static_cast<size_t>(n) * Nb + j) * D;
    float dot = 0.f;
    for (int d = 0; d < D; ++d) dot = fmaf(row[d], bj[d], dot);
    if ((protect_first_a && i == 0) || (protect_first_b && j == 0)) dot = -CUDART_INF_F;
    if (dot > best || arg == 0x7fffffff) best = dot, arg = j;
  }
  score[threadIdx.x] = best;
  index[threadIdx.x] = arg;
  __syncthreads();
  for (int stride = blockDim.x / 2; stride > 0; stride /= 2) {
    if (threadIdx.x < stride) {
      const float s = score[threadIdx.x + stride];
      const int j = index[threadIdx.x + stride];
      if (s > score[threadIdx.x] || (s == score[threadIdx.x] && j < index[threadIdx.x])) {
        score[threadIdx.x] = s;
        index[threadIdx.x] = j;
      }
    }
    __syncthreads();
  }
  if (threadIdx.x == 0) {
    best_index[static_cast<size_t>(n) * Na + i] = index[0] == 0x7fffffff ? 0 : index[0];
    best_score[static_cast<size_t>(n) * Na + i] = score[0];
  }
}

void check_dim(int64_t D, const char* what) {
  if (D <= 0 || D > kMaxDim)
    throw std::invalid_argument(std::string(what) + ": key dimension " + std::to_string(D) + " outside [1, " +
                                std::to_string(kMaxDim) + "]");
}

}  // namespace

bool cuda_kernels_built() { return true; }

bool cuda_device_available() {
  int devices = 0;
  return cudaGetDeviceCount(&devices) == cudaSuccess && devices > 0;
}

std::string cuda_status() {
  int devices = 0;
  const cudaError_t status = cudaGetDeviceCount(&devices);
  if (status != cudaSuccess)
    return std::string("CUDA kernels built; no usable device (") + cudaGetErrorString(status) + ")";
  return "CUDA kernels built; " + std::to_string(devices) + " device(s)";
}

void pitome_energy_cuda(const float* keys, int64_t B, int64_t T, int64_t D, float margin, float alpha, float* energy) {
  check_dim(D, "pitome_energy_cuda");
  if (B == 0 || T == 0) return;
  pitome_energy_kernel<<<dim3(static_cast<unsigned>(T), static_cast<unsigned>(B)), kThreads>>>(
      keys, static_cast<int>(T), static_cast<int>(D), margin, alpha, energy);
  MS_CUDA_CHECK(cudaGetLastError());
}

void bipartite_match_cuda(const float* a, const float* b, int64_t B, int64_t Na, int64_t Nb, int64_t D,
                          bool protect_first_a, bool protect_first_b, int64_t* best_index, float* best_score) {
  check_dim(D, "bipartite_match_cuda");
  if (B == 0 || Na == 0 || Nb == 0) return;
  bipartite_match_kernel<<<dim3(static_cast<unsigned>(Na), static_cast<unsigned>(B)), kThreads>>>(
      a, b, static_cast<int>(Na), static_cast<int>(Nb), static_cast<int>(D), protect_first_a, protect_first_b,
      best_index, best_score);
  MS_CUDA_CHECK(cudaGetLastError());
}

namespace {

// Device buffer freed on scope exit, so a failing check does not leak.
template <typename T>
struct DeviceBuffer {
  T* ptr = nullptr;
  explicit DeviceBuffer(size_t n) { MS_CUDA_CHECK(cudaMalloc(&ptr, n * sizeof(T))); }
  ~DeviceBuffer() { cudaFree(ptr); }
  DeviceBuffer(DeviceBuffer&& other) noexcept : ptr(other.ptr) { other.ptr = nullptr; }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
};

template <typename T>
DeviceBuffer<T> upload(const T* host, size_t n) {
  DeviceBuffer<T> d(n);
  MS_CUDA_CHECK(cudaMemcpy(d.ptr, host, n * sizeof(T), cudaMemcpyHostToDevice));
  return d;
}

}  // namespace

void pitome_energy_cuda_host(const float* keys, int64_t B, int64_t T, int64_t D, float margin, float alpha,
                             float* energy) {
  auto k = upload(keys, static_cast<size_t>(B * T * D));
  DeviceBuffer<float> e(static_cast<size_t>(B * T));
  pitome_energy_cuda(k.ptr, B, T, D, margin, alpha, e.ptr);
  MS_CUDA_CHECK(cudaDeviceSynchronize());
  MS_CUDA_CHECK(cudaMemcpy(energy, e.ptr, static_cast<size_t>(B * T) * sizeof(float), cudaMemcpyDeviceToHost));
}

void bipartite_match_cuda_host(const float* a, const float* b, int64_t B, int64_t Na, int64_t Nb, int64_t D,
                               bool protect_first_a, bool protect_first_b, int64_t* best_index, float* best_score) {
  auto da = upload(a, static_cast<size_t>(B * Na * D));
  auto db = upload(b, static_cast<size_t>(B * Nb * D));
  DeviceBuffer<int64_t> idx(static_cast<size_t>(B * Na));
  DeviceBuffer<float> score(static_cast<size_t>(B * Na));
  bipartite_match_cuda(da.ptr, db.ptr, B, Na, Nb, D, protect_first_a, protect_first_b, idx.ptr, score.ptr);
  MS_CUDA_CHECK(cudaDeviceSynchronize());
  MS_CUDA_CHECK(cudaMemcpy(best_index, idx.ptr, static_cast<size_t>(B * Na) * sizeof(int64_t), cudaMemcpyDeviceToHost));
  MS_CUDA_CHECK(cudaMemcpy(best_score, score.ptr, static_cast<size_t>(B * Na) * sizeof(float), cudaMemcpyDeviceToHost));
}

}  // namespace ms::fused
