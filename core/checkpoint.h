// Checkpoints: finding a model on the search path and reading its weights (safetensors or a PyTorch
// .pth/.bin state dict) as a name -> tensor map with timm parameter names.
#pragma once

#include "config.h"

#include <ATen/core/Tensor.h>

#include <map>
#include <string>
#include <vector>

namespace ms {

using StateDict = std::map<std::string, at::Tensor>;

// Model folders are looked up in: $MERGESCOPE_MODELS (':'-separated), ./models, ../shared/models.
std::vector<std::string> model_search_path();

// Data files (labels, sample images) are looked up in: $MERGESCOPE_DATA, ./data, ../shared/data.
std::vector<std::string> data_search_path();

// Finds `relative` under the data search path; throws ms::Error listing where it looked.
std::string find_data_file(const std::string& relative);

struct CheckpointLocation {
  std::string config_path;   // config.json; empty when the architecture comes from `arch`
  std::string weights_path;  // model.safetensors, pytorch_model.bin or *.pth
};

// Resolves a model given as a folder, a weights file (config.json beside it), or a name on the search path.
// Throws ms::Error listing the places it looked when nothing is found.
CheckpointLocation locate_model(const std::string& spec);

// Reads safetensors or a torch.save()d state dict (also {"model": ...} / {"state_dict": ...} wrappers).
StateDict read_state_dict(const std::string& path);

// torch.save()d state dict only (zip format); in its own translation unit because it needs the JIT headers.
StateDict read_pth_state_dict(const std::string& path);

}  // namespace ms
