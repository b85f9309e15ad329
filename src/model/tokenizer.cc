#include "model/tokenizer.h"

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "model/hf_tokenizer.h"
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
  // Hold back trailing U+FFFD: they may be an incomplete character whose remaining bytes arrive
  // with the next tokens (decode() turns each byte of an unfinished sequence into U+FFFD).
  size_t stable = text.size();
  while (stable >= 3 && text.compare(stable - 3, 3, "\xEF\xBF\xBD") == 0) stable -= 3;
  // Text already printed never changes once it is followed by a complete character, so the
  // new text extends it; emit only the extension.
  const size_t done = printed_.size();
  if (stable <= done || text.compare(0, done, printed_) != 0) return {};
  std::string out = text.substr(done, stable - done);
  printed_ += out;
  return out;
}

std::string StreamDecoder::flush() {
  const std::string text = tok_.decode(ids_);
  const size_t done = printed_.size();
  std::string out = text.size() > done && text.compare(0, done, printed_) == 0 ? text.substr(done) : std::string();
  printed_ += out;
  return out;
}

std::unique_ptr<Tokenizer> load_tokenizer(const std::string& path) {
  namespace fs = std::filesystem;
  fs::path p(path);
  fs::path model_file;
  nlohmann::json cfg;
  if (fs::is_directory(p)) {
    // tokenizer.json first: it is what transformers' AutoTokenizer loads (the fast tokenizer).
    if (fs::exists(p / "tokenizer.json")) model_file = p / "tokenizer.json";
    else if (fs::exists(p / "tokenizer.model")) model_file = p / "tokenizer.model";
    else fail("{}: no tokenizer.json or tokenizer.model in the model folder", path);
    if (fs::exists(p / "tokenizer_config.json")) {
      std::ifstream in(p / "tokenizer_config.json");
      std::stringstream ss;
      ss << in.rdbuf();
      cfg = nlohmann::json::parse(ss.str(), nullptr, false);
      if (cfg.is_discarded() || !cfg.is_object()) fail("{}: not a JSON object", (p / "tokenizer_config.json").string());
    }
  } else {
    model_file = p;
  }
  std::unique_ptr<Tokenizer> tok;
  const bool hf = model_file.extension() == ".json";
  if (hf) tok = load_hf_tokenizer(model_file.string());
  else tok = std::make_unique<SpmTokenizer>(load_spm_model(model_file.string()));
  if (cfg.is_object() && !hf) {
    if (cfg.contains("add_bos_token") && cfg["add_bos_token"].is_boolean()) tok->add_bos = cfg["add_bos_token"].get<bool>();
    if (cfg.contains("add_eos_token") && cfg["add_eos_token"].is_boolean()) tok->add_eos = cfg["add_eos_token"].get<bool>();
  }
  return tok;
}

}  // namespace swift
