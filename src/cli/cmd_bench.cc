// `swiftllm bench`: every prompt in every decoding mode, modes alternating prompt by prompt so
// that machine noise hits all of them alike; greedy outputs are compared across modes (all
// modes here are lossless, so any difference is a bug and is reported as such); a table per
// domain with tokens/s and the speed-up over plain decoding on the same prompts in the same run.
#include <algorithm>
#include <cstdio>
#include <fstream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <sstream>
#include <utility>

#include "cli/bandwidth.h"
#include "cli/common.h"
#include "cli/decode_options.h"
#include "engine/forward_cost.h"
#include "ops/bf16_amx.h"
#include "ops/peak.h"
#include "util/check.h"
#include "util/cpu_features.h"
#include "util/timer.h"

namespace swift::cli {

namespace {

struct BenchArgs {
  std::string model, prompts, json_out;
  std::string math = "auto";
  int64_t n = 256;
  int threads = 0;
  DecodeArgs decode;
  int64_t limit = 0;
  bool verify_cost = false;
  int verify_rounds = 15;
  bool roofline = false;
  int repeat = 1;
};

struct Prompt {
  std::string id, domain, text;
};

std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ','))
    if (!item.empty()) out.push_back(item);
  return out;
}

std::vector<Prompt> read_prompts(const std::string& files) {
  std::vector<Prompt> out;
  for (const auto& f : split(files)) {
    std::ifstream in(f);
    if (!in) fail("cannot open prompt file '{}'", f);
    std::string line;
    int lineno = 0;
    while (std::getline(in, line)) {
      ++lineno;
      if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
      auto j = nlohmann::json::parse(line, nullptr, false);
      if (j.is_discarded() || !j.is_object() || !j.contains("text") || !j["text"].is_string())
        fail("{}:{}: expected a JSON object with a string 'text'", f, lineno);
      Prompt p;
      p.text = j["text"].get<std::string>();
      p.id = j.value("id", f + ":" + std::to_string(lineno));
      p.domain = j.value("domain", f);
      out.push_back(std::move(p));
    }
  }
  if (out.empty()) fail("no prompts in '{}'", files);
  return out;
}

struct Totals {
  double ms = 0, opt_ms = 0;
  int64_t tokens = 0, drafted = 0, accepted = 0, steps = 0, committed = 0, prompts = 0, mismatches = 0;
  double worst = 1e300;  // lowest per-prompt speed-up over ar
  std::string worst_prompt;
  // Paired estimate (--repeat >= 2): per prompt, the median over repetitions of this mode's
  // speed-up over the ar run of the same repetition (paired_ratio()); per domain, ar's time over
  // the time implied by those medians.
  double paired_ar_ms = 0, paired_ms = 0, paired_worst = 1e300;
  std::string paired_worst_prompt;
  double nodes = 0, plain = 0, from_lookup = 0, from_skip = 0, from_both = 0;  // hybrid/lookup only
  double kv_slot_passes = 0;  // sum over full-model passes of the cached slots each one reads
  double prefill_ms = 0;      // prompts after the first (the first pays a fresh process's page faults)
  int64_t prefill_tokens = 0;
};

