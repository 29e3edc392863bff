// Shared by the libFuzzer targets in this folder. An input a parser refuses with ms::Error is the expected
// outcome; every other way out is a finding: a sanitizer report, a crash, a hang (-timeout), another exception
// type escaping (bad input must become the one-line ms::Error naming the file), or a result that breaks an
// invariant (check()).
#pragma once

#include "error.h"

#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>
#include <typeinfo>

namespace ms::fuzz {

// A broken invariant: print it and abort, which libFuzzer reports as a crash with this input saved.
[[noreturn]] inline void finding(const std::string& what) {
  std::fprintf(stderr, "\n==mergescope-fuzz== FINDING: %s\n", what.c_str());
  std::fflush(stderr);
  std::abort();
}

inline void check(bool ok, const std::string& what) {
  if (!ok) finding(what);
}

// Runs one input through `body`: ms::Error returns normally, any other exception is a finding.
template <typename F>
void run_one(F&& body) {
  try {
    body();
  } catch (const ms::Error&) {
    // the parser refused the input: what it should do
  } catch (const std::exception& e) {
    finding(std::string("exception other than ms::Error escaped: ") + typeid(e).name() + ": " + e.what());
  } catch (...) {
    finding("exception of an unknown type escaped");
  }
}

// A scratch file for parsers that only read from a path; one per process, removed at exit. `suffix` picks the
// loader (e.g. ".json"). Returns its path.
std::string scratch_file(const std::string& suffix);
// Replaces the scratch file's contents.
void write_scratch(const std::string& path, const void* data, size_t size);

}  // namespace ms::fuzz
