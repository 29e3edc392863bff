#include "progress.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>

namespace ms::cli {

Progress::Progress(std::string label, size_t total)
    : label_(std::move(label)), total_(total), tty_(isatty(STDERR_FILENO)), start_(std::chrono::steady_clock::now()) {}

double Progress::elapsed_seconds() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
}

void Progress::update(size_t done, const std::string& extra) {
  const double fraction = total_ ? static_cast<double>(done) / total_ : 1.0;
  const double rate = done / std::max(elapsed_seconds(), 1e-9);
  if (tty_) {
    constexpr int kWidth = 30;
    const int filled = static_cast<int>(fraction * kWidth);
    std::fprintf(stderr, "\r%s [%s%s] %zu/%zu  %.1f img/s  %s\033[K", label_.c_str(), std::string(filled, '#').c_str(),
                 std::string(kWidth - filled, '.').c_str(), done, total_, rate, extra.c_str());
  } else {
    const int decile = static_cast<int>(fraction * 10);
    if (decile == last_decile_) return;
    last_decile_ = decile;
    std::fprintf(stderr, "%s %zu/%zu  %.1f img/s  %s\n", label_.c_str(), done, total_, rate, extra.c_str());
  }
  std::fflush(stderr);
}

void Progress::finish(const std::string& extra) {
  update(total_, extra);
  if (tty_) std::fputc('\n', stderr);
}

}  // namespace ms::cli
