// The CLI contract other tools rely on: JSON fields, error behaviour, exit codes.
#include <gtest/gtest.h>

#include <algorithm>

#include <array>
#include <cstdio>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <string>

#include <unistd.h>

#include "ops/bf16_amx.h"
#include "ops/peak.h"
#include "ops/q8_dot.h"
#include "test_util.h"

namespace {

using swift::test::RunResult;

RunResult run(const std::string& args) { return swift::test::run_command(std::string(SWIFT_CLI) + " " + args); }

const std::string kModel = swift::test::model_path("swift-mini-24L");

}  // namespace

TEST(Cli, GenerateJsonContract) {
  auto r = run("generate -m " + kModel + " --prompt-ids 1,1014,1001,286 -n 8 -t 2 --json");
  ASSERT_EQ(r.status, 0) << r.out;
  auto j = nlohmann::json::parse(r.out);
  ASSERT_EQ(j["tokens"].size(), 8u);
  EXPECT_TRUE(j["text"].is_string());
  for (const char* k : {"prompt_tokens", "generated_tokens", "prefill_ms", "decode_ms", "decode_tokens_per_s"})
    EXPECT_TRUE(j["stats"].contains(k)) << k;
  EXPECT_EQ(j["stats"]["prompt_tokens"], 4);
}

TEST(Cli, GenerateFromTextStreams) {
  auto r = run("generate -m " + kModel + " -p 'def add(a, b):' -n 12 -t 2");
  ASSERT_EQ(r.status, 0) << r.out;
  EXPECT_NE(r.out.find("tokens/s"), std::string::npos);
}

TEST(Cli, ScoreJsonContract) {
  auto r = run("score -m " + kModel + " --prompt-ids 1,1014,1001 --top 3 --json -t 2");
  ASSERT_EQ(r.status, 0) << r.out;
  auto j = nlohmann::json::parse(r.out);
  ASSERT_EQ(j["positions"].size(), 3u);
  EXPECT_EQ(j["positions"][0]["top_ids"].size(), 3u);
  EXPECT_EQ(j["positions"][0]["top_logits"].size(), 3u);
}

TEST(Cli, VersionAndInfoNameTheBuild) {
  auto r = run("info -m " + kModel + " --json");
  ASSERT_EQ(r.status, 0) << r.out;
  const std::string build = nlohmann::json::parse(r.out)["build"];
  EXPECT_TRUE(build == "native" || build == "generic") << build;  // one engine (tests/portable: the variants)
  r = run("--version");
  ASSERT_EQ(r.status, 0) << r.out;
  EXPECT_EQ(r.out.rfind("swiftllm 0.1.0, build " + build + " (", 0), 0u) << r.out;
}

TEST(Cli, InfoShowsArchitecture) {
  auto r = run("info -m " + kModel);
  ASSERT_EQ(r.status, 0) << r.out;
  EXPECT_NE(r.out.find("LlamaForCausalLM"), std::string::npos);
  EXPECT_NE(r.out.find("BF16"), std::string::npos);
}

TEST(Cli, TokenizeRoundTrip) {
  auto r = run("tokenize -m " + kModel + " -p 'def add(a, b):' --json");
  ASSERT_EQ(r.status, 0) << r.out;
  const auto ids = nlohmann::json::parse(r.out)["ids"].get<std::vector<int>>();
  ASSERT_GT(ids.size(), 3u);
  EXPECT_EQ(ids[0], 1);  // BOS, as tokenizer_config.json says
  std::string list;
  for (int id : ids) {
    if (!list.empty()) list += ',';
    list += std::to_string(id);
  }
  auto d = run("detokenize -m " + kModel + "/tokenizer.model --ids " + list);
  ASSERT_EQ(d.status, 0) << d.out;
  EXPECT_EQ(d.out, "def add(a, b):\n");
}

