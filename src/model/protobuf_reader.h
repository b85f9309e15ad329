// Minimal, bounds-checked protobuf wire-format reader (enough for sentencepiece's
// ModelProto). Every length is checked against the remaining bytes before use; malformed input
// throws swift::Error naming the byte offset.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace swift {

class ProtoReader {
 public:
  ProtoReader(const uint8_t* data, size_t size, std::string what, size_t base_offset = 0)
      : p_(data), end_(data + size), begin_(data), what_(std::move(what)), base_(base_offset) {}

  bool done() const { return p_ >= end_; }
  size_t offset() const { return base_ + static_cast<size_t>(p_ - begin_); }

  // Reads the next field key; returns false at end of message.
  bool next(uint32_t* field, uint32_t* wire_type);
  uint64_t varint();
  uint32_t fixed32();
  uint64_t fixed64();
  std::string_view bytes();  // length-delimited payload
  ProtoReader sub();         // length-delimited payload as a nested message
  void skip(uint32_t wire_type);

 private:
  [[noreturn]] void error(const char* msg) const;

  const uint8_t* p_;
  const uint8_t* end_;
  const uint8_t* begin_;
  std::string what_;
  size_t base_;
};

}  // namespace swift
