// libFuzzer target for the GGUF reader (src/model/gguf.h): any input must parse or be rejected
// with swift::Error; AddressSanitizer/UBSan (enabled by fuzz/run) catch everything else. A file
// that parses is also walked the way the loader walks it (typed getters, array decoding).
#include <cstddef>
#include <cstdint>

#include "model/gguf.h"
#include "util/check.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    auto g = swift::GgufFile::parse(data, size, "fuzz");
    for (const auto& [key, v] : g->kv()) {
      if (v.type == swift::GgufType::kArray) {
        if (v.elem == swift::GgufType::kString) (void)g->strings(v);
        else (void)g->numbers(v);
      }
      try {
        (void)g->get_int(key);
      } catch (const swift::Error&) {
      }
    }
    volatile uint64_t sum = 0;
    for (const auto& t : g->tensors())
      if (t.n_bytes > 0) sum = sum + t.data[0] + t.data[t.n_bytes - 1];  // every tensor's bytes are in bounds
  } catch (const swift::Error&) {
  }
  return 0;
}
