// A portable build (util/cpu_features.h) through its command line: the launcher runs the best
// variant this CPU supports, forced variants and missing ones are handled, and every variant
// this CPU runs decodes the demo model as Hugging Face does (greedy, f32), losslessly under
// --math bf16 where it has the instructions and with a clear refusal where not.
#include <gtest/gtest.h>

#include <unistd.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <sstream>
#include <string>
#include <vector>

#include "test_util.h"
#include "util/cpu_features.h"

namespace {

namespace fs = std::filesystem;

using swift::test::run_command;
using swift::test::RunResult;

std::vector<std::string> built() {
  std::vector<std::string> v;
  std::stringstream ss(SWIFT_VARIANTS);
  for (std::string s; std::getline(ss, s, ',');) v.push_back(s);
  return v;
}

const std::string kLauncher = SWIFT_LAUNCHER;
const std::string kModel = swift::test::model_path("swift-mini-24L");

}  // namespace

TEST(Portable, LauncherRunsTheBestVariantThisCpuRuns) {
  const auto want = swift::cpu_variant_choose(swift::cpu_features_detect(), built(), "");
  const RunResult r = run_command("env -u SWIFTLLM_CPU " + kLauncher + " --version");
  ASSERT_EQ(r.status, 0) << r.out;
  EXPECT_NE(r.out.find(std::string("build ") + want.variant->name + " (portable build; chosen by the launcher"),
            std::string::npos)
      << r.out;
  EXPECT_EQ(r.out.find("warning"), std::string::npos) << r.out;  // every variant is built
}

TEST(Portable, EveryVariantThisCpuRunsMatchesHfGreedy) {
  const nlohmann::json cases = swift::test::load_json(swift::test::data_path("hf_greedy.json"))["cases"];
  const auto& c = cases[0];
  std::string ids;
  for (const auto& id : c["prompt_ids"]) ids += (ids.empty() ? "" : ",") + std::to_string(id.get<int>());
  const auto greedy = c["greedy_ids"].get<std::vector<int>>();
  const std::vector<int> want(greedy.begin(), greedy.begin() + 24);
  const swift::CpuFeatures f = swift::cpu_features_detect();
  int ran = 0;
  for (const std::string& v : built()) {
    const swift::CpuVariant* cv = swift::cpu_variant_find(v);
    ASSERT_NE(cv, nullptr) << v;
    if (!swift::cpu_variant_runs(*cv, f)) {
      std::printf("skipped %s: this CPU lacks %s\n", v.c_str(), swift::cpu_variant_missing(*cv, f).c_str());
      continue;
    }
    const std::string env = "SWIFTLLM_CPU=" + v + " " + kLauncher;
    const RunResult info = run_command(env + " info -m " + kModel + " --json");
    ASSERT_EQ(info.status, 0) << info.out;
    EXPECT_EQ(nlohmann::json::parse(info.out)["build"], v);
    // Plain decoding and the default (hybrid: tree verification), both f32 greedy.
    for (const char* decode : {"ar", "hybrid"}) {
      const RunResult g = run_command(env + " generate -m " + kModel + " --prompt-ids " + ids +
                                      " -n 24 -t 2 --decode " + decode + " --json");
      ASSERT_EQ(g.status, 0) << v << " " << decode << ": " << g.out;
      EXPECT_EQ(nlohmann::json::parse(g.out)["tokens"].get<std::vector<int>>(), want) << v << " " << decode;
    }
    // --math bf16: the variant with AVX-512 BF16 decodes losslessly (hybrid = plain); the others
    // refuse it by name.
    std::vector<int> bf16_ar;
    for (const char* decode : {"ar", "hybrid"}) {
      const RunResult g = run_command(env + " generate -m " + kModel + " --prompt-ids " + ids +
                                      " -n 24 -t 2 --math bf16 --decode " + decode + " --json");
      if (v != "x86-64-v4-bf16") {
        EXPECT_EQ(g.status, 1) << v << ": " << g.out;
        EXPECT_NE(g.out.find("bf16 math (--math bf16) needs AVX-512 BF16 instructions"), std::string::npos) << g.out;
        continue;
      }
      ASSERT_EQ(g.status, 0) << v << " bf16 " << decode << ": " << g.out;
      const auto tokens = nlohmann::json::parse(g.out)["tokens"].get<std::vector<int>>();
      if (bf16_ar.empty())
        bf16_ar = tokens;
      else
        EXPECT_EQ(tokens, bf16_ar) << v << " bf16 hybrid against plain decoding";
    }
    ++ran;
  }
  EXPECT_GT(ran, 0);
}

TEST(Portable, ForcedVariantMustExist) {
  const RunResult r = run_command("SWIFTLLM_CPU=pentium " + kLauncher + " --version");
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.out.find("SWIFTLLM_CPU=pentium: no such CPU variant; the variants are x86-64-v2, x86-64-v3"),
            std::string::npos)
      << r.out;
}

TEST(Portable, MissingBestVariantWarnsAndRunsTheNextBest) {
  // A copy of the launcher beside links to every built variant but the best this CPU runs.
  const swift::CpuFeatures f = swift::cpu_features_detect();
  std::vector<std::string> runs;
  for (const std::string& v : built())
    if (swift::cpu_variant_runs(*swift::cpu_variant_find(v), f)) runs.push_back(v);
  if (runs.size() < 2) GTEST_SKIP() << "this CPU runs fewer than two of the built variants";
  const fs::path dir = fs::temp_directory_path() / ("swiftllm_portable_" + std::to_string(getpid()));
  fs::create_directories(dir);
  fs::copy_file(kLauncher, dir / "swiftllm", fs::copy_options::overwrite_existing);
  const fs::path build_dir = fs::path(kLauncher).parent_path();
  for (const std::string& v : built())
    if (v != runs.back()) fs::create_symlink(build_dir / ("swiftllm-" + v), dir / ("swiftllm-" + v));
  const RunResult r = run_command("env -u SWIFTLLM_CPU " + (dir / "swiftllm").string() + " --version");
  fs::remove_all(dir);
  ASSERT_EQ(r.status, 0) << r.out;
  EXPECT_NE(r.out.find("warning: this CPU runs swiftllm-" + runs.back()), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("build " + runs[runs.size() - 2] + " (portable build"), std::string::npos) << r.out;
}

TEST(Portable, VariantRunDirectlySaysSo) {
  const std::string v = swift::cpu_variant_choose(swift::cpu_features_detect(), built(), "").variant->name;
  const RunResult r = run_command("env -u SWIFTLLM_LAUNCHED " +
                                  (fs::path(kLauncher).parent_path() / ("swiftllm-" + v)).string() + " --version");
  ASSERT_EQ(r.status, 0) << r.out;
  EXPECT_NE(r.out.find("build " + v + " (portable build; run directly, not through the swiftllm launcher)"),
            std::string::npos)
      << r.out;
}
