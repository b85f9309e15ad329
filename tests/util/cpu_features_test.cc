// The launcher's choice of CPU variant (util/cpu_features.h), on made-up CPUs.
#include "util/cpu_features.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "util/check.h"

namespace swift {
namespace {

const std::vector<std::string> kAll = {"x86-64-v2", "x86-64-v3", "x86-64-v4", "x86-64-v4-bf16"};

CpuFeatures cpu(int level, bool bf16_vnni = false) {
  CpuFeatures f;
  f.x86_64_v2 = level >= 2, f.x86_64_v3 = level >= 3, f.x86_64_v4 = level >= 4;
  f.avx512_bf16 = f.avx512_vnni = bf16_vnni;
  return f;
}

CpuVariantChoice choose(const CpuFeatures& f, const std::vector<std::string>& installed, const char* forced = "") {
  return cpu_variant_choose(f, installed, forced);
}

std::string chosen(const CpuFeatures& f, const std::vector<std::string>& installed, const char* forced = "") {
  return choose(f, installed, forced).variant->name;
}

// The message of the swift::Error `fn` throws ("" if none).
template <typename F>
std::string error_of(F fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(CpuVariants, OrderedAndEachNeedsWhatTheOnesBeforeNeed) {
  const auto v = cpu_variants();
  ASSERT_EQ(v.size(), kAll.size());
  for (size_t i = 0; i < v.size(); ++i) {
    EXPECT_EQ(v[i].name, kAll[i]);
    EXPECT_EQ(cpu_variant_find(kAll[i]), &v[i]);
    // A CPU with exactly what variant i needs runs it and every variant before it, none after.
    for (size_t j = 0; j < v.size(); ++j) EXPECT_EQ(cpu_variant_runs(v[j], v[i].needs), j <= i) << i << " " << j;
  }
  EXPECT_EQ(cpu_variant_find("x86-64-v5"), nullptr);
}

TEST(CpuVariants, PicksTheMostDemandingThisCpuRuns) {
  EXPECT_EQ(chosen(cpu(2), kAll), "x86-64-v2");
  EXPECT_EQ(chosen(cpu(3), kAll), "x86-64-v3");
  EXPECT_EQ(chosen(cpu(4), kAll), "x86-64-v4");             // Skylake-SP: no BF16
  EXPECT_EQ(chosen(cpu(4, true), kAll), "x86-64-v4-bf16");  // Zen 4, Sapphire Rapids
  CpuFeatures bf16_only = cpu(4);
  bf16_only.avx512_bf16 = true;  // BF16 without VNNI: not enough for the last one
  EXPECT_EQ(chosen(bf16_only, kAll), "x86-64-v4");
  EXPECT_TRUE(choose(cpu(4, true), kAll, "").warnings.empty());
  EXPECT_EQ(choose(cpu(3), kAll, "auto").variant->name, std::string("x86-64-v3"));
}

TEST(CpuVariants, ABetterVariantNotInstalledIsAWarning) {
  const auto c = choose(cpu(4, true), {"x86-64-v2", "x86-64-v3"}, "");
  EXPECT_EQ(c.variant->name, std::string("x86-64-v3"));
  ASSERT_EQ(c.warnings.size(), 1u);
  EXPECT_NE(c.warnings[0].find("this CPU runs swiftllm-x86-64-v4-bf16"), std::string::npos) << c.warnings[0];
  EXPECT_NE(c.warnings[0].find("running swiftllm-x86-64-v3"), std::string::npos) << c.warnings[0];
}

TEST(CpuVariants, NoRunnableVariantNamesWhatTheCpuLacks) {
  const std::string e = error_of([] { choose(cpu(3), {"x86-64-v4", "x86-64-v4-bf16"}, ""); });
  EXPECT_NE(e.find("no installed swiftllm variant runs on this CPU (installed: x86-64-v4, x86-64-v4-bf16)"),
            std::string::npos)
      << e;
  EXPECT_NE(e.find("swiftllm-x86-64-v4-bf16 needs AVX-512 with BF16 and VNNI"), std::string::npos) << e;
  EXPECT_NE(e.find("this CPU lacks x86-64-v4 (AVX-512 F, BW, CD, DQ, VL), AVX-512 BF16, AVX-512 VNNI"),
            std::string::npos)
      << e;
  EXPECT_NE(error_of([] { choose(cpu(0), kAll, ""); }).find("lacks x86-64-v2 (SSE4.2, POPCNT)"), std::string::npos);
}

TEST(CpuVariants, ForcedVariant) {
  EXPECT_EQ(chosen(cpu(4, true), kAll, "x86-64-v3"), "x86-64-v3");
  EXPECT_EQ(choose(cpu(4, true), kAll, "x86-64-v3").reason, "forced by SWIFTLLM_CPU");
  std::string e = error_of([] { choose(cpu(3), kAll, "x86-64-v4"); });
  EXPECT_NE(e.find("SWIFTLLM_CPU=x86-64-v4: swiftllm-x86-64-v4 needs AVX-512"), std::string::npos) << e;
  EXPECT_NE(e.find("this CPU lacks x86-64-v4 (AVX-512 F, BW, CD, DQ, VL); it runs: x86-64-v2, x86-64-v3"),
            std::string::npos)
      << e;
  e = error_of([] { choose(cpu(4), {"x86-64-v2"}, "x86-64-v3"); });
  EXPECT_NE(e.find("SWIFTLLM_CPU=x86-64-v3: swiftllm-x86-64-v3 is not installed beside the launcher (installed: "
                   "x86-64-v2)"),
            std::string::npos)
      << e;
  e = error_of([] { choose(cpu(4), kAll, "avx2"); });
  EXPECT_NE(e.find("SWIFTLLM_CPU=avx2: no such CPU variant; the variants are x86-64-v2, x86-64-v3, x86-64-v4, "
                   "x86-64-v4-bf16 (or auto)"),
            std::string::npos)
      << e;
}

TEST(CpuVariants, ThisBuild) {
  // The test suite is one engine, native or generic (a portable build tests its variants in
  // tests/portable), and neither can tell what it needs.
  const std::string b = build_variant();
  EXPECT_TRUE(b == "native" || b == "generic") << b;
  EXPECT_EQ(build_variant_missing(), "");
  EXPECT_EQ(build_description().rfind(b + " (", 0), 0u) << build_description();
#if defined(__aarch64__)
  if (b == "generic") EXPECT_NE(build_description().find("AArch64"), std::string::npos) << build_description();
#endif
}

}  // namespace
}  // namespace swift
