#include "model.h"

#include "error.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <set>

namespace ms {
namespace {

std::string shape_string(at::IntArrayRef shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? "," : "") + std::to_string(shape[i]);
  return s + "]";
}

// Orders names as people count: "blocks.2." before "blocks.10.".
bool natural_less(const std::string& a, const std::string& b) {
  size_t i = 0, j = 0;
  while (i < a.size() && j < b.size()) {
    if (std::isdigit(static_cast<unsigned char>(a[i])) && std::isdigit(static_cast<unsigned char>(b[j]))) {
      size_t i_end = i, j_end = j;
      while (i_end < a.size() && std::isdigit(static_cast<unsigned char>(a[i_end]))) ++i_end;
      while (j_end < b.size() && std::isdigit(static_cast<unsigned char>(b[j_end]))) ++j_end;
      const std::string x = a.substr(i, i_end - i), y = b.substr(j, j_end - j);
      if (x.size() != y.size()) return x.size() < y.size();
      if (x != y) return x < y;
      i = i_end;
      j = j_end;
    } else {
      if (a[i] != b[j]) return a[i] < b[j];
      ++i;
      ++j;
    }
  }
  return a.size() - i < b.size() - j;
}

// Takes tensor `name` from the state dict, checking presence, shape and finiteness, as float32 contiguous on
// `device`, and remembers what was taken so that tensors the config has no place for are found afterwards.
class WeightReader {
 public:
  WeightReader(const StateDict& dict, const std::string& source, c10::Device device)
      : dict_(dict), source_(source), device_(device) {}

  at::Tensor take(const std::string& name, std::vector<int64_t> shape) {
    const auto it = dict_.find(name);
    if (it == dict_.end()) fail(source_, "missing tensor '" + name + "' (expected shape " + shape_string(shape) + ")");
    const at::Tensor& t = it->second;
    if (t.sizes() != at::IntArrayRef(shape))
      fail(source_, "tensor '" + name + "' has shape " + shape_string(t.sizes()) + " but the config needs " +
                        shape_string(shape));
    if (!t.is_floating_point()) fail(source_, "tensor '" + name + "' is not floating point");
    taken_.insert(name);
    at::Tensor out = t.to(device_, at::kFloat).contiguous();
    // After the conversion: a float64 weight beyond float32's range becomes inf here. One pass per tensor
    // at load instead of NaN logits printed as "-nan%" later.
    if (!at::isfinite(out).all().item<bool>())
      fail(source_, "tensor '" + name + "' holds NaN or infinite values" +
                        (t.scalar_type() == at::kFloat ? std::string() : " (as float32)"));
    return out;
  }

  // Throws unless every tensor of the file was taken: weights for another depth, width or head layout must
  // not load with the extra tensors ignored.
  void expect_all_taken(const VitConfig& c) const {
    std::vector<std::string> unused;
    for (const auto& entry : dict_)
      if (!taken_.count(entry.first)) unused.push_back(entry.first);
    if (unused.empty()) return;
    const std::string first = *std::min_element(unused.begin(), unused.end(), natural_less);
    fail(source_, "unexpected tensor '" + excerpt(first, 120) + "' (" + std::to_string(unused.size()) +
                      (unused.size() == 1 ? " tensor is" : " tensors are") +
                      " not part of the model the config describes: depth " + std::to_string(c.depth) + ", embed_dim " +
                      std::to_string(c.embed_dim) + "); config and weights disagree");
  }

 private:
  const StateDict& dict_;
  const std::string& source_;
  c10::Device device_;
  std::set<std::string> taken_;
};

}  // namespace

