// GGUF round trips: the demo model and every architecture fixture converted with `write_gguf`
// and loaded back must give the safetensors logits (F32: within 1e-4, in fact bit-identical) and
// greedy output; quantized types are measured against F32 (top-1 agreement, mean KL) and
// Q8_0 must keep >= 98% agreement and KL <= 0.01. Model-level defects in otherwise valid files
// (token ids past the vocabulary, absurd layer counts, missing or unsupported tensors) are
// refused by name.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>

#include "engine/ar_decoder.h"
#include "engine/generation.h"
#include "engine/hybrid/hybrid_decoder.h"
#include "engine/swift/swift_decoder.h"
#include "model/gguf_model.h"
#include "model_fixtures.h"
#include "ops/attention.h"
#include "ops/elementwise.h"
#include "ops/q8_dot.h"
#include "engine/sampler.h"
#include "util/check.h"

#include <unistd.h>

namespace swift {

namespace {

namespace fs = std::filesystem;

ThreadPool& pool() {
  static ThreadPool p(2);
  return p;
}

std::string tmp(const std::string& name) {
  const fs::path d = fs::temp_directory_path() / ("swiftllm_gguf_test_" + std::to_string(::getpid()));
  fs::create_directories(d);
  return (d / name).string();
}

std::string converted(const Model& m, DType t, const std::string& name, bool tokenizer = true, bool k_mix = false) {
  const std::string path = tmp(name);
  if (!fs::exists(path)) {
    ConvertOptions o;
    o.type = t;
    o.k_mix = k_mix;
    o.with_tokenizer = tokenizer;
    write_gguf(m, path, o);
  }
  return path;
}

// Logits at every position of `ids` (one forward, causal).
std::vector<float> all_logits(const Model& m, const std::vector<int32_t>& ids) {
  // The reference side is computed once per prompt for all tests of this file.
  static std::map<std::pair<const Model*, std::vector<int32_t>>, std::vector<float>> cache;
  if (&m == &test::demo_model()) {
    auto& slot = cache[{&m, ids}];
    if (slot.empty()) {
      Sequence seq(m, static_cast<int64_t>(ids.size()), 0);
      m.transformer->forward(ForwardBatch::causal(ids, 0, true), seq.cache, SkipPlan::none(m.config.n_layer), pool(), slot);
    }
    return slot;
  }
  Sequence seq(m, static_cast<int64_t>(ids.size()), 0);
  std::vector<float> logits;
  m.transformer->forward(ForwardBatch::causal(ids, 0, true), seq.cache, SkipPlan::none(m.config.n_layer), pool(), logits);
  return logits;
}

std::vector<int32_t> greedy(const Model& m, const std::vector<int32_t>& prompt, int64_t n) {
  GenerateOptions o;
  o.max_tokens = n;
  ArDecoder d(m, o.sampling, pool());
  return generate(m, d, prompt, o, pool()).tokens;
}

std::vector<uint8_t> read_all(const std::string& p) {
  std::ifstream in(p, std::ios::binary);
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(in), {});
}

void write_all(const std::string& p, const std::vector<uint8_t>& b) {
  std::ofstream out(p, std::ios::binary);
  out.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
}

// Position just after the first occurrence of `needle` (a length-prefixed key or name).
size_t after(const std::vector<uint8_t>& b, const std::string& needle) {
  const auto it = std::search(b.begin(), b.end(), needle.begin(), needle.end());
  EXPECT_NE(it, b.end()) << needle;
  return static_cast<size_t>(it - b.begin()) + needle.size();
}

std::string load_error(const std::string& path) {
  try {
    load_model(path);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

// Per position of two [n, V] logit arrays: adds top-1 agreement, the count, and KL(ref || other).
void compare_positions(const std::vector<float>& ref, const std::vector<float>& other, int64_t V, int64_t& agree,
                       int64_t& total, double& kl) {
  for (size_t pos = 0; pos < ref.size() / V; ++pos) {
    std::vector<float> p(ref.begin() + pos * V, ref.begin() + (pos + 1) * V);
    std::vector<float> r(other.begin() + pos * V, other.begin() + (pos + 1) * V);
    agree += argmax(p.data(), V) == argmax(r.data(), V);
    ++total;
    softmax(p.data(), V);
    softmax(r.data(), V);
    for (int64_t v = 0; v < V; ++v)
      if (p[v] > 0) kl += p[v] * (std::log(static_cast<double>(p[v])) - std::log(std::max(1e-30, static_cast<double>(r[v]))));
  }
}

}  // namespace


TEST(GgufModel, F32ConversionMatchesSafetensorsExactly) {
  const Model& st = test::demo_model();
  auto g = load_model(converted(st, DType::kF32, "mini-f32.gguf"));
  EXPECT_EQ(g->config.n_layer, st.config.n_layer);
  EXPECT_EQ(g->config.vocab_size, st.config.vocab_size);
  double max_err = 0;
  int n_greedy = 0;
  for (const auto& c : test::reference_cases()) {
    const auto ids = c["prompt_ids"].get<std::vector<int32_t>>();
    const auto a = all_logits(st, ids), b = all_logits(*g, ids);
    ASSERT_EQ(a.size(), b.size());
    for (size_t i = 0; i < a.size(); ++i) max_err = std::max(max_err, static_cast<double>(std::fabs(a[i] - b[i])));
    if (n_greedy++ < 6) {
      EXPECT_EQ(greedy(*g, ids, 48), greedy(st, ids, 48)) << c["src"];
    }
  }
  std::printf("[ f32 GGUF ] max |logit - safetensors| = %.3g over 32 prompts\n", max_err);
  EXPECT_LE(max_err, 1e-4);
  // The tokenizer read from GGUF metadata encodes like the folder's tokenizer.model.
  for (const char* f : {"code.jsonl", "docs.jsonl"}) {
    std::ifstream in(test::data_path(f));
    std::string line;
    while (std::getline(in, line)) {
      const std::string text = nlohmann::json::parse(line)["text"].get<std::string>();
      ASSERT_EQ(g->tok().encode_with_specials(text), st.tok().encode_with_specials(text)) << text.substr(0, 60);
    }
  }
}

TEST(GgufModel, QuantizedTypesAgainstF32) {
  // The F32 GGUF equals the safetensors model bit for bit (previous test), so the safetensors
  // logits serve as the F32 reference.
  const Model& st = test::demo_model();
  const Model& f32 = st;
  const int64_t V = st.config.vocab_size;
  for (DType t : {DType::kBF16, DType::kF16, DType::kQ8_0, DType::kQ6_K, DType::kQ5_K, DType::kQ4_K, DType::kQ4_0}) {
    auto q = load_model(converted(st, t, std::string("mini-") + std::string(dtype_name(t)) + ".gguf"));
    int64_t agree = 0, total = 0, n_prompts = 0;
    double kl = 0;
    for (const auto& c : test::reference_cases()) {
      if (t != DType::kQ8_0 && n_prompts++ >= 8) break;  // Q8_0 on all 32 prompts, the others on 8
      const auto ids = c["prompt_ids"].get<std::vector<int32_t>>();
      compare_positions(all_logits(f32, ids), all_logits(*q, ids), V, agree, total, kl);
    }
    const double agreement = static_cast<double>(agree) / total;
    std::printf("[ %s GGUF ] top-1 agreement with f32 %.4f over %lld positions, mean KL %.3g\n", dtype_name(t).data(),
                agreement, static_cast<long long>(total), kl / total);
    if (t == DType::kBF16) {
      EXPECT_EQ(agree, total);  // the model's own dtype: lossless
    }
    // Issue 5's bar for Q8_0; the 4/5/6-bit writers use simple per-sub-block fits, so their
    // bounds only catch broken layouts (measured: Q6_K 0.97, Q5_K 0.95, Q4_K/Q4_0 0.87-0.88
    // agreement).
    const double min_agreement = t == DType::kQ6_K                        ? 0.93
                                 : t == DType::kQ5_K                      ? 0.90
                                 : t == DType::kQ4_0 || t == DType::kQ4_K ? 0.75
                                                                          : 0.98;
    const double max_kl = t == DType::kQ6_K                        ? 0.03
                          : t == DType::kQ5_K                      ? 0.05
                          : t == DType::kQ4_0 || t == DType::kQ4_K ? 0.2
                                                                   : 0.01;
    EXPECT_GE(agreement, min_agreement) << dtype_name(t);
    EXPECT_LE(kl / total, max_kl) << dtype_name(t);
  }
}

TEST(GgufModel, Q8MathOnEveryIntegerType) {
  // `--math q8` (ops/q8_dot.h) also rounds the activations to 8 bits per block, as llama.cpp
  // does: against the f32 reference it must stay within the bars of the test above for the
  // file's type (Q8_0: top-1 agreement >= 0.98, mean KL <= 0.01; Q6_K: 0.93 and 0.03; Q5_K: 0.90
  // and 0.05; Q4_0, Q4_K and llama.cpp's Q4_K_M mix: 0.75 and 0.2; measured values printed), and
  // plain, hybrid
  // and SWIFT decoding all run the same kernels, so greedy outputs must stay identical token for
  // token.
  if (!q8_dot_native()) GTEST_SKIP() << "no AVX2 integer dot products on this CPU";
  const Model& st = test::demo_model();
  const int64_t V = st.config.vocab_size;
  struct Case {
    const char* name;
    DType type;
    bool k_mix;
    double min_agreement, max_kl;
  };
  for (const Case& k : {Case{"Q8_0", DType::kQ8_0, false, 0.98, 0.01}, Case{"Q6_K", DType::kQ6_K, false, 0.93, 0.03},
                        Case{"Q5_K", DType::kQ5_K, false, 0.90, 0.05}, Case{"Q4_0", DType::kQ4_0, false, 0.75, 0.2},
                        Case{"Q4_K", DType::kQ4_K, false, 0.75, 0.2}, Case{"Q4_K_M", DType::kQ4_K, true, 0.75, 0.2}}) {
    const std::string path = converted(st, k.type, std::string("mini-") + k.name + ".gguf", true, k.k_mix);
    auto q8 = load_model(path, MatMath::kQ8);
    EXPECT_NE(q8->transformer->math_description().find("q8"), std::string::npos);
    // Attention in bf16 over a bf16-only cache where the build has the bf16 kernel (the bars above
    // hold with it: top-1 agreement moved by at most 0.6% against f32 attention), else f32.
    EXPECT_EQ(q8->transformer->bf16_attention(), attention_bf16_native()) << k.name;
    EXPECT_NE(q8->transformer->math_description().find(attention_bf16_native() ? "over a bf16 KV cache"
                                                                                : "attention in f32"),
              std::string::npos)
        << q8->transformer->math_description();
    if (k.k_mix) {  // the mix really mixes: attn_v / ffn_down of some layers and the LM head in Q6_K
      EXPECT_EQ(q8->transformer->weights().dtype_summary, "Q4_K+Q6_K") << k.name;
    }
    // Q4_K and Q6_K matrices are interleaved by 8 rows (ops/q8_dot.h), and the copies of Q|K|V and
    // gate|up lie back to back: one product each (model/weights.h).
    if ((k.type == DType::kQ4_K || k.type == DType::kQ6_K) && !k.k_mix) {
      for (const auto& L : q8->transformer->weights().layers) {
        EXPECT_EQ(L.wqkv.layout, MatLayout::kRows8) << k.name;
        EXPECT_EQ(L.w_gate_up.layout, MatLayout::kRows8) << k.name;
        EXPECT_TRUE(L.wqkv.data && L.w_gate_up.data) << k.name;
      }
    }
    // Matrices that stay in rows (Q8_0, Q4_0, Q5_K) are copied out of the file's mapping into the
    // huge-page buffer of the packed ones (model/weights.cc: a product streaming them from 4 KB
    // page-cache pages paid a page walk every 4 KB), bytes and layout unchanged.
    if (k.type == DType::kQ8_0 || k.type == DType::kQ4_0 || k.type == DType::kQ5_K) {
      const ModelWeights& w = q8->transformer->weights();
      ASSERT_TRUE(w.packed) << k.name;
      const uint8_t* lo = w.packed->data();
      const uint8_t* hi = lo + w.packed->size();
      for (const auto& L : w.layers)
        for (const MatView* m : {&L.wq, &L.wk, &L.wv, &L.wo, &L.w_gate, &L.w_up, &L.w_down}) {
          const auto* p = static_cast<const uint8_t*>(m->data);
          EXPECT_EQ(m->layout, MatLayout::kRows) << k.name;
          EXPECT_TRUE(p >= lo && p + m->bytes() <= hi) << k.name << ": a matrix outside the packed buffer";
        }
    }
    int64_t agree = 0, total = 0, n_prompts = 0;
    double kl = 0;
    for (const auto& c : test::reference_cases()) {
      if (n_prompts++ % 4 != 0) continue;  // 8 of the 32 prompts, both domains
      const auto ids = c["prompt_ids"].get<std::vector<int32_t>>();
      compare_positions(all_logits(st, ids), all_logits(*q8, ids), V, agree, total, kl);
    }
    const double agreement = static_cast<double>(agree) / total;
    std::printf("[ %s GGUF, --math q8 ] top-1 agreement with f32 %.4f over %lld positions, mean KL %.3g\n", k.name,
                agreement, static_cast<long long>(total), kl / total);
    EXPECT_GE(agreement, k.min_agreement) << k.name;
    EXPECT_LE(kl / total, k.max_kl) << k.name;

    GenerateOptions o;
    o.max_tokens = 64;
    HybridShared shared;
    n_prompts = 0;
    for (const auto& c : test::reference_cases()) {
      if (n_prompts++ % 8 != 0) continue;  // 4 prompts
      const auto prompt = c["prompt_ids"].get<std::vector<int32_t>>();
      ArDecoder ar_dec(*q8, o.sampling, pool());
      const auto ar = generate(*q8, ar_dec, prompt, o, pool());
      HybridDecoder hy_dec(*q8, o.sampling, HybridOptions{}, pool(), shared);
      EXPECT_EQ(generate(*q8, hy_dec, prompt, o, pool()).tokens, ar.tokens) << k.name << " hybrid, " << c["src"];
      SwiftDecoder sw_dec(*q8, o.sampling, SwiftOptions{}, pool());
      EXPECT_EQ(generate(*q8, sw_dec, prompt, o, pool()).tokens, ar.tokens) << k.name << " swift, " << c["src"];
    }
  }

  // A model without such matrices is refused by name rather than run in f32 unannounced.
  try {
    load_model(converted(st, DType::kBF16, "mini-BF16.gguf"), MatMath::kQ8);
    ADD_FAILURE() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("Q8_0, Q4_0, Q4_K, Q5_K and Q6_K"), std::string::npos) << e.what();
  }
}

TEST(GgufModel, ArchitectureFixturesRoundTrip) {
  // llama3's rope scaling travels as llama.cpp's rope_freqs.weight (per-frequency divisors),
  // which rounds differently from transformers' formula: within 1e-4, not bit-identical.
  for (const char* arch : {"llama2", "llama3", "qwen2", "qwen3"}) {
    auto st = load_model(test::data_path(std::string("arch/") + arch));
    const auto ref = test::load_json(test::data_path(std::string("arch/") + arch + "/reference.json"));
    const auto ids = ref["input_ids"].get<std::vector<int32_t>>();
    auto g = load_model(converted(*st, DType::kF32, std::string(arch) + ".gguf", /*tokenizer=*/false));
    const auto a = all_logits(*st, ids), b = all_logits(*g, ids);
    double err = 0;
    for (size_t i = 0; i < a.size(); ++i) err = std::max(err, static_cast<double>(std::fabs(a[i] - b[i])));
    std::printf("[ %s GGUF ] max |logit - safetensors| = %.3g\n", arch, err);
    EXPECT_LE(err, 1e-4) << arch;
    EXPECT_EQ(g->config.qkv_bias, st->config.qkv_bias) << arch;
    EXPECT_EQ(g->config.qk_norm, st->config.qk_norm) << arch;
    EXPECT_EQ(g->config.tie_embeddings, st->config.tie_embeddings) << arch;
  }
}

TEST(GgufModel, ModelLevelDefectsAreRefusedByName) {
  const std::string base = converted(test::demo_model(), DType::kQ8_0, "mini-Q8_0.gguf");
  const auto bytes = read_all(base);
  struct Edit {
    const char* needle;  // key or tensor name after which the value sits
    size_t skip;         // bytes between the name and the field (value type, dims...)
    std::vector<uint8_t> value;
    const char* expect;
  };
  auto u32 = [](uint32_t v) { return std::vector<uint8_t>{uint8_t(v), uint8_t(v >> 8), uint8_t(v >> 16), uint8_t(v >> 24)}; };
  const Edit edits[] = {
      {"tokenizer.ggml.bos_token_id", 4, u32(9999), "bos_token_id = 9999 is outside the 8000 tokens"},
      {"tokenizer.ggml.eos_token_id", 4, u32(8000), "eos"},
      {"llama.block_count", 4, u32(5000), "num_hidden_layers"},
      {"llama.attention.head_count_kv", 4, u32(3), "not a multiple"},
      {"blk.0.attn_q.weight", 0, {'X'}, "missing tensor 'blk.0.attn_q.weight'"},
      {"blk.0.attn_k.weight", 4 + 16, u32(11), "has type Q3_K, not supported yet"},
      {"blk.0.ffn_up.weight", 4 + 8, {0, 2, 0, 0, 0, 0, 0, 0}, "blk.0.ffn_up.weight' has shape [256, 512]"},
  };
  for (const auto& e : edits) {
    auto b = bytes;
    size_t at = after(b, e.needle);
    if (e.value.size() == 1 && e.skip == 0) at -= 1;  // rename: replace the last character
    else at += e.skip;
    std::copy(e.value.begin(), e.value.end(), b.begin() + static_cast<std::ptrdiff_t>(at));
    const std::string path = tmp("edited.gguf");
    write_all(path, b);
    const std::string msg = load_error(path);
    EXPECT_NE(msg.find(e.expect), std::string::npos) << e.needle << " -> " << msg;
  }
}

}  // namespace swift
