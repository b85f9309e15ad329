#include "model/protobuf_reader.h"

#include <cstring>

#include "util/check.h"

namespace swift {

void ProtoReader::error(const char* msg) const { fail("{}: malformed protobuf at byte {}: {}", what_, offset(), msg); }

bool ProtoReader::next(uint32_t* field, uint32_t* wire_type) {
  if (done()) return false;
  const uint64_t key = varint();
  *field = static_cast<uint32_t>(key >> 3);
  *wire_type = static_cast<uint32_t>(key & 7);
  if (*field == 0) error("field number 0");
  return true;
}

uint64_t ProtoReader::varint() {
  uint64_t v = 0;
  for (int shift = 0; shift < 64; shift += 7) {
    if (p_ >= end_) error("truncated varint");
    const uint8_t b = *p_++;
    v |= static_cast<uint64_t>(b & 0x7f) << shift;
    if ((b & 0x80) == 0) return v;
  }
  error("varint longer than 10 bytes");
}

uint32_t ProtoReader::fixed32() {
  if (end_ - p_ < 4) error("truncated fixed32");
  uint32_t v;
  std::memcpy(&v, p_, 4);
  p_ += 4;
  return v;
}

uint64_t ProtoReader::fixed64() {
  if (end_ - p_ < 8) error("truncated fixed64");
  uint64_t v;
  std::memcpy(&v, p_, 8);
  p_ += 8;
  return v;
}

std::string_view ProtoReader::bytes() {
  const uint64_t n = varint();
  if (n > static_cast<uint64_t>(end_ - p_)) error("length-delimited field runs past the end");
  std::string_view s(reinterpret_cast<const char*>(p_), n);
  p_ += n;
  return s;
}

ProtoReader ProtoReader::sub() {
  const size_t at = offset();
  std::string_view s = bytes();
  ProtoReader r(reinterpret_cast<const uint8_t*>(s.data()), s.size(), what_, at);
  r.base_ = offset() - s.size();
  return r;
}

void ProtoReader::skip(uint32_t wire_type) {
  switch (wire_type) {
    case 0: varint(); break;
    case 1: fixed64(); break;
    case 2: bytes(); break;
    case 5: fixed32(); break;
    default: error("unsupported wire type (groups or invalid)");
  }
}

}  // namespace swift
