// --dtype bf16 (core/precision.h): logits near fp32, reducers computing on fp32 inputs with fp32 arithmetic, the
// notice on CPUs without native bf16, and the options that refuse it.
#include "batch.h"
#include "engine.h"
#include "error.h"
#include "model.h"
#include "precision.h"
#include "preprocess.h"
#include "reduce/ops.h"
#include "reduce/reducer.h"
#include "test_util.h"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

namespace ms {
namespace {

// bf16 keeps 8 significant bits: each rounding of a linear layer's input or output is off by up to 2^-9 relative
// (0.2%), and a DeiT-Ti forward rounds 6 times per block over 12 blocks into an fp32 residual stream. Measured
// on the 4 images below (deit_tiny, no reducer): max |bf16 - fp32| / max |fp32| = 5.0e-3 with bf16-rounded fp32
// products (this CPU's path), 1.2e-2 with LibTorch's reference bf16 kernels on 2 of them. The bound is 5e-2, which
// leaves room for oneDNN's bf16 kernels (other accumulation order, same rounding points) and still fails on a real
// error (a wrong weight in bf16 gives > 0.3).
constexpr double kBf16LogitRelTol = 5e-2;

const std::vector<std::string> kImages = {"n01440764_tench.JPEG", "n01484850_great_white_shark.JPEG",
                                          "n01494475_hammerhead.JPEG", "n01498041_stingray.JPEG"};

at::Tensor shared_batch(const Model& model) {
  std::vector<std::string> files;
  for (const auto& name : kImages) files.push_back(test::shared_image(name));
  return load_batch(files, preprocess_spec(model.config()));
}

class Precision : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    fp32_ = Model::load("deit_tiny_patch16_224");
    bf16_ = Model::with_dtype(fp32_, Dtype::BFloat16);
  }
  static inline std::shared_ptr<const Model> fp32_, bf16_;
};

TEST_F(Precision, ConvertsOnceAndKeepsFp32AsIs) {
  EXPECT_EQ(Model::with_dtype(fp32_, Dtype::Float32), fp32_);  // fp32 is the model itself
  EXPECT_EQ(fp32_->dtype(), Dtype::Float32);
  EXPECT_EQ(bf16_->dtype(), Dtype::BFloat16);
  EXPECT_EQ(Model::with_dtype(bf16_, Dtype::BFloat16), bf16_);
  EXPECT_EQ(Model::with_dtype(bf16_, Dtype::Float32)->dtype(), Dtype::Float32);
  EXPECT_THROW(parse_dtype("fp16", "--dtype"), Error);
  EXPECT_EQ(parse_dtype("bfloat16", "--dtype"), Dtype::BFloat16);
}

TEST_F(Precision, Bf16LogitsNearFp32) {
  c10::InferenceMode guard;
  const at::Tensor input = shared_batch(*fp32_);
  const at::Tensor a = fp32_->forward(input), b = bf16_->forward(input);
  ASSERT_EQ(b.scalar_type(), at::kFloat);
  const double err = test::relative_max_error(b, a);
  std::printf("none: max |bf16 - fp32| / max |fp32| = %.4g\n", err);
  EXPECT_LT(err, kBf16LogitRelTol);
  EXPECT_GT(err, 0) << "bf16 ran in fp32";
  EXPECT_TRUE(b.argmax(1).equal(a.argmax(1)));
}

// The two ways to compute in bf16 (core/precision.h): LibTorch's bf16 kernels and bf16-rounded operands and
// results around fp32 products. Both round at the same points; only the order of the fp32 sums differs, which
// can move a result across a bf16 rounding boundary. Measured (2 images, reference bf16 kernels on this CPU):
// max |a - b| / max |b| = 1.2e-2 (the reference kernels are the farther from fp32: 1.2e-2 vs 4.5e-3).
TEST_F(Precision, Bf16KernelsAndRoundedFp32Agree) {
  c10::InferenceMode guard;
  const char* old = std::getenv("MERGESCOPE_BF16_PATH");
  const std::string saved = old ? old : "";
  setenv("MERGESCOPE_BF16_PATH", "bf16", 1);
  const auto kernels = Model::with_dtype(fp32_, Dtype::BFloat16);
  setenv("MERGESCOPE_BF16_PATH", "rounded", 1);
  const auto rounded = Model::with_dtype(fp32_, Dtype::BFloat16);
  if (old)
    setenv("MERGESCOPE_BF16_PATH", saved.c_str(), 1);
  else
    unsetenv("MERGESCOPE_BF16_PATH");
  const at::Tensor input = shared_batch(*fp32_).slice(0, 0, 2);
  const at::Tensor a = kernels->forward(input), b = rounded->forward(input), f = fp32_->forward(input);
  const double err = test::relative_max_error(a, b);
  std::printf("bf16 kernels vs rounded fp32: %.4g (each vs fp32: %.4g, %.4g)\n", err, test::relative_max_error(a, f),
              test::relative_max_error(b, f));
  EXPECT_LT(err, kBf16LogitRelTol);
  EXPECT_GT(test::relative_max_error(a, f), 0);
  EXPECT_GT(test::relative_max_error(b, f), 0);
}

