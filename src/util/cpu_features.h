// CPU variants of a portable build, and which one this CPU runs (issue 6: runtime dispatch).
//
// Why whole-engine variants and not per-kernel dispatch: the kernels are intrinsics whose tile
// shapes, register counts and bit-level numeric contracts (ops/matmul.h, ops/bf16_dot.h) are
// chosen at compile time from the target's macros (__AVX512BF16__, __AVX2__, ...), and the
// engine's inline helpers (ops/lanes.h) are compiled into the model code as well. Compiling one
// program with several -march levels mixed would let the linker merge template instances built
// for one level into code run on another (one definition rule), an illegal instruction waiting
// to happen. So a portable build compiles the whole engine once per x86-64 level below into
// `swiftllm-<variant>` and installs a small `swiftllm` launcher, built for the baseline, that
// runs the best variant this CPU supports (what llama.cpp's GGML_CPU_ALL_VARIANTS and Ollama's
// CPU runners do). A native build (-march=native, the default) is the variant "native".
//
// Invariant: kCpuVariants is ordered from the least to the most demanding, each variant's
// requirements include those of the ones before it, and CMakeLists.txt gives each name the
// compiler flags its requirements describe.
#pragma once

#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace swift {

// The instruction-set levels a variant may require (x86-64 psABI levels plus AVX-512 extensions),
// as the CPU and the operating system support them (the OS must save the AVX/AVX-512 registers).
struct CpuFeatures {
  bool x86_64_v2 = false;  // SSE4.2, SSSE3, POPCNT, CMPXCHG16B
  bool x86_64_v3 = false;  // AVX2, FMA, F16C, BMI1/2, LZCNT, MOVBE
  bool x86_64_v4 = false;  // AVX-512 F, BW, CD, DQ, VL
  bool avx512_bf16 = false;
  bool avx512_vnni = false;
  // No AMX here: no variant needs it; the kernels ask the OS for the tiles at run time
  // (ops/bf16_amx.h: bf16_amx_available).
};

// This machine's features (cpuid, and xgetbv for what the OS enables).
CpuFeatures cpu_features_detect();

// One build of the whole engine for one level.
struct CpuVariant {
  const char* name;     // also the suffix of the executable: swiftllm-<name>
  const char* summary;  // for messages: what the CPU must have, in words ("needs <summary>")
  CpuFeatures needs;    // every feature set here must be present
};

// Whether this CPU has everything `v` needs.
bool cpu_variant_runs(const CpuVariant& v, const CpuFeatures& f);

// Least to most demanding.
std::span<const CpuVariant> cpu_variants();

// The variant named `name`, or null.
const CpuVariant* cpu_variant_find(std::string_view name);

// The features this CPU lacks for `v`, comma-separated ("" when it runs).
std::string cpu_variant_missing(const CpuVariant& v, const CpuFeatures& f);

struct CpuVariantChoice {
  const CpuVariant* variant = nullptr;
  std::string reason;                 // one line: why this one
  std::vector<std::string> warnings;  // e.g. a better variant this CPU runs is not installed
};

// The variant to run: `forced` (the SWIFTLLM_CPU environment variable; empty or "auto": none)
// if this CPU runs it and it is installed, else the most demanding installed variant this CPU
// runs. Throws swift::Error naming the variants and what this CPU lacks when there is none,
// when `forced` is unknown, not installed, or needs what this CPU lacks. A better variant
// that is not installed is a warning, not silence.
CpuVariantChoice cpu_variant_choose(const CpuFeatures& f, std::span<const std::string> installed,
                                    std::string_view forced);

// What this binary was compiled for: a variant name, "native" (-march=native) or "generic".
const char* build_variant();

// The features `build_variant()` needs that this CPU lacks ("" for native and generic builds,
// which cannot tell): checked by the CLI before it runs anything.
std::string build_variant_missing();

// For --version and `info`: the build variant and, when the launcher chose it, why (one line).
std::string build_description();

}  // namespace swift