void Model::assign(const StateDict& dict, const std::string& source) {
  const VitConfig& c = config_;
  const int64_t C = c.embed_dim, P = c.patch_size, H = c.mlp_hidden();
  const int64_t pos_tokens = c.num_patches() + (c.no_embed_class ? 0 : c.num_prefix_tokens());
  WeightReader w(dict, source, device_);

  patch_w_ = w.take("patch_embed.proj.weight", {C, c.in_chans, P, P}).reshape({C, c.in_chans * P * P});
  patch_b_ = w.take("patch_embed.proj.bias", {C});
  if (c.class_token) cls_token_ = w.take("cls_token", {1, 1, C});
  if (c.distilled) dist_token_ = w.take("dist_token", {1, 1, C});
  pos_embed_ = w.take("pos_embed", {1, pos_tokens, C});
  if (c.pre_norm) {
    norm_pre_w_ = w.take("norm_pre.weight", {C});
    norm_pre_b_ = w.take("norm_pre.bias", {C});
  }
  blocks_.resize(c.depth);
  for (int l = 0; l < c.depth; ++l) {
    const std::string p = "blocks." + std::to_string(l) + ".";
    BlockWeights& b = blocks_[l];
    b.norm1_w = w.take(p + "norm1.weight", {C});
    b.norm1_b = w.take(p + "norm1.bias", {C});
    b.qkv_w = w.take(p + "attn.qkv.weight", {3 * C, C});
    if (c.qkv_bias) b.qkv_b = w.take(p + "attn.qkv.bias", {3 * C});
    b.proj_w = w.take(p + "attn.proj.weight", {C, C});
    b.proj_b = w.take(p + "attn.proj.bias", {C});
    b.norm2_w = w.take(p + "norm2.weight", {C});
    b.norm2_b = w.take(p + "norm2.bias", {C});
    b.fc1_w = w.take(p + "mlp.fc1.weight", {H, C});
    b.fc1_b = w.take(p + "mlp.fc1.bias", {H});
    b.fc2_w = w.take(p + "mlp.fc2.weight", {C, H});
    b.fc2_b = w.take(p + "mlp.fc2.bias", {C});
    if (c.layer_scale) {
      b.ls1 = w.take(p + "ls1.gamma", {C});
      b.ls2 = w.take(p + "ls2.gamma", {C});
    }
  }
  if (c.fc_norm) {
    fc_norm_w_ = w.take("fc_norm.weight", {C});
    fc_norm_b_ = w.take("fc_norm.bias", {C});
  } else {
    norm_w_ = w.take("norm.weight", {C});
    norm_b_ = w.take("norm.bias", {C});
  }
  head_w_ = w.take("head.weight", {c.num_classes, C});
  head_b_ = w.take("head.bias", {c.num_classes});
  if (c.distilled) {
    head_dist_w_ = w.take("head_dist.weight", {c.num_classes, C});
    head_dist_b_ = w.take("head_dist.bias", {c.num_classes});
  }
  w.expect_all_taken(c);
}

std::shared_ptr<const Model> Model::from_state_dict(const VitConfig& config, const StateDict& weights,
                                                    const std::string& source, c10::Device device) {
  config.validate(source);  // a config built in code has not been through the readers' checks
  std::shared_ptr<Model> m(new Model());
  m->config_ = config;
  m->source_ = source;
  m->device_ = device;
  // Conversions to float32 allocate a copy of every tensor: out of memory names the weights file.
  with_file_errors(source, [&] { m->assign(weights, source); });
  return m;
}

std::shared_ptr<const Model> Model::load(const std::string& spec, c10::Device device) {
  const CheckpointLocation loc = locate_model(spec);
  if (loc.config_path.empty())
    fail(loc.weights_path, "no config.json beside the weights; give the architecture with --arch NAME");
  const VitConfig config = load_config_json(loc.config_path);
  return from_state_dict(config, read_state_dict(loc.weights_path), loc.weights_path, device);
}

