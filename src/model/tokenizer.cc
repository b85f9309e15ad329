#include "model/tokenizer.h"

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "model/spm_tokenizer.h"
#include "util/check.h"

namespace swift {

std::vector<int32_t> Tokenizer::encode_with_specials(std::string_view text, bool allow_bos) const {
  std::vector<int32_t> ids;
  if (allow_bos && add_bos && bos_id >= 0) ids.push_back(bos_id);
  auto body = encode(text);
  ids.insert(ids.end(), body.begin(), body.end());
  if (add_eos && eos_id >= 0) ids.push_back(eos_id);
  return ids;
}

std::string StreamDecoder::push(int32_t id) {
  ids_.push_back(id);
  const std::string text = tok_.decode(ids_);
  // Hold back a trailing U+FFFD: it may be an incomplete character whose remaining bytes
  // arrive with the next token.
  size_t stable = text.size();
  if (stable >= 3 && text.compare(stable - 3, 3, "\xEF\xBF\xBD") == 0) stable -= 3;
  if (stable < emitted_) return {};
  std::string out = text.substr(emitted_, stable - emitted_);
  emitted_ = stable;
  return out;
}

std::string StreamDecoder::flush() {
  const std::string text = tok_.decode(ids_);
  std::string out = text.size() > emitted_ ? text.substr(emitted_) : std::string();
  emitted_ = text.size();
  return out;
}

std::unique_ptr<Tokenizer> load_tokenizer(const std::string& path) {
  namespace fs = std::filesystem;
  fs::path p(path);
  fs::path model_file;
  nlohmann::json cfg;
  if (fs::is_directory(p)) {
    if (fs::exists(p / "tokenizer.model")) model_file = p / "tokenizer.model";
    else if (fs::exists(p / "tokenizer.json"))
      fail("{}: tokenizer.json (Hugging Face tokenizers) is not supported yet; only SentencePiece tokenizer.model", path);
    else fail("{}: no tokenizer.model in the model folder", path);
    if (fs::exists(p / "tokenizer_config.json")) {
      std::ifstream in(p / "tokenizer_config.json");
      std::stringstream ss;
      ss << in.rdbuf();
      cfg = nlohmann::json::parse(ss.str(), nullptr, false);
      if (cfg.is_discarded() || !cfg.is_object()) fail("{}: not a JSON object", (p / "tokenizer_config.json").string());
    }
  } else {
    model_file = p;
    if (p.extension() == ".json") fail("{}: tokenizer.json is not supported yet; only SentencePiece .model", path);
  }
  auto tok = std::make_unique<SpmTokenizer>(load_spm_model(model_file.string()));
  if (cfg.is_object()) {
    if (cfg.contains("add_bos_token") && cfg["add_bos_token"].is_boolean()) tok->add_bos = cfg["add_bos_token"].get<bool>();
    if (cfg.contains("add_eos_token") && cfg["add_eos_token"].is_boolean()) tok->add_eos = cfg["add_eos_token"].get<bool>();
  }
  return tok;
}

}  // namespace swift
