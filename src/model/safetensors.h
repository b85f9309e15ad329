// Safetensors reader: validates the header completely before any tensor is used.
//
// Format: u64 little-endian header length N, N bytes of JSON {name: {dtype, shape,
// data_offsets: [begin, end]}, "__metadata__": {...}}, then the data section. Every check is
// done with overflow-safe arithmetic before anything is sized from file contents: header length
// within the file, known dtype, dims non-negative, element count * element size without
// overflow and equal to end - begin, offsets inside the data section, no two tensors overlapping.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "ops/dtype.h"
#include "util/mapped_file.h"

namespace swift {

// Element types a safetensors file may name. Only F32/F16/BF16 are usable as weights; the
// others parse (a file may carry e.g. an I64 buffer) but are refused when a model asks for them.
enum class StDType { kF32, kF16, kBF16, kF64, kI64, kI32, kI16, kI8, kU8, kBool, kF8E4M3, kF8E5M2 };

struct StTensor {
  std::string name;
  StDType dtype = StDType::kF32;
  std::string dtype_name;
  std::vector<int64_t> shape;
  const uint8_t* data = nullptr;  // inside the map
  uint64_t n_bytes = 0;
  uint64_t file_offset = 0;       // absolute, for messages
};

class SafetensorsFile {
 public:
  // Maps and validates `path`. Throws swift::Error naming the file, tensor and numbers.
  explicit SafetensorsFile(const std::string& path);
  // Validates an in-memory image (used by tests and the fuzzer); `bytes` must outlive this.
  SafetensorsFile(const uint8_t* bytes, size_t size, const std::string& name);

  const std::map<std::string, StTensor>& tensors() const { return tensors_; }
  const StTensor* find(const std::string& name) const;
  const std::string& path() const { return path_; }
  uint64_t header_size() const { return header_size_; }
  const uint8_t* header_data() const { return header_data_; }
  // The file's map; null for in-memory images.
  const MappedFile* map() const { return map_.get(); }

 private:
  void parse(const uint8_t* bytes, size_t size);

  std::string path_;
  std::unique_ptr<MappedFile> map_;
  std::map<std::string, StTensor> tensors_;
  const uint8_t* header_data_ = nullptr;
  uint64_t header_size_ = 0;
};

// DType for weights; throws naming the tensor if its dtype cannot be computed with.
DType weight_dtype(const StTensor& t, const std::string& file);

}  // namespace swift