std::shared_ptr<const Model> Model::random(const std::string& arch, c10::Device device, uint64_t seed) {
  const VitConfig c = config_from_arch_name(arch);
  const at::Generator gen = at::detail::createCPUGenerator(seed);
  StateDict d;
  const int64_t C = c.embed_dim, P = c.patch_size, H = c.mlp_hidden();
  auto normal = [&](std::vector<int64_t> shape) { return at::normal(0.0, 0.02, shape, gen); };
  auto ones = [&](int64_t n) { return at::ones({n}); };
  auto zeros = [&](int64_t n) { return at::zeros({n}); };
  d["patch_embed.proj.weight"] = normal({C, 3, P, P});
  d["patch_embed.proj.bias"] = zeros(C);
  d["cls_token"] = normal({1, 1, C});
  if (c.distilled) d["dist_token"] = normal({1, 1, C});
  d["pos_embed"] = normal({1, c.num_patches() + (c.no_embed_class ? 0 : c.num_prefix_tokens()), C});
  for (int l = 0; l < c.depth; ++l) {
    const std::string p = "blocks." + std::to_string(l) + ".";
    d[p + "norm1.weight"] = ones(C);
    d[p + "norm1.bias"] = zeros(C);
    d[p + "attn.qkv.weight"] = normal({3 * C, C});
    d[p + "attn.qkv.bias"] = zeros(3 * C);
    d[p + "attn.proj.weight"] = normal({C, C});
    d[p + "attn.proj.bias"] = zeros(C);
    d[p + "norm2.weight"] = ones(C);
    d[p + "norm2.bias"] = zeros(C);
    d[p + "mlp.fc1.weight"] = normal({H, C});
    d[p + "mlp.fc1.bias"] = zeros(H);
    d[p + "mlp.fc2.weight"] = normal({C, H});
    d[p + "mlp.fc2.bias"] = zeros(C);
    if (c.layer_scale) {
      d[p + "ls1.gamma"] = at::full({C}, 1e-1);
      d[p + "ls2.gamma"] = at::full({C}, 1e-1);
    }
  }
  d["norm.weight"] = ones(C);
  d["norm.bias"] = zeros(C);
  d["head.weight"] = normal({c.num_classes, C});
  d["head.bias"] = zeros(c.num_classes);
  if (c.distilled) {
    d["head_dist.weight"] = normal({c.num_classes, C});
    d["head_dist.bias"] = zeros(c.num_classes);
  }
  return from_state_dict(c, d, "random:" + arch, device);
}

std::shared_ptr<const Model> Model::with_input_size(const std::shared_ptr<const Model>& model, int img_size) {
  const VitConfig& c = model->config_;
  if (img_size == c.img_size) return model;
  if (img_size <= 0 || img_size % c.patch_size != 0 || img_size > 4096)
    fail("--img-size",
         std::to_string(img_size) + " is not a positive multiple of the patch size " + std::to_string(c.patch_size));
  std::shared_ptr<Model> m(new Model(*model));
  m->config_.img_size = img_size;
  m->config_.validate("--img-size " + std::to_string(img_size));  // e.g. too many patches for a small patch size
  const int64_t prefix = c.no_embed_class ? 0 : c.num_prefix_tokens(), G0 = c.grid(), G1 = img_size / c.patch_size;
  const at::Tensor grid = model->pos_embed_.slice(1, prefix).reshape({1, G0, G0, c.embed_dim}).permute({0, 3, 1, 2});
  const at::Tensor resized = at::upsample_bicubic2d(grid, {G1, G1}, /*align_corners=*/false)
                                 .permute({0, 2, 3, 1})
                                 .reshape({1, G1 * G1, c.embed_dim});
  m->pos_embed_ = at::cat({model->pos_embed_.slice(1, 0, prefix), resized}, 1).contiguous();
  m->source_ = model->source_ + " @" + std::to_string(img_size) + "px";
  return m;
}

std::shared_ptr<const Model> Model::with_dtype(const std::shared_ptr<const Model>& model, Dtype dtype) {
  if (dtype == model->dtype_) return model;
  std::shared_ptr<Model> m(new Model(*model));
  m->dtype_ = dtype;
  m->low_.clear();
  if (dtype == Dtype::BFloat16) {
    m->bf16_rounded_ = model->device_.is_cpu() && bf16_path() == Bf16Path::RoundedFp32;
    for (const BlockWeights& b : m->blocks_) {
      BlockWeights w;
      w.qkv_w = m->low(b.qkv_w), w.qkv_b = m->low(b.qkv_b), w.proj_w = m->low(b.proj_w), w.proj_b = m->low(b.proj_b);
      w.fc1_w = m->low(b.fc1_w), w.fc1_b = m->low(b.fc1_b), w.fc2_w = m->low(b.fc2_w), w.fc2_b = m->low(b.fc2_b);
      m->low_.push_back(std::move(w));
    }
  }
  return m;
}

at::Tensor Model::low(const at::Tensor& t) const {
  if (!t.defined()) return t;
  const at::Tensor b = t.to(at::kBFloat16);
  return (bf16_rounded_ ? b.to(at::kFloat) : b).contiguous();
}

