#include "model/weights.h"

#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "ops/bf16_dot.h"
#include "ops/panel.h"
#include "ops/q8_dot.h"
#include "util/check.h"
#include "util/half.h"

namespace swift {

namespace {

namespace fs = std::filesystem;

class TensorIndex {
 public:
  explicit TensorIndex(const std::vector<std::unique_ptr<SafetensorsFile>>& files) {
    for (const auto& f : files)
      for (const auto& [name, t] : f->tensors()) {
        auto [it, inserted] = by_name_.emplace(name, std::make_pair(&t, f.get()));
        if (!inserted) fail("tensor '{}' appears in both '{}' and '{}'", name, it->second.second->path(), f->path());
      }
  }

  std::pair<const StTensor*, const SafetensorsFile*> get(const std::string& name, std::vector<int64_t> shape) const {
    auto it = by_name_.find(name);
    if (it == by_name_.end()) fail("missing tensor '{}' in the model's safetensors files", name);
    const StTensor* t = it->second.first;
    if (t->shape != shape)
      fail("{}: tensor '{}' has shape {} but the config implies {}", it->second.second->path(), name,
           fmt_shape(t->shape), fmt_shape(shape));
    return it->second;
  }

  bool has(const std::string& name) const { return by_name_.count(name) != 0; }

  MatView mat(const std::string& name, int64_t rows, int64_t cols, uint64_t* total,
              std::vector<std::unique_ptr<float[]>>* realigned) const {
    auto [t, f] = get(name, {rows, cols});
    *total += t->n_bytes;
    const DType dt = weight_dtype(*t, f->path());
    const void* data = t->data;
    if (reinterpret_cast<uintptr_t>(data) % dtype_size(dt) != 0) {
      // Rare (writers pad the header to 8 bytes); costs one copy of this tensor.
      realigned->emplace_back(new float[(t->n_bytes + 3) / 4]);
      std::memcpy(realigned->back().get(), data, t->n_bytes);
      data = realigned->back().get();
    }
    return MatView{data, dt, rows, cols};
  }

  std::vector<float> vec(const std::string& name, int64_t n, uint64_t* total) const {
    auto [t, f] = get(name, {n});
    *total += t->n_bytes;
    const DType dt = weight_dtype(*t, f->path());
    std::vector<float> out(n);
    std::vector<uint8_t> aligned(t->n_bytes + 4);
    uint8_t* p = aligned.data() + (4 - reinterpret_cast<uintptr_t>(aligned.data()) % 4) % 4;
    std::memcpy(p, t->data, t->n_bytes);  // small vectors: always copy, alignment is then moot
    MatView m{p, dt, 1, n};
    mat_row_to_f32(m, 0, out.data());
    return out;
  }

  static std::string fmt_shape(const std::vector<int64_t>& s) {
    std::string out = "[";
    for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
    return out + "]";
  }

