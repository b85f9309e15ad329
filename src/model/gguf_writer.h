// GGUF writer (version 3, alignment 32), following the GGUF specification and llama.cpp's
// gguf.cpp byte for byte: header, key/values in insertion order, tensor infos with offsets
// relative to the data section, each tensor padded to the alignment.
//
// Tensor bytes are produced on demand while writing (a callback per tensor), so converting a
// model holds one tensor in memory at a time.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "model/gguf.h"

namespace swift {

class GgufWriter {
 public:
  static constexpr uint64_t kAlignment = 32;
  using Produce = std::function<std::vector<uint8_t>()>;

  void set_u32(const std::string& key, uint32_t v);
  void set_i32(const std::string& key, int32_t v);
  void set_f32(const std::string& key, float v);
  void set_bool(const std::string& key, bool v);
  void set_string(const std::string& key, const std::string& v);
  void set_strings(const std::string& key, const std::vector<std::string>& v);
  void set_f32s(const std::string& key, const std::vector<float>& v);
  void set_i32s(const std::string& key, const std::vector<int32_t>& v);
  // ne innermost first (ne[0] = row length). `produce` must return exactly the tensor's bytes.
  void add_tensor(const std::string& name, std::vector<int64_t> ne, GgmlType type, Produce produce);

  // Writes the file; `progress(i, n, name)` is called before each tensor. Throws on I/O errors
  // and on a producer returning the wrong number of bytes.
  void write(const std::string& path, const std::function<void(size_t, size_t, const std::string&)>& progress = {});
  // The whole file in memory (tests).
  std::vector<uint8_t> to_bytes();

 private:
  struct Tensor {
    std::string name;
    std::vector<int64_t> ne;
    GgmlType type;
    Produce produce;
    uint64_t n_bytes;
  };
  void key(const std::string& k, GgufType t);
  std::vector<uint8_t> header() const;

  std::vector<uint8_t> kv_;  // encoded key/value pairs
  uint64_t n_kv_ = 0;
  std::vector<std::string> keys_;
  std::vector<Tensor> tensors_;
};

}  // namespace swift
