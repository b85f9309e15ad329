// GGUF reader (llama.cpp's model format, versions 2 and 3), validated completely before use.
//
// Layout: "GGUF", u32 version, u64 n_tensors, u64 n_kv; n_kv key/value pairs (u64-length
// string key, u32 value type, value; arrays: u32 element type, u64 count, elements); n_tensors
// tensor infos (name, u32 n_dims, u64 ne[n_dims] innermost first, u32 ggml type, u64 offset
// relative to the data section); padding to `general.alignment` (default 32); data section.
//
// Hardening (llama.cpp's reader had a run of heap overflows: CVE-2024-21802/21825/21836/23496/
// 23605, CVE-2025-53630, CVE-2026-27940/33298): every count and length is checked against the
// bytes left in the file *before* anything is sized from it, so no allocation exceeds the file
// size; all size arithmetic is overflow-checked; n_dims <= 4; element counts and byte sizes
// must not overflow; ne[0] must be a multiple of the type's block; tensor data must be aligned,
// inside the file and non-overlapping; names and keys are unique; general.alignment must be a
// u32 power of two; array element types are checked; unknown value or tensor types are refused.
// Every error names the field and its byte offset.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "util/mapped_file.h"

namespace swift {

enum class GgufType : uint32_t {
  kU8 = 0, kI8 = 1, kU16 = 2, kI16 = 3, kU32 = 4, kI32 = 5, kF32 = 6, kBool = 7,
  kString = 8, kArray = 9, kU64 = 10, kI64 = 11, kF64 = 12,
};
const char* gguf_type_name(GgufType t);

// ggml tensor types this engine knows the layout of (values as in ggml.h).
enum class GgmlType : uint32_t {
  kF32 = 0, kF16 = 1, kQ4_0 = 2, kQ4_1 = 3, kQ5_0 = 6, kQ5_1 = 7, kQ8_0 = 8, kQ8_1 = 9,
  kQ2_K = 10, kQ3_K = 11, kQ4_K = 12, kQ5_K = 13, kQ6_K = 14, kQ8_K = 15, kBF16 = 30,
};

struct GgmlTypeInfo {
  const char* name;
  int64_t block;  // elements per block
  int64_t bytes;  // bytes per block
};
// Null for a type value this engine does not know.
const GgmlTypeInfo* ggml_type_info(uint32_t type);

struct GgufValue {
  GgufType type = GgufType::kU8;
  GgufType elem = GgufType::kU8;  // arrays: element type
  uint64_t offset = 0;             // byte offset of the value in the file
  // Scalars: integers in `i` (and `u` for unsigned), floats in `f`, bools in `b`, strings in `str`.
  int64_t i = 0;
  uint64_t u = 0;
  double f = 0;
  bool b = false;
  std::string str;
  // Arrays: `count` elements starting at `array_data` in the file, validated but not copied
  // (GgufFile::strings/numbers decode them on demand).
  uint64_t count = 0;
  const uint8_t* array_data = nullptr;
  bool is_int() const;
};

struct GgufTensor {
  std::string name;
  std::vector<int64_t> ne;      // [n_dims], innermost (row length) first
  uint32_t type = 0;            // GgmlType value
  uint64_t offset = 0;          // relative to the data section
  uint64_t n_bytes = 0;
  int64_t n_elements = 0;
  const uint8_t* data = nullptr;
  uint64_t info_offset = 0;     // byte offset of the tensor info, for messages
};

class GgufFile {
 public:
  // Limits beyond which a file is refused as malformed (no real model comes near them).
  static constexpr uint64_t kMaxStringBytes = 1ull << 30;
  static constexpr uint64_t kMaxAlignment = 1ull << 16;
  static constexpr uint32_t kMaxDims = 4;
  // Counts are also checked against the bytes left; these caps bound the bookkeeping memory
  // (real models: < 100 keys, < 5,000 tensors).
  static constexpr uint64_t kMaxKeys = 1u << 16, kMaxTensors = 1u << 20;

  // Maps and validates `path`.
  static std::unique_ptr<GgufFile> open(const std::string& path);
  // Validates an in-memory image; `data` must outlive the object.
  static std::unique_ptr<GgufFile> parse(const uint8_t* data, size_t size, const std::string& what);

  uint32_t version() const { return version_; }
  uint64_t alignment() const { return alignment_; }
  uint64_t data_offset() const { return data_offset_; }
  const std::string& what() const { return what_; }
  const std::vector<std::pair<std::string, GgufValue>>& kv() const { return kv_; }
  const std::vector<GgufTensor>& tensors() const { return tensors_; }

  // The file's map; null for in-memory images.
  const MappedFile* map() const { return map_.get(); }

  const GgufValue* find(const std::string& key) const;
  const GgufTensor* tensor(const std::string& name) const;
  // Typed access, throwing swift::Error naming the key, its type and offset on a mismatch.
  std::optional<int64_t> get_int(const std::string& key) const;  // any integer type
  std::optional<double> get_float(const std::string& key) const;  // f32/f64 (or integer)
  std::optional<std::string> get_string(const std::string& key) const;
  std::optional<bool> get_bool(const std::string& key) const;
  const GgufValue* get_array(const std::string& key, GgufType elem) const;  // null if absent
  // Elements of a validated array value.
  std::vector<std::string> strings(const GgufValue& array) const;
  std::vector<double> numbers(const GgufValue& array) const;

 private:
  void parse_all(const uint8_t* data, size_t size);

  std::string what_;
  std::unique_ptr<MappedFile> map_;
  uint32_t version_ = 0;
  uint64_t alignment_ = 32;
  uint64_t data_offset_ = 0;
  std::vector<std::pair<std::string, GgufValue>> kv_;
  std::unordered_map<std::string, size_t> kv_index_;
  std::vector<GgufTensor> tensors_;
  std::unordered_map<std::string, size_t> tensor_index_;
};

}  // namespace swift
