// Each fused reducer kernel (core/cuda/fused_kernels.h) against the sequence of ATen operations it replaces, at the
// shapes the reducers give it, on one device:
//   pitome_energy  the released PiToMe energy of unit keys [B,T,D]: bmm(k, k^T), elu(. - m), mean(-1)  (T x T matrix)
//   tome_match     ToMe's best B of every A row [B,N,D]: A/B split, bmm(A, B^T), protected row/column -inf, max(-1)
// On cuda both sides are the shared ops of core/reduce/ops.h, called with the kernels on and with MERGESCOPE_FUSED=0
// (the ATen path they replace); the kernel side is also checked to be exactly what a direct kernel call returns (so
// the op really dispatched to it). On cpu (rehearsal) the kernels' CPU references stand in for the kernels.
// Every pair is checked: energies within a normalised error of 1e-5, matches the same B (or one whose score ties).
// Times: median over `samples` of the mean of `repeat` back-to-back calls, device synchronised around each sample.
//
// usage: bench_fused_kernels [--device cpu|cuda] [--batch B] [--dim D] [--tokens N ...] [--repeat R] [--samples S]
//                            [--json FILE]   (Markdown table on stdout; exit 1 when a check fails)
#include "fused_kernels.h"
#include "reduce/ops.h"
#include "runtime.h"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <functional>
#include <string>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

// Waits for all work queued on the tensor's device: reading one element back synchronises the (default) stream.
void sync(const at::Tensor& t) {
  if (t.is_cuda()) (void)t.reshape({-1})[0].item<double>();
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

// ms per call of fn (which returns a tensor to synchronise on).
double time_ms(const std::function<at::Tensor()>& fn, int repeat, int samples) {
  sync(fn());  // warm-up: allocator, kernel load, cuBLAS handles
  std::vector<double> per_call;
  for (int s = 0; s < samples; ++s) {
    at::Tensor last = fn();
    sync(last);
    const auto t0 = Clock::now();
    for (int i = 0; i < repeat; ++i) last = fn();
    sync(last);
    per_call.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count() / repeat);
  }
  return median(per_call);
}

void set_fused(bool on) {
  if (on)
    unsetenv("MERGESCOPE_FUSED");
  else
    setenv("MERGESCOPE_FUSED", "0", 1);
}

double normalized_error(const at::Tensor& a, const at::Tensor& b) {
  const at::Tensor x = a.to(at::kCPU, at::kDouble), y = b.to(at::kCPU, at::kDouble);
  return std::sqrt((x - y).pow(2).sum().item<double>() / std::max(y.pow(2).sum().item<double>(), 1e-300));
}

struct Row {
  std::string kernel, device, shape, replaces, check;
  double fused_ms = 0, aten_ms = 0, error = 0;
  int64_t mismatches = 0, ties = 0;
  bool dispatch_exact = true, ok = true;
};

at::Tensor unit_keys(int64_t B, int64_t T, int64_t D, uint64_t seed, const at::Device& device) {
  return ms::reduce::normalize(at::randn({B, T, D}, at::detail::createCPUGenerator(seed))).to(device).contiguous();
}

Row bench_energy(const at::Device& device, int64_t B, int64_t T, int64_t D, int repeat, int samples) {
  using ms::reduce::EnergyFormula;
  Row row;
  row.kernel = "pitome_energy";
  row.device = device.str();
  row.shape = "B=" + std::to_string(B) + " T=" + std::to_string(T) + " D=" + std::to_string(D);
  row.replaces = "bmm(k,k^T), elu(s-m), mean(-1)";
  const at::Tensor k = unit_keys(B, T, D, 1000 + T, device);
  const double margin = ms::reduce::energy_margin(EnergyFormula::Code, 3, 12);
  // Called with MERGESCOPE_FUSED=0 only (set_fused(false) around its uses).
  const auto aten = [&] { return ms::reduce::energy(k, margin, EnergyFormula::Code); };
  std::function<at::Tensor()> fused;
  if (device.is_cuda()) {
    fused = [&] { return ms::reduce::energy(k, margin, EnergyFormula::Code); };
    // The op with the kernels on must be exactly the kernel: same launch, same sums.
    at::Tensor direct = at::empty({B, T}, k.options());
    ms::fused::pitome_energy_cuda(k.data_ptr<float>(), B, T, D, static_cast<float>(margin), 1.0f,
                                  direct.data_ptr<float>());
    row.dispatch_exact = at::equal(fused().cpu(), direct.cpu());
  } else {
    fused = [&] {
      at::Tensor e = at::empty({B, T}, k.options());
      ms::fused::pitome_energy_cpu(k.data_ptr<float>(), B, T, D, static_cast<float>(margin), 1.0f, e.data_ptr<float>());
      return e;
    };
  }
  set_fused(false);
  const at::Tensor want = aten();
  set_fused(true);
  const at::Tensor got = fused();
  row.error = normalized_error(got, want);
  row.ok = row.error < 1e-5 && row.dispatch_exact && at::isfinite(got).all().item<bool>();
  char text[96];
  std::snprintf(text, sizeof text, "normalised error %.1e%s", row.error,
                row.dispatch_exact ? "" : ", op != direct kernel call");
  row.check = text;
  set_fused(false);
  row.aten_ms = time_ms(aten, repeat, samples);
  set_fused(true);
  row.fused_ms = time_ms(fused, repeat, samples);
  return row;
}

