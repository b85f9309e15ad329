#include "engine/swift/layer_cache.h"

#include <fmt/format.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "util/check.h"

namespace swift {

namespace {

using nlohmann::json;

json read_cache(const std::string& path) {
  std::ifstream in(path);
  if (!in) return json{{"version", 1}, {"entries", json::array()}};
  std::stringstream ss;
  ss << in.rdbuf();
  json j = json::parse(ss.str(), nullptr, false);
  if (j.is_discarded() || !j.is_object() || !j.contains("entries") || !j["entries"].is_array())
    fail("layer cache '{}': expected a JSON object with an 'entries' array", path);
  return j;
}

std::vector<int64_t> int_list(const json& e, const char* key, const std::string& path) {
  if (!e.contains(key) || !e[key].is_array()) fail("layer cache '{}': entry without '{}' array", path, key);
  std::vector<int64_t> out;
  for (const auto& v : e[key]) {
    if (!v.is_number_integer()) fail("layer cache '{}': '{}' holds a non-integer {}", path, key, v.dump());
    out.push_back(v.get<int64_t>());
  }
  return out;
}

}  // namespace

std::vector<int64_t> plan_layers(const std::vector<uint8_t>& mask) {
  std::vector<int64_t> out;
  for (size_t l = 0; l < mask.size(); ++l)
    if (mask[l]) out.push_back(static_cast<int64_t>(l));
  return out;
}

SkipPlan plan_from_layers(const std::vector<int64_t>& attn, const std::vector<int64_t>& mlp, int64_t n_layer,
                          const std::string& what) {
  SkipPlan plan = SkipPlan::none(n_layer);
  for (auto [list, mask, name] : {std::tuple{&attn, &plan.skip_attn, "attention"}, std::tuple{&mlp, &plan.skip_mlp, "MLP"}})
    for (int64_t l : *list) {
      if (l < 1 || l > n_layer - 2)
        fail("{}: cannot skip the {} of layer {}: only layers 1..{} may be skipped (the first and last always run)",
             what, name, l, n_layer - 2);
      (*mask)[l] = 1;
    }
  return plan;
}

std::optional<CachedPlan> layer_cache_lookup(const std::string& path, uint64_t model_id, const std::string& task,
                                             int64_t n_layer) {
  const json j = read_cache(path);
  const std::string id = fmt::format("{:016x}", model_id);
  for (const auto& e : j["entries"]) {
    if (!e.is_object()) fail("layer cache '{}': entries must be objects", path);
    if (e.value("model", "") != id || e.value("task", "") != task) continue;
    CachedPlan c;
    c.plan = plan_from_layers(int_list(e, "skip_attn", path), int_list(e, "skip_mlp", path), n_layer,
                              "layer cache '" + path + "'");
    c.score = e.value("score", 0.0);
    c.objective = e.value("objective", "");
    return c;
  }
  return std::nullopt;
}

void layer_cache_store(const std::string& path, uint64_t model_id, const std::string& task, const CachedPlan& entry) {
  json j = read_cache(path);
  const std::string id = fmt::format("{:016x}", model_id);
  json e = {{"model", id},
            {"task", task},
            {"n_layer", entry.plan.skip_attn.size()},
            {"skip_attn", plan_layers(entry.plan.skip_attn)},
            {"skip_mlp", plan_layers(entry.plan.skip_mlp)},
            {"score", entry.score},
            {"objective", entry.objective}};
  json out = json::array();
  for (const auto& old : j["entries"])
    if (!(old.value("model", "") == id && old.value("task", "") == task)) out.push_back(old);
  out.push_back(e);
  j["entries"] = out;
  j["version"] = 1;
  const std::string tmp = path + ".tmp" + std::to_string(::getpid());
  {
    std::ofstream f(tmp);
    if (!f) fail("cannot write layer cache '{}'", tmp);
    f << j.dump(2) << "\n";
    if (!f) fail("cannot write layer cache '{}'", tmp);
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) fail("cannot replace layer cache '{}': {}", path, ec.message());
}

}  // namespace swift
