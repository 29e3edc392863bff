// mergescope errors: every failure the user can cause is an ms::Error whose message names the file (or
// option) and the problem in one line. Front ends print it and exit non-zero; nothing aborts.
#pragma once

#include <cstddef>
#include <new>
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

// A short, printable excerpt of untrusted text for a message: at most `max_chars` bytes of it, bytes outside
// printable ASCII written as \xNN, "..." when cut. Never put a whole untrusted value into a message.
std::string excerpt(const std::string& text, size_t max_chars = 40);

// Runs `load()` for `path`: an ms::Error passes through unchanged; std::bad_alloc and any other exception
// (LibTorch, the standard library) become Error("<path>: ..."), so a failure while loading names the file.
template <typename F>
auto with_file_errors(const std::string& path, F&& load) -> decltype(load()) {
  try {
    return load();
  } catch (const Error&) {
    throw;
  } catch (const std::bad_alloc&) {
    fail(path, "out of memory while loading (std::bad_alloc)");
  } catch (const std::exception& e) {
    fail(path, one_line(e));
  }
}

}  // namespace ms
