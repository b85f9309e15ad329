// A loaded model: config, weights bound into a Transformer, tokenizer, generation defaults.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "model/config.h"
#include "model/tokenizer.h"
#include "model/transformer.h"

namespace swift {

// Defaults from generation_config.json (HF generate() uses them when the caller says nothing).
struct GenerationDefaults {
  bool do_sample = false;
  float temperature = 1.0f;
  int top_k = 50;
  float top_p = 1.0f;
  float min_p = 0.0f;
  float repetition_penalty = 1.0f;
};

struct Model {
  std::string path;
  ModelConfig config;
  std::unique_ptr<Transformer> transformer;
  std::unique_ptr<Tokenizer> tokenizer;  // null when the folder has none we can read
  std::string tokenizer_error;           // why tokenizer is null
  std::vector<int32_t> eos_ids;          // generation stops at any of these
  GenerationDefaults gen;
  std::string chat_template;              // Jinja source from tokenizer_config.json / GGUF; "" = none
  uint64_t identity = 0;  // hash of config.json and the safetensors headers (SWIFT layer cache key)

  // Throws swift::Error with tokenizer_error when there is no tokenizer.
  const Tokenizer& tok() const;
};

// Loads a Hugging Face model folder or a GGUF file; `math` chooses how matrix products round
// (model/weights.h). Throws swift::Error naming the file and problem.
std::unique_ptr<Model> load_model(const std::string& dir, MatMath math = MatMath::kF32);

}  // namespace swift
