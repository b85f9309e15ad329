// Model-loading variants with no Hugging Face fixture of their own: sharded checkpoints,
// Mistral sliding-window attention (transformers' rule: key visible iff kv_pos > q_pos - window),
// rope scaling types, and unsupported inputs.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "model/model.h"
#include "model/st_builder.h"
#include "test_util.h"
#include "util/check.h"

namespace swift {

namespace {

namespace fs = std::filesystem;

// A scratch model folder: a copy of a fixture's config (edited) and its weights.
struct TempModel {
  fs::path dir;
  TempModel(const std::string& fixture, const std::function<void(nlohmann::json&)>& edit) {
    dir = fs::temp_directory_path() / ("swift_model_" + std::to_string(::getpid()) + "_" + std::to_string(counter()++));
    fs::create_directories(dir);
    auto cfg = test::load_json(test::data_path("arch/" + fixture + "/config.json"));
    edit(cfg);
    std::ofstream(dir / "config.json") << cfg.dump();
    fs::copy_file(test::data_path("arch/" + fixture + "/model.safetensors"), dir / "model.safetensors");
  }
  ~TempModel() { fs::remove_all(dir); }
  static int& counter() {
    static int c = 0;
    return c;
  }
};

std::vector<float> all_logits(Model& m, const std::vector<int32_t>& ids, const std::vector<int32_t>& positions) {
  ThreadPool pool(2);
  KvCache cache(m.config, static_cast<int64_t>(ids.size()));
  ForwardBatch b = ForwardBatch::causal(ids, 0, true);
  b.positions = positions;
  std::vector<float> logits;
  m.transformer->forward(b, cache, SkipPlan::none(m.config.n_layer), pool, logits);
  return logits;
}

std::vector<int32_t> iota_ids(int n, int first) {
  std::vector<int32_t> v(n);
  for (int i = 0; i < n; ++i) v[i] = first + i;
  return v;
}

}  // namespace

TEST(SlidingWindow, OneLayerEqualsFullAttentionOverTheWindow) {
  // With a single layer, the output at position i under window W equals full attention over
  // the last W tokens only (RoPE keeps absolute positions, so feed them at their positions).
  const int W = 5;
  TempModel mistral("llama2", [&](nlohmann::json& c) {
    c["architectures"] = {"MistralForCausalLM"};
    c["model_type"] = "mistral";
    c["num_hidden_layers"] = 1;
    c["sliding_window"] = W;
  });
  TempModel full("llama2", [](nlohmann::json& c) { c["num_hidden_layers"] = 1; });
  auto mm = load_model(mistral.dir.string());
  auto fm = load_model(full.dir.string());
  const auto ref = test::load_json(test::data_path("arch/llama2/reference.json"));
  auto ids = ref["input_ids"].get<std::vector<int32_t>>();
  ids.resize(16);
  const int64_t V = mm->config.vocab_size;
  const auto windowed = all_logits(*mm, ids, iota_ids(16, 0));
  for (int i = 0; i < 16; ++i) {
    const int start = std::max(0, i - W + 1);
    std::vector<int32_t> sub(ids.begin() + start, ids.begin() + i + 1);
    const auto f = all_logits(*fm, sub, iota_ids(i - start + 1, start));
    const float* last = f.data() + (sub.size() - 1) * V;
    for (int64_t v = 0; v < V; ++v) ASSERT_NEAR(windowed[i * V + v], last[v], 1e-4) << "position " << i;
  }
  // And the window really matters: position 15 differs from full attention over all 16.
  const auto f_all = all_logits(*fm, ids, iota_ids(16, 0));
  double diff = 0;
  for (int64_t v = 0; v < V; ++v) diff += std::fabs(f_all[15 * V + v] - windowed[15 * V + v]);
  EXPECT_GT(diff, 1e-2);
}

TEST(Sharded, IndexedShardsGiveTheSameLogits) {
  const fs::path src = test::data_path("arch/llama2");
  const fs::path dir = fs::temp_directory_path() / ("swift_sharded_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  fs::copy_file(src / "config.json", dir / "config.json", fs::copy_options::overwrite_existing);
  SafetensorsFile whole((src / "model.safetensors").string());
  std::vector<test::StEntry> shard[2];
  nlohmann::json index = {{"metadata", nlohmann::json::object()}, {"weight_map", nlohmann::json::object()}};
  int k = 0;
  for (const auto& [name, t] : whole.tensors()) {
    ASSERT_EQ(t.dtype, StDType::kF32);
    test::StEntry e{name, t.shape, std::vector<float>(t.n_bytes / 4)};
    std::memcpy(e.values.data(), t.data, t.n_bytes);
    const int s = k++ % 2;
    shard[s].push_back(std::move(e));
    index["weight_map"][name] = fmt::format("model-{:05d}-of-00002.safetensors", s + 1);
  }
  for (int s = 0; s < 2; ++s) {
    auto img = test::st_build(shard[s]);
    std::ofstream(dir / fmt::format("model-{:05d}-of-00002.safetensors", s + 1), std::ios::binary)
        .write(reinterpret_cast<const char*>(img.data()), static_cast<std::streamsize>(img.size()));
  }
  std::ofstream(dir / "model.safetensors.index.json") << index.dump();
  auto sharded = load_model(dir.string());
  auto single = load_model(src.string());
  const auto ids = iota_ids(10, 3);
  EXPECT_EQ(all_logits(*sharded, ids, iota_ids(10, 0)), all_logits(*single, ids, iota_ids(10, 0)));
  fs::remove_all(dir);
}

TEST(Rope, ScalingTypesFollowTransformers) {
  RopeParams p;
  p.rotary_dim = 16;
  p.theta = 10000.0;
  const auto base = rope_inv_freq(p, 0);
  EXPECT_FLOAT_EQ(base[0], 1.0f);
  EXPECT_NEAR(base[1], 1.0 / std::pow(10000.0, 2.0 / 16), 1e-7);
  p.type = "linear";
  p.factor = 4.0;
  auto lin = rope_inv_freq(p, 0);
  for (size_t i = 0; i < base.size(); ++i) EXPECT_FLOAT_EQ(lin[i], base[i] / 4.0f);
  p.type = "dynamic";
  p.original_max_positions = 100;
  EXPECT_EQ(rope_inv_freq(p, 100), base);  // within the original length: unchanged
  auto dyn = rope_inv_freq(p, 400);        // beyond: base grows as transformers' NTK formula
  const double nb = 10000.0 * std::pow(4.0 * 400 / 100 - 3.0, 16.0 / 14.0);
  EXPECT_NEAR(dyn[1], 1.0 / std::pow(nb, 2.0 / 16), 1e-6);
  p.type = "llama3";
  p.factor = 8.0;
  p.low_freq_factor = 1.0;
  p.high_freq_factor = 4.0;
  p.original_max_positions = 64;
  auto l3 = rope_inv_freq(p, 0);
  EXPECT_FLOAT_EQ(l3[0], base[0]);                  // high frequency: kept
  EXPECT_FLOAT_EQ(l3.back(), base.back() / 8.0f);   // low frequency (wavelen > 64): divided
}

TEST(ModelFolder, ClearErrorsForBadFolders) {
  auto expect_error = [](const std::string& path, const std::string& needle) {
    try {
      load_model(path);
      FAIL() << path;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  expect_error("/nonexistent/model", "does not exist");
  TempModel bad_dtype("llama2", [](nlohmann::json& c) { c["architectures"] = {"FalconForCausalLM"}; });
  expect_error(bad_dtype.dir.string(), "unsupported architecture 'FalconForCausalLM'");
  TempModel wrong("llama2", [](nlohmann::json& c) { c["intermediate_size"] = 161; });
  expect_error(wrong.dir.string(), "but the config implies [161, 64]");
}

}  // namespace swift

namespace swift {

TEST(PackedWeights, FusedProjectionsGiveTheSameBitsAsSeparateOnes) {
  // pack_weights fuses Q|K|V and gate|up into one matmul each where the packed matrices lie
  // back to back (weights.h). Each output row is the same sum either way, so logits must be
  // bit-identical to the unfused model, for one token and for a batch, with and without biases
  // (qwen2 has Q/K/V biases), across dtypes (f32, bf16, f16 fixtures).
  for (const char* arch : {"llama2", "llama3", "qwen2", "qwen3"}) {
    const std::string dir = test::data_path(std::string("arch/") + arch);
    auto fused = load_model(dir);
    bool any_fused = false;
    for (const auto& L : fused->transformer->weights().layers) any_fused = any_fused || (L.wqkv.data && L.w_gate_up.data);
    EXPECT_TRUE(any_fused) << arch;
    ModelWeights w = load_weights(dir, fused->config);
    pack_weights(w);
    for (auto& L : w.layers) L.wqkv = MatView{}, L.w_gate_up = MatView{};
    Transformer separate(fused->config, std::move(w));
    for (int n : {1, 5}) {
      const auto ids = iota_ids(n, 7);
      ThreadPool pool(2);
      KvCache c1(fused->config, n), c2(fused->config, n);
      std::vector<float> a, b;
      fused->transformer->forward(ForwardBatch::causal(ids, 0, true), c1, SkipPlan::none(fused->config.n_layer), pool, a);
      separate.forward(ForwardBatch::causal(ids, 0, true), c2, SkipPlan::none(fused->config.n_layer), pool, b);
      ASSERT_EQ(a.size(), b.size());
      EXPECT_EQ(0, std::memcmp(a.data(), b.data(), a.size() * sizeof(float))) << arch << " n=" << n;
    }
  }
}

TEST(SkipPlan, ASkippedSublayerEqualsOneThatAddsZero) {
  // A skipped sublayer leaves the residual stream as it is; so does one whose output projection
  // is zero (x + 0 == x). The forward defers each residual add into the next norm's round, so
  // skips at the first and last layers, back to back, and of both halves of a layer exercise
  // where a pending add lands (the next sublayer's norm, a later layer's, or the final norm).
  for (const char* arch : {"llama3", "qwen2"}) {
    const std::string dir = test::data_path(std::string("arch/") + arch);
    auto model = load_model(dir);
    const ModelConfig& cfg = model->config;
    const int L = static_cast<int>(cfg.n_layer);
    ASSERT_GE(L, 3) << arch;
    const std::vector<std::pair<std::vector<int>, std::vector<int>>> cases = {
        {{1}, {}}, {{}, {1}}, {{1}, {1}}, {{0}, {L - 1}}, {{}, {L - 1}}, {{L - 1}, {L - 1}}, {{1, 2}, {0, 1}}};
    for (const auto& [attn, mlp] : cases) {
      ModelWeights w = load_weights(dir, cfg);
      pack_weights(w);
      auto zero = [](MatView& m) { std::memset(const_cast<void*>(m.data), 0, m.bytes()); };
      SkipPlan plan = SkipPlan::none(cfg.n_layer);
      for (int l : attn) zero(w.layers[l].wo), w.layers[l].bo.clear(), plan.skip_attn[l] = 1;
      for (int l : mlp) zero(w.layers[l].w_down), w.layers[l].b_down.clear(), plan.skip_mlp[l] = 1;
      Transformer zeroed(cfg, std::move(w));
      for (int n : {1, 5}) {
        const auto ids = iota_ids(n, 11);
        ThreadPool pool(2);
        KvCache c1(cfg, n), c2(cfg, n);
        std::vector<float> skipped, added;
        model->transformer->forward(ForwardBatch::causal(ids, 0, true), c1, plan, pool, skipped);
        zeroed.forward(ForwardBatch::causal(ids, 0, true), c2, SkipPlan::none(cfg.n_layer), pool, added);
        ASSERT_EQ(skipped.size(), added.size());
        for (size_t i = 0; i < skipped.size(); ++i)
          ASSERT_EQ(skipped[i], added[i])
              << arch << " n=" << n << " logit " << i << " attn skips " << attn.size() << " mlp skips " << mlp.size();
      }
    }
  }
}

}  // namespace swift
