#include "model/gguf_writer.h"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <memory>

#include "util/check.h"

namespace swift {

namespace {

template <class T>
void put(std::vector<uint8_t>& out, T v) {
  const size_t at = out.size();
  out.resize(at + sizeof(T));
  std::memcpy(out.data() + at, &v, sizeof(T));
}

void put_str(std::vector<uint8_t>& out, const std::string& s) {
  put<uint64_t>(out, s.size());
  out.insert(out.end(), s.begin(), s.end());
}

uint64_t pad(uint64_t n) { return (n + GgufWriter::kAlignment - 1) / GgufWriter::kAlignment * GgufWriter::kAlignment; }

}  // namespace

void GgufWriter::key(const std::string& k, GgufType t) {
  if (std::find(keys_.begin(), keys_.end(), k) != keys_.end()) fail("GGUF writer: duplicate key '{}'", k);
  keys_.push_back(k);
  put_str(kv_, k);
  put<uint32_t>(kv_, static_cast<uint32_t>(t));
  ++n_kv_;
}

void GgufWriter::set_u32(const std::string& k, uint32_t v) { key(k, GgufType::kU32), put(kv_, v); }
void GgufWriter::set_i32(const std::string& k, int32_t v) { key(k, GgufType::kI32), put(kv_, v); }
void GgufWriter::set_f32(const std::string& k, float v) { key(k, GgufType::kF32), put(kv_, v); }
void GgufWriter::set_bool(const std::string& k, bool v) { key(k, GgufType::kBool), put<uint8_t>(kv_, v ? 1 : 0); }
void GgufWriter::set_string(const std::string& k, const std::string& v) { key(k, GgufType::kString), put_str(kv_, v); }

void GgufWriter::set_strings(const std::string& k, const std::vector<std::string>& v) {
  key(k, GgufType::kArray);
  put<uint32_t>(kv_, static_cast<uint32_t>(GgufType::kString));
  put<uint64_t>(kv_, v.size());
  for (const auto& s : v) put_str(kv_, s);
}

void GgufWriter::set_f32s(const std::string& k, const std::vector<float>& v) {
  key(k, GgufType::kArray);
  put<uint32_t>(kv_, static_cast<uint32_t>(GgufType::kF32));
  put<uint64_t>(kv_, v.size());
  for (float x : v) put(kv_, x);
}

void GgufWriter::set_i32s(const std::string& k, const std::vector<int32_t>& v) {
  key(k, GgufType::kArray);
  put<uint32_t>(kv_, static_cast<uint32_t>(GgufType::kI32));
  put<uint64_t>(kv_, v.size());
  for (int32_t x : v) put(kv_, x);
}

void GgufWriter::add_tensor(const std::string& name, std::vector<int64_t> ne, GgmlType type, Produce produce) {
  for (const auto& t : tensors_)
    if (t.name == name) fail("GGUF writer: duplicate tensor '{}'", name);
  const GgmlTypeInfo* info = ggml_type_info(static_cast<uint32_t>(type));
  SWIFT_CHECK(info && !ne.empty() && ne.size() <= GgufFile::kMaxDims);
  if (ne[0] % info->block != 0)
    fail("tensor '{}': row length {} is not a multiple of the {} block size {}", name, ne[0], info->name, info->block);
  int64_t n = 1;
  for (int64_t d : ne) n *= d;
  tensors_.push_back({name, std::move(ne), type, std::move(produce), static_cast<uint64_t>(n / info->block * info->bytes)});
}

std::vector<uint8_t> GgufWriter::header() const {
  std::vector<uint8_t> h;
  put<uint32_t>(h, 0x46554747u);  // "GGUF"
  put<uint32_t>(h, 3);
  put<uint64_t>(h, tensors_.size());
  put<uint64_t>(h, n_kv_);
  h.insert(h.end(), kv_.begin(), kv_.end());
  uint64_t offset = 0;
  for (const auto& t : tensors_) {
    put_str(h, t.name);
    put<uint32_t>(h, static_cast<uint32_t>(t.ne.size()));
    for (int64_t d : t.ne) put<uint64_t>(h, static_cast<uint64_t>(d));
    put<uint32_t>(h, static_cast<uint32_t>(t.type));
    put<uint64_t>(h, offset);
    offset += pad(t.n_bytes);
  }
  h.resize(pad(h.size()), 0);
  return h;
}

std::vector<uint8_t> GgufWriter::to_bytes() {
  std::vector<uint8_t> out = header();
  for (const auto& t : tensors_) {
    const auto b = t.produce();
    SWIFT_CHECK(b.size() == t.n_bytes, "tensor {}: produced {} bytes, expected {}", t.name, b.size(), t.n_bytes);
    out.insert(out.end(), b.begin(), b.end());
    out.resize(pad(out.size()), 0);
  }
  return out;
}

void GgufWriter::write(const std::string& path, const std::function<void(size_t, size_t, const std::string&)>& progress) {
  std::unique_ptr<FILE, int (*)(FILE*)> f(std::fopen(path.c_str(), "wb"), &std::fclose);
  if (!f) fail("cannot create '{}'", path);
  auto emit = [&](const void* p, size_t n) {
    if (n && std::fwrite(p, 1, n, f.get()) != n) fail("write error on '{}' (disk full?)", path);
  };
  const auto h = header();
  emit(h.data(), h.size());
  static const uint8_t kZeros[GgufWriter::kAlignment] = {};
  for (size_t i = 0; i < tensors_.size(); ++i) {
    const Tensor& t = tensors_[i];
    if (progress) progress(i, tensors_.size(), t.name);
    const auto b = t.produce();
    SWIFT_CHECK(b.size() == t.n_bytes, "tensor {}: produced {} bytes, expected {}", t.name, b.size(), t.n_bytes);
    emit(b.data(), b.size());
    emit(kZeros, pad(b.size()) - b.size());
  }
  if (std::fflush(f.get()) != 0) fail("write error on '{}'", path);
}

}  // namespace swift
