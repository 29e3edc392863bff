#include "commands.h"
#include "error.h"
#include "model.h"
#include "runtime.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/core/InferenceMode.h>

#include <algorithm>
#include <chrono>
#include <cstdio>

namespace ms::cli {

int cmd_bench(const std::vector<std::string>& argv) {
  auto options = kModelOptions;
  options.insert({"batch", "warmup", "repeat"});
  const Args args(argv, {"json"}, options);
  if (!args.positionals().empty()) fail(args.positionals()[0], "unexpected argument");
  const int batch = args.get_int("batch", 1, 1, 4096);
  const int warmup = args.get_int("warmup", 3, 0, 1000);
  const int repeat = args.get_int("repeat", 10, 1, 10000);
  const auto model = load_model_from_args(args);
  const VitConfig& c = model->config();
  c10::InferenceMode guard;
  const at::Tensor input = at::randn({batch, 3, c.img_size, c.img_size}, at::detail::createCPUGenerator(1));
  for (int i = 0; i < warmup; ++i) model->forward(input);
  std::vector<double> ms;
  for (int i = 0; i < repeat; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    const at::Tensor logits = model->forward(input);
    ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(ms.begin(), ms.end());
  const double median = repeat % 2 ? ms[repeat / 2] : 0.5 * (ms[repeat / 2 - 1] + ms[repeat / 2]);
  const double ips = 1000.0 * batch / median;
  if (args.flag("json")) {
    std::printf("{\"engine\": \"mergescope\", \"model\": \"%s\", \"batch\": %d, \"threads\": %d, \"median_ms\": %.3f, "
                "\"min_ms\": %.3f, \"max_ms\": %.3f, \"images_per_s\": %.2f}\n",
                c.architecture.c_str(), batch, at::get_num_threads(), median, ms.front(), ms.back(), ips);
  } else {
    std::printf("%s  batch %d  threads %d  median %.2f ms (min %.2f, max %.2f, %d runs)  %.1f images/s\n",
                model->source().c_str(), batch, at::get_num_threads(), median, ms.front(), ms.back(), repeat, ips);
  }
  return 0;
}

}  // namespace ms::cli
