#include "model/gguf.h"

#include <algorithm>
#include <cstring>

#include "util/check.h"

namespace swift {

namespace {

constexpr GgmlTypeInfo kF32Info{"F32", 1, 4}, kF16Info{"F16", 1, 2}, kBF16Info{"BF16", 1, 2},
    kQ4_0Info{"Q4_0", 32, 18}, kQ4_1Info{"Q4_1", 32, 20}, kQ5_0Info{"Q5_0", 32, 22}, kQ5_1Info{"Q5_1", 32, 24},
    kQ8_0Info{"Q8_0", 32, 34}, kQ8_1Info{"Q8_1", 32, 36}, kQ2_KInfo{"Q2_K", 256, 84}, kQ3_KInfo{"Q3_K", 256, 110},
    kQ4_KInfo{"Q4_K", 256, 144}, kQ5_KInfo{"Q5_K", 256, 176}, kQ6_KInfo{"Q6_K", 256, 210}, kQ8_KInfo{"Q8_K", 256, 292};

// Bounds-checked little-endian cursor. Every read first checks that the bytes exist.
class Cursor {
 public:
  Cursor(const uint8_t* d, size_t n, const std::string& what) : d_(d), n_(n), what_(what) {}
  size_t pos() const { return pos_; }
  const std::string& what() const { return what_; }
  size_t left() const { return n_ - pos_; }
  void need(uint64_t k, const std::string& field) const {
    if (k > left())
      fail("GGUF {}: {} at byte {} needs {} bytes but only {} remain (truncated or corrupt file)", what_, field, pos_, k,
           left());
  }
  template <class T>
  T get(const std::string& field) {
    need(sizeof(T), field);
    T v;
    std::memcpy(&v, d_ + pos_, sizeof(T));
    pos_ += sizeof(T);
    return v;
  }
  std::string str(const std::string& field) {
    const size_t at = pos_;
    const uint64_t len = get<uint64_t>(field + " length");
    if (len > GgufFile::kMaxStringBytes)
      fail("GGUF {}: {} at byte {} has length {} (limit {})", what_, field, at, len, GgufFile::kMaxStringBytes);
    need(len, field);
    std::string s(reinterpret_cast<const char*>(d_ + pos_), static_cast<size_t>(len));
    pos_ += static_cast<size_t>(len);
    return s;
  }
  void skip(uint64_t k, const std::string& field) {
    need(k, field);
    pos_ += static_cast<size_t>(k);
  }

