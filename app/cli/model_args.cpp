#include "checkpoint.h"
#include "commands.h"
#include "error.h"
#include "model.h"
#include "precision.h"
#include "runtime.h"

#include <ATen/Context.h>

#include <cstdio>

namespace ms::cli {

const std::set<std::string> kModelOptions = {"model", "random-weights", "arch",   "threads",
                                             "seed",  "img-size",       "device", "dtype"};

namespace {
std::shared_ptr<const Model> load(const Args& args, c10::Device device);
}

std::shared_ptr<const Model> load_model_from_args(const Args& args) {
  const std::string device = args.get("device", "cpu");
  if (device != "cpu") {
    if (device != "cuda" && device.rfind("cuda:", 0) != 0) fail("--device", "'" + device + "' is not cpu or cuda[:N]");
    if (!at::hasCUDA())
      fail("--device",
           "cuda: built without CUDA, or no GPU visible (this LibTorch is CPU-only or finds no device; "
           "see README, GPU)");
  }
  const Dtype dtype = parse_dtype(args.get("dtype", "fp32"), "--dtype");
  auto model = load(args, c10::Device(device));
  if (args.has("img-size")) model = Model::with_input_size(model, args.get_int("img-size", 0, 1, 4096));
  if (dtype != Dtype::Float32) {
    if (const std::string notice = bf16_notice(); !notice.empty()) std::fprintf(stderr, "%s\n", notice.c_str());
  }
  return Model::with_dtype(model, dtype);
}

namespace {

std::shared_ptr<const Model> load(const Args& args, c10::Device device) {
  init_runtime(args.get_int("threads", 0, 1, 1024));
  if (args.has("random-weights")) {
    if (args.has("model")) fail("--random-weights", "give either --model or --random-weights, not both");
    return Model::random(args.get("random-weights"), device,
                         static_cast<uint64_t>(args.get_int("seed", 0, 0, 1 << 30)));
  }
  const std::string spec = args.get("model", "deit_tiny_patch16_224");
  if (args.has("arch")) {
    const CheckpointLocation loc = locate_model(spec);
    return Model::from_state_dict(config_from_arch_name(args.get("arch")), read_state_dict(loc.weights_path),
                                  loc.weights_path, device);
  }
  return Model::load(spec, device);
}

}  // namespace

}  // namespace ms::cli
