// What a run records per image and layer, for the CLI's JSON, the spectral analysis and the app.
// Plain data, no LibTorch, so GUI code can hold it.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace ms {

struct LayerTrace {
  int tokens_in = 0;                      // tokens entering the block
  int tokens = 0;                         // tokens leaving the block (after its reduction)
  std::vector<int32_t> cluster_of_token;  // for every original token: the output token holding it, -1 if pruned
  std::vector<float> sizes;               // original tokens held by each output token
  std::vector<float> energy;              // PiToMe energy of each input token (CLS: NaN), when recorded
  std::vector<float> margin;              // per input token: the smallest margin of the decisions its fate
                                          // depended on (+inf: none); empty for methods without margins
  std::vector<float> keys;                // block keys averaged over heads [tokens_in x key_dim], when recorded
  int key_dim = 0;
  std::string note;             // e.g. "r clamped from 16 to 10"
  bool mixes_all = false;       // this block or an earlier one mixed all tokens into every output (DCT): there
                                // is no partition; cluster_of_token holds only the prefix tokens (others -1)
  std::vector<int32_t> pruned;  // original tokens this block pruned (not merged); their
                                // cluster_of_token is -1 from this layer on
};

struct ImageTrace {
  int original_tokens = 0;
  int prefix_tokens = 1;  // CLS (+ distillation token)
  std::vector<LayerTrace> layers;
};

}  // namespace ms