Row bench_match(const at::Device& device, int64_t B, int64_t N, int64_t D, int repeat, int samples) {
  Row row;
  row.kernel = "tome_match";
  row.device = device.str();
  row.shape = "B=" + std::to_string(B) + " N=" + std::to_string(N) + " D=" + std::to_string(D);
  row.replaces = "A/B split, bmm(A,B^T), fill -inf, max(-1)";
  const at::Tensor m = unit_keys(B, N, D, 2000 + N, device);
  ms::reduce::RowBest fused_best;
  // Called with MERGESCOPE_FUSED=0 only (set_fused(false) around its uses).
  const auto aten_best = [&] { return ms::reduce::best_b(m, true, false, false); };
  std::function<ms::reduce::RowBest()> fused_fn;
  if (device.is_cuda()) {
    fused_fn = [&] { return ms::reduce::best_b(m, true, false, false); };
  } else {
    fused_fn = [&] {
      const ms::reduce::AbSplit ab = ms::reduce::alternate(m);
      const at::Tensor a = ab.a.contiguous(), b = ab.b.contiguous();
      ms::reduce::RowBest r;
      r.value = at::empty({B, a.size(1)}, a.options());
      r.index = at::empty({B, a.size(1)}, a.options().dtype(at::kLong));
      ms::fused::bipartite_match_cpu(a.data_ptr<float>(), b.data_ptr<float>(), B, a.size(1), b.size(1), D, true, false,
                                     r.index.data_ptr<int64_t>(), r.value.data_ptr<float>());
      return r;
    };
  }
  set_fused(false);
  const ms::reduce::RowBest want = aten_best();
  set_fused(true);
  fused_best = fused_fn();
  if (device.is_cuda()) {
    const ms::reduce::AbSplit ab = ms::reduce::alternate(m);
    const at::Tensor a = ab.a.contiguous(), b = ab.b.contiguous();
    at::Tensor di = at::empty({B, a.size(1)}, a.options().dtype(at::kLong)),
               dv = at::empty({B, a.size(1)}, a.options());
    ms::fused::bipartite_match_cuda(a.data_ptr<float>(), b.data_ptr<float>(), B, a.size(1), b.size(1), D, true, false,
                                    di.data_ptr<int64_t>(), dv.data_ptr<float>());
    row.dispatch_exact = at::equal(di.cpu(), fused_best.index.cpu()) && at::equal(dv.cpu(), fused_best.value.cpu());
  }
  // Row 0 (CLS) is all -inf: any index is an arg-max there. Elsewhere a different index must be a tie: the ATen
  // score of the kernel's choice equals the best score to float rounding.
  const at::Tensor wi = want.index.slice(1, 1).cpu(), gi = fused_best.index.slice(1, 1).cpu();
  const at::Tensor wv = want.value.slice(1, 1).cpu(), gv = fused_best.value.slice(1, 1).cpu();
  const ms::reduce::AbSplit ab = ms::reduce::alternate(m);
  const at::Tensor scores = at::bmm(ab.a, ab.b.transpose(1, 2)).slice(1, 1).cpu();  // [B, Na-1, Nb]
  const at::Tensor chosen = scores.gather(2, gi.unsqueeze(2)).squeeze(2);
  const at::Tensor differ = wi != gi;
  row.ties = (differ & ((chosen - wv).abs() <= 1e-6)).sum().item<int64_t>();
  row.mismatches = differ.sum().item<int64_t>() - row.ties;
  row.error = (gv - wv).abs().max().item<double>();
  row.ok = row.mismatches == 0 && row.error < 1e-5 && row.dispatch_exact;
  char text[128];
  std::snprintf(text, sizeof text, "%lld index mismatches, %lld ties, max |score diff| %.1e%s",
                static_cast<long long>(row.mismatches), static_cast<long long>(row.ties), row.error,
                row.dispatch_exact ? "" : ", op != direct kernel call");
  row.check = text;
  set_fused(false);
  row.aten_ms = time_ms([&] { return aten_best().index; }, repeat, samples);
  set_fused(true);
  row.fused_ms = time_ms([&] { return fused_fn().index; }, repeat, samples);
  return row;
}

