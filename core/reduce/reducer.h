// Token reducers: called in every block, by default between attention and MLP (where ToMe and PiToMe act; MCTF
// acts before the attention, DCT after the MLP: Reducer::stage). A reducer looks at the block's keys (and
// attention, if it asks) and returns a plan: for every current token, the output slot it goes to. The engine
// applies the plan with size-weighted means (unless the method combines tokens its own way and hands back the
// new tokens) and tracks sizes and sources.
//
// Adding a method: one file in core/reduce/ defining a Reducer subclass and a factory, plus one line in
// registry.cpp.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace ms {

// Where in a block a reducer acts.
enum class ReducerStage {
  AfterAttention,   // x after the attention residual, before the MLP (ToMe, PiToMe, ToFu, DiffRate, EViT, ...)
  BeforeAttention,  // x entering the block; attn = this block's attention on the unreduced tokens. The plan must
                    // hand back the fused attention (ReductionPlan::attn), which the block then uses (MCTF)
  AfterMlp,         // x leaving the block (DCT)
};

struct ReducerContext {
  const at::Tensor& x;          // [B,N,C] tokens at the reducer's stage (after the attention residual by default)
  const at::Tensor& keys_mean;  // [B,N,D] keys averaged over heads (undefined at ReducerStage::AfterMlp)
  const at::Tensor* attn;       // [B,H,N,N] attention probabilities, when wants_attention()
  const at::Tensor& size;       // [B,N] float: original tokens per current token
  int layer;                    // 0-based block index
  int depth;                    // number of blocks
  int prefix_tokens;            // CLS (+ distillation token): never merged
  bool distill_token;
  bool record_energy;   // the trace wants PiToMe energies
  bool record_margins;  // the trace wants each token's decision margin (reduce/ops.h)
  // Per image, a key from its preprocessed pixels (reduce::content_keys), when wants_image_keys(); else nullptr.
  const std::vector<uint64_t>* image_keys = nullptr;
  // [B,N] sizes proportional attention uses; the member counts `size` unless the method keeps its own (DiffRate).
  const at::Tensor* attention_size = nullptr;
};

struct ReductionPlan {
  at::Tensor dest;     // [B,N] int64 output slot of each token; undefined: keep everything as is
  int64_t tokens = 0;  // number of output tokens
  at::Tensor energy;   // [B,N] float energies the method computed (optional, for the trace)
  at::Tensor margin;   // [B,N] float: how near each token's fate was to another (reduce/ops.h), when asked
  std::string note;    // shown in the trace (e.g. clamping of r)
  // Methods whose combine is not the size-weighted mean (ToFu's norm rescale, DiffRate's plain mean, EViT's
  // attention-weighted sum, MCTF's attention x size weights, DCT) set the new tokens [B,tokens,C] themselves;
  // `dest` still says where every token went, for the member counts and the trace.
  at::Tensor x;
  at::Tensor attention_size;  // [B,tokens] sizes for proportional attention from here on, when not the counts
  at::Tensor attn;            // ReducerStage::BeforeAttention: the fused attention [B,H,tokens,tokens]
  bool mixes_all = false;     // every output token mixes all input tokens (DCT): no dest, no partition
};

class Reducer {
 public:
  virtual ~Reducer() = default;
  // Canonical spec string, e.g. "tome:r=13".
  virtual std::string spec() const = 0;
  // ToMe's proportional attention: add log(size) to every key's logit.
  virtual bool proportional_attention() const { return false; }
  virtual ReducerStage stage() const { return ReducerStage::AfterAttention; }
  virtual bool wants_attention() const { return false; }
  // Random decisions seeded per image from its content, so that a spec is a pure function of (model, image, spec).
  virtual bool wants_image_keys() const { return false; }
  // Token count after block `layer` given `tokens` entering it, when it does not depend on the image;
  // -1 otherwise. Used for MACs matching (--match-macs) before running anything.
  virtual int predict_tokens(int layer, int depth, int tokens, int prefix_tokens) const = 0;
  // Multiply-accumulates the method itself spends in a block (similarity matrices), per image, when
  // `tokens_in` tokens reach it and `tokens_out` leave; `key_dim` is the head width, `width` the model's.
  virtual double matching_macs(int tokens_in, int tokens_out, int prefix_tokens, int key_dim, int width) const {
    (void)tokens_in, (void)tokens_out, (void)prefix_tokens, (void)key_dim, (void)width;
    return 0;
  }
  virtual ReductionPlan plan(const ReducerContext& ctx) = 0;
};

// Parsed "method:key=value,key=value". Each factory reads the keys it knows; unknown keys are errors.
class ReducerSpec {
 public:
  explicit ReducerSpec(const std::string& text);
  const std::string& method() const { return method_; }
  const std::string& text() const { return text_; }
  bool has(const std::string& key) const { return values_.count(key) > 0; }
  double get_double(const std::string& key, double fallback, double min, double max);
  int get_int(const std::string& key, int fallback, int min, int max);
  bool get_bool(const std::string& key, bool fallback);
  std::vector<int> get_int_list(const std::string& key);                        // "8;8;4"
  std::string get_string(const std::string& key, const std::string& fallback);  // e.g. a file name
  // Throws for keys no getter asked for.
  void finish() const;

 private:
  std::string take(const std::string& key);
  std::string text_, method_;
  std::map<std::string, std::string> values_;
  std::map<std::string, bool> used_;
};

using ReducerFactory = std::function<std::unique_ptr<Reducer>(ReducerSpec&)>;

// Builds a reducer from a spec string; throws ms::Error("method spec '<text>': <problem>").
std::unique_ptr<Reducer> make_reducer(const std::string& spec);
// Registered method names with a one-line description each.
std::vector<std::pair<std::string, std::string>> reducer_methods();

// Shared helpers for reducers (the shared formulas are in reduce/ops.h).
namespace reduce {
// Shortest form that parses back to the same double, for canonical specs: 0.9 -> "0.9", -1 -> "-1", 1e-81 -> "1e-81".
std::string format_number(double v);
// Throws ms::Error("<spec>: block B does not exist ...") unless every listed block is below `depth`.
void check_blocks(const std::string& spec, const std::vector<int>& blocks, int depth);
// "3;6;9"
std::string format_list(const std::vector<int>& values);
}  // namespace reduce

}  // namespace ms