at::Tensor Model::embed(const at::Tensor& images) const {
  const VitConfig& c = config_;
  if (images.dim() != 4 || images.size(1) != c.in_chans || images.size(2) != c.img_size || images.size(3) != c.img_size)
    fail("input", "images have shape " + shape_string(images.sizes()) + ", the model expects [B," +
                      std::to_string(c.in_chans) + "," + std::to_string(c.img_size) + "," + std::to_string(c.img_size) +
                      "]");
  const int64_t B = images.size(0), P = c.patch_size, G = c.grid(), C = c.embed_dim;
  // A stride-P convolution is a matrix product over non-overlapping patches (im2col by reshaping).
  const at::Tensor patches = images.to(device_, at::kFloat)
                                 .reshape({B, c.in_chans, G, P, G, P})
                                 .permute({0, 2, 4, 1, 3, 5})
                                 .reshape({B * G * G, c.in_chans * P * P});
  at::Tensor x = at::addmm(patch_b_, patches, patch_w_.t()).view({B, G * G, C});
  std::vector<at::Tensor> parts;
  if (c.class_token) parts.push_back(cls_token_.expand({B, 1, C}));
  if (c.distilled) parts.push_back(dist_token_.expand({B, 1, C}));
  if (c.no_embed_class) {
    x = x + pos_embed_;
    parts.push_back(x);
    x = at::cat(parts, 1);
  } else {
    parts.push_back(x);
    x = at::cat(parts, 1);
    x.add_(pos_embed_);
  }
  if (c.pre_norm) x = at::layer_norm(x, {C}, norm_pre_w_, norm_pre_b_, c.norm_eps);
  return x;
}

// Fortran BLAS (libblas.so.3, the library LibTorch itself calls: OpenBLAS after install-deps.sh).
extern "C" void sgemm_(const char* transa, const char* transb, const int* m, const int* n, const int* k,
                       const float* alpha, const float* a, const int* lda, const float* b, const int* ldb,
                       const float* beta, float* c, const int* ldc);

namespace {

// Column-major C (m x n) = alpha op(A) op(B) + beta C.
void blas_sgemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda,
                const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  const char ta = trans_a ? 'T' : 'N', tb = trans_b ? 'T' : 'N';
  const int im = static_cast<int>(m), in = static_cast<int>(n), ik = static_cast<int>(k);
  const int ilda = static_cast<int>(lda), ildb = static_cast<int>(ldb), ildc = static_cast<int>(ldc);
  sgemm_(&ta, &tb, &im, &in, &ik, &alpha, a, &ilda, b, &ildb, &beta, c, &ildc);
}

// softmax(scale * q k^T + log_size) v for every (image, head), read straight from the qkv projection
// [B*N, 3C] and written straight into [B*N, C]: no q/k/v or output transposes. Slices run in parallel,
// each with single-threaded BLAS and its N x N scores in a per-task buffer that stays in cache between
// the two products (ATen's bmm runs the slices one after another, each split across threads).
void attention_core_cpu(const at::Tensor& qkv_flat, const at::Tensor* log_size, int64_t B, int64_t N, int64_t Hh,
                        int64_t D, double scale, at::Tensor& out, at::Tensor* attn_probs) {
  const int64_t C = Hh * D;
  const float* qkv = qkv_flat.data_ptr<float>();
  float* o = out.data_ptr<float>();
  const float* ls = log_size && log_size->defined() ? log_size->data_ptr<float>() : nullptr;
  float* probs_all = attn_probs ? attn_probs->data_ptr<float>() : nullptr;
  at::parallel_for(0, B * Hh, 1, [&](int64_t s0, int64_t s1) {
    std::vector<float> scratch(probs_all ? 0 : static_cast<size_t>(N * N));
    for (int64_t s = s0; s < s1; ++s) {
      const int64_t b = s / Hh, h = s % Hh;
      const float* q = qkv + b * N * 3 * C + h * D;
      const float* k = q + C;
      const float* v = q + 2 * C;
      float* S = probs_all ? probs_all + s * N * N : scratch.data();
      // Column-major BLAS on row-major data: S^T = K Q^T, i.e. S = scale * Q K^T row-major. With
      // proportional attention every row starts as the keys' log sizes and the product is added (beta 1):
      // the same sums as adding them afterwards, without a second pass and an ATen call per slice.
      if (ls)
        for (int64_t i = 0; i < N; ++i) std::copy(ls + b * N, ls + (b + 1) * N, S + i * N);
      blas_sgemm(true, false, N, N, D, static_cast<float>(scale), k, 3 * C, q, 3 * C, ls ? 1.0f : 0.0f, S, N);
      at::Tensor scores = at::from_blob(S, {N, N}, at::TensorOptions().dtype(at::kFloat));
      at::_softmax_out(scores, scores, -1, false);
      // out rows (b, n), columns h*D..: O^T = V^T P^T
      blas_sgemm(false, false, D, N, N, 1.0f, v, 3 * C, S, N, 0.0f, o + b * N * C + h * D, C);
    }
  });
}

}  // namespace

