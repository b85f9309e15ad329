// SentencePiece BPE tokenizer, identical to libsentencepiece's encoder and decoder.
//
// The vocabulary lives in the engine's own Vocab struct (filled from tokenizer.model here, from
// GGUF metadata later), not inside a third-party object. Algorithm (sentencepiece
// bpe_model.cc): normalize (spaces -> U+2581, dummy prefix), split into characters with
// user-defined pieces kept whole, repeatedly merge the adjacent pair whose concatenation is a
// piece with the highest score (ties: leftmost), then map unknown symbols to <0xNN> byte pieces
// when byte_fallback is on, else to <unk> (consecutive unknowns collapse into one).
#pragma once

#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

#include "model/tokenizer.h"

namespace swift {

enum class PieceType : uint8_t { kNormal = 1, kUnknown = 2, kControl = 3, kUserDefined = 4, kUnused = 5, kByte = 6 };

struct SpmVocab {
  std::vector<std::string> pieces;  // [n_vocab]
  std::vector<float> scores;        // [n_vocab]
  std::vector<PieceType> types;     // [n_vocab]
  bool add_dummy_prefix = true;
  bool remove_extra_whitespaces = true;
  bool escape_whitespaces = true;
  bool byte_fallback = false;
  bool treat_whitespace_as_suffix = false;
  std::string unk_surface = " \xE2\x81\x87 ";  // " ⁇ "
  int32_t unk_id = 0, bos_id = 1, eos_id = 2, pad_id = -1;
};

// Parses a sentencepiece ModelProto. Refuses non-BPE models, non-identity normalization rules,
// duplicate pieces, malformed byte pieces and truncated files, naming the problem.
SpmVocab parse_spm_model(const uint8_t* data, size_t size, const std::string& what);
SpmVocab load_spm_model(const std::string& path);

class SpmTokenizer : public Tokenizer {
 public:
  explicit SpmTokenizer(SpmVocab vocab);

  std::vector<int32_t> encode(std::string_view text) const override;
  std::string decode(const std::vector<int32_t>& ids) const override;
  int64_t vocab_size() const override { return static_cast<int64_t>(v_.pieces.size()); }
  std::string piece(int32_t id) const override;
  const SpmVocab& vocab() const { return v_; }

 private:
  std::string normalize(std::string_view text) const;

  SpmVocab v_;
  std::unordered_map<std::string, int32_t> piece_ids_;     // NORMAL, USER_DEFINED, UNUSED
  std::unordered_map<std::string, int32_t> reserved_ids_;  // CONTROL, UNKNOWN, BYTE
  std::vector<std::string> user_defined_;                  // longest first
  int32_t byte_ids_[256];
};

}  // namespace swift
