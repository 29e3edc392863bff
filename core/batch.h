// Turning image files into model input.
#pragma once

#include "preprocess.h"

#include <ATen/core/Tensor.h>

#include <string>
#include <vector>

namespace ms {

// Decodes and preprocesses each file into one [B,3,crop,crop] float32 tensor; throws ms::Error naming the
// first bad file (corrupt, over the decode or resize budget of image.h / preprocess.h, or out of memory).
at::Tensor load_batch(const std::vector<std::string>& paths, const PreprocessSpec& spec);

// Image files (JPEG/PNG/BMP by extension) in a folder, sorted by name; throws when the folder is unreadable.
std::vector<std::string> list_images(const std::string& folder);

}  // namespace ms
