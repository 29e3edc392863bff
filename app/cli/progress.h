// A progress bar on stderr: redrawn in place on a terminal, a line every 10% otherwise (logs, CI).
#pragma once

#include <chrono>
#include <string>

namespace ms::cli {

class Progress {
 public:
  Progress(std::string label, size_t total);
  // Reports `done` of `total` items; `extra` is appended (e.g. "71.2% top-1").
  void update(size_t done, const std::string& extra = "");
  void finish(const std::string& extra = "");
  double elapsed_seconds() const;

 private:
  std::string label_;
  size_t total_;
  bool tty_;
  int last_decile_ = -1;
  std::chrono::steady_clock::time_point start_;
};

}  // namespace ms::cli
