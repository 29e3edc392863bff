// Reading torch.save() output needs the TorchScript unpickler, the one heavy include in core/.
#include "checkpoint.h"

#include "error.h"
#include "io.h"

#include <torch/csrc/jit/serialization/pickle.h>

namespace ms {
namespace {

bool collect_tensors(const c10::IValue& value, StateDict& out) {
  if (!value.isGenericDict()) return false;
  for (const auto& item : value.toGenericDict()) {
    if (!item.key().isString()) continue;
    if (item.value().isTensor()) out[item.key().toStringRef()] = item.value().toTensor();
  }
  return !out.empty();
}

StateDict read_pth(const std::string& path) {
  const std::vector<char> bytes = read_file(path);
  if (bytes.empty()) fail(path, "empty file");
  if (bytes.size() < 4 || bytes[0] != 'P' || bytes[1] != 'K')
    fail(path,
         "not a zip-format torch.save() checkpoint (legacy pickles are not supported; re-save with PyTorch >= 1.6)");
  c10::IValue root;
  try {
    root = torch::jit::pickle_load(bytes);
  } catch (const std::bad_alloc&) {
    throw;  // with_file_errors names it
  } catch (const std::exception& e) {
    fail(path, "cannot unpickle checkpoint: " + one_line(e));
  }
  StateDict dict;
  if (collect_tensors(root, dict)) return dict;
  // Training checkpoints wrap the weights: {"model": state_dict} (DeiT), {"state_dict": ...}, {"model_ema": ...}.
  if (root.isGenericDict())
    for (const char* key : {"model", "state_dict", "model_ema", "module"})
      for (const auto& item : root.toGenericDict())
        if (item.key().isString() && item.key().toStringRef() == key && collect_tensors(item.value(), dict))
          return dict;
  fail(path,
       "checkpoint holds no tensor state dict (looked at the top level and under model/state_dict/model_ema/module)");
}

}  // namespace

StateDict read_pth_state_dict(const std::string& path) {
  // LibTorch's unpickler throws c10::Error and std::bad_alloc on hostile archives; both name the file.
  return with_file_errors(path, [&] { return read_pth(path); });
}

}  // namespace ms