at::Tensor Model::attention(const at::Tensor& x, int layer, const at::Tensor* log_size, at::Tensor* keys_mean,
                            at::Tensor* attn_probs) const {
  const VitConfig& c = config_;
  const BlockWeights& b = blocks_[layer];
  const int64_t B = x.size(0), N = x.size(1), C = c.embed_dim, Hh = c.num_heads, D = c.head_dim();
  const at::Tensor h = at::layer_norm(x, {C}, b.norm1_w, b.norm1_b, c.norm_eps).view({B * N, C});
  if (dtype_ == Dtype::BFloat16) return attention_bf16(h, layer, B, N, log_size, keys_mean, attn_probs);
  const at::Tensor qkv_flat = b.qkv_b.defined() ? at::addmm(b.qkv_b, h, b.qkv_w.t()) : at::mm(h, b.qkv_w.t());
  if (keys_mean) *keys_mean = qkv_flat.view({B, N, 3, Hh, D}).select(2, 1).mean(2);
  const double scale = 1.0 / std::sqrt(static_cast<double>(D));
  at::Tensor out;
  if (qkv_flat.is_cpu() && qkv_flat.scalar_type() == at::kFloat) {
    out = at::empty({B * N, C}, x.options());
    const at::Tensor ls = log_size && log_size->defined() ? log_size->contiguous() : at::Tensor();
    if (attn_probs) *attn_probs = at::empty({B, Hh, N, N}, x.options());
    attention_core_cpu(qkv_flat, ls.defined() ? &ls : nullptr, B, N, Hh, D, scale, out, attn_probs);
  } else {
    // Other devices: one copy into [3, B, H, N, D] so q, k, v are contiguous batches for bmm.
    const at::Tensor qkv = qkv_flat.view({B, N, 3, Hh, D}).permute({2, 0, 3, 1, 4}).contiguous();
    const at::Tensor q = qkv[0].view({B * Hh, N, D}), k = qkv[1].view({B * Hh, N, D}), v = qkv[2].view({B * Hh, N, D});
    at::Tensor logits = at::empty({B * Hh, N, N}, x.options());
    at::baddbmm_out(logits, logits, q, k.transpose(1, 2), /*beta=*/0.0, /*alpha=*/scale);
    if (log_size && log_size->defined()) logits.view({B, Hh, N, N}).add_(log_size->view({B, 1, 1, N}));
    const at::Tensor probs = at::_softmax(logits, -1, false);
    if (attn_probs) *attn_probs = probs.view({B, Hh, N, N});
    out = at::bmm(probs, v).view({B, Hh, N, D}).transpose(1, 2).reshape({B * N, C});
  }
  at::Tensor y = at::addmm(b.proj_b, out, b.proj_w.t()).view({B, N, C});
  if (b.ls1.defined()) y.mul_(b.ls1);
  return y;
}

