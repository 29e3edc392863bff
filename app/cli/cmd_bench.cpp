#include "commands.h"
#include "engine.h"
#include "error.h"
#include "flops.h"
#include "methods.h"
#include "model.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/core/InferenceMode.h>

#include <algorithm>
#include <chrono>
#include <cstdio>

namespace ms::cli {
namespace {

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

struct BenchRow {
  std::string spec;
  std::vector<double> ms, reducer_share, attention_share;
  double gmacs = 0;
};

}  // namespace

int cmd_bench(const std::vector<std::string>& argv) {
  auto options = kModelOptions;
  options.insert(kMethodOptions.begin(), kMethodOptions.end());
  options.insert({"batch", "warmup", "repeat"});
  const Args args(argv, {"json"}, options);
  if (!args.positionals().empty()) fail(args.positionals()[0], "unexpected argument");
  const int batch = args.get_int("batch", 1, 1, 4096);
  const int warmup = args.get_int("warmup", 3, 0, 1000);
  const int repeat = args.get_int("repeat", 10, 1, 10000);
  const auto model = load_model_from_args(args);
  const VitConfig& c = model->config();
  const bool with_methods = args.has("method");
  const std::vector<std::string> specs = resolve_methods(args, c, with_methods);
  c10::InferenceMode guard;
  const at::Tensor input = at::randn({batch, 3, c.img_size, c.img_size}, at::detail::createCPUGenerator(1));

  std::vector<BenchRow> rows;
  // "reducer" and "attention" are shares of the time inside the blocks (attention: LayerNorm, qkv, softmax, proj).
  for (const auto& spec : specs) {
    BenchRow row{spec, {}, {}, {}, 0};
    auto reducer = reducer_for(spec);
    // Without --method the plain forward is timed (the engine's no-reduction path, no bookkeeping).
    double attention_share = 0;
    auto once = [&] {
      if (!with_methods) return model->forward(input), 0.0;
      const RunResult r = run(*model, input, reducer.get());
      row.gmacs = model_cost(c, r.tokens_per_layer, reducer.get()).gmacs();
      attention_share = r.attention_seconds / r.block_seconds;
      return r.reducer_seconds / r.block_seconds;
    };
    for (int i = 0; i < warmup; ++i) once();
    for (int i = 0; i < repeat; ++i) {
      const auto t0 = std::chrono::steady_clock::now();
      const double share = once();
      row.ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
      row.reducer_share.push_back(share);
      row.attention_share.push_back(attention_share);
    }
    if (!with_methods) row.gmacs = model_cost(c, {}, nullptr).gmacs();
    rows.push_back(std::move(row));
  }

  const double base_ips = 1000.0 * batch / median(rows.front().ms);
  if (!args.flag("json"))
    std::printf("%s  batch %d  threads %d  %d runs after %d warm-up\n%-28s %8s %11s %10s %9s %9s %9s\n", model->source().c_str(),
                batch, at::get_num_threads(), repeat, warmup, "method", "GMACs", "median ms", "images/s", "speed-up",
                "reducer", "attention");
  for (const auto& row : rows) {
    const double med = median(row.ms), ips = 1000.0 * batch / med;
    const auto [mn, mx] = std::minmax_element(row.ms.begin(), row.ms.end());
    if (args.flag("json")) {
      std::printf("{\"engine\": \"mergescope\", \"model\": \"%s\", \"method\": \"%s\", \"batch\": %d, \"threads\": %d, "
                  "\"gmacs\": %.4f, \"median_ms\": %.3f, \"min_ms\": %.3f, \"max_ms\": %.3f, \"images_per_s\": %.2f, "
                  "\"speedup\": %.3f, \"reducer_share\": %.4f, \"attention_share\": %.4f}\n",
                  c.architecture.c_str(), row.spec.c_str(), batch, at::get_num_threads(), row.gmacs, med, *mn, *mx, ips,
                  ips / base_ips, median(row.reducer_share), median(row.attention_share));
    } else {
      std::printf("%-28s %8.3f %11.2f %10.2f %8.2fx %8.1f%% %8.1f%%\n", row.spec.c_str(), row.gmacs, med, ips,
                  ips / base_ips, 100.0 * median(row.reducer_share), 100.0 * median(row.attention_share));
    }
  }
  return 0;
}

}  // namespace ms::cli
