// `swiftllm` of a portable build: runs the engine variant this CPU supports best
// (util/cpu_features.h says why the engine is built per CPU level).
//
// Compiled for the baseline x86-64 level, so it runs anywhere. It looks for the variants beside
// its own executable (swiftllm-<variant>), picks one with cpu_variant_choose, and replaces itself
// with it (execv), passing every argument and argv[0] unchanged; `swiftllm --version` and `info`
// of the variant then name it and the reason (SWIFTLLM_LAUNCHED). SWIFTLLM_CPU=<variant> forces one,
// for comparisons and tests; a forced variant this CPU cannot run is an error, not a crash.
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "util/check.h"
#include "util/cpu_features.h"

namespace {

// The directory of this executable (symlinks resolved, as the kernel reports it).
std::string own_dir() {
  std::vector<char> buf(4096);
  const ssize_t n = readlink("/proc/self/exe", buf.data(), buf.size() - 1);
  if (n <= 0)
    swift::fail("cannot locate the swiftllm launcher's own executable (/proc/self/exe: {})", std::strerror(errno));
  std::string path(buf.data(), static_cast<size_t>(n));
  return path.substr(0, path.find_last_of('/'));
}

int launch(char** argv) {
  const std::string dir = own_dir();
  std::vector<std::string> installed;
  for (const swift::CpuVariant& v : swift::cpu_variants())
    if (access((dir + "/swiftllm-" + v.name).c_str(), X_OK) == 0) installed.emplace_back(v.name);
  const char* forced = std::getenv("SWIFTLLM_CPU");
  const swift::CpuVariantChoice c =
      swift::cpu_variant_choose(swift::cpu_features_detect(), installed, forced ? forced : "");
  for (const std::string& w : c.warnings) std::fprintf(stderr, "warning: %s\n", w.c_str());
  const std::string path = dir + "/swiftllm-" + c.variant->name;
  setenv("SWIFTLLM_LAUNCHED", c.reason.c_str(), 1);
  execv(path.c_str(), argv);
  swift::fail("cannot run {}: {}", path, std::strerror(errno));
}

}  // namespace

int main(int, char** argv) {
  try {
    return launch(argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
}
