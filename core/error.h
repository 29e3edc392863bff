// mergescope errors: every failure the user can cause is an ms::Error whose message names the file (or
// option) and the problem in one line. Front ends print it and exit non-zero; nothing aborts.
#pragma once

#include <stdexcept>
#include <string>

namespace ms {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}
};

// Throws Error("<where>: <what>").
[[noreturn]] void fail(const std::string& where, const std::string& what);

// Returns a one-line version of any exception's message (LibTorch's c10::Error carries a backtrace).
std::string one_line(const std::exception& e);

}  // namespace ms
