// Builds safetensors images in memory for tests (valid ones, and raw headers for broken ones).
#pragma once

#include <cstdint>
#include <cstring>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace swift::test {

inline std::vector<uint8_t> st_image(const std::string& header, const std::vector<uint8_t>& data) {
  std::vector<uint8_t> out(8);
  uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) out[i] = static_cast<uint8_t>(n >> (8 * i));
  out.insert(out.end(), header.begin(), header.end());
  out.insert(out.end(), data.begin(), data.end());
  return out;
}

struct StEntry {
  std::string name;
  std::vector<int64_t> shape;
  std::vector<float> values;  // stored as F32
};

inline std::vector<uint8_t> st_build(const std::vector<StEntry>& entries) {
  nlohmann::json h = nlohmann::json::object();
  std::vector<uint8_t> data;
  for (const auto& e : entries) {
    const uint64_t b = data.size();
    data.resize(b + e.values.size() * 4);
    std::memcpy(data.data() + b, e.values.data(), e.values.size() * 4);
    h[e.name] = {{"dtype", "F32"}, {"shape", e.shape}, {"data_offsets", {b, data.size()}}};
  }
  return st_image(h.dump(), data);
}

}  // namespace swift::test
