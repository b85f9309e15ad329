// The parts of a Hugging Face tokenizer.json around its BPE model: normalizers,
// pre-tokenizers and decoders, parsed once and applied in order (see hf_tokenizer.h for the
// supported component types). Patterns run on PCRE2 with Unicode properties; Unicode
// normalization uses utf8proc.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace swift {

class Regex;  // a compiled PCRE2 pattern (hf_pipeline.cc)

inline constexpr const char* kMetaspaceChar = "\xE2\x96\x81";  // U+2581

enum class SplitBehavior { kIsolated, kRemoved, kMergedWithPrevious, kMergedWithNext, kContiguous };

struct NormStep {
  std::string type;  // NFC, NFKC, Lowercase, Prepend, Replace
  std::string text;  // Prepend text, Replace content
  std::unique_ptr<Regex> re;
};

struct PreStep {
  std::string type;  // Split, ByteLevel, Metaspace, Digits
  std::unique_ptr<Regex> re;
  SplitBehavior behavior = SplitBehavior::kIsolated;
  bool invert = false;
  bool add_prefix_space = false;
  std::string replacement = kMetaspaceChar;
  std::string prepend_scheme = "always";
  bool split = true;
};

struct DecStep {
  std::string type;  // ByteLevel, Metaspace, Replace, ByteFallback, Fuse, Strip
  std::string from, to;
  std::unique_ptr<Regex> re;
  int start = 0, stop = 0;
  bool prefix_space = true;
};

class HfPipeline {
 public:
  HfPipeline();
  ~HfPipeline();
  HfPipeline(const HfPipeline&) = delete;
  HfPipeline& operator=(const HfPipeline&) = delete;

  // Reads "normalizer", "pre_tokenizer" and "decoder"; throws naming an unsupported type.
  void parse(const nlohmann::json& j, const std::string& source);

  std::string normalize(std::string s) const;
  // first_segment: the text before the first added token (Metaspace "first" prepends only there).
  std::vector<std::string> pre_tokenize(const std::string& s, bool first_segment) const;
  // Decodes a run of ordinary tokens (added tokens are emitted verbatim by the caller).
  std::string decode_run(std::vector<std::string> tokens, bool first) const;

 private:
  std::vector<NormStep> norm;
  std::vector<PreStep> pre;
  std::vector<DecStep> dec;
};

}  // namespace swift