int run(int argc, char** argv) {
  std::string device_name = "cpu", json_path;
  int64_t B = 256, D = 64;
  int repeat = 20, samples = 5;
  std::vector<int64_t> tokens;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) throw std::invalid_argument(a + " needs a value");
      return argv[++i];
    };
    if (a == "--device")
      device_name = value();
    else if (a == "--batch")
      B = std::stoll(value());
    else if (a == "--dim")
      D = std::stoll(value());
    else if (a == "--repeat")
      repeat = std::stoi(value());
    else if (a == "--samples")
      samples = std::stoi(value());
    else if (a == "--json")
      json_path = value();
    else if (a == "--tokens") {
      while (i + 1 < argc && argv[i + 1][0] != '-') tokens.push_back(std::stoll(argv[++i]));
    } else
      throw std::invalid_argument("unknown argument " + a);
  }
  if (tokens.empty()) tokens = {197, 119, 41};  // ViT-B/L at 224: all tokens, after 6 and after 12 ToMe r=13 blocks
  if (B < 1 || D < 1 || repeat < 1 || samples < 1) throw std::invalid_argument("sizes and counts must be positive");
  const at::Device device(device_name);
  if (device.is_cuda() && !at::hasCUDA()) throw std::runtime_error("--device cuda: this LibTorch has no CUDA device");
  if (device.is_cuda() && !(ms::fused::cuda_kernels_built() && ms::fused::cuda_device_available()))
    throw std::runtime_error("--device cuda: " + ms::fused::cuda_status());
  ms::init_runtime();
  c10::InferenceMode guard;
  set_fused(true);

  std::vector<Row> rows;
  for (const int64_t N : tokens) {
    rows.push_back(bench_match(device, B, N, D, repeat, samples));
    rows.push_back(bench_energy(device, B, N - 1, D, repeat, samples));  // PiToMe: the non-CLS tokens
  }
  const char* fused_side = device.is_cuda() ? "fused CUDA kernel" : "fused kernel's CPU reference";
  std::printf("%s; %s vs the ATen ops it replaces; median of %d samples of %d calls\n\n",
              ms::fused::cuda_status().c_str(), fused_side, samples, repeat);
  std::printf("| kernel | device | shape | ATen ops replaced | ATen ms | fused ms | speed-up | check |\n");
  std::printf("|---|---|---|---|---|---|---|---|\n");
  bool ok = true;
  FILE* json = json_path.empty() ? nullptr : std::fopen(json_path.c_str(), "w");
  for (const Row& r : rows) {
    ok &= r.ok;
    std::printf("| %s | %s | %s | %s | %.4f | %.4f | %.2fx | %s%s |\n", r.kernel.c_str(), r.device.c_str(),
                r.shape.c_str(), r.replaces.c_str(), r.aten_ms, r.fused_ms, r.aten_ms / r.fused_ms,
                r.ok ? "" : "FAIL: ", r.check.c_str());
    if (json)
      std::fprintf(json,
                   "{\"kernel\": \"%s\", \"device\": \"%s\", \"shape\": \"%s\", \"aten_ms\": %.5f, \"fused_ms\": %.5f, "
                   "\"speedup\": %.4f, \"error\": %.3e, \"mismatches\": %lld, \"ties\": %lld, \"dispatch_exact\": %s, "
                   "\"ok\": %s}\n",
                   r.kernel.c_str(), r.device.c_str(), r.shape.c_str(), r.aten_ms, r.fused_ms, r.aten_ms / r.fused_ms,
                   r.error, static_cast<long long>(r.mismatches), static_cast<long long>(r.ties),
                   r.dispatch_exact ? "true" : "false", r.ok ? "true" : "false");
  }
  if (json) std::fclose(json);
  if (!ok) std::fprintf(stderr, "bench_fused_kernels: a fused kernel disagrees with the ATen ops it replaces\n");
  return ok ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_fused_kernels: %s\n", e.what());
    return 2;
  }
}
