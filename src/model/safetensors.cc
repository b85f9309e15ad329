#include "model/safetensors.h"

#include <algorithm>
#include <cstring>
#include <nlohmann/json.hpp>

#include "util/check.h"

namespace swift {

namespace {

// Real headers are a few hundred KiB; 100 MiB is what the safetensors reference also allows.
constexpr uint64_t kMaxHeader = 100ull << 20;
constexpr size_t kMaxDims = 8;

struct DTypeInfo {
  const char* name;
  StDType type;
  uint64_t size;
};
constexpr DTypeInfo kDTypes[] = {
    {"F32", StDType::kF32, 4},  {"F16", StDType::kF16, 2},   {"BF16", StDType::kBF16, 2},
    {"F64", StDType::kF64, 8},  {"I64", StDType::kI64, 8},   {"I32", StDType::kI32, 4},
    {"I16", StDType::kI16, 2},  {"I8", StDType::kI8, 1},     {"U8", StDType::kU8, 1},
    {"BOOL", StDType::kBool, 1}, {"F8_E4M3", StDType::kF8E4M3, 1}, {"F8_E5M2", StDType::kF8E5M2, 1},
};

bool mul_overflow(uint64_t a, uint64_t b, uint64_t* out) { return __builtin_mul_overflow(a, b, out); }

}  // namespace

SafetensorsFile::SafetensorsFile(const std::string& path) : path_(path) {
  map_ = std::make_unique<MappedFile>(path);
  parse(map_->data(), map_->size());
}

SafetensorsFile::SafetensorsFile(const uint8_t* bytes, size_t size, const std::string& name) : path_(name) {
  parse(bytes, size);
}

const StTensor* SafetensorsFile::find(const std::string& name) const {
  auto it = tensors_.find(name);
  return it == tensors_.end() ? nullptr : &it->second;
}

void SafetensorsFile::parse(const uint8_t* bytes, size_t size) {
  const std::string& p = path_;
  if (size < 8) fail("{}: truncated safetensors file ({} bytes, need at least 8 for the header length)", p, size);
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | bytes[i];
  if (n > size - 8)
    fail("{}: header length {} runs past the end of the file ({} bytes after the length field)", p, n, size - 8);
  if (n > kMaxHeader) fail("{}: header length {} exceeds the limit of {} bytes", p, n, kMaxHeader);
  header_data_ = bytes + 8;
  header_size_ = n;
  const uint8_t* data = bytes + 8 + n;
  const uint64_t data_size = size - 8 - n;

  nlohmann::json h = nlohmann::json::parse(bytes + 8, bytes + 8 + n, nullptr, /*allow_exceptions=*/false);
  if (h.is_discarded()) fail("{}: header (bytes 8..{}) is not valid JSON", p, 8 + n);
  if (!h.is_object()) fail("{}: header must be a JSON object", p);

  struct Span {
    uint64_t begin, end;
    const std::string* name;
  };
  std::vector<Span> spans;
  for (auto it = h.begin(); it != h.end(); ++it) {
    const std::string& name = it.key();
    if (name == "__metadata__") continue;
    const auto& v = it.value();
    if (!v.is_object()) fail("{}: tensor '{}': entry must be an object", p, name);
    if (!v.contains("dtype") || !v["dtype"].is_string()) fail("{}: tensor '{}': missing string 'dtype'", p, name);
    if (!v.contains("shape") || !v["shape"].is_array()) fail("{}: tensor '{}': missing array 'shape'", p, name);
    if (!v.contains("data_offsets") || !v["data_offsets"].is_array() || v["data_offsets"].size() != 2)
      fail("{}: tensor '{}': 'data_offsets' must be [begin, end]", p, name);
    StTensor t;
    t.name = name;
    t.dtype_name = v["dtype"].get<std::string>();
    const DTypeInfo* info = nullptr;
    for (const auto& d : kDTypes)
      if (t.dtype_name == d.name) info = &d;
    if (!info) fail("{}: tensor '{}': unknown dtype '{}'", p, name, t.dtype_name);
    t.dtype = info->type;
    const auto& shape = v["shape"];
    if (shape.size() > kMaxDims) fail("{}: tensor '{}': {} dimensions (at most {})", p, name, shape.size(), kMaxDims);
    uint64_t count = 1;
    for (const auto& d : shape) {
      if (!d.is_number_unsigned())
        fail("{}: tensor '{}': shape entry {} is not a non-negative integer", p, name, d.dump());
      const uint64_t dim = d.get<uint64_t>();
      if (dim > (1ull << 40) || mul_overflow(count, dim, &count))
        fail("{}: tensor '{}': element count of shape {} overflows", p, name, shape.dump());
      t.shape.push_back(static_cast<int64_t>(dim));
    }
    uint64_t nbytes = 0;
    if (mul_overflow(count, info->size, &nbytes))
      fail("{}: tensor '{}': byte size of shape {} x {} overflows", p, name, shape.dump(), t.dtype_name);
    const auto& off = v["data_offsets"];
    if (!off[0].is_number_unsigned() || !off[1].is_number_unsigned())
      fail("{}: tensor '{}': data_offsets must be non-negative integers", p, name);
    const uint64_t b = off[0].get<uint64_t>(), e = off[1].get<uint64_t>();
    if (b > e) fail("{}: tensor '{}': data_offsets [{}, {}] are reversed", p, name, b, e);
    if (e > data_size)
      fail("{}: tensor '{}': data_offsets [{}, {}] out of range (data section is {} bytes)", p, name, b, e, data_size);
    if (e - b != nbytes)
      fail("{}: tensor '{}': shape {} of {} needs {} bytes but data_offsets [{}, {}] hold {}", p, name,
           shape.dump(), t.dtype_name, nbytes, b, e, e - b);
    t.data = data + b;
    t.n_bytes = nbytes;
    t.file_offset = 8 + n + b;
    auto [pos, inserted] = tensors_.emplace(name, std::move(t));
    spans.push_back({b, e, &pos->first});
  }
  std::sort(spans.begin(), spans.end(), [](const Span& a, const Span& b) { return a.begin < b.begin; });
  for (size_t i = 1; i < spans.size(); ++i)
    if (spans[i].begin < spans[i - 1].end)
      fail("{}: tensors '{}' [{}, {}] and '{}' [{}, {}] overlap", p, *spans[i - 1].name, spans[i - 1].begin,
           spans[i - 1].end, *spans[i].name, spans[i].begin, spans[i].end);
}

DType weight_dtype(const StTensor& t, const std::string& file) {
  switch (t.dtype) {
    case StDType::kF32: return DType::kF32;
    case StDType::kF16: return DType::kF16;
    case StDType::kBF16: return DType::kBF16;
    default: fail("{}: tensor '{}' has dtype {}, which is not supported for weights (F32, F16, BF16)", file, t.name, t.dtype_name);
  }
}

}  // namespace swift