// bf16 (core/precision.h): the qkv projection, Q K^T, P V and the output projection take bf16 operands and give
// bf16 results; the keys handed to the reducers are upcast first, the softmax runs on upcast logits and its fp32
// probabilities are what the reducers see; the result returns to the fp32 residual stream. low() is the rounding
// to bf16: bf16 tensors, or (Bf16Path::RoundedFp32) fp32 tensors holding bf16 values, whose fp32 products round
// to bf16 again, giving the numbers of a bf16 GEMM with fp32 accumulation.
at::Tensor Model::attention_bf16(const at::Tensor& h, int layer, int64_t B, int64_t N, const at::Tensor* log_size,
                                 at::Tensor* keys_mean, at::Tensor* attn_probs) const {
  const VitConfig& c = config_;
  const BlockWeights& b = blocks_[layer];
  const BlockWeights& w = low_[layer];
  const int64_t C = c.embed_dim, Hh = c.num_heads, D = c.head_dim();
  const at::Tensor hb = low(h);
  const at::Tensor qkv_flat = low(w.qkv_b.defined() ? at::addmm(w.qkv_b, hb, w.qkv_w.t()) : at::mm(hb, w.qkv_w.t()));
  const at::Tensor qkv = qkv_flat.view({B, N, 3, Hh, D}).permute({2, 0, 3, 1, 4}).contiguous();
  if (keys_mean) *keys_mean = qkv[1].to(at::kFloat).mean(1);  // [B,N,D], averaged over heads in fp32
  const at::Tensor q = qkv[0].view({B * Hh, N, D}), k = qkv[1].view({B * Hh, N, D}), v = qkv[2].view({B * Hh, N, D});
  const double scale = 1.0 / std::sqrt(static_cast<double>(D));
  at::Tensor logits = low(at::bmm(q, k.transpose(1, 2))).to(at::kFloat).mul_(scale);
  if (log_size && log_size->defined()) logits.view({B, Hh, N, N}).add_(log_size->view({B, 1, 1, N}));
  const at::Tensor probs = at::_softmax(logits, -1, false);
  if (attn_probs) *attn_probs = probs.view({B, Hh, N, N});
  const at::Tensor out = low(at::bmm(low(probs), v)).view({B, Hh, N, D}).transpose(1, 2).reshape({B * N, C});
  at::Tensor y = low(at::addmm(w.proj_b, out, w.proj_w.t())).to(at::kFloat).view({B, N, C});
  if (b.ls1.defined()) y.mul_(b.ls1);
  return y;
}

// Both halves in plain ATen: only MCTF's acting blocks use them. In bf16 the products take bf16 operands as in
// attention_bf16 (low() rounds), the softmax runs in fp32.
at::Tensor Model::qkv_rows(const at::Tensor& x, int layer, int64_t part, int64_t parts) const {
  const VitConfig& c = config_;
  const BlockWeights& b = blocks_[layer];
  const bool bf = dtype_ == Dtype::BFloat16;
  const BlockWeights& w = bf ? low_[layer] : b;
  const int64_t C = c.embed_dim;
  at::Tensor h = at::layer_norm(x, {C}, b.norm1_w, b.norm1_b, c.norm_eps).view({x.size(0) * x.size(1), C});
  if (bf) h = low(h);
  const at::Tensor weight = w.qkv_w.slice(0, part * C, (part + parts) * C);
  at::Tensor out = w.qkv_b.defined() ? at::addmm(w.qkv_b.slice(0, part * C, (part + parts) * C), h, weight.t())
                                     : at::mm(h, weight.t());
  return bf ? low(out) : out;
}

at::Tensor Model::attention_probs(const at::Tensor& x, int layer, const at::Tensor* log_size,
                                  at::Tensor* keys_mean) const {
  const VitConfig& c = config_;
  const int64_t B = x.size(0), N = x.size(1), Hh = c.num_heads, D = c.head_dim();
  // q and k only: v is computed after the fusion
  const at::Tensor qk = qkv_rows(x, layer, 0, 2).view({B, N, 2, Hh, D}).permute({2, 0, 3, 1, 4}).contiguous();
  if (keys_mean) *keys_mean = qk[1].to(at::kFloat).mean(1);
  const at::Tensor q = qk[0].view({B * Hh, N, D}), k = qk[1].view({B * Hh, N, D});
  at::Tensor logits = at::bmm(q, k.transpose(1, 2));
  if (dtype_ == Dtype::BFloat16) logits = low(logits).to(at::kFloat);
  logits.mul_(1.0 / std::sqrt(static_cast<double>(D)));
  if (log_size && log_size->defined()) logits.view({B, Hh, N, N}).add_(log_size->view({B, 1, 1, N}));
  return at::_softmax(logits, -1, false).view({B, Hh, N, N});
}

