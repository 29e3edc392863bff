#include "error.h"

namespace ms {

void fail(const std::string& where, const std::string& what) { throw Error(where + ": " + what); }

std::string one_line(const std::exception& e) {
  std::string message = e.what();
  const auto newline = message.find('\n');
  if (newline != std::string::npos) message.resize(newline);
  return message;
}

}  // namespace ms