 private:
  const uint8_t* d_;
  size_t n_;
  size_t pos_ = 0;
  const std::string& what_;
};

// Fixed size of a scalar of type t, 0 for strings/arrays, -1 for unknown types.
int scalar_size(uint32_t t) {
  switch (static_cast<GgufType>(t)) {
    case GgufType::kU8: case GgufType::kI8: case GgufType::kBool: return 1;
    case GgufType::kU16: case GgufType::kI16: return 2;
    case GgufType::kU32: case GgufType::kI32: case GgufType::kF32: return 4;
    case GgufType::kU64: case GgufType::kI64: case GgufType::kF64: return 8;
    case GgufType::kString: case GgufType::kArray: return 0;
  }
  return -1;
}

// Reads one scalar of type t into v (numbers) and returns it as double for arrays.
double read_scalar(Cursor& c, GgufType t, GgufValue& v, const std::string& field) {
  switch (t) {
    case GgufType::kU8: v.u = c.get<uint8_t>(field), v.i = static_cast<int64_t>(v.u); return static_cast<double>(v.u);
    case GgufType::kI8: v.i = c.get<int8_t>(field); return static_cast<double>(v.i);
    case GgufType::kU16: v.u = c.get<uint16_t>(field), v.i = static_cast<int64_t>(v.u); return static_cast<double>(v.u);
    case GgufType::kI16: v.i = c.get<int16_t>(field); return static_cast<double>(v.i);
    case GgufType::kU32: v.u = c.get<uint32_t>(field), v.i = static_cast<int64_t>(v.u); return static_cast<double>(v.u);
    case GgufType::kI32: v.i = c.get<int32_t>(field); return static_cast<double>(v.i);
    case GgufType::kU64: v.u = c.get<uint64_t>(field), v.i = static_cast<int64_t>(v.u); return static_cast<double>(v.u);
    case GgufType::kI64: v.i = c.get<int64_t>(field); return static_cast<double>(v.i);
    case GgufType::kF32: v.f = c.get<float>(field); return v.f;
    case GgufType::kF64: v.f = c.get<double>(field); return v.f;
    case GgufType::kBool: {
      const uint8_t b = c.get<uint8_t>(field);
      if (b > 1) fail("GGUF {}: {} at byte {} is a bool with value {}", c.what(), field, c.pos() - 1, b);
      v.b = b != 0;
      return v.b ? 1.0 : 0.0;
    }
    default: break;
  }
  SWIFT_CHECK(false, "not a scalar type");
  return 0;
}

bool mul_overflows(uint64_t a, uint64_t b, uint64_t* out) { return __builtin_mul_overflow(a, b, out); }

}  // namespace

const char* gguf_type_name(GgufType t) {
  static const char* const kNames[] = {"u8", "i8", "u16", "i16", "u32", "i32", "f32", "bool", "string", "array", "u64", "i64", "f64"};
  const auto i = static_cast<uint32_t>(t);
  return i < 13 ? kNames[i] : "unknown";
}

const GgmlTypeInfo* ggml_type_info(uint32_t type) {
  switch (static_cast<GgmlType>(type)) {
    case GgmlType::kF32: return &kF32Info;
    case GgmlType::kF16: return &kF16Info;
    case GgmlType::kBF16: return &kBF16Info;
    case GgmlType::kQ4_0: return &kQ4_0Info;
    case GgmlType::kQ4_1: return &kQ4_1Info;
    case GgmlType::kQ5_0: return &kQ5_0Info;
    case GgmlType::kQ5_1: return &kQ5_1Info;
    case GgmlType::kQ8_0: return &kQ8_0Info;
    case GgmlType::kQ8_1: return &kQ8_1Info;
    case GgmlType::kQ2_K: return &kQ2_KInfo;
    case GgmlType::kQ3_K: return &kQ3_KInfo;
    case GgmlType::kQ4_K: return &kQ4_KInfo;
    case GgmlType::kQ5_K: return &kQ5_KInfo;
    case GgmlType::kQ6_K: return &kQ6_KInfo;
    case GgmlType::kQ8_K: return &kQ8_KInfo;
  }
  return nullptr;
}

bool GgufValue::is_int() const {
  switch (type) {
    case GgufType::kU8: case GgufType::kI8: case GgufType::kU16: case GgufType::kI16: case GgufType::kU32:
    case GgufType::kI32: case GgufType::kU64: case GgufType::kI64: return true;
    default: return false;
  }
}

std::unique_ptr<GgufFile> GgufFile::open(const std::string& path) {
  auto map = std::make_unique<MappedFile>(path);
  std::unique_ptr<GgufFile> f(new GgufFile());
  f->what_ = path;
  f->parse_all(map->data(), map->size());
  f->map_ = std::move(map);
  return f;
}

std::unique_ptr<GgufFile> GgufFile::parse(const uint8_t* data, size_t size, const std::string& what) {
  std::unique_ptr<GgufFile> f(new GgufFile());
  f->what_ = what;
  f->parse_all(data, size);
  return f;
}

void GgufFile::parse_all(const uint8_t* data, size_t size) {
  Cursor c(data, size, what_);
  const uint32_t magic = c.get<uint32_t>("magic");
  if (magic != 0x46554747u) fail("GGUF {}: magic at byte 0 is 0x{:08x}, not \"GGUF\" (not a GGUF file)", what_, magic);
  version_ = c.get<uint32_t>("version");
  if (version_ != 2 && version_ != 3)
    fail("GGUF {}: version at byte 4 is {}; versions 2 and 3 are supported", what_, version_);
  const uint64_t n_tensors = c.get<uint64_t>("tensor count");
  const uint64_t n_kv = c.get<uint64_t>("metadata count");
  // Cheapest possible encodings bound the counts by the bytes left: a key/value pair needs at
  // least 8 (key length) + 4 (type) + 1 bytes, a tensor info 8 + 4 + 8 + 4 + 8.
  if (n_kv > c.left() / 13 || n_kv > kMaxKeys)
    fail("GGUF {}: metadata count at byte 16 is {}, more than the {} remaining bytes can hold (or > {})", what_, n_kv,
         c.left(), kMaxKeys);
  if (n_tensors > c.left() / 32 || n_tensors > kMaxTensors)
    fail("GGUF {}: tensor count at byte 8 is {}, more than the {} remaining bytes can hold (or > {})", what_, n_tensors,
         c.left(), kMaxTensors);
  // No reserve() from the counts: containers grow with what is actually parsed.
  for (uint64_t k = 0; k < n_kv; ++k) {
    const size_t key_at = c.pos();
    std::string key = c.str(fmt::format("metadata key {}", k));
    if (key.empty()) fail("GGUF {}: metadata key {} at byte {} is empty", what_, k, key_at);
    if (kv_index_.count(key)) fail("GGUF {}: duplicate metadata key '{}' at byte {}", what_, key, key_at);
    GgufValue v;
    const std::string field = fmt::format("value of '{}'", key);
    const uint32_t t = c.get<uint32_t>(field + " type");
    v.offset = c.pos();
    if (scalar_size(t) < 0) fail("GGUF {}: {} at byte {} has unknown type {}", what_, field, c.pos() - 4, t);
    v.type = static_cast<GgufType>(t);
    if (v.type == GgufType::kString) {
      v.str = c.str(field);
    } else if (v.type == GgufType::kArray) {
      const uint32_t et = c.get<uint32_t>(field + " element type");
      if (scalar_size(et) < 0) fail("GGUF {}: {} at byte {} has unknown element type {}", what_, field, c.pos() - 4, et);
      if (static_cast<GgufType>(et) == GgufType::kArray)
        fail("GGUF {}: {} at byte {} is an array of arrays (not supported)", what_, field, c.pos() - 4);
      v.elem = static_cast<GgufType>(et);
      const size_t count_at = c.pos();
      v.count = c.get<uint64_t>(field + " element count");
      const uint64_t min_elem = v.elem == GgufType::kString ? 8 : static_cast<uint64_t>(scalar_size(et));
      if (v.count > c.left() / min_elem)
        fail("GGUF {}: {} at byte {} claims {} elements of {}, more than the {} remaining bytes can hold", what_, field,
             count_at, v.count, gguf_type_name(v.elem), c.left());
      v.array_data = data + c.pos();
      if (v.elem == GgufType::kString) {
        for (uint64_t i = 0; i < v.count; ++i) {
          const size_t at = c.pos();
          const uint64_t len = c.get<uint64_t>(field + " element length");
          if (len > kMaxStringBytes) fail("GGUF {}: {} element {} at byte {} has length {}", what_, field, i, at, len);
          c.skip(len, field + " element");
        }
      } else if (v.elem == GgufType::kBool) {
        GgufValue tmp;
        for (uint64_t i = 0; i < v.count; ++i) read_scalar(c, v.elem, tmp, field);  // each byte must be 0 or 1
      } else {
        c.skip(v.count * static_cast<uint64_t>(scalar_size(et)), field);  // count <= left / size: no overflow
      }
    } else {
      read_scalar(c, v.type, v, field);
    }
    kv_index_[key] = kv_.size();
    kv_.emplace_back(std::move(key), std::move(v));
  }

  if (const GgufValue* a = find("general.alignment")) {
    if (a->type != GgufType::kU32)
      fail("GGUF {}: general.alignment at byte {} has type {}, must be u32", what_, a->offset, gguf_type_name(a->type));
    if (a->u == 0 || (a->u & (a->u - 1)) != 0 || a->u > kMaxAlignment)
      fail("GGUF {}: general.alignment at byte {} is {}, must be a power of two <= {}", what_, a->offset, a->u,
           kMaxAlignment);
    alignment_ = a->u;
  }

  for (uint64_t k = 0; k < n_tensors; ++k) {
    GgufTensor t;
    t.info_offset = c.pos();
    t.name = c.str(fmt::format("tensor {} name", k));
    const std::string field = fmt::format("tensor {} ('{}')", k, t.name);
    if (t.name.empty()) fail("GGUF {}: tensor {} at byte {} has an empty name", what_, k, t.info_offset);
    if (tensor_index_.count(t.name)) fail("GGUF {}: duplicate tensor name '{}' at byte {}", what_, t.name, t.info_offset);
    const size_t dims_at = c.pos();
    const uint32_t n_dims = c.get<uint32_t>(field + " n_dims");
    if (n_dims == 0 || n_dims > kMaxDims)
      fail("GGUF {}: {} n_dims at byte {} is {}, must be 1..{}", what_, field, dims_at, n_dims, kMaxDims);
    uint64_t n_el = 1;
    for (uint32_t d = 0; d < n_dims; ++d) {
      const size_t at = c.pos();
      const uint64_t ne = c.get<uint64_t>(field + " dimension");
      if (ne == 0 || ne > static_cast<uint64_t>(INT64_MAX))
        fail("GGUF {}: {} dimension {} at byte {} is {}", what_, field, d, at, ne);
      if (mul_overflows(n_el, ne, &n_el) || n_el > static_cast<uint64_t>(INT64_MAX))
        fail("GGUF {}: {} element count overflows at dimension {} (byte {})", what_, field, d, at);
      t.ne.push_back(static_cast<int64_t>(ne));
    }
    const size_t type_at = c.pos();
    t.type = c.get<uint32_t>(field + " type");
    const GgmlTypeInfo* info = ggml_type_info(t.type);
    if (!info) fail("GGUF {}: {} at byte {} has unknown ggml type {}", what_, field, type_at, t.type);
    if (t.ne[0] % info->block != 0)
      fail("GGUF {}: {} (info at byte {}) row length {} is not a multiple of the {} block size {}", what_, field,
           t.info_offset, t.ne[0], info->name, info->block);
    t.n_elements = static_cast<int64_t>(n_el);
    if (mul_overflows(n_el / static_cast<uint64_t>(info->block), static_cast<uint64_t>(info->bytes), &t.n_bytes))
      fail("GGUF {}: {} (info at byte {}) byte size overflows", what_, field, t.info_offset);
    const size_t off_at = c.pos();
    t.offset = c.get<uint64_t>(field + " offset");
    if (t.offset % alignment_ != 0)
      fail("GGUF {}: {} offset {} at byte {} is not a multiple of the alignment {}", what_, field, t.offset, off_at,
           alignment_);
    tensor_index_[t.name] = tensors_.size();
    tensors_.push_back(std::move(t));
  }

  // Data section: the next multiple of the alignment after the tensor infos.
  const uint64_t end_info = c.pos();
  data_offset_ = (end_info + alignment_ - 1) / alignment_ * alignment_;
  if (n_tensors > 0 && data_offset_ > size)
    fail("GGUF {}: data section at byte {} starts past the end of the file ({} bytes)", what_, data_offset_, size);
  const uint64_t data_size = n_tensors > 0 ? size - data_offset_ : 0;
  std::vector<std::pair<uint64_t, size_t>> spans;
  for (size_t i = 0; i < tensors_.size(); ++i) {
    GgufTensor& t = tensors_[i];
    uint64_t end;
    if (__builtin_add_overflow(t.offset, t.n_bytes, &end) || end > data_size)
      fail("GGUF {}: tensor '{}' (info at byte {}) data [{}, +{}) lies outside the {}-byte data section", what_, t.name,
           t.info_offset, t.offset, t.n_bytes, data_size);
    t.data = data + data_offset_ + t.offset;
    spans.emplace_back(t.offset, i);
  }
  std::sort(spans.begin(), spans.end());
  for (size_t i = 1; i < spans.size(); ++i) {
    const GgufTensor& a = tensors_[spans[i - 1].second];
    const GgufTensor& b = tensors_[spans[i].second];
    if (a.offset + a.n_bytes > b.offset)
      fail("GGUF {}: tensors '{}' (info at byte {}) and '{}' (info at byte {}) overlap in the data section (offsets {} "
           "and {})",
           what_, a.name, a.info_offset, b.name, b.info_offset, a.offset, b.offset);
  }
}

const GgufValue* GgufFile::find(const std::string& key) const {
  const auto it = kv_index_.find(key);
  return it == kv_index_.end() ? nullptr : &kv_[it->second].second;
}

const GgufTensor* GgufFile::tensor(const std::string& name) const {
  const auto it = tensor_index_.find(name);
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

std::optional<int64_t> GgufFile::get_int(const std::string& key) const {
  const GgufValue* v = find(key);
  if (!v) return std::nullopt;
  if (!v->is_int()) fail("GGUF {}: '{}' at byte {} has type {}, expected an integer", what_, key, v->offset, gguf_type_name(v->type));
  if (v->type == GgufType::kU64 && v->u > static_cast<uint64_t>(INT64_MAX))
    fail("GGUF {}: '{}' at byte {} is {}, out of range", what_, key, v->offset, v->u);
  return v->i;
}

std::optional<double> GgufFile::get_float(const std::string& key) const {
  const GgufValue* v = find(key);
  if (!v) return std::nullopt;
  if (v->type == GgufType::kF32 || v->type == GgufType::kF64) return v->f;
  if (v->is_int()) return static_cast<double>(v->i);
  fail("GGUF {}: '{}' at byte {} has type {}, expected a number", what_, key, v->offset, gguf_type_name(v->type));
}

std::optional<std::string> GgufFile::get_string(const std::string& key) const {
  const GgufValue* v = find(key);
  if (!v) return std::nullopt;
  if (v->type != GgufType::kString)
    fail("GGUF {}: '{}' at byte {} has type {}, expected a string", what_, key, v->offset, gguf_type_name(v->type));
  return v->str;
}

std::optional<bool> GgufFile::get_bool(const std::string& key) const {
  const GgufValue* v = find(key);
  if (!v) return std::nullopt;
  if (v->type != GgufType::kBool)
    fail("GGUF {}: '{}' at byte {} has type {}, expected a bool", what_, key, v->offset, gguf_type_name(v->type));
  return v->b;
}

const GgufValue* GgufFile::get_array(const std::string& key, GgufType elem) const {
  const GgufValue* v = find(key);
  if (!v) return nullptr;
  if (v->type != GgufType::kArray)
    fail("GGUF {}: '{}' at byte {} has type {}, expected an array", what_, key, v->offset, gguf_type_name(v->type));
  if (v->elem != elem)
    fail("GGUF {}: '{}' at byte {} is an array of {}, expected {}", what_, key, v->offset, gguf_type_name(v->elem),
         gguf_type_name(elem));
  return v;
}

std::vector<std::string> GgufFile::strings(const GgufValue& a) const {
  SWIFT_CHECK(a.type == GgufType::kArray && a.elem == GgufType::kString);
  std::vector<std::string> out;
  out.reserve(static_cast<size_t>(a.count));  // validated: every element was walked at parse
  const uint8_t* p = a.array_data;
  for (uint64_t i = 0; i < a.count; ++i) {
    uint64_t len;
    std::memcpy(&len, p, 8);
    out.emplace_back(reinterpret_cast<const char*>(p + 8), static_cast<size_t>(len));
    p += 8 + len;
  }
  return out;
}

std::vector<double> GgufFile::numbers(const GgufValue& a) const {
  SWIFT_CHECK(a.type == GgufType::kArray && a.elem != GgufType::kString);
  std::vector<double> out;
  out.reserve(static_cast<size_t>(a.count));
  const int size = scalar_size(static_cast<uint32_t>(a.elem));
  Cursor c(a.array_data, static_cast<size_t>(a.count) * static_cast<size_t>(size), what_);
  GgufValue tmp;
  for (uint64_t i = 0; i < a.count; ++i) out.push_back(read_scalar(c, a.elem, tmp, "array element"));
  return out;
}

}  // namespace swift
