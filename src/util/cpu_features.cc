// CPU variants and the choice among them: contract in util/cpu_features.h.
#include "util/cpu_features.h"

#include <cstdlib>

#include <fmt/format.h>

#include "util/check.h"

#ifndef SWIFTLLM_BUILD_VARIANT
#define SWIFTLLM_BUILD_VARIANT "generic"
#endif

namespace swift {

namespace {

// The features by name, in the order messages list them.
struct FeatureName {
  bool CpuFeatures::*member;
  const char* name;
};
constexpr FeatureName kFeatureNames[] = {
    {&CpuFeatures::x86_64_v2, "x86-64-v2 (SSE4.2, POPCNT)"},
    {&CpuFeatures::x86_64_v3, "x86-64-v3 (AVX2, FMA, F16C)"},
    {&CpuFeatures::x86_64_v4, "x86-64-v4 (AVX-512 F, BW, CD, DQ, VL)"},
    {&CpuFeatures::avx512_bf16, "AVX-512 BF16"},
    {&CpuFeatures::avx512_vnni, "AVX-512 VNNI"},
};

CpuFeatures needs(bool v2, bool v3, bool v4, bool bf16_vnni) {
  CpuFeatures f;
  f.x86_64_v2 = v2, f.x86_64_v3 = v3, f.x86_64_v4 = v4, f.avx512_bf16 = f.avx512_vnni = bf16_vnni;
  return f;
}

// CMakeLists.txt (SWIFTLLM_CPU_VARIANTS) compiles each with the flags of its level; AMX code is in
// the last one too, used only where the kernel grants the tiles at run time (ops/bf16_amx.h).
const CpuVariant kCpuVariants[] = {
    {"x86-64-v2", "SSE4.2 and POPCNT (x86-64 CPUs since ~2009)", needs(true, false, false, false)},
    {"x86-64-v3", "AVX2, FMA and F16C (Intel Haswell, AMD Zen 1 and later)", needs(true, true, false, false)},
    {"x86-64-v4", "AVX-512 F/BW/CD/DQ/VL (Intel Skylake-SP, Ice Lake)", needs(true, true, true, false)},
    {"x86-64-v4-bf16",
     "AVX-512 with BF16 and VNNI (AMD Zen 4 and later, Intel Cooper Lake, Sapphire Rapids); "
     "AMX tiles where the CPU has them",
     needs(true, true, true, true)},
};

std::string names(std::span<const std::string> v) {
  std::string s;
  for (const std::string& n : v) s += (s.empty() ? "" : ", ") + n;
  return s.empty() ? "none" : s;
}

std::string runnable_names(const CpuFeatures& f) {
  std::vector<std::string> r;
  for (const CpuVariant& v : kCpuVariants)
    if (cpu_variant_runs(v, f)) r.emplace_back(v.name);
  return names(r);
}

bool installed_has(std::span<const std::string> installed, const char* name) {
  for (const std::string& s : installed)
    if (s == name) return true;
  return false;
}

}  // namespace

CpuFeatures cpu_features_detect() {
  CpuFeatures f;
#if defined(__x86_64__)
  // libgcc's cpuid reading; it also checks xgetbv, so AVX/AVX-512 count only where the OS saves
  // their registers.
  __builtin_cpu_init();
  f.x86_64_v2 = __builtin_cpu_supports("x86-64-v2");
  f.x86_64_v3 = __builtin_cpu_supports("x86-64-v3");
  f.x86_64_v4 = __builtin_cpu_supports("x86-64-v4");
  f.avx512_bf16 = __builtin_cpu_supports("avx512bf16");
  f.avx512_vnni = __builtin_cpu_supports("avx512vnni");
#endif
  return f;
}

std::span<const CpuVariant> cpu_variants() { return kCpuVariants; }

const CpuVariant* cpu_variant_find(std::string_view name) {
  for (const CpuVariant& v : kCpuVariants)
    if (name == v.name) return &v;
  return nullptr;
}

bool cpu_variant_runs(const CpuVariant& v, const CpuFeatures& f) { return cpu_variant_missing(v, f).empty(); }

std::string cpu_variant_missing(const CpuVariant& v, const CpuFeatures& f) {
  std::string s;
  for (const FeatureName& n : kFeatureNames)
    if (v.needs.*n.member && !(f.*n.member)) s += (s.empty() ? "" : ", ") + std::string(n.name);
  return s;
}

CpuVariantChoice cpu_variant_choose(const CpuFeatures& f, std::span<const std::string> installed,
                                    std::string_view forced) {
  CpuVariantChoice c;
  if (!forced.empty() && forced != "auto") {
    const CpuVariant* v = cpu_variant_find(forced);
    if (!v) {
      std::vector<std::string> all;
      for (const CpuVariant& k : kCpuVariants) all.emplace_back(k.name);
      fail("SWIFTLLM_CPU={}: no such CPU variant; the variants are {} (or auto)", forced, names(all));
    }
    if (!installed_has(installed, v->name))
      fail("SWIFTLLM_CPU={}: swiftllm-{} is not installed beside the launcher (installed: {})", forced, v->name,
           names(installed));
    const std::string missing = cpu_variant_missing(*v, f);
    if (!missing.empty())
      fail("SWIFTLLM_CPU={}: swiftllm-{} needs {}, and this CPU lacks {}; it runs: {}", forced, v->name, v->summary,
           missing, runnable_names(f));
    c.variant = v;
    c.reason = "forced by SWIFTLLM_CPU";
    return c;
  }
  const CpuVariant* best = nullptr;  // the most demanding this CPU runs, installed or not
  for (const CpuVariant& v : kCpuVariants) {
    if (!cpu_variant_runs(v, f)) continue;
    best = &v;
    if (installed_has(installed, v.name)) c.variant = &v;
  }
  if (!c.variant) {
    std::string why;
    for (const std::string& n : installed)
      if (const CpuVariant* v = cpu_variant_find(n))
        why += fmt::format("; swiftllm-{} needs {} (this CPU lacks {})", n, v->summary, cpu_variant_missing(*v, f));
    fail("no installed swiftllm variant runs on this CPU (installed: {}){}", names(installed), why);
  }
  if (best != c.variant)
    c.warnings.push_back(
        fmt::format("this CPU runs swiftllm-{} ({}), which is not installed beside the launcher; "
                    "running swiftllm-{}, which is slower",
                    best->name, best->summary, c.variant->name));
  c.reason = "the most demanding installed variant this CPU runs";
  return c;
}

const char* build_variant() { return SWIFTLLM_BUILD_VARIANT; }

std::string build_variant_missing() {
  const CpuVariant* v = cpu_variant_find(build_variant());
  return v ? cpu_variant_missing(*v, cpu_features_detect()) : std::string();
}

std::string build_description() {
  const std::string b = build_variant();
  if (b == "native") return "native (-march=native: the CPU it was compiled on)";
#if defined(__aarch64__)
  if (b == "generic") return "generic (the compiler's default AArch64 level: NEON kernels)";
#else
  if (b == "generic") return "generic (the compiler's default x86-64 level)";
#endif
  std::string d = b + " (portable build";
  if (const char* why = std::getenv("SWIFTLLM_LAUNCHED"))
    d += fmt::format("; chosen by the launcher: {}", why);
  else
    d += "; run directly, not through the swiftllm launcher";
  return d + ")";
}

}  // namespace swift