TEST(Cli, SwiftJsonStatsAndIdenticalGreedyText) {
  const std::string base = "generate -m " + kModel + " -p 'def fibonacci(n):' -n 48 -t 2 --json";
  auto ar = run(base);
  auto sw = run(base + " --decode swift --context-window 16");
  ASSERT_EQ(ar.status, 0) << ar.out;
  ASSERT_EQ(sw.status, 0) << sw.out;
  const auto a = nlohmann::json::parse(ar.out), s = nlohmann::json::parse(sw.out);
  EXPECT_EQ(a["tokens"], s["tokens"]);
  for (const char* k : {"acceptance_rate", "mean_accepted_per_step", "draft_steps", "verify_steps", "opt_proposals",
                        "best_matchness", "skip_attn", "skip_mlp", "prefill_ms", "optimization_ms", "draft_ms", "verify_ms"})
    EXPECT_TRUE(s["stats"].contains(k)) << k;
}

TEST(Cli, HybridIsTheDefaultAndLosslessWithSourceStats) {
  const std::string base = "generate -m " + kModel + " -p 'def fibonacci(n):' -n 64 -t 2 --json";
  auto def = run(base);
  auto ar = run(base + " --decode ar");
  auto lk = run(base + " --decode lookup");
  ASSERT_EQ(def.status, 0) << def.out;
  ASSERT_EQ(ar.status, 0) << ar.out;
  ASSERT_EQ(lk.status, 0) << lk.out;
  const auto d = nlohmann::json::parse(def.out), a = nlohmann::json::parse(ar.out), l = nlohmann::json::parse(lk.out);
  EXPECT_EQ(d["stats"]["decode"], "hybrid");
  EXPECT_EQ(d["tokens"], a["tokens"]);
  EXPECT_EQ(l["tokens"], a["tokens"]);
  for (const char* k : {"acceptance_rate", "mean_accepted_per_step", "verify_steps", "plain_steps", "mean_tree_size",
                        "accepted_lookup", "accepted_layer_skip", "accepted_both", "draft_steps", "cost_calibration_ms"})
    EXPECT_TRUE(d["stats"].contains(k)) << k;
}