at::Tensor Model::attention_with_probs(const at::Tensor& x, int layer, const at::Tensor& probs) const {
  const VitConfig& c = config_;
  const BlockWeights& b = blocks_[layer];
  const bool bf = dtype_ == Dtype::BFloat16;
  const BlockWeights& w = bf ? low_[layer] : b;
  const int64_t B = x.size(0), N = x.size(1), C = c.embed_dim, Hh = c.num_heads, D = c.head_dim();
  const at::Tensor v = qkv_rows(x, layer, 2, 1).view({B, N, Hh, D}).transpose(1, 2).reshape({B * Hh, N, D});
  const at::Tensor p = bf ? low(probs.reshape({B * Hh, N, N})) : probs.reshape({B * Hh, N, N});
  at::Tensor out = at::bmm(p, v);
  if (bf) out = low(out);
  out = out.view({B, Hh, N, D}).transpose(1, 2).reshape({B * N, C});
  at::Tensor y = at::addmm(w.proj_b, out, w.proj_w.t());
  if (bf) y = low(y).to(at::kFloat);
  y = y.view({B, N, C});
  if (b.ls1.defined()) y.mul_(b.ls1);
  return y;
}

at::Tensor Model::mlp(const at::Tensor& x, int layer) const {
  const VitConfig& c = config_;
  const BlockWeights& b = blocks_[layer];
  const int64_t B = x.size(0), N = x.size(1), C = c.embed_dim;
  const at::Tensor h = at::layer_norm(x, {C}, b.norm2_w, b.norm2_b, c.norm_eps).view({B * N, C});
  if (dtype_ == Dtype::BFloat16) {
    // fc1 and fc2 in bf16; GELU on fc1's bf16 output, computed in fp32 and rounded (as ATen's bf16 kernel does).
    const BlockWeights& w = low_[layer];
    at::Tensor hidden = low(at::addmm(w.fc1_b, low(h), w.fc1_w.t()));
    at::gelu_(hidden);
    hidden = low(hidden);
    at::Tensor y = low(at::addmm(w.fc2_b, hidden, w.fc2_w.t())).to(at::kFloat).view({B, N, C});
    if (b.ls2.defined()) y.mul_(b.ls2);
    return y;
  }
  at::Tensor hidden = at::addmm(b.fc1_b, h, b.fc1_w.t());
  at::gelu_(hidden);  // exact (erf) GELU, as timm's nn.GELU
  at::Tensor y = at::addmm(b.fc2_b, hidden, b.fc2_w.t()).view({B, N, C});
  if (b.ls2.defined()) y.mul_(b.ls2);
  return y;
}

at::Tensor Model::head(const at::Tensor& x) const {
  const VitConfig& c = config_;
  const int64_t C = c.embed_dim;
  if (c.global_pool == "avg") {
    // timm: norm every token (unless fc_norm replaces it), average the patch tokens, then fc_norm.
    const at::Tensor tokens = c.fc_norm ? x : at::layer_norm(x, {C}, norm_w_, norm_b_, c.norm_eps);
    at::Tensor pooled = tokens.slice(1, c.num_prefix_tokens()).mean(1);
    if (c.fc_norm) pooled = at::layer_norm(pooled, {C}, fc_norm_w_, fc_norm_b_, c.norm_eps);
    return at::addmm(head_b_, pooled, head_w_.t());
  }
  // Only the prefix tokens reach the head, so normalise just those.
  const at::Tensor prefix = at::layer_norm(x.slice(1, 0, c.num_prefix_tokens()), {C}, norm_w_, norm_b_, c.norm_eps);
  at::Tensor logits = at::addmm(head_b_, prefix.select(1, 0), head_w_.t());
  if (c.distilled) {  // timm's distilled DeiT at inference: mean of the two heads
    logits.add_(at::addmm(head_dist_b_, prefix.select(1, 1), head_dist_w_.t())).div_(2);
  }
  return logits;
}

at::Tensor Model::forward(const at::Tensor& images) const {
  at::Tensor x = embed(images);
  for (int l = 0; l < config_.depth; ++l) {
    x.add_(attention(x, l));
    x.add_(mlp(x, l));
  }
  return head(x);
}

}  // namespace ms
