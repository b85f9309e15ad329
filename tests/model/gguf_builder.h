// Byte-level GGUF image builder for tests: every field can be set to any value, valid or not,
// so that the malformed-file generator can break one thing at a time.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

namespace swift::test {

struct GgufBytes {
  std::vector<uint8_t> b;
  template <class T>
  GgufBytes& put(T v) {
    const size_t at = b.size();
    b.resize(at + sizeof(T));
    std::memcpy(b.data() + at, &v, sizeof(T));
    return *this;
  }
  GgufBytes& str(const std::string& s) {
    put<uint64_t>(s.size());
    b.insert(b.end(), s.begin(), s.end());
    return *this;
  }
  GgufBytes& raw(const std::vector<uint8_t>& r) {
    b.insert(b.end(), r.begin(), r.end());
    return *this;
  }
  void pad_to(size_t align) { b.resize((b.size() + align - 1) / align * align, 0); }
};

struct GgufSpecTensor {
  std::string name;
  std::vector<uint64_t> ne;
  uint32_t type = 0;  // F32
  uint64_t offset = 0;
  uint32_t n_dims_override = 0xffffffffu;
};

// A small model-less GGUF: some metadata (`kv` is pre-encoded key/type/value bytes) and tensors.
struct GgufSpec {
  uint32_t magic = 0x46554747u;
  uint32_t version = 3;
  uint64_t n_tensors_override = ~0ull, n_kv_override = ~0ull;
  std::vector<std::vector<uint8_t>> kv;
  std::vector<GgufSpecTensor> tensors;
  size_t alignment = 32;
  uint64_t data_bytes = 0;  // size of the data section written after the padding

  std::vector<uint8_t> build() const {
    GgufBytes g;
    g.put(magic).put(version);
    g.put<uint64_t>(n_tensors_override != ~0ull ? n_tensors_override : tensors.size());
    g.put<uint64_t>(n_kv_override != ~0ull ? n_kv_override : kv.size());
    for (const auto& k : kv) g.raw(k);
    for (const auto& t : tensors) {
      g.str(t.name);
      g.put<uint32_t>(t.n_dims_override != 0xffffffffu ? t.n_dims_override : static_cast<uint32_t>(t.ne.size()));
      for (uint64_t d : t.ne) g.put(d);
      g.put(t.type).put(t.offset);
    }
    g.pad_to(alignment);
    for (uint64_t i = 0; i < data_bytes; ++i) g.b.push_back(static_cast<uint8_t>(i * 7));
    return g.b;
  }
};

inline std::vector<uint8_t> kv_u32(const std::string& key, uint32_t v) {
  GgufBytes g;
  g.str(key).put<uint32_t>(4).put(v);
  return g.b;
}
inline std::vector<uint8_t> kv_u64(const std::string& key, uint64_t v) {
  GgufBytes g;
  g.str(key).put<uint32_t>(10).put(v);
  return g.b;
}
inline std::vector<uint8_t> kv_str(const std::string& key, const std::string& v) {
  GgufBytes g;
  g.str(key).put<uint32_t>(8).str(v);
  return g.b;
}
inline std::vector<uint8_t> kv_f32s(const std::string& key, const std::vector<float>& v) {
  GgufBytes g;
  g.str(key).put<uint32_t>(9).put<uint32_t>(6).put<uint64_t>(v.size());
  for (float x : v) g.put(x);
  return g.b;
}

}  // namespace swift::test
