// Hugging Face `tokenizer.json` tokenizers with a BPE model, identical to the `tokenizers`
// library for the configurations LLaMA-family models ship:
//  * byte-level BPE (GPT-2, Llama-3, Qwen2): Split pre-tokenizers with the model's own regex
//    (PCRE2 with Unicode properties), ByteLevel pre-tokenizer and decoder, `ignore_merges`;
//  * SentencePiece-style BPE (LLaMA-2, Mistral tokenizer.json): Prepend/Replace normalizers or a
//    Metaspace pre-tokenizer, `byte_fallback`, and the Replace/ByteFallback/Fuse/Strip decoders;
//  * added tokens (special or not) matched before normalization and pre-tokenization, with
//    lstrip/rstrip; normalizers NFC, NFKC, Lowercase, Prepend, Replace (utf8proc for Unicode);
//  * TemplateProcessing post-processors (BOS/EOS added on encode_with_specials).
// Any other component type is refused by name when the file is loaded. Decoding keeps the
// text of special tokens, as `tokenizers` does by default (skip_special_tokens=False).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "model/tokenizer.h"

namespace swift {

class HfTokenizer : public Tokenizer {
 public:
  // Throws swift::Error naming the file and the offending component or entry.
  HfTokenizer(const nlohmann::json& j, const std::string& source);
  ~HfTokenizer() override;

  std::vector<int32_t> encode(std::string_view text) const override;
  std::string decode(const std::vector<int32_t>& ids) const override;
  int64_t vocab_size() const override { return static_cast<int64_t>(id_to_token_.size()); }
  std::string piece(int32_t id) const override;

  struct Impl;  // pipeline steps (regexes, normalizers, decoders)

 private:
  void encode_word(const std::string& word, std::vector<int32_t>& out) const;
  int32_t token_id(const std::string& s) const;

  std::unique_ptr<Impl> impl_;
  std::unordered_map<std::string, int32_t> vocab_;
  std::vector<std::string> id_to_token_;
  std::unordered_map<uint64_t, std::pair<int32_t, int32_t>> merges_;  // (left id, right id) -> (rank, merged id)
  bool ignore_merges_ = false;
  bool byte_fallback_ = false;
  bool fuse_unk_ = false;
  int32_t unk_id_ = -1;
  int32_t byte_ids_[256];
};

std::unique_ptr<Tokenizer> load_hf_tokenizer(const std::string& path);

}  // namespace swift
