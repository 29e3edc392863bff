#include "commands.h"
#include "engine.h"
#include "error.h"
#include "flops.h"
#include "methods.h"
#include "model.h"
#include "precision.h"

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
  const at::Tensor input =
      at::randn({batch, 3, c.img_size, c.img_size}, at::detail::createCPUGenerator(1)).to(model->device());

  std::vector<BenchRow> rows;
  std::vector<std::unique_ptr<Reducer>> reducers;
  std::vector<double> attention_share(specs.size(), 0.0);
  for (const auto& spec : specs) {
    rows.push_back(BenchRow{spec, {}, {}, {}, 0});
    reducers.push_back(reducer_for(spec));
  }
  // "reducer" and "attention" are shares of the time inside the blocks (attention: LayerNorm, qkv, softmax, proj).
  // Without --method the plain forward is timed (the engine's no-reduction path, no bookkeeping).
  auto once = [&](size_t m) {
    if (!with_methods) {
      check_finite_logits(model->forward(input), *model);
      return 0.0;
    }
    const RunResult r = run(*model, input, reducers[m].get());
    check_finite_logits(r.logits, *model);
    rows[m].gmacs = model_cost(c, r.tokens_per_layer, reducers[m].get()).gmacs();
    attention_share[m] = r.attention_seconds / r.block_seconds;
    return r.reducer_seconds / r.block_seconds;
  };
  // Methods take turns within every round, so a machine that gets slower or faster during the run (shared
  // cores) moves all of them alike; speed-ups are medians of per-round ratios.
  for (int i = 0; i < warmup; ++i)
    for (size_t m = 0; m < rows.size(); ++m) once(m);
  for (int i = 0; i < repeat; ++i) {
    for (size_t m = 0; m < rows.size(); ++m) {
      const auto t0 = std::chrono::steady_clock::now();
      const double share = once(m);
      rows[m].ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
      rows[m].reducer_share.push_back(share);
      rows[m].attention_share.push_back(attention_share[m]);
    }
  }
  if (!with_methods) rows.front().gmacs = model_cost(c, {}, nullptr).gmacs();
  auto speedup = [&](const BenchRow& row) {
    std::vector<double> ratios;
    for (size_t i = 0; i < row.ms.size(); ++i) ratios.push_back(rows.front().ms[i] / row.ms[i]);
    return median(ratios);
  };

  if (!args.flag("json"))
    std::printf(
        "%s  batch %d  threads %d  %d interleaved rounds after %d warm-up\n%-28s %8s %11s %10s %9s %9s %9s %9s %5s\n",
        model->source().c_str(), batch, at::get_num_threads(), repeat, warmup, "method", "GMACs", "median ms",
        "images/s", "speed-up", "MAC ratio", "reducer", "attention", "dtype");
  for (const auto& row : rows) {
    const double med = median(row.ms), ips = 1000.0 * batch / med;
    // The speed-up a reducer would give if time followed MACs exactly (the first row's GMACs over this row's).
    const double mac_ratio = rows.front().gmacs / row.gmacs;
    const auto [mn, mx] = std::minmax_element(row.ms.begin(), row.ms.end());
    if (args.flag("json")) {
      std::printf(
          "{\"engine\": \"mergescope\", \"model\": \"%s\", \"method\": \"%s\", \"batch\": %d, \"threads\": %d, "
          "\"gmacs\": %.4f, \"median_ms\": %.3f, \"min_ms\": %.3f, \"max_ms\": %.3f, \"images_per_s\": %.2f, "
          "\"speedup\": %.3f, \"mac_ratio\": %.3f, \"reducer_share\": %.4f, \"attention_share\": %.4f, "
          "\"dtype\": \"%s\"}\n",
          c.architecture.c_str(), row.spec.c_str(), batch, at::get_num_threads(), row.gmacs, med, *mn, *mx, ips,
          speedup(row), mac_ratio, median(row.reducer_share), median(row.attention_share), dtype_name(model->dtype()));
    } else {
      std::printf("%-28s %8.3f %11.2f %10.2f %8.2fx %8.2fx %8.1f%% %8.1f%% %5s\n", row.spec.c_str(), row.gmacs, med,
                  ips, speedup(row), mac_ratio, 100.0 * median(row.reducer_share), 100.0 * median(row.attention_share),
                  dtype_name(model->dtype()));
    }
  }
  return 0;
}

}  // namespace ms::cli
