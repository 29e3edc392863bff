#include "fuzz_util.h"

#include <ATen/Parallel.h>

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

namespace ms::fuzz {
namespace {

std::vector<std::string>& scratch_paths() {
  static std::vector<std::string> paths;
  return paths;
}

void remove_scratch_files() {
  for (const std::string& p : scratch_paths()) ::unlink(p.c_str());
}

// One intra-op thread: a fuzz input is tiny, and thread pools only add noise to coverage and timing.
struct SingleThreaded {
  SingleThreaded() { at::set_num_threads(1); }
} single_threaded;

}  // namespace

std::string scratch_file(const std::string& suffix) {
  // Rewritten for every input: tmpfs (/dev/shm) where there is one, unless TMPDIR says otherwise.
  const char* tmp = std::getenv("TMPDIR");
  const std::string folder = tmp && *tmp ? tmp : ::access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
  std::string path = folder + "/mergescope-fuzz-XXXXXX" + suffix;
  const int fd = ::mkstemps(path.data(), static_cast<int>(suffix.size()));
  if (fd < 0) finding("cannot create a scratch file " + path + ": " + std::strerror(errno));
  ::close(fd);
  if (scratch_paths().empty()) std::atexit(remove_scratch_files);
  scratch_paths().push_back(path);
  return path;
}

void write_scratch(const std::string& path, const void* data, size_t size) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_TRUNC);
  if (fd < 0) finding("cannot open the scratch file " + path + ": " + std::strerror(errno));
  const char* p = static_cast<const char*>(data);
  while (size > 0) {
    const ssize_t n = ::write(fd, p, size);
    if (n <= 0) finding("cannot write the scratch file " + path + ": " + std::strerror(errno));
    p += n;
    size -= static_cast<size_t>(n);
  }
  ::close(fd);
}

}  // namespace ms::fuzz