// Cost of one full-model pass over k tokens relative to one token, after the first prompt's
// prefill (the context a verification pass sees in the benchmark): `rounds` rounds over all sizes,
// each pass right after a timed one-token pass. The paired columns (each pass over the one-token
// pass just before it, median and quartiles over the rounds) show how far single passes scatter,
// and the 1-token row, two one-token passes, the noise floor. On the Xeon VM the quartiles of the
// 16-token row spanned ~10% and its median moved by up to 10% between runs of one build (1.65x,
// 1.73x, 1.82x in three runs), as the ratio of the medians did: a change of a few percent needs
// more rounds (--verify-rounds) or an in-process A/B harness.
// Returns the median ms of a one-token pass.
double print_verify_cost(const Model& model, const std::vector<int32_t>& prompt, ThreadPool& pool, int rounds) {
  Sequence seq(model, model.config.max_positions, kScratchSlots);
  seq.tokens = prompt;
  std::vector<float> logits;
  model.transformer->forward(ForwardBatch::causal(prompt, 0, false), seq.cache, SkipPlan::none(model.config.n_layer),
                             pool, logits);
  seq.n_cached = static_cast<int64_t>(prompt.size());
  ForwardCost cost;
  cost.calibrate(model, seq, pool, ForwardCost::default_sizes(), rounds, /*paired=*/true);
  std::printf("verification cost after a %zu-token prompt, %d threads, %d rounds over all sizes (%.1f s):\n",
              prompt.size(), pool.size(), rounds, cost.calibration_ms() / 1000.0);
  std::printf("%8s %10s %10s %12s   %s\n", "tokens", "median ms", "best ms", "median/1",
              "paired vs 1 token: median [quartiles]");
  const auto& med = cost.median_ms();
  const auto& best = cost.best_ms();
  const auto& paired = cost.paired_ratio();
  for (size_t i = 0; i < cost.sizes().size(); ++i) {
    std::printf("%8d %10.3f %10.3f %11.2fx   %.3fx [%.3f, %.3f]\n", cost.sizes()[i], med[i], best[i], med[i] / med[0],
                paired[i].median, paired[i].low, paired[i].high);
  }
  std::printf("(the 1-token row pairs two one-token passes: its spread is this machine's noise floor)\n\n");
  return med[0];
}

// Median over repetitions of mode_tps[r] / ar_tps[r]. Within a repetition the modes of a prompt
// run back to back (0.3-1.5 s each), so a pair shares the machine's current speed; this VM's speed
// moves by up to 1.7x between phases lasting seconds, which the fastest-of-R per mode cannot
// separate from a real difference when a phase change falls between one mode's repetitions and
// the other's. The median drops a pair that a phase change split.
double paired_ratio(const std::vector<double>& mode_tps, const std::vector<double>& ar_tps) {
  SWIFT_CHECK(mode_tps.size() == ar_tps.size() && !mode_tps.empty());
  std::vector<double> r;
  for (size_t i = 0; i < mode_tps.size(); ++i) r.push_back(ar_tps[i] > 0 ? mode_tps[i] / ar_tps[i] : 0.0);
  return spread_of(std::move(r)).median;
}

// "hybrid#2" runs mode "hybrid" under its own label: `--decode ar,ar#2` measures the noise floor
// (two runs of one decoder, compared like any two modes).
std::string base_mode(const std::string& label) { return label.substr(0, label.find('#')); }