TEST(Cli, BenchPairsRepetitionsAndRunsLabelledCopiesOfAMode) {
  char dir[] = "/tmp/swift_bench_XXXXXX";
  ASSERT_NE(mkdtemp(dir), nullptr);
  const std::string prompts = std::string(dir) + "/p.jsonl", out = std::string(dir) + "/b.json";
  FILE* f = fopen(prompts.c_str(), "w");
  ASSERT_NE(f, nullptr);
  fputs("{\"id\": \"a\", \"domain\": \"code\", \"text\": \"def add(a, b):\\n    return a + b\\n\\ndef\"}\n", f);
  fputs("{\"id\": \"b\", \"domain\": \"code\", \"text\": \"for i in range(10):\\n    print(i)\\n\"}\n", f);
  fclose(f);
  auto r = run("bench -m " + kModel + " --prompts " + prompts + " -n 12 -t 2 --decode ar,ar#2,hybrid --repeat 3 --json " + out);
  ASSERT_EQ(r.status, 0) << r.out;
  // One median-of-pairs line per mode other than ar, each prompt's paired ratio in its line.
  EXPECT_NE(r.out.find("ar#2 paired with ar (median of 3 back-to-back pairs per prompt)"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("hybrid paired with ar (median of 3"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("x paired);"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("greedy outputs identical across modes"), std::string::npos) << r.out;
  std::ifstream in(out);
  const auto j = nlohmann::json::parse(in);
  int copies = 0;
  for (const auto& rec : j["runs"]) copies += rec["mode"] == "ar#2";
  EXPECT_EQ(copies, 2 * 3);  // 2 prompts x 3 repetitions under its own label
  auto vc = run("bench -m " + kModel + " --prompts " + prompts + " --limit 1 -n 4 -t 2 --decode ar --verify-cost --verify-rounds 3");
  ASSERT_EQ(vc.status, 0) << vc.out;
  EXPECT_NE(vc.out.find("3 rounds over all sizes"), std::string::npos) << vc.out;
  EXPECT_NE(vc.out.find("paired vs 1 token: median [quartiles]"), std::string::npos) << vc.out;
  EXPECT_NE(vc.out.find("\n      64 "), std::string::npos) << vc.out;  // a row per size up to 64
  // --roofline: both limits, measured three times (before, halfway, after the prompts), and a
  // row per mode with its fraction of each.
  auto rl = run("bench -m " + kModel + " --prompts " + prompts + " -n 4 -t 2 --decode ar,hybrid --roofline --json " + out);
  ASSERT_EQ(rl.status, 0) << rl.out;
  EXPECT_NE(rl.out.find("roofline (2 threads; best of the runs before, halfway and after):"), std::string::npos) << rl.out;
  EXPECT_NE(rl.out.find("3 x 128 MiB, the DRAM limit"), std::string::npos) << rl.out;
  const size_t read_at = rl.out.find("  read bandwidth ");
  ASSERT_NE(read_at, std::string::npos) << rl.out;
  // "read bandwidth X GB/s (a, b, c) over M MB": three runs (2 prompts: one halfway), M = the
  // weights of one pass of the demo model (BF16, embedding excluded: 41.9 MB).
  const std::string read_line = rl.out.substr(read_at, rl.out.find('\n', read_at) - read_at);
  const std::string runs = read_line.substr(read_line.find('('), read_line.find(')') - read_line.find('('));
  EXPECT_EQ(std::count(runs.begin(), runs.end(), ','), 2) << read_line;
  EXPECT_NE(read_line.find(") over 41.9 MB, the weights one pass reads"), std::string::npos) << read_line;
  EXPECT_NE(rl.out.find("MB/token   of triad   of read\n"), std::string::npos) << rl.out;
  for (const char* mode : {"\nar ", "\nhybrid "}) {
    const size_t row = rl.out.find(mode, rl.out.find("of read\n"));
    ASSERT_NE(row, std::string::npos) << mode << rl.out;
    const std::string line = rl.out.substr(row + 1, rl.out.find('\n', row + 1) - row - 1);
    EXPECT_EQ(std::count(line.begin(), line.end(), '%'), 2) << line;
  }
  // The compute roof of the default math (f32 FMA): the demo model's matrix products are
  // 24 x 256 x (256 + 2 x 128 + 256 + 3 x 768) + 8000 x 256 = 20.9 M multiply-adds per token.
  if (swift::peak_unit_native(swift::PeakUnit::kF32Fma)) {
    EXPECT_NE(rl.out.find("compute roof: f32 FMA peak "), std::string::npos) << rl.out;
    EXPECT_NE(rl.out.find(" the matrix products' 20.9 M multiply-adds per token take >= "), std::string::npos) << rl.out;
    // The prefill ceiling: peak / (2 x 20.9 M) tokens/s, also in the JSON; none where the f32
    // prompt prefill runs on AMX tiles (not the FMA pipes).
    if (swift::bf16_amx_available()) {
      EXPECT_NE(rl.out.find("prefill roof: not probed (f32 prompt prefill runs on AMX tiles)\n"), std::string::npos)
          << rl.out;
    } else {
      EXPECT_NE(rl.out.find("prefill roof: at most "), std::string::npos) << rl.out;
      EXPECT_NE(rl.out.find(" tokens/s at the f32 FMA peak = "), std::string::npos) << rl.out;
    }
  }
  std::ifstream rin(out);
  const auto rj = nlohmann::json::parse(rin)["roofline"];
  if (swift::peak_unit_native(swift::PeakUnit::kF32Fma)) {
    EXPECT_EQ(rj["peak_unit"], "f32 FMA") << rj;
    EXPECT_GT(rj["peak_gops"].get<double>(), 1.0) << rj;
    if (swift::bf16_amx_available())
      EXPECT_EQ(rj["prefill_roof_tps"].get<double>(), 0.0) << rj;
    else
      EXPECT_NEAR(rj["prefill_roof_tps"].get<double>(), rj["peak_gops"].get<double>() * 1e9 / (2 * 20.92e6),
                  rj["prefill_roof_tps"].get<double>() * 0.01)
          << rj;
  }
  EXPECT_EQ(rj["triad_gbps"].size(), 3u) << rj;
  EXPECT_EQ(rj["read_gbps"].size(), 3u) << rj;
  EXPECT_NEAR(rj["read_bytes"].get<double>(), 41.9e6, 0.05e6) << rj;
  for (const auto& g : rj["read_gbps"]) EXPECT_GT(g.get<double>(), 0.0) << rj;
  auto dup = run("bench -m " + kModel + " --prompts " + prompts + " -n 4 --decode ar,hybrid,ar");
  EXPECT_NE(dup.status, 0);
  EXPECT_NE(dup.out.find("lists mode 'ar' twice (label a second run of it as 'ar#2')"), std::string::npos) << dup.out;
  std::remove(prompts.c_str());
  std::remove(out.c_str());
  rmdir(dir);
}

TEST(Cli, ConvertToGgufThenGenerateFromIt) {
  const std::string out = "/tmp/swiftllm_cli_test_" + std::to_string(::getpid()) + ".gguf";
  std::remove(out.c_str());
  auto c = run("convert " + kModel + " " + out + " --type q8_0");
  ASSERT_EQ(c.status, 0) << c.out;
  EXPECT_NE(c.out.find("wrote " + out + " (q8_0"), std::string::npos) << c.out;
  auto again = run("convert " + kModel + " " + out + " --type q8_0");
  EXPECT_NE(again.status, 0);
  EXPECT_NE(again.out.find("exists; pass --force"), std::string::npos) << again.out;
  EXPECT_EQ(run("convert " + kModel + " " + out + " --type f32 --force").status, 0);
  const std::string gen = " -p 'def fibonacci(n):' -n 32 -t 2 --json --decode ar";
  auto a = run("generate -m " + kModel + gen), b = run("generate -m " + out + gen);
  ASSERT_EQ(b.status, 0) << b.out;
  EXPECT_EQ(nlohmann::json::parse(a.out)["tokens"], nlohmann::json::parse(b.out)["tokens"]);
  auto info = run("info -m " + out + " --json");
  ASSERT_EQ(info.status, 0) << info.out;
  const auto j = nlohmann::json::parse(info.out);
  EXPECT_EQ(j["gguf"]["metadata"]["general.architecture"], "llama");
  EXPECT_EQ(j["gguf"]["tensors"].size(), 219u);
  EXPECT_EQ(j["gguf"]["tensors"][0]["name"], "token_embd.weight");

  // llama.cpp's Q4_K_M mix: Q6_K for the LM head and for attn_v / ffn_down of the layers its
  // use_more_bits picks (24 layers: 0-2, 21-23 and 5, 8, ..., 20), Q4_K elsewhere; file type 15.
  ASSERT_EQ(run("convert " + kModel + " " + out + " --type q4_k_m --force").status, 0);
  const auto m = nlohmann::json::parse(run("info -m " + out + " --json").out);
  EXPECT_EQ(m["gguf"]["metadata"]["general.file_type"], 15);
  std::map<std::string, std::string> type_of;
  for (const auto& t : m["gguf"]["tensors"]) type_of[t["name"].get<std::string>()] = t["type"].get<std::string>();
  EXPECT_EQ(type_of["output.weight"], "Q6_K");
  EXPECT_EQ(type_of["token_embd.weight"], "Q4_K");
  int n_six = 0;
  for (int l = 0; l < 24; ++l) {
    const bool more = l < 3 || l >= 21 || (l - 3) % 3 == 2;
    const std::string b = "blk." + std::to_string(l) + ".";
    EXPECT_EQ(type_of[b + "attn_v.weight"], more ? "Q6_K" : "Q4_K") << l;
    EXPECT_EQ(type_of[b + "ffn_down.weight"], more ? "Q6_K" : "Q4_K") << l;
    EXPECT_EQ(type_of[b + "attn_q.weight"], "Q4_K") << l;
    n_six += more;
  }
  EXPECT_EQ(n_six, 12);
  // --math auto (the default) computes a quantized file as llama.cpp does (q8) where the CPU has
  // the integer kernels, and the safetensors model (BF16) in f32; stats name the math used.
  const std::string gen8 = " -p 'def f(x):' -n 4 -t 2 --json --decode ar";
  const auto g_q = nlohmann::json::parse(run("generate -m " + out + gen8).out);
  EXPECT_EQ(g_q["stats"]["math"], swift::q8_dot_native() ? "q8" : "f32");
  EXPECT_EQ(nlohmann::json::parse(run("generate -m " + out + gen8 + " --math f32").out)["stats"]["math"], "f32");
  EXPECT_EQ(nlohmann::json::parse(run("generate -m " + kModel + gen8).out)["stats"]["math"], "f32");
  std::remove(out.c_str());
}

TEST(Cli, BadInputGivesOneClearLineAndNonZeroExit) {
  struct Case {
    std::string args, needle;
  };
  const Case cases[] = {
      {"generate -m /nonexistent --prompt-ids 1", "does not exist"},
      {"generate -m " + kModel + " --prompt-ids 1,x", "'x' is not an integer"},
      {"generate -m " + kModel + " --prompt-ids 1,8000", "outside the vocabulary"},
      {"generate -m " + kModel + " --prompt-ids 1 -n 5000", "exceeds the context length 1024"},
      {"generate -m " + kModel + " --prompt-ids 1 --top-p 0", "top_p must be in (0, 1]"},
      {"generate -m " + kModel, "exactly one of"},
      {"generate -m " + kModel + " --prompt-ids 1 --decode self-sd", "needs a fixed plan"},
      {"generate -m " + kModel + " --prompt-ids 1 --decode swift --skip-attn 23", "only layers 1..22 may be skipped"},
      {"generate -m " + kModel + " --prompt-ids 1 --decode turbo", "unknown decoding mode 'turbo'"},
      {"generate -m " + kModel + " --prompt-ids 1 --max-tree 0", "--max-tree must be in [1, 64], got 0"},
      {"convert " + kModel + " /tmp/x.gguf --type q3_k",
       "unknown --type 'q3_k' (f32, f16, bf16, q8_0, q4_0, q4_k, q4_k_m, q5_k, q5_k_m, q6_k)"},
      {"convert " + kModel + " /tmp/x.gguf --type int3", "unknown --type 'int3'"},
      {"info -m " + kModel + "/config.json", "neither a Hugging Face model folder nor a GGUF file"},
      {"generate -m " + kModel + " --prompt-ids 1 --lookup-branches 99", "--lookup-branches must be in [1, 16]"},
      {"generate -m " + kModel + " --prompt-ids 1 --ngram-min 3 --ngram-max 2", "1 <= min <= max <= 16, got 3..2"},
      {"generate -m " + kModel + " --prompt-ids 1 --decode lookup --lookup-tokens 70", "--lookup-tokens must be in [0, 64]"},
  };
  for (const auto& c : cases) {
    auto r = run(c.args);
    EXPECT_NE(r.status, 0) << c.args;
    EXPECT_NE(r.out.find(c.needle), std::string::npos) << c.args << " -> " << r.out;
    EXPECT_EQ(r.out.find('\n'), r.out.size() - 1) << "expected one line: " << r.out;
  }
}

TEST(Cli, HelpExplainsEveryCommand) {
  for (const char* cmd : {"generate", "score", "info", "tokenize", "detokenize", "bench"}) {
    auto r = run(std::string(cmd) + " --help");
    EXPECT_EQ(r.status, 0) << cmd;
    EXPECT_NE(r.out.find("--model"), std::string::npos) << cmd;
  }
  auto c = run("convert --help");
  EXPECT_EQ(c.status, 0);
  EXPECT_NE(c.out.find("--type"), std::string::npos);
}
