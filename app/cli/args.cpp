#include "args.h"

#include "error.h"

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>

namespace ms::cli {
namespace {

// Options renamed because their old names said FLOPs where they hold MACs: old name -> new name, and why.
struct Renamed {
  const char* old_name;
  const char* name;
  const char* why;
};
constexpr Renamed kRenamed[] = {
    {"match-flops", "match-macs", "it matches MACs"},
    {"match-gflops", "match-gmacs", "it matches GMACs"},
    {"target-flops", "target-macs", "it targets a MACs ratio"},
};

// The current name for `name` where it is a deprecated spelling this command accepts under its new name (a one-line
// notice on stderr); `name` itself otherwise.
std::string current_name(const std::string& name, const std::set<std::string>& options,
                         std::set<std::string>& used_old) {
  for (const Renamed& r : kRenamed)
    if (name == r.old_name && options.count(r.name)) {
      std::fprintf(stderr, "--%s is deprecated: %s; use --%s\n", r.old_name, r.why, r.name);
      used_old.insert(r.name);
      return r.name;
    }
  return name;
}

}  // namespace

Args::Args(const std::vector<std::string>& argv, const std::set<std::string>& flags,
           const std::set<std::string>& options) {
  std::set<std::string> used_old, used_new;  // renamed options given under their old / new name
  for (size_t i = 0; i < argv.size(); ++i) {
    const std::string& a = argv[i];
    if (a.size() > 2 && a.compare(0, 2, "--") == 0) {
      std::string name = a.substr(2), value;
      const auto eq = name.find('=');
      const bool inline_value = eq != std::string::npos;
      if (inline_value) {
        value = name.substr(eq + 1);
        name = name.substr(0, eq);
      }
      const std::string given = name;
      name = current_name(name, options, used_old);
      if (name == given) used_new.insert(name);
      if (used_old.count(name) && used_new.count(name)) fail("--" + name, "given under its old name too; give it once");
      if (flags.count(name)) {
        if (inline_value) fail("--" + name, "takes no value");
        flags_.insert(name);
      } else if (options.count(name)) {
        if (!inline_value) {
          if (i + 1 >= argv.size()) fail("--" + name, "needs a value");
          value = argv[++i];
        }
        values_[name].push_back(value);
      } else {
        fail("--" + name, "unknown option (see --help)");
      }
    } else {
      positionals_.push_back(a);
    }
  }
}

std::string Args::get(const std::string& name, const std::string& fallback) const {
  const auto it = values_.find(name);
  return it == values_.end() ? fallback : it->second.back();
}

std::vector<std::string> Args::all(const std::string& name) const {
  const auto it = values_.find(name);
  return it == values_.end() ? std::vector<std::string>{} : it->second;
}

int Args::get_int(const std::string& name, int fallback, int min, int max) const {
  if (!has(name)) return fallback;
  const int v = parse_int(get(name), "--" + name);
  if (v < min || v > max)
    fail("--" + name,
         std::to_string(v) + " is out of range [" + std::to_string(min) + ", " + std::to_string(max) + "]");
  return v;
}

double Args::get_double(const std::string& name, double fallback, double min, double max) const {
  if (!has(name)) return fallback;
  const double v = parse_double(get(name), "--" + name);
  if (v < min || v > max)
    fail("--" + name,
         std::to_string(v) + " is out of range [" + std::to_string(min) + ", " + std::to_string(max) + "]");
  return v;
}

int parse_int(const std::string& text, const std::string& what) {
  errno = 0;
  char* end = nullptr;
  const long v = std::strtol(text.c_str(), &end, 10);
  if (text.empty() || *end != '\0' || errno == ERANGE || v < INT32_MIN || v > INT32_MAX)
    fail(what, "'" + text + "' is not an integer");
  return static_cast<int>(v);
}

double parse_double(const std::string& text, const std::string& what) {
  errno = 0;
  char* end = nullptr;
  const double v = std::strtod(text.c_str(), &end);
  if (text.empty() || *end != '\0' || errno == ERANGE || !std::isfinite(v))
    fail(what, "'" + text + "' is not a number");
  return v;
}

}  // namespace ms::cli
