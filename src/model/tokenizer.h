// Text <-> token ids. The interface every tokenizer implements, plus streaming detokenization.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace swift {

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;

  // Ids of `text` without BOS/EOS. Invalid UTF-8 input is rejected with swift::Error naming the
  // byte offset (we never guess an encoding).
  virtual std::vector<int32_t> encode(std::string_view text) const = 0;
  // Text of `ids`; control tokens (BOS/EOS) produce nothing.
  virtual std::string decode(const std::vector<int32_t>& ids) const = 0;
  virtual int64_t vocab_size() const = 0;
  virtual std::string piece(int32_t id) const = 0;

  // encode() plus BOS/EOS as the tokenizer config asks (add_bos_token / add_eos_token).
  std::vector<int32_t> encode_with_specials(std::string_view text, bool allow_bos = true) const;

  int32_t bos_id = -1;
  int32_t eos_id = -1;
  bool add_bos = true;
  bool add_eos = false;
};

// Emits text as tokens arrive, never a broken UTF-8 sequence: a byte-fallback token can carry
// part of a character, so text is held back until the character is complete.
class StreamDecoder {
 public:
  explicit StreamDecoder(const Tokenizer& tok) : tok_(tok) {}
  // Returns the newly printable text after appending `id`.
  std::string push(int32_t id);
  // Everything still held back (incomplete sequences become U+FFFD, as decode() does).
  std::string flush();

 private:
  const Tokenizer& tok_;
  std::vector<int32_t> ids_;
  std::string printed_;  // everything returned so far
};

// Byte offset of the first invalid UTF-8 sequence in s, or -1 if s is valid UTF-8
// (surrogate code points and overlong forms are invalid).
int64_t utf8_first_invalid(std::string_view s);

// Loads the tokenizer of a model folder (tokenizer.model; add_bos/add_eos from
// tokenizer_config.json) or a tokenizer file directly. Throws naming the file.
std::unique_ptr<Tokenizer> load_tokenizer(const std::string& path);

}  // namespace swift