void run(const BenchArgs& a) {
  auto model = load_model(a.model, parse_math(a.math));
  std::vector<Prompt> prompts = read_prompts(a.prompts);
  if (a.limit > 0 && static_cast<int64_t>(prompts.size()) > a.limit) prompts.resize(a.limit);
  const auto modes = split(a.decode.mode);
  if (modes.empty()) fail("--decode needs at least one mode");
  for (size_t i = 0; i < modes.size(); ++i)
    for (size_t j = 0; j < i; ++j)
      if (modes[i] == modes[j])
        fail("--decode lists mode '{}' twice (label a second run of it as '{}#2')", modes[i], modes[i]);
  if (a.repeat > 1 && !a.decode.layer_cache.empty())
    fail("--repeat with --layer-cache would let later repetitions reuse the plan the first one saved; use one of them");
  ThreadPool pool(a.threads > 0 ? a.threads : ThreadPool::default_threads());
  GenerateOptions opt;
  opt.max_tokens = a.n;  // greedy, EOS honoured: lossless modes must stop at the same place

  double one_token_ms = 0;  // median one-token pass of --verify-cost
  if (a.verify_cost)
    one_token_ms = print_verify_cost(*model, model->tok().encode_with_specials(prompts[0].text), pool, a.verify_rounds);

  std::map<std::string, std::map<std::string, Totals>> totals;  // domain -> mode -> totals
  std::vector<std::string> domains;
  nlohmann::json records = nlohmann::json::array();
  std::fprintf(stderr, "bench: %zu prompts x %zu modes, %lld new tokens, %d threads, greedy, math %s, build %s\n",
               prompts.size(), modes.size(), static_cast<long long>(a.n), pool.size(),
               model->transformer->math_description().c_str(), build_description().c_str());
  // Decode is memory-bound when every pass streams the weights: bytes per token = weight bytes
  // per pass x passes per token (embedding rows excluded: one row per token). Draft passes of
  // layer-skip modes are not counted (they read a subset), so those modes are understated.
  const auto& w = model->transformer->weights();
  const double per_pass =
      static_cast<double>(w.total_bytes) - (model->config.tie_embeddings ? 0.0 : static_cast<double>(w.embed.bytes()));
  // Both limits (cli/bandwidth.h) are measured before, halfway and after the prompts: this shared
  // machine's bandwidth swings by a third within minutes, and the limit is the best of them.
  std::vector<double> triads, reads;
  auto measure_limits = [&] {
    triads.push_back(triad_gbps(pool));
    reads.push_back(read_gbps(pool, static_cast<int64_t>(per_pass)));
  };
  // The compute roof (ops/peak.h) of the unit the math multiplies with; AMX tiles are not probed.
  const MatMath math = model->transformer->math();
  const bool amx = math == MatMath::kBf16 && bf16_amx_available();
  const PeakUnit unit = math == MatMath::kQ8     ? PeakUnit::kInt8Dot
                        : math == MatMath::kBf16 ? PeakUnit::kBf16Dot
                                                 : PeakUnit::kF32Fma;
  double peak = 0;              // G ops/s
  double prefill_roof_tps = 0;  // prompt tokens/s the products allow at that peak (0: not probed)
  if (a.roofline) {
    measure_limits();
    if (!amx) peak = peak_gops(unit, pool);
  }
  for (size_t pi = 0; pi < prompts.size(); ++pi) {
    if (a.roofline && pi == prompts.size() / 2 && pi > 0) measure_limits();
    const Prompt& p = prompts[pi];
    if (std::find(domains.begin(), domains.end(), p.domain) == domains.end()) domains.push_back(p.domain);
    const auto ids = model->tok().encode_with_specials(p.text);
    DecodeArgs dargs = a.decode;
    if (!dargs.layer_cache.empty() && dargs.task == "default") dargs.task = p.domain;  // one plan per domain
    std::vector<int32_t> reference;
    std::string line = fmt::format("[{}/{}] {} ({} prompt tokens):", pi + 1, prompts.size(), p.id, ids.size());
    std::map<std::string, GenerateResult> results;
    std::map<std::string, std::vector<double>> rep_tps;  // mode -> decode tokens/s per repetition
    // --repeat: every mode runs the prompt `repeat` times, the order rotating each time, and the
    // fastest decode of each mode counts (this VM's speed swings by 10-20% between runs of one
    // prompt). Repetitions after the first start from a copy of the hybrid state from before the
    // prompt, so that no repetition drafts from n-grams the previous one cached from this output.
    std::optional<HybridShared> before;
    if (a.repeat > 1) before = *a.decode.hybrid_shared;
    std::set<std::string> unsteady;  // modes whose repetitions produced different tokens (a bug)
    for (int rep = 0; rep < a.repeat; ++rep) {
      DecodeArgs rargs = dargs;
      if (rep > 0) rargs.hybrid_shared = std::make_shared<HybridShared>(*before);
      for (size_t k = 0; k < modes.size(); ++k) {
        const std::string& mode = modes[(pi + rep + k) % modes.size()];  // rotate the order prompt by prompt
        DecoderRun dr(rargs, base_mode(mode), *model, opt.sampling, pool);
        GenerateResult r = generate(*model, dr.decoder(), ids, opt, pool);
        nlohmann::json extra = dr.finish(r.stats);
        nlohmann::json rec = {{"prompt", p.id},
                              {"domain", p.domain},
                              {"mode", mode},
                              {"repetition", rep},
                              {"prompt_tokens", ids.size()},
                              {"tokens", r.tokens.size()},
                              {"decode_ms", r.stats.decode_ms},
                              {"prefill_ms", r.stats.prefill_ms}};
        for (const auto& [key, v] : r.stats.extra) rec[key] = v;
        for (const auto& [key, v] : extra.items()) rec[key] = v;
        records.push_back(rec);
        rep_tps[mode].push_back(r.stats.decode_tokens_per_s());
        auto it = results.find(mode);
        if (it == results.end()) {
          results.emplace(mode, std::move(r));
          continue;
        }
        if (it->second.tokens != r.tokens) unsteady.insert(mode);
        if (r.stats.decode_ms < it->second.stats.decode_ms) it->second = std::move(r);
      }
    }
    for (const auto& mode : modes) {
      const GenerateResult& r = results[mode];
      Totals& t = totals[p.domain][mode];
      t.ms += r.stats.decode_ms;
      t.tokens += r.stats.generated_tokens;
      t.prompts += 1;
      if (pi > 0) t.prefill_ms += r.stats.prefill_ms, t.prefill_tokens += static_cast<int64_t>(ids.size());
      auto x = [&](const char* key) { return r.stats.extra.count(key) ? r.stats.extra.at(key) : 0.0; };
      t.opt_ms += x("optimization_ms");
      t.drafted += static_cast<int64_t>(x("drafted_tokens"));
      t.accepted += static_cast<int64_t>(x("accepted_tokens"));
      t.steps += static_cast<int64_t>(x("verify_steps"));
      t.nodes += x("mean_tree_size") * x("verify_steps");
      t.plain += x("plain_steps");
      t.from_lookup += x("accepted_lookup");
      t.from_skip += x("accepted_layer_skip");
      t.from_both += x("accepted_both");
      // Each full-model pass reads the KV cache of its context: ~prompt + half the output.
      const double passes = x("verify_steps") > 0 ? x("verify_steps") : static_cast<double>(r.stats.generated_tokens);
      t.kv_slot_passes +=
          passes * (static_cast<double>(ids.size()) + 0.5 * static_cast<double>(r.stats.generated_tokens));
      std::string paired;
      if (results.count("ar") && results["ar"].stats.decode_ms > 0 && r.stats.decode_ms > 0) {
        const double ratio = r.stats.decode_tokens_per_s() / results["ar"].stats.decode_tokens_per_s();
        if (ratio < t.worst) t.worst = ratio, t.worst_prompt = p.id;
        if (a.repeat > 1 && mode != "ar") {
          const double pr = paired_ratio(rep_tps[mode], rep_tps["ar"]);
          t.paired_ar_ms += results["ar"].stats.decode_ms;
          t.paired_ms += pr > 0 ? results["ar"].stats.decode_ms / pr : 0.0;
          if (pr < t.paired_worst) t.paired_worst = pr, t.paired_worst_prompt = p.id;
          paired = fmt::format(" ({:.2f}x paired)", pr);
        }
      }
      if (r.tokens != results[modes[0]].tokens || unsteady.count(mode)) t.mismatches += 1;
      line += fmt::format(" {} {:.0f} tok/s{};", mode, r.stats.decode_tokens_per_s(), paired);
    }
    std::fprintf(stderr, "%s\n", line.c_str());
  }

  bool all_identical = true;
  for (const auto& d : domains) {
    const auto& dt = totals[d];
    const Totals* base = dt.count("ar") ? &dt.at("ar") : nullptr;
    std::printf("\n%s: %lld prompts, %lld new tokens each, %d threads%s\n", d.c_str(),
                static_cast<long long>(dt.at(modes[0]).prompts), static_cast<long long>(a.n), pool.size(),
                a.repeat > 1 ? fmt::format(", fastest of {} runs per prompt and mode", a.repeat).c_str() : "");
    std::printf("%-16s %10s %9s %15s %11s %10s %8s %10s\n", "mode", "tokens/s", "vs ar", "worst prompt", "acceptance",
                "tok/step", "opt %", "identical");
    for (const auto& mode : modes) {
      const Totals& t = dt.at(mode);
      const double tps = t.ms > 0 ? t.tokens * 1000.0 / t.ms : 0.0;
      const double base_tps = base && base->ms > 0 ? base->tokens * 1000.0 / base->ms : 0.0;
      const std::string speed = base_tps > 0 ? fmt::format("{:.2f}x", tps / base_tps) : "-";
      const bool spec = t.steps > 0;
      all_identical = all_identical && t.mismatches == 0;
      const std::string worst =
          base && mode != "ar" && t.worst < 1e300 ? fmt::format("{:.2f}x {}", t.worst, t.worst_prompt) : "-";
      std::printf("%-16s %10.1f %9s %15s %11s %10s %8s %10s\n", mode.c_str(), tps, speed.c_str(), worst.c_str(),
                  spec ? fmt::format("{:.3f}", t.drafted ? double(t.accepted) / t.drafted : 0.0).c_str() : "-",
                  spec ? fmt::format("{:.2f}", double(t.tokens) / t.steps).c_str() : "1.00",
                  spec ? fmt::format("{:.1f}", 100.0 * t.opt_ms / t.ms).c_str() : "-",
                  t.mismatches == 0 ? "yes" : fmt::format("NO ({})", t.mismatches).c_str());
    }
    if (a.repeat > 1 && base)
      for (const auto& mode : modes) {
        const Totals& t = dt.at(mode);
        if (t.paired_ms <= 0) continue;  // ar itself, or no ar
        std::printf("  %s paired with ar (median of %d back-to-back pairs per prompt): %.2fx, worst prompt %.2fx %s\n",
                    mode.c_str(), a.repeat, t.paired_ar_ms / t.paired_ms, t.paired_worst,
                    t.paired_worst_prompt.c_str());
      }
    for (const auto& mode : modes) {  // where the accepted tokens of tree-choosing modes came from
      const Totals& t = dt.at(mode);
      const double acc = t.from_lookup + t.from_skip + t.from_both;
      if (t.nodes <= 0 || (base_mode(mode) != "hybrid" && base_mode(mode) != "lookup")) continue;
      std::printf(
          "  %s: mean tree %.2f nodes, %.0f%% plain steps; accepted tokens from lookup %.0f%%, layer-skip %.0f%%, "
          "both %.0f%%\n",
          mode.c_str(), t.nodes / std::max<int64_t>(1, t.steps), 100.0 * t.plain / std::max<int64_t>(1, t.steps),
          acc > 0 ? 100.0 * t.from_lookup / acc : 0.0, acc > 0 ? 100.0 * t.from_skip / acc : 0.0,
          acc > 0 ? 100.0 * t.from_both / acc : 0.0);
    }
  }
  if (a.roofline) {
    measure_limits();
    const double bw = *std::max_element(triads.begin(), triads.end());
    const double read_bw = *std::max_element(reads.begin(), reads.end());
    auto list = [](const std::vector<double>& v) {
      std::string s;
      for (double t : v) s += fmt::format("{}{:.1f}", s.empty() ? "" : ", ", t);
      return s;
    };
    // K and V of a slot, as the attention reads them: f32, or the cache's bf16 copy (bf16 attention).
    const double kv_elem = model->transformer->bf16_attention() ? 2.0 : 4.0;
    const double slot_bytes = 2.0 * static_cast<double>(model->config.n_layer * model->config.kv_dim()) * kv_elem;
    std::printf(
        "\nroofline (%d threads; best of the runs before, halfway and after):\n"
        "  triad bandwidth %.1f GB/s (%s): 3 x 128 MiB, the DRAM limit\n"
        "  read bandwidth %.1f GB/s (%s) over %.1f MB, the weights one pass reads: the limit for this "
        "working set here (a cache level where it fits; then \"of triad\" exceeds 100%%)\n"
        "  weights %s; resident %.1f MiB\n",
        pool.size(), bw, list(triads).c_str(), read_bw, list(reads).c_str(), per_pass / 1e6, w.dtype_summary.c_str(),
        resident_bytes() / 1048576.0);
    std::printf("%-16s %10s %14s %12s %12s %12s %10s %9s\n", "mode", "tokens/s", "passes/token", "weights MB", "KV MB",
                "MB/token", "of triad", "of read");
    for (const auto& mode : modes) {
      double ms = 0, tokens = 0, steps = 0, kv = 0;
      for (const auto& d : domains) {
        const Totals& t = totals[d].at(mode);
        ms += t.ms, tokens += static_cast<double>(t.tokens),
            steps += static_cast<double>(t.steps > 0 ? t.steps : t.tokens);
        kv += t.kv_slot_passes * slot_bytes;
      }
      const double tps = ms > 0 ? tokens * 1000.0 / ms : 0.0, passes = tokens > 0 ? steps / tokens : 0.0;
      const double wmb = per_pass * passes / 1e6, kvmb = tokens > 0 ? kv / tokens / 1e6 : 0.0, mb = wmb + kvmb;
      std::printf("%-16s %10.1f %14.3f %12.1f %12.1f %12.1f %9.0f%% %8.0f%%\n", mode.c_str(), tps, passes, wmb, kvmb,
                  mb, 100.0 * mb * tps / 1e3 / bw, 100.0 * mb * tps / 1e3 / read_bw);
    }
    // Multiply-adds per token in the matrix products (attention's are excluded: a few percent at
    // these context lengths), so the floor is a lower bound.
    const double macs = static_cast<double>(model->config.matmul_weights());
    if (amx) {
      std::printf("compute roof: not probed for AMX tiles\n");
    } else if (peak > 0) {
      const double ms_per_token = 2.0 * macs / (peak * 1e9) * 1e3;  // at the peak, per token of a pass
      std::printf(
          "compute roof: %s peak %.0f G ops/s on %d threads; the matrix products' %.1f M multiply-adds per "
          "token take >= %.3f ms there, so a 16-token pass >= %.2f ms",
          peak_unit_name(unit), peak, pool.size(), macs / 1e6, ms_per_token, 16 * ms_per_token);
      if (one_token_ms > 0)
        std::printf(" = %.2fx the measured one-token pass (--verify-cost)", 16 * ms_per_token / one_token_ms);
      std::printf("\n");
    } else {
      std::printf("compute roof: this build has no %s instructions to probe\n", peak_unit_name(unit));
    }
    // Prefill is the same computation in every mode: pooled over modes, prompts after the first.
    double pre_ms = 0, pre_tokens = 0, ar_ms = 0, ar_tokens = 0;
    for (const auto& d : domains)
      for (const auto& [mode, t] : totals[d]) {
        pre_ms += t.prefill_ms, pre_tokens += static_cast<double>(t.prefill_tokens);
        if (mode == "ar") ar_ms += t.ms, ar_tokens += static_cast<double>(t.tokens);
      }
    const double ar_tps = ar_ms > 0 ? ar_tokens * 1000.0 / ar_ms : 0.0;
    if (pre_ms > 0) {
      const double pre_tps = pre_tokens * 1000.0 / pre_ms;
      std::printf("prefill: %.0f prompt tokens in %.1f ms = %.0f tokens/s (prompts after the first, all modes)",
                  pre_tokens, pre_ms, pre_tps);
      if (ar_tps > 0) std::printf(" = %.1fx plain decoding's tokens/s", pre_tps / ar_tps);
      std::printf("\n");
    }
    // The prefill ceiling at the compute roof: every prompt token costs the products' multiply-adds
    // (issue 6 asks for prefill at 10x plain decoding's rate; where this bound is below that, no
    // kernel reaches it with this math here).
    // f32 math on AMX runs its prompt products (and attention) on the tiles (ops/bf16_amx.h:
    // matmul_f32_amx), not on the FMA pipes this roof is of: no bound to print there.
    const std::vector<LayerWeights>& layers = model->transformer->weights().layers;
    const bool prefill_on_tiles = math == MatMath::kF32 && !layers.empty() && f32_amx_usable(layers[0].wo);
    if (prefill_on_tiles) {
      std::printf("prefill roof: not probed (f32 prompt prefill runs on AMX tiles)\n");
    } else if (!amx && peak > 0) {
      prefill_roof_tps = peak * 1e9 / (2.0 * macs);
      std::printf("prefill roof: at most %.0f tokens/s at the %s peak", prefill_roof_tps, peak_unit_name(unit));
      if (ar_tps > 0) std::printf(" = %.1fx plain decoding's tokens/s", prefill_roof_tps / ar_tps);
      std::printf("\n");
    }
  }
  const ThreadPool::Stats ps = pool.stats();
  if (ps.serial_rounds > 0)
    std::printf(
        "\nthread pool: other load took the cores: in %llu of %llu rounds a worker waited for a CPU; "
        "%llu rounds (%.0f%%) ran on the calling thread alone (util/thread_pool.h)\n",
        static_cast<unsigned long long>(ps.contended), static_cast<unsigned long long>(ps.rounds),
        static_cast<unsigned long long>(ps.serial_rounds),
        100.0 * static_cast<double>(ps.serial_rounds) / static_cast<double>(std::max<uint64_t>(ps.rounds, 1)));
  std::printf("\ngreedy outputs %s across modes (%s is the reference)\n", all_identical ? "identical" : "DIFFER",
              modes[0].c_str());
  if (!a.json_out.empty()) {
    nlohmann::json j = {{"model", a.model},
                        {"n", a.n},
                        {"threads", pool.size()},
                        {"build", build_variant()},
                        {"modes", modes},
                        {"math", a.math},
                        {"math_kernel", model->transformer->math_description()},
                        {"identical", all_identical},
                        {"runs", records}};
    if (a.roofline)  // every measurement of both limits, GB/s (the table uses the best of each)
      j["roofline"] = {{"triad_gbps", triads},
                       {"read_gbps", reads},
                       {"read_bytes", static_cast<int64_t>(per_pass)},
                       {"peak_unit", peak > 0 ? peak_unit_name(unit) : ""},
                       {"peak_gops", peak},
                       {"prefill_roof_tps", prefill_roof_tps}};
    std::ofstream out(a.json_out);
    out << j.dump(1) << "\n";
    if (!out) fail("cannot write '{}'", a.json_out);
  }
  if (!all_identical) fail("greedy outputs differ between lossless modes: this is a bug, please report it");
}

}  // namespace