// With a reducer, bf16 changes the inputs of every merge decision, so near-ties flip (the accuracy table in the
// README measures the effect). What must hold: ToMe's token counts, and the partitions up to the first flip, which
// the same comparison measures. Measured on these 4 images (rounded fp32 path): the first partition difference is
// at block 2, 2, 4 and 4; logits within 8e-3 to 8e-2 of fp32's (the merges differ, so the bound above does not
// apply). Printed, not asserted: they depend on the bf16 kernel.
TEST_F(Precision, Bf16ToMeMergesLikeFp32UntilANearTie) {
  c10::InferenceMode guard;
  const at::Tensor input = shared_batch(*fp32_);
  RunOptions options;
  options.trace = true;
  auto r32 = make_reducer("tome:r=13"), r16 = make_reducer("tome:r=13");
  const RunResult a = run(*fp32_, input, r32.get(), options);
  const RunResult b = run(*bf16_, input, r16.get(), options);
  EXPECT_EQ(b.tokens_per_layer, a.tokens_per_layer);  // ToMe's counts do not depend on the values
  for (size_t i = 0; i < a.traces.size(); ++i) {
    int first = -1, same = 0;
    for (size_t l = 0; l < a.traces[i].layers.size(); ++l) {
      const bool eq = a.traces[i].layers[l].cluster_of_token == b.traces[i].layers[l].cluster_of_token;
      same += eq;
      if (!eq && first < 0) first = static_cast<int>(l);
    }
    std::printf(
        "tome:r=13 image %zu: %d of 12 block partitions identical, first difference at block %d; "
        "logits max |bf16 - fp32| / max |fp32| = %.4g\n",
        i, same, first, test::relative_max_error(b.logits[i], a.logits[i]));
  }
}

// A reducer that keeps every token and records what it was given.
class Recorder final : public Reducer {
 public:
  std::string spec() const override { return "recorder"; }
  bool wants_attention() const override { return true; }
  int predict_tokens(int, int, int tokens, int) const override { return tokens; }
  ReductionPlan plan(const ReducerContext& ctx) override {
    types.push_back(ctx.x.scalar_type());
    types.push_back(ctx.keys_mean.scalar_type());
    types.push_back(ctx.attn->scalar_type());
    ReductionPlan p;
    p.tokens = static_cast<int>(ctx.x.size(1));
    return p;
  }
  std::vector<at::ScalarType> types;
};

TEST_F(Precision, ReducersSeeFp32TokensKeysAndAttention) {
  c10::InferenceMode guard;
  Recorder recorder;
  run(*bf16_, shared_batch(*bf16_).slice(0, 0, 1), &recorder);
  ASSERT_EQ(recorder.types.size(), 3u * 12);
  for (at::ScalarType t : recorder.types) EXPECT_EQ(t, at::kFloat);
}

// The energies PiToMe-code records under bf16 are the fp32 formula (reduce/ops.h) applied to the keys the trace
// holds: the inputs come from bf16 products, the arithmetic is fp32's.
TEST_F(Precision, Bf16EnergiesAreTheFp32FormulaOnTheTracedKeys) {
  c10::InferenceMode guard;
  auto reducer = make_reducer("pitome-code:ratio=0.9");
  RunOptions options;
  options.trace = options.trace_energy = options.trace_keys = true;
  const RunResult r = run(*bf16_, shared_batch(*bf16_).slice(0, 0, 1), reducer.get(), options);
  ASSERT_EQ(r.traces.size(), 1u);
  const ImageTrace& tr = r.traces[0];
  const int P = tr.prefix_tokens;
  for (size_t l = 0; l < tr.layers.size(); ++l) {
    const LayerTrace& lt = tr.layers[l];
    ASSERT_FALSE(lt.keys.empty());
    const at::Tensor keys =
        at::from_blob(const_cast<float*>(lt.keys.data()), {1, lt.tokens_in, lt.key_dim}, at::kFloat);
    const at::Tensor metric = reduce::normalize(keys.slice(1, P));
    const double m = reduce::energy_margin(reduce::EnergyFormula::Code, static_cast<int>(l), 12);
    const at::Tensor e = reduce::energy(metric, m, reduce::EnergyFormula::Code, reduce::similarities(metric, metric));
    ASSERT_EQ(lt.energy.size(), static_cast<size_t>(lt.tokens_in));
    for (int t = P; t < lt.tokens_in; ++t)
      EXPECT_EQ(lt.energy[t], e[0][t - P].item<float>()) << "block " << l << " token " << t;
  }
}

