#include "model/model.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "model/chat_template.h"
#include "model/gguf_model.h"
#include "util/check.h"
#include "util/hash.h"

namespace swift {

namespace {

namespace fs = std::filesystem;

std::string read_text(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  if (!in) fail("cannot open '{}'", p.string());
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void read_generation_config(const fs::path& p, Model& m) {
  if (!fs::exists(p)) return;
  nlohmann::json j = nlohmann::json::parse(read_text(p), nullptr, false);
  if (j.is_discarded() || !j.is_object()) fail("{}: not a JSON object", p.string());
  auto eos = j.value("eos_token_id", nlohmann::json());
  if (eos.is_number_integer()) m.eos_ids.push_back(eos.get<int32_t>());
  if (eos.is_array())
    for (auto& e : eos)
      if (e.is_number_integer()) m.eos_ids.push_back(e.get<int32_t>());
  auto num = [&](const char* k, float* out) {
    if (j.contains(k) && j[k].is_number()) *out = j[k].get<float>();
  };
  if (j.contains("do_sample") && j["do_sample"].is_boolean()) m.gen.do_sample = j["do_sample"].get<bool>();
  num("temperature", &m.gen.temperature);
  num("top_p", &m.gen.top_p);
  num("min_p", &m.gen.min_p);
  num("repetition_penalty", &m.gen.repetition_penalty);
  if (j.contains("top_k") && j["top_k"].is_number_integer()) m.gen.top_k = j["top_k"].get<int>();
}

}  // namespace

const Tokenizer& Model::tok() const {
  if (!tokenizer) fail("{}", tokenizer_error);
  return *tokenizer;
}

std::unique_ptr<Model> load_model(const std::string& dir, MatMath math) {
  const fs::path d(dir);
  if (!fs::exists(d)) fail("model path '{}' does not exist", dir);
  if (is_gguf_file(dir)) return load_gguf_model(dir, math);
  if (!fs::is_directory(d))
    fail("model path '{}' is neither a Hugging Face model folder nor a GGUF file", dir);
  auto m = std::make_unique<Model>();
  m->path = dir;
  const std::string cfg_text = read_text(d / "config.json");
  nlohmann::json cj = nlohmann::json::parse(cfg_text, nullptr, false);
  if (cj.is_discarded()) fail("{}: not valid JSON", (d / "config.json").string());
  m->config = parse_model_config(cj, (d / "config.json").string());
  ModelWeights w = load_weights(dir, m->config);
  uint64_t h = fnv1a(kFnvOffset, cfg_text.data(), cfg_text.size());
  for (const auto& f : w.files) h = fnv1a(h, f->header_data(), f->header_size());
  m->identity = h;
  m->transformer = std::make_unique<Transformer>(m->config, std::move(w), math);

  read_generation_config(d / "generation_config.json", *m);
  if (fs::exists(d / "tokenizer_config.json")) {
    nlohmann::json tc = nlohmann::json::parse(read_text(d / "tokenizer_config.json"), nullptr, false);
    if (tc.is_discarded()) fail("{}: not valid JSON", (d / "tokenizer_config.json").string());
    m->chat_template = chat_template_from_config(tc);
  }
  for (int32_t e : m->config.eos_ids)
    if (std::find(m->eos_ids.begin(), m->eos_ids.end(), e) == m->eos_ids.end()) m->eos_ids.push_back(e);
  try {
    m->tokenizer = load_tokenizer(dir);
    if (m->tokenizer->vocab_size() > m->config.vocab_size)
      fail("tokenizer has {} pieces but the model's vocab_size is {}", m->tokenizer->vocab_size(), m->config.vocab_size);
    if (m->config.bos_ids.size() == 1) m->tokenizer->bos_id = m->config.bos_ids[0];
  } catch (const Error& e) {
    m->tokenizer.reset();
    m->tokenizer_error = std::string(e.what()) + " (use --prompt-ids to pass token ids directly)";
  }
  for (int32_t e : m->eos_ids)
    if (e < 0 || e >= m->config.vocab_size) fail("{}: eos token id {} is outside the vocabulary", dir, e);
  return m;
}

}  // namespace swift