void add_bench(CLI::App& app) {
  auto a = std::make_shared<BenchArgs>();
  a->decode.mode = "ar,hybrid,lookup,swift";
  CLI::App* c = app.add_subcommand("bench", "Compare decoding modes on prompt files (greedy, same run)");
  c->add_option("-m,--model", a->model, "Model folder (Hugging Face layout)")->required();
  add_math_option(*c, a->math);
  c->add_option("--prompts", a->prompts, "Comma-separated JSONL files with a 'text' (and 'domain', 'id') per line")
      ->required();
  c->add_option("-n,--max-tokens", a->n, "New tokens per prompt (default 256)");
  c->add_option("-t,--threads", a->threads, "Threads (default: physical cores)");
  c->add_option("--limit", a->limit, "Use only the first N prompts");
  c->add_option("--json", a->json_out, "Also write every run's statistics to this JSON file");
  c->add_flag(
      "--roofline", a->roofline,
      "Also measure memory bandwidth and print per mode the bytes read per token (weights, KV cache) and the "
      "fraction of two limits reached: a STREAM triad over 3 x 128 MiB (DRAM) and a read of a buffer the size "
      "of the weights one pass reads (the limit where they fit in a cache); plus resident memory, and the compute "
      "roof: the peak of the multiply-add instruction the math uses (f32 FMA, vdpbf16ps or vpdpbusd; AMX tiles "
      "are not probed), the least time a 16-token pass's matrix products can take at it (with "
      "--verify-cost: as a multiple of the measured one-token pass) and the most prompt tokens per second a "
      "prefill can make at it");
  c->add_option("--repeat", a->repeat,
                "Run every prompt in every mode this many times (order rotating) and count each mode's fastest "
                "decode: steadier per-prompt ratios on a noisy machine; also prints each mode's speed-up as the "
                "median over repetitions of its ratio to the ar run of the same repetition (default 1)")
      ->check(CLI::Range(1, 100));
  c->add_flag("--verify-cost", a->verify_cost,
              "First print the cost of one pass over 1..64 tokens relative to one token (after the first prompt): "
              "median and best ms per size, and each pass paired with the one-token pass timed just before it");
  c->add_option("--verify-rounds", a->verify_rounds,
                "Rounds over all sizes for --verify-cost (default 15, ~1 s on swift-mini-24L; more rounds narrow "
                "the quartiles on a noisy machine)")
      ->check(CLI::Range(1, 1000));
  a->decode.add_to(*c, true);
  c->callback([a] { run(*a); });
}

}  // namespace swift::cli
