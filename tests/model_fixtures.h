// Fixtures shared by model-level tests: the demo model (loaded once per test binary) and the
// Hugging Face reference cases for it.
#pragma once

#include <memory>

#include "model/model.h"
#include "test_util.h"

namespace swift::test {

// Mutable so a test may swap e.g. eos ids (and must restore them).
inline Model& demo_model() {
  static std::unique_ptr<Model> m = load_model(model_path("swift-mini-24L"));
  return *m;
}

inline const nlohmann::json& reference_cases() {
  static const nlohmann::json j = load_json(data_path("hf_greedy.json"));
  return j["cases"];
}

}  // namespace swift::test
