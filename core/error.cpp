#include "error.h"

#include <algorithm>
#include <cstdio>

namespace ms {

void fail(const std::string& where, const std::string& what) { throw Error(where + ": " + what); }

std::string one_line(const std::exception& e) {
  std::string message = e.what();
  const auto newline = message.find('\n');
  if (newline != std::string::npos) message.resize(newline);
  return message;
}

std::string excerpt(const std::string& text, size_t max_chars) {
  std::string out;
  const size_t n = std::min(text.size(), max_chars);
  for (size_t i = 0; i < n; ++i) {
    const unsigned char ch = static_cast<unsigned char>(text[i]);
    if (ch >= 0x20 && ch < 0x7f) {
      out += static_cast<char>(ch);
    } else {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02X", ch);
      out += buf;
    }
  }
  if (n < text.size()) out += "...";
  return out;
}

}  // namespace ms
