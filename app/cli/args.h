// A small argument parser: `--key value`, `--key=value`, `--flag`, repeated options, positionals.
// Unknown options and missing values are ms::Errors naming the option. Renamed options (--match-flops is now
// --match-macs, --match-gflops --match-gmacs, --target-flops --target-macs) still work under their old names,
// with a one-line deprecation notice on stderr.
#pragma once

#include <map>
#include <set>
#include <string>
#include <vector>

namespace ms::cli {

class Args {
 public:
  // `flags` take no value; `options` take one; anything else starting with "--" is an error.
  Args(const std::vector<std::string>& argv, const std::set<std::string>& flags, const std::set<std::string>& options);

  bool flag(const std::string& name) const { return flags_.count(name) > 0; }
  bool has(const std::string& name) const { return values_.count(name) > 0; }
  std::string get(const std::string& name, const std::string& fallback = "") const;
  std::vector<std::string> all(const std::string& name) const;
  int get_int(const std::string& name, int fallback, int min, int max) const;
  double get_double(const std::string& name, double fallback, double min, double max) const;
  const std::vector<std::string>& positionals() const { return positionals_; }

 private:
  std::set<std::string> flags_;
  std::map<std::string, std::vector<std::string>> values_;
  std::vector<std::string> positionals_;
};

// Parses a whole string as a number; throws ms::Error("<what>: '<text>' is not a number") otherwise.
int parse_int(const std::string& text, const std::string& what);
double parse_double(const std::string& text, const std::string& what);

}  // namespace ms::cli
