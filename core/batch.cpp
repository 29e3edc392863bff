#include "batch.h"

#include "error.h"
#include "io.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cctype>
#include <filesystem>

namespace ms {

at::Tensor load_batch(const std::vector<std::string>& paths, const PreprocessSpec& spec) {
  at::Tensor batch = at::empty({static_cast<int64_t>(paths.size()), 3, spec.crop, spec.crop}, at::kFloat);
  // load_image and preprocess turn every failure into an ms::Error naming the file, running out of memory
  // included; with_file_errors also names it for anything else (LibTorch's slicing, say).
  for (size_t i = 0; i < paths.size(); ++i)
    with_file_errors(paths[i], [&] {
      preprocess(load_image(paths[i]), spec, batch[static_cast<int64_t>(i)].data_ptr<float>(), paths[i]);
    });
  return batch;
}

std::vector<std::string> list_images(const std::string& folder) {
  if (!is_directory(folder)) fail(folder, "not a folder");
  std::vector<std::string> files;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(folder, ec)) {
    if (!entry.is_regular_file()) continue;
    std::string ext = entry.path().extension().string();
    std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char ch) { return std::tolower(ch); });
    if (ext == ".jpeg" || ext == ".jpg" || ext == ".png" || ext == ".bmp") files.push_back(entry.path().string());
  }
  if (ec) fail(folder, "cannot list folder: " + ec.message());
  std::sort(files.begin(), files.end());
  return files;
}

}  // namespace ms