TEST(PrecisionCli, NoticeWithoutNativeBf16AndRefusals) {
  const std::string cli = test::cli_path();
  const std::string image = test::shared_image("n01440764_tench.JPEG");
  const auto forced = test::run_command("MERGESCOPE_BF16_ASSUME_UNSUPPORTED=1 " + cli +
                                        " classify --model deit_tiny_patch16_224 --dtype bf16 " + image);
  EXPECT_EQ(forced.exit_code, 0) << forced.err;
  EXPECT_EQ(forced.err.find("notice: --dtype bf16"), 0u) << forced.err;
  EXPECT_EQ(forced.err.find('\n'), forced.err.size() - 1) << "not one line: " << forced.err;
  EXPECT_NE(forced.out.find("tench"), std::string::npos);
  const auto version = test::run_command("MERGESCOPE_BF16_ASSUME_UNSUPPORTED=1 " + cli + " --version");
  EXPECT_NE(version.out.find("bf16: emulated by rounding"), std::string::npos) << version.out;
  const auto fp32 = test::run_command(cli + " classify --model deit_tiny_patch16_224 " + image);
  EXPECT_EQ(fp32.err, "");  // no notice without --dtype bf16
  for (const std::string& bad : std::vector<std::string>{
           " classify --dtype fp16 " + image,
           " calibrate --model deit_tiny_patch16_224 --method ltmp --images ../shared/data/imagenet-sample"
           " --limit 2 --out /tmp/ms_never.json --dtype bf16"}) {
    const auto r = test::run_command(cli + bad);
    EXPECT_EQ(r.exit_code, 1) << bad;
    EXPECT_NE(r.err.find("--dtype"), std::string::npos) << r.err;
    EXPECT_EQ(r.err.find('\n'), r.err.size() - 1) << "not one line: " << r.err;
  }
}

// compare --against fp32: the model in fp32 against itself agrees everywhere (the comparison's own check);
// bf16 reports the share of (image, block) partitions it keeps.
TEST(PrecisionCli, CompareAgainstFp32) {
  const std::string cmd = test::cli_path() +
                          " compare --model deit_tiny_patch16_224 --against fp32 --method tome:r=13"
                          " --images ../shared/data/imagenet-sample --limit 2 --quiet";
  const auto same = test::run_command(cmd);
  EXPECT_EQ(same.exit_code, 0) << same.err;
  EXPECT_NE(same.out.find("identical at every layer: 2 (100.0%)"), std::string::npos) << same.out;
  EXPECT_NE(same.out.find("(image, layer) partitions identical: 24 of 24"), std::string::npos) << same.out;
  // Both runs' accuracy on the labelled images and their paired difference: none between fp32 and itself.
  EXPECT_NE(same.out.find("accuracy on 2 labelled images: top-1 fp32 "), std::string::npos) << same.out;
  EXPECT_NE(same.out.find("top-1 difference (fp32 - fp32): +0.0 points, 95% interval [-"), std::string::npos)
      << same.out;
  EXPECT_NE(same.out.find("McNemar p = 1 (right only in fp32: 0, only in fp32: 0)"), std::string::npos) << same.out;
  const auto bf16 = test::run_command(cmd + " --dtype bf16");
  EXPECT_NE(bf16.out.find("(image, layer) partitions identical: "), std::string::npos) << bf16.out;
  EXPECT_NE(bf16.out.find("(bf16)"), std::string::npos) << bf16.out;
  EXPECT_NE(bf16.out.find("top-1 difference (bf16 - fp32): "), std::string::npos) << bf16.out;
  const auto bad = test::run_command(cmd + " --against fp16");
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_NE(bad.err.find("--against"), std::string::npos) << bad.err;
  EXPECT_EQ(bad.err.find('\n'), bad.err.size() - 1) << "not one line: " << bad.err;
}

}  // namespace
}  // namespace ms