 private:
  std::map<std::string, std::pair<const StTensor*, const SafetensorsFile*>> by_name_;
};

}  // namespace

ModelWeights bind_weights(std::vector<std::unique_ptr<SafetensorsFile>> files, const ModelConfig& c) {
  ModelWeights w;
  TensorIndex idx(files);
  uint64_t total = 0;
  const int64_t H = c.hidden_size, I = c.intermediate_size;
  w.embed = idx.mat("model.embed_tokens.weight", c.vocab_size, H, &total, &w.realigned);
  if (c.tie_embeddings) {
    w.lm_head = w.embed;
  } else {
    w.lm_head = idx.mat("lm_head.weight", c.vocab_size, H, &total, &w.realigned);
  }
  w.final_norm = idx.vec("model.norm.weight", H, &total);
  std::set<DType> dtypes;
  w.layers.resize(c.n_layer);
  for (int64_t l = 0; l < c.n_layer; ++l) {
    const std::string p = fmt::format("model.layers.{}.", l);
    LayerWeights& L = w.layers[l];
    L.wq = idx.mat(p + "self_attn.q_proj.weight", c.q_dim(), H, &total, &w.realigned);
    L.wk = idx.mat(p + "self_attn.k_proj.weight", c.kv_dim(), H, &total, &w.realigned);
    L.wv = idx.mat(p + "self_attn.v_proj.weight", c.kv_dim(), H, &total, &w.realigned);
    L.wo = idx.mat(p + "self_attn.o_proj.weight", H, c.q_dim(), &total, &w.realigned);
    L.w_gate = idx.mat(p + "mlp.gate_proj.weight", I, H, &total, &w.realigned);
    L.w_up = idx.mat(p + "mlp.up_proj.weight", I, H, &total, &w.realigned);
    L.w_down = idx.mat(p + "mlp.down_proj.weight", H, I, &total, &w.realigned);
    L.attn_norm = idx.vec(p + "input_layernorm.weight", H, &total);
    L.mlp_norm = idx.vec(p + "post_attention_layernorm.weight", H, &total);
    if (c.qkv_bias) {
      L.bq = idx.vec(p + "self_attn.q_proj.bias", c.q_dim(), &total);
      L.bk = idx.vec(p + "self_attn.k_proj.bias", c.kv_dim(), &total);
      L.bv = idx.vec(p + "self_attn.v_proj.bias", c.kv_dim(), &total);
    }
    if (c.o_bias) L.bo = idx.vec(p + "self_attn.o_proj.bias", H, &total);
    if (c.qk_norm) {
      L.q_norm = idx.vec(p + "self_attn.q_norm.weight", c.head_dim, &total);
      L.k_norm = idx.vec(p + "self_attn.k_norm.weight", c.head_dim, &total);
    }
    if (c.mlp_bias) {
      L.b_gate = idx.vec(p + "mlp.gate_proj.bias", I, &total);
      L.b_up = idx.vec(p + "mlp.up_proj.bias", I, &total);
      L.b_down = idx.vec(p + "mlp.down_proj.bias", H, &total);
    }
    for (const MatView* m : {&L.wq, &L.wk, &L.wv, &L.wo, &L.w_gate, &L.w_up, &L.w_down}) dtypes.insert(m->dtype);
  }
  dtypes.insert(w.embed.dtype);
  for (DType d : dtypes) w.dtype_summary += (w.dtype_summary.empty() ? "" : "+") + std::string(dtype_name(d));
  w.total_bytes = total;
  w.files = std::move(files);
  for (const auto& f : w.files)
    if (f->map()) w.maps.push_back(f->map());
  return w;
}

namespace {

// Biases of fused matrices, concatenated; a missing one contributes zeros (the kernel adds
// +0.0f where there is no bias, so results are the same bits). Empty when no part has a bias.
std::vector<float> concat_bias(std::initializer_list<std::pair<const std::vector<float>*, int64_t>> parts) {
  bool any = false;
  for (const auto& [b, rows] : parts) any = any || !b->empty();
  std::vector<float> out;
  if (!any) return out;
  for (const auto& [b, rows] : parts) {
    if (b->empty()) out.insert(out.end(), static_cast<size_t>(rows), 0.0f);
    else out.insert(out.end(), b->begin(), b->end());
  }
  return out;
}

}  // namespace

void pack_weights(ModelWeights& w, MatMath math) {
  if (w.packed) return;
  std::vector<MatView*> mats;
  for (LayerWeights& L : w.layers)
    for (MatView* m : {&L.wq, &L.wk, &L.wv, &L.wo, &L.w_gate, &L.w_up, &L.w_down}) mats.push_back(m);
  mats.push_back(&w.lm_head);
  // Q4_K and Q6_K matrices under --math q8 are interleaved by 8 rows (ops/q8_dot.h: kRows8).
  auto rows8 = [&](const MatView& m) { return math == MatMath::kQ8 && q8_dot_native() && rows8_packable(m); };
  // The other quantized matrices under --math q8 (Q8_0, Q4_0, Q5_K; Q4_K / Q6_K of odd shapes)
  // are copied as they are. Why: in the file's mapping they sit in 4 KB page-cache pages, and a
  // product streaming them from DRAM paid a page walk every 4 KB; the copy is in huge pages
  // (util/page_buffer.h) like every packed matrix, and the mapping's pages are released as for
  // those. Measured on the 2-core Xeon VM, a random 4-layer LLaMA of width 2,048 in Q8_0 (209 MB,
  // scripts/random_llama), `generate` of 256 tokens, three runs: 101-102 tokens/s from the
  // mapping, 118-121 from the copy (73-75 before the Q8_0 kernel's prefetch, ops/matmul_q8_dot.cc);
  // the demo model's 23 MB of Q8_0 (in L3 either way) 990-1,130 against 950-980.
  auto copied = [&](const MatView& m) {
    return math == MatMath::kQ8 && q8_dot_native() && !rows8(m) && m.layout == MatLayout::kRows && m.rows > 0 &&
           q8_dot_usable(m);
  };
  auto packable = [&](const MatView& m) {
    return (m.layout == MatLayout::kRows && panel_supported(m.dtype) && m.rows > 0) || rows8(m) || copied(m);
  };
  auto pairs = [&](const MatView& m) { return math == MatMath::kBf16 && m.dtype == DType::kBF16; };
  auto padded = [&](const MatView& m) {
    const size_t bytes = rows8(m)    ? rows8_bytes(m.dtype, m.rows, m.cols)
                         : copied(m) ? m.bytes()
                         : pairs(m)  ? pairs_panel_bytes(m.rows, m.cols)
                                     : panel_bytes(m.dtype, m.rows, m.cols);
    return (bytes + 63) / 64 * 64;
  };
  size_t total = 0;
  for (const MatView* m : mats)
    if (packable(*m)) total += padded(*m);
  if (total == 0) return;
  w.packed = std::make_unique<PageBuffer>(total);
  size_t at = 0;
  for (MatView* m : mats) {
    if (!packable(*m)) continue;
    const MatView src = *m;
    if (copied(src)) {
      std::memcpy(w.packed->data() + at, src.data, src.bytes());
      m->data = w.packed->data() + at;
    } else {
      *m = rows8(src)   ? rows8_pack(src, w.packed->data() + at)
           : pairs(src) ? pairs_panel_pack(src, w.packed->data() + at)
                        : panel_pack(src, w.packed->data() + at);
    }
    at += padded(src);
    // A tied LM head shares the embedding's bytes, which stay in use for token lookups.
    if (src.data != w.embed.data)
      for (const MappedFile* f : w.maps) f->release(src.data, src.bytes());
  }
  // Matrices packed back to back form one matrix when each but the last ends on a whole panel (or
  // group of 8 rows) and on the 64-byte boundary where the next one starts.
  auto adjacent = [](std::initializer_list<const MatView*> parts) {
    const MatView* prev = nullptr;
    for (const MatView* m : parts) {
      if (m->layout != MatLayout::kPanel16 && m->layout != MatLayout::kPanel16Pairs && m->layout != MatLayout::kRows8)
        return false;
      if (prev) {
        const size_t bytes = prev->bytes();
        const int64_t group_rows = prev->layout == MatLayout::kRows8 ? 8 : kPanelRows;
        if (prev->rows % group_rows != 0 || bytes % 64 != 0 || m->dtype != prev->dtype || m->cols != prev->cols ||
            m->layout != prev->layout ||
            static_cast<const uint8_t*>(prev->data) + bytes != m->data)
          return false;
      }
      prev = m;
    }
    return true;
  };
  for (LayerWeights& L : w.layers) {
    if (adjacent({&L.wq, &L.wk, &L.wv})) {
      L.wqkv = MatView{L.wq.data, L.wq.dtype, L.wq.rows + L.wk.rows + L.wv.rows, L.wq.cols, L.wq.layout};
      L.bqkv = concat_bias({{&L.bq, L.wq.rows}, {&L.bk, L.wk.rows}, {&L.bv, L.wv.rows}});
    }
    if (adjacent({&L.w_gate, &L.w_up})) {
      L.w_gate_up = MatView{L.w_gate.data, L.w_gate.dtype, 2 * L.w_gate.rows, L.w_gate.cols, L.w_gate.layout};
      L.b_gate_up = concat_bias({{&L.b_gate, L.w_gate.rows}, {&L.b_up, L.w_up.rows}});
    }
  }
}

ModelWeights load_weights(const std::string& dir, const ModelConfig& cfg) {
  const fs::path d(dir);
  std::vector<std::unique_ptr<SafetensorsFile>> files;
  if (fs::exists(d / "model.safetensors")) {
    files.push_back(std::make_unique<SafetensorsFile>((d / "model.safetensors").string()));
  } else if (fs::exists(d / "model.safetensors.index.json")) {
    const std::string ip = (d / "model.safetensors.index.json").string();
    std::ifstream in(ip);
    std::stringstream ss;
    ss << in.rdbuf();
    nlohmann::json j = nlohmann::json::parse(ss.str(), nullptr, false);
    if (j.is_discarded() || !j.is_object() || !j.contains("weight_map") || !j["weight_map"].is_object())
      fail("{}: expected a JSON object with a 'weight_map' object", ip);
    std::set<std::string> shards;
    for (auto it = j["weight_map"].begin(); it != j["weight_map"].end(); ++it) {
      if (!it.value().is_string()) fail("{}: weight_map['{}'] must be a file name", ip, it.key());
      const std::string f = it.value().get<std::string>();
      if (f.find('/') != std::string::npos || f == "..")
        fail("{}: weight_map['{}'] names '{}', which is not a file in the model folder", ip, it.key(), f);
      shards.insert(f);
    }
    if (shards.empty()) fail("{}: weight_map is empty", ip);
    for (const auto& s : shards) files.push_back(std::make_unique<SafetensorsFile>((d / s).string()));
    // Every tensor must live in the shard the index names (catches mixed-up shard sets).
    for (auto it = j["weight_map"].begin(); it != j["weight_map"].end(); ++it) {
      bool found = false;
      for (const auto& f : files)
        if (fs::path(f->path()).filename() == it.value().get<std::string>() && f->find(it.key())) found = true;
      if (!found) fail("{}: tensor '{}' is not in shard '{}'", ip, it.key(), it.value().get<std::string>());
    }
  } else {
    fail("{}: no model.safetensors or model.safetensors.index.json", dir);
  }
  return bind_weights(std::move(files), cfg);
}

}  // namespace swift
