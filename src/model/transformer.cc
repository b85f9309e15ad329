#include "model/transformer.h"

#include <algorithm>
#include <cmath>
#include <iterator>

#include "ops/attention.h"
#include "ops/bf16_amx.h"
#include "ops/bf16_dot.h"
#include "ops/elementwise.h"
#include "ops/matmul.h"
#include "ops/q8_dot.h"
#include "ops/rope.h"
#include "util/check.h"

namespace swift {

ForwardBatch ForwardBatch::causal(const std::vector<int32_t>& tokens, int64_t start, bool all_logits) {
  ForwardBatch b;
  const int64_t n = static_cast<int64_t>(tokens.size());
  b.tokens = tokens;
  b.n_prefix = start;
  for (int64_t i = 0; i < n; ++i) {
    b.positions.push_back(static_cast<int32_t>(start + i));
    b.slots.push_back(static_cast<int32_t>(start + i));
  }
  if (all_logits) {
    for (int64_t i = 0; i < n; ++i) b.logit_rows.push_back(static_cast<int32_t>(i));
  } else if (n > 0) {
    b.logit_rows.push_back(static_cast<int32_t>(n - 1));
  }
  return b;
}

namespace {

// Whether any layer matrix is one that `--math q8` multiplies (ops/q8_dot.h).
bool has_q8_matrices(const ModelWeights& w) {
  for (const LayerWeights& L : w.layers)
    for (const MatView* m : {&L.wq, &L.wk, &L.wv, &L.wo, &L.w_gate, &L.w_up, &L.w_down})
      if (q8_dot_usable(*m)) return true;
  return false;
}

// MatMath::kAuto's choice (model/weights.h).
MatMath resolve_math(MatMath math, const ModelWeights& w) {
  if (math != MatMath::kAuto) return math;
  return q8_dot_native() && has_q8_matrices(w) ? MatMath::kQ8 : MatMath::kF32;
}

}  // namespace

Transformer::Transformer(ModelConfig cfg, ModelWeights weights, MatMath requested)
    : cfg_(std::move(cfg)), w_(std::move(weights)), math_(resolve_math(requested, w_)) {
  const MatMath math = math_;
  if (math == MatMath::kBf16 && !bf16_dot_native())
    fail("bf16 math (--math bf16) needs AVX-512 BF16 instructions, which this CPU or build lacks; use --math f32");
  pack_weights(w_, math);
  if (math == MatMath::kBf16) {
    bool any = false;
    for (const LayerWeights& L : w_.layers) any = any || L.wq.layout == MatLayout::kPanel16Pairs;
    if (!any)
      fail("bf16 math (--math bf16) applies to BF16 weight matrices, and this model's are {}; use --math f32 or "
           "convert the model with `swiftllm convert MODEL OUT --type bf16`",
           w_.dtype_summary);
  }
  if (math == MatMath::kQ8) {
    if (!q8_dot_native())
      fail("q8 math (--math q8) needs AVX2 with FMA and F16C, which this CPU or build lacks; use --math f32");
    if (!has_q8_matrices(w_))
      fail("q8 math (--math q8) applies to Q8_0, Q4_0, Q4_K, Q5_K and Q6_K weight matrices, and this model's are {}; "
           "use --math f32 or convert the model with `swiftllm convert MODEL OUT.gguf --type q8_0` (or q4_0, q4_k, "
           "q6_k)",
           w_.dtype_summary);
  }
  inv_freq_ = rope_inv_freq(cfg_.rope, 0);
  // bf16 attention over a bf16-only KV cache under bf16 math, and under q8 math too, where the
  // products already round their activations (llama.cpp keeps an f16 cache for quantized models):
  // on the Zen 4 VM the Q4_K_M demo model decoded 1,333-1,432 -> 1,607-1,833 tokens/s and a
  // 16-token pass took 4.2-4.4 -> 3.4-3.5 ms, with top-1 agreement against f32 within 0.6% of
  // f32 attention's for every q8 type (tests/model/gguf_model_test.cc).
  bf16_attention_ = (math == MatMath::kBf16 || math == MatMath::kQ8) &&
                    attention_bf16_usable(cfg_.n_head, cfg_.n_kv_head, cfg_.head_dim);
  rounded_ = math == MatMath::kBf16;  // the constructor failed above without bf16_dot_native()
  if (rounded_) {
    // BF16 matrices (packed as pairs) take the rounded rows (matmul_rounded); others the f32 ones.
    auto takes = [](const MatView& m) { return !m.data || m.layout == MatLayout::kPanel16Pairs; };
    h_f32_needed_ = g_f32_needed_ = false;
    for (const LayerWeights& L : w_.layers) {
      for (const MatView* m : {&L.wqkv, &L.wq, &L.wk, &L.wv, &L.w_gate_up, &L.w_gate, &L.w_up})
        h_f32_needed_ = h_f32_needed_ || !takes(*m);
      g_f32_needed_ = g_f32_needed_ || !takes(L.w_down);
    }
  }
}

std::string Transformer::math_description() const {
  if (math_ == MatMath::kQ8) {
    std::string d = "q8 (Q8_0, Q4_0, Q4_K, Q5_K and Q6_K matrices times activations quantized to 8 bits";
#if defined(__AVX512VNNI__) && defined(__AVX512VL__)
    d += "; Q8_0, Q4_0 and the 8-row Q4_K and Q6_K with AVX-512 VNNI, Q5_K with 256-bit integer dot products)";
#elif defined(__AVXVNNI__)
    d += "; Q8_0 and Q4_0 with AVX-VNNI, the K-quants with AVX2 integer dot products)";
#else
    d += ", AVX2 integer dot products)";
#endif
    if (!bf16_attention_) return d + ", attention in f32";
    return d + (bf16_amx_available() ? ", attention on AMX tiles over a bf16 KV cache"
                                     : ", attention with AVX-512 BF16 dot products over a bf16 KV cache");
  }
  if (math_ == MatMath::kF32) {
    const MatView& m = w_.layers.empty() ? w_.lm_head : w_.layers[0].wo;
    if (!f32_amx_usable(m)) return "f32";
    return cfg_.head_dim % 64 == 0  // attention_f32_amx_usable's shape
               ? "f32 (prompt prefill on AMX tiles: products and attention, three bf16 parts per f32 operand)"
               : "f32 (prompt prefill on AMX tiles: products, three bf16 parts per activation)";
  }
  const MatView& m = w_.layers.empty() ? w_.lm_head : w_.layers[0].wo;
  std::string d = bf16_amx_usable(m) ? "bf16 on AMX tiles" : "bf16 with AVX-512 BF16 dot products";
  if (bf16_attention_)
    d += bf16_amx_available() ? ", attention on AMX tiles" : ", attention with AVX-512 BF16 dot products";
  return d;
}

namespace {

// Row-wise work (norms, SwiGLU, residual adds) over a batch of n tokens: split over the pool from
// kRowsParallelMin tokens on, where one pool round (~1 us here) costs less than the work (a
// 768-wide SwiGLU row is ~0.3 us); below it, on the calling thread. Rows are independent, so the
// results are the same bits either way.
constexpr int64_t kRowsParallelMin = 8;

template <typename F>
void for_rows(ThreadPool& pool, int64_t n, const F& f) {
  if (n < kRowsParallelMin) return f(int64_t{0}, n);
  pool.parallel_for(n, [&](int64_t b, int64_t e, int) { f(b, e); });
}

// Builds CSR lists of visible slots: prefix slots (filtered by the window) then batch tokens.
void fill_lists(const ForwardBatch& b, const KvCache& cache, int64_t window, SlotLists& out) {
  const int64_t n = static_cast<int64_t>(b.tokens.size());
  out.offsets.assign(1, 0);
  out.slots.clear();
  out.nested = window == 0 && b.mask.empty();  // token i: the prefix, then batch slots 0..i
  for (int64_t i = 0; i < n; ++i) {
    const int32_t qp = b.positions[i];
    for (int64_t s = 0; s < b.n_prefix; ++s) {
      if (window > 0 && !(cache.slot_pos(s) > qp - window)) continue;  // transformers: kv > q - window
      out.slots.push_back(static_cast<int32_t>(s));
    }
    for (int64_t j = 0; j < n; ++j) {
      const bool visible = b.mask.empty() ? j <= i : b.mask[i * n + j] != 0;
      if (!visible) continue;
      if (window > 0 && !(b.positions[j] > qp - window)) continue;
      out.slots.push_back(b.slots[j]);
    }
    out.offsets.push_back(static_cast<int64_t>(out.slots.size()));
  }
}

}  // namespace

void Transformer::reserve_workspace(int64_t n) {
  if (n <= work_tokens_) return;  // the arrays already point at room for n tokens
  const int64_t H = cfg_.hidden_size, I = cfg_.intermediate_size, qd = cfg_.q_dim(), kvd = cfg_.kv_dim();
  // Floats per token of each array, rounded up to 16 (64-byte aligned rows for every array).
  auto up16 = [](int64_t f) { return (f + 15) / 16 * 16; };
  // The last three: bf16 copies (two per float, widths even as bf16_round_rows_into writes them).
  const int64_t per_tok[] = {H, H, qd, kvd, kvd, qd, I, I, H, std::max(qd + 2 * kvd, 2 * I),
                             (H + 1) / 2 + 1, (qd + 1) / 2 + 1, (I + 1) / 2 + 1};
  int64_t tok_floats = 0;
  for (int64_t f : per_tok) tok_floats += up16(f);
  // At least one whole huge page (smaller blocks get 4 KiB pages), as many tokens as fit; else
  // the next power of two up to a chunk (a longer batch: n rounded up to 64), so that a process
  // grows its arena a few times at most (each growth zeroes a fresh arena's pages on first touch).
  constexpr int64_t kHugePage = int64_t{2} << 20;
  int64_t want = 64;
  while (want < n && want < chunk_tokens_) want *= 2;
  work_tokens_ = std::max(std::max(want, (n + 63) / 64 * 64), kHugePage / (tok_floats * 4));
  work_ = std::make_unique<PageBuffer>(static_cast<size_t>(std::max(work_tokens_ * tok_floats * 4, kHugePage)));
  float* p = reinterpret_cast<float*>(work_->data());
  float** arrays[] = {&x_, &h_, &q_, &k_, &v_, &att_, &g_, &u_, &out_, &fused_};
  size_t i = 0;
  for (; i < std::size(arrays); ++i) {
    *arrays[i] = p;
    p += up16(per_tok[i]) * work_tokens_;
  }
  for (uint16_t** a : {&h16_, &att16_, &g16_}) {
    *a = reinterpret_cast<uint16_t*>(p);
    p += up16(per_tok[i++]) * work_tokens_;
  }
}

void Transformer::build_visibility(const ForwardBatch& b, const KvCache& cache) {
  bool any_full = false;
  int64_t window = 0;
  for (int64_t w : cfg_.sliding_window) {
    if (w == 0) any_full = true;
    else window = w;  // all sliding layers of one model share one window size
  }
  if (any_full) fill_lists(b, cache, 0, vis_full_);
  if (window > 0) fill_lists(b, cache, window, vis_window_);
}

void Transformer::forward(const ForwardBatch& b, KvCache& cache, const SkipPlan& plan, ThreadPool& pool,
                          std::vector<float>& logits) {
  const int64_t n = static_cast<int64_t>(b.tokens.size());
  // Not with dynamic NTK rotary: its frequencies follow the batch's largest position
  // (transformers recomputes them per forward), so a chunk would rotate by other angles.
  bool chunked = b.mask.empty() && n > chunk_tokens_ && cfg_.rope.type != "dynamic" &&
                 static_cast<int64_t>(b.slots.size()) == n && static_cast<int64_t>(b.positions.size()) == n;
  for (int64_t i = 0; chunked && i < n; ++i) chunked = b.slots[i] == b.n_prefix + i;
  last_chunks_ = 1;
  if (!chunked) return forward_batch(b, cache, plan, pool, logits);
  // Near-equal chunks: ceil(n / chunk) of them, sizes differing by at most one token.
  const int64_t n_chunks = (n + chunk_tokens_ - 1) / chunk_tokens_;
  last_chunks_ = n_chunks;
  const int64_t V = cfg_.vocab_size, nr = static_cast<int64_t>(b.logit_rows.size());
  for (int32_t r : b.logit_rows) SWIFT_CHECK(r >= 0 && r < n, "logit row {} of {}", r, n);
  logits.resize(static_cast<size_t>(nr * V));
  ForwardBatch c;
  c.prefill = b.prefill;
  std::vector<float> part;
  std::vector<int64_t> out_index;  // where each of the chunk's logit rows goes in `logits`
  for (int64_t k = 0, s = 0; k < n_chunks; ++k) {
    const int64_t e = n * (k + 1) / n_chunks;
    c.tokens.assign(b.tokens.begin() + s, b.tokens.begin() + e);
    c.positions.assign(b.positions.begin() + s, b.positions.begin() + e);
    c.slots.assign(b.slots.begin() + s, b.slots.begin() + e);
    c.n_prefix = b.n_prefix + s;
    c.logit_rows.clear();
    out_index.clear();
    for (int64_t j = 0; j < nr; ++j)
      if (b.logit_rows[j] >= s && b.logit_rows[j] < e) {
        c.logit_rows.push_back(static_cast<int32_t>(b.logit_rows[j] - s));
        out_index.push_back(j);
      }
    forward_batch(c, cache, plan, pool, part);
    for (size_t j = 0; j < out_index.size(); ++j) std::copy_n(part.data() + j * V, V, logits.data() + out_index[j] * V);
    s = e;
  }
}

void Transformer::forward_batch(const ForwardBatch& b, KvCache& cache, const SkipPlan& plan, ThreadPool& pool,
                                std::vector<float>& logits) {
  const int64_t n = static_cast<int64_t>(b.tokens.size());
  const int64_t H = cfg_.hidden_size, I = cfg_.intermediate_size, V = cfg_.vocab_size;
  const int64_t qd = cfg_.q_dim(), kvd = cfg_.kv_dim(), hd = cfg_.head_dim;
  SWIFT_CHECK(static_cast<int64_t>(b.positions.size()) == n && static_cast<int64_t>(b.slots.size()) == n);
  SWIFT_CHECK(b.mask.empty() || static_cast<int64_t>(b.mask.size()) == n * n);
  SWIFT_CHECK(b.n_prefix >= 0 && b.n_prefix <= cache.n_slots());
  SWIFT_CHECK(static_cast<int64_t>(plan.skip_attn.size()) == cfg_.n_layer &&
              static_cast<int64_t>(plan.skip_mlp.size()) == cfg_.n_layer);
  int32_t max_pos = 0;
  for (int64_t i = 0; i < n; ++i) {
    if (b.tokens[i] < 0 || b.tokens[i] >= V) fail("token id {} is outside the vocabulary [0, {})", b.tokens[i], V);
    if (b.positions[i] < 0) fail("negative position {}", b.positions[i]);
    SWIFT_CHECK(b.slots[i] >= 0 && b.slots[i] < cache.n_slots(), "slot {} of {}", b.slots[i], cache.n_slots());
    max_pos = std::max(max_pos, b.positions[i]);
  }
  for (int32_t r : b.logit_rows) SWIFT_CHECK(r >= 0 && r < n);
  SWIFT_CHECK(static_cast<int64_t>(b.logit_rows.size()) <= n, "{} logit rows for {} tokens", b.logit_rows.size(), n);
  logits.resize(b.logit_rows.size() * V);
  if (n == 0) return;

  const std::vector<float>* inv_freq = &inv_freq_;
  std::vector<float> dyn;
  if (cfg_.rope.type == "dynamic") {  // transformers recomputes per forward from max(position)+1
    dyn = rope_inv_freq(cfg_.rope, static_cast<int64_t>(max_pos) + 1);
    inv_freq = &dyn;
  }

  rope_table(b.positions.data(), n, *inv_freq, rope_);
  if (bf16_attention_) cache.enable_bf16_only();  // once per cache: bf16 attention reads nothing else
  for (int64_t i = 0; i < n; ++i) cache.set_slot_pos(b.slots[i], b.positions[i]);
  build_visibility(b, cache);

  reserve_workspace(n);
  float *x = x_, *h = h_, *q = q_, *k = k_, *v = v_;
  float *att = att_, *g = g_, *u = u_, *out = out_;

  for (int64_t i = 0; i < n; ++i) mat_row_to_f32(w_.embed, b.tokens[i], x + i * H);

  auto bias = [](const std::vector<float>& bv) { return bv.empty() ? nullptr : bv.data(); };
  const bool gemm = b.prefill && n >= ForwardBatch::kPrefillGemmMin;
  // in16: in rounded to bf16 by its producer (rounded_), or null.
  const bool q8 = math_ == MatMath::kQ8;
  // next: the weights of the product that runs after this one (a prefetch hint, ops/matmul.h).
  auto linear = [&](const MatView& w, const float* in, const uint16_t* in16, float* o, const float* bs,
                    NextWeights next) {
    if (q8 && q8_dot_usable(w))
      matmul_q8(w, in, n, o, bs, pool);
    else if (in16 && w.layout == MatLayout::kPanel16Pairs)
      matmul_rounded(w, in16, n, o, bs, pool, next);
    else if (gemm)
      matmul_prefill(w, in, n, o, bs, pool);
    else
      matmul(w, in, n, o, bs, pool, next);
  };
  // Products of one input that are not one matrix (llama.cpp's Q4_K_M: V in Q6_K in some layers;
  // Q8_0 rows in place): under q8 math one activation quantization and one pool round for all.
  auto linear_each = [&](std::initializer_list<Q8Part> parts, const float* in, const uint16_t* in16, NextWeights next) {
    bool all_q8 = q8;
    for (const Q8Part& p : parts) all_q8 = all_q8 && q8_dot_usable(*p.w);
    if (all_q8) return matmul_q8_parts({parts.begin(), parts.size()}, in, n, pool);
    for (const Q8Part* p = parts.begin(); p != parts.end(); ++p)
      linear(*p->w, in, in16, p->y, p->bias, p + 1 != parts.end() ? next_weights(*p[1].w) : next);
  };
  // The product that follows each sublayer under `plan`: the first one of the next sublayer the
  // plan runs, else the output head; after the head, the first product of the next forward
  // (a guess: the same plan).
  auto first_product = [&](int64_t l, bool mlp) -> const MatView& {
    const LayerWeights& L = w_.layers[l];
    if (mlp) return L.w_gate_up.data ? L.w_gate_up : L.w_gate;
    return L.wqkv.data ? L.wqkv : L.wq;
  };
  auto next_after = [&](int64_t sub) -> NextWeights {  // sublayer index: 2 l (attention), 2 l + 1 (MLP)
    for (int64_t s = sub + 1; s < 2 * cfg_.n_layer; ++s)
      if (!(s % 2 ? plan.skip_mlp[s / 2] : plan.skip_attn[s / 2])) return next_weights(first_product(s / 2, s % 2));
    return next_weights(w_.lm_head);
  };
  uint16_t* h16 = rounded_ ? h16_ : nullptr;
  uint16_t* att16 = rounded_ ? att16_ : nullptr;
  uint16_t* g16 = rounded_ ? g16_ : nullptr;
  const int64_t w_h = (H + 1) / 2 * 2, w_i = (I + 1) / 2 * 2;  // bf16 row widths
  // h = RMSNorm(x) with weight w; x += out. Row-wise, split over the pool for large batches. The
  // residual add is deferred to the next norm's round (x += out, then the norm of the same rows
  // while they are in L1): one pool round per sublayer instead of two (~1 us each on the 2-core
  // Xeon, 48 per 16-token pass of swift-mini-24L).
  bool add_pending = false;  // x += out not yet done
  auto norm = [&](const std::vector<float>& w) {
    const bool add = add_pending;
    add_pending = false;
    for_rows(pool, n, [&](int64_t r0, int64_t r1) {
      if (add) add_inplace(x + r0 * H, out + r0 * H, (r1 - r0) * H);
      if (h16)
        rmsnorm_bf16(x + r0 * H, w.data(), r1 - r0, H, cfg_.rms_eps, h_f32_needed_ ? h + r0 * H : nullptr,
                     h16 + r0 * w_h);
      else
        rmsnorm(x + r0 * H, w.data(), r1 - r0, H, cfg_.rms_eps, h + r0 * H);
    });
  };
  auto residual_add = [&] { add_pending = true; };
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
  for (int64_t l = 0; l < cfg_.n_layer; ++l) {
    const LayerWeights& L = w_.layers[l];
    if (!plan.skip_attn[l]) {
      norm(L.attn_norm);
      // Q, K, V rows: from one pass over the packed Q|K|V matrix (weights.h) they stay in the
      // fused rows (stride q_dim + 2 kv_dim), rotary reading Q and K from there and the cache taking V as is.
      const float *q_src = q, *k_src = k, *v_src = v;
      int64_t q_stride = qd, k_stride = kvd, v_stride = kvd;  // row strides of the sources
      if (L.wqkv.data) {
        linear(L.wqkv, h, h16, fused_, bias(L.bqkv), next_weights(L.wo));
        q_src = fused_, k_src = fused_ + qd, v_src = fused_ + qd + kvd;
        q_stride = k_stride = v_stride = qd + 2 * kvd;
      } else {
        linear_each({{&L.wq, q, bias(L.bq)}, {&L.wk, k, bias(L.bk)}, {&L.wv, v, bias(L.bv)}}, h, h16,
                    next_weights(L.wo));
      }
      if (cfg_.qk_norm) {  // Qwen3: RMSNorm over each head before rotary, in q and k
        for (int64_t i = 0; q_src != q && i < n; ++i) {
          std::copy_n(q_src + i * q_stride, qd, q + i * qd);
          std::copy_n(k_src + i * k_stride, kvd, k + i * kvd);
        }
        rmsnorm(q, L.q_norm.data(), n * cfg_.n_head, hd, cfg_.rms_eps, q);
        rmsnorm(k, L.k_norm.data(), n * cfg_.n_kv_head, hd, cfg_.rms_eps, k);
        q_src = q, k_src = k, q_stride = qd, k_stride = kvd;
      }
      // Rotary for the query heads of KV head h and its key head, then the batch's K and V rows of
      // head h into the cache: run by the attention kernel per KV head on the pool's threads.
      const int64_t G = cfg_.n_head / cfg_.n_kv_head;
      auto prepare_head = [&](int64_t h) {
        rope_apply_to(q_src + h * G * hd, q_stride, q + h * G * hd, qd, n, G, hd, rope_);
        rope_apply_to(k_src + h * hd, k_stride, k + h * hd, kvd, n, 1, hd, rope_);
        for (int64_t i = 0; i < n; ++i)
          cache.store_head(l, b.slots[i], h, k + i * kvd + h * hd, v_src + i * v_stride + h * hd);
      };
      const FunctionRef<void(int64_t)> prepare = prepare_head;
      AttentionArgs a;
      a.q = q, a.n_tok = n, a.n_head = cfg_.n_head, a.n_kv_head = cfg_.n_kv_head;
      if (!bf16_attention_) a.k = cache.k(l), a.v = cache.v(l);  // else the bf16 copy only
      a.kv_row_stride = hd, a.kv_head_stride = cache.head_stride();
      a.head_dim = hd, a.scale = scale, a.out = att;
      a.visible = cfg_.sliding_window[l] > 0 ? &vis_window_ : &vis_full_;
      a.prepare = &prepare;
      if (bf16_attention_) {  // it also writes att rounded (q_dim is a multiple of 64: no pad column)
        a.k16 = cache.k16(l), a.v16 = cache.v16(l), a.kv16_head_stride = cache.head_stride16(), a.out16 = att16;
        attention_bf16(a, pool);
      } else if (gemm && attention_f32_amx_usable(a)) {  // prompt prefill: not batch-invariant
        attention_f32_amx(a, pool);
      } else {
        attention(a, pool);
      }
      linear(L.wo, att, bf16_attention_ ? att16 : nullptr, out, bias(L.bo), next_after(2 * l));
      residual_add();
    }
    if (!plan.skip_mlp[l]) {
      norm(L.mlp_norm);
      if (g16 && L.w_gate_up.data && swiglu_rounded_usable(L.w_gate_up, n)) {  // SiLU on the product's tiles
        matmul_swiglu_rounded(L.w_gate_up, h16, n, g_f32_needed_ ? g : nullptr, g16, bias(L.b_gate_up), pool,
                              next_weights(L.w_down));
      } else if (L.w_gate_up.data) {  // one pass over the packed gate|up rows
        linear(L.w_gate_up, h, h16, fused_, bias(L.b_gate_up), next_weights(L.w_down));
        for_rows(pool, n, [&](int64_t r0, int64_t r1) {
          for (int64_t i = r0; i < r1; ++i) {
            const float *gi = fused_ + i * 2 * I, *ui = gi + I;
            if (g16) silu_mul_bf16(gi, ui, I, g_f32_needed_ ? g + i * I : nullptr, g16 + i * w_i);
            else silu_mul(gi, ui, I, g + i * I);
          }
        });
      } else {
        linear_each({{&L.w_gate, g, bias(L.b_gate)}, {&L.w_up, u, bias(L.b_up)}}, h, h16, next_weights(L.w_down));
        for (int64_t i = 0; i < n; ++i) {
          if (g16) silu_mul_bf16(g + i * I, u + i * I, I, g + i * I, g16 + i * w_i);
          else silu_mul(g + i * I, u + i * I, I, g + i * I);
        }
      }
      linear(L.w_down, g, g16, out, bias(L.b_down), next_after(2 * l + 1));
      residual_add();
    }
  }
  const int64_t nr = static_cast<int64_t>(b.logit_rows.size());
  for (int64_t r = 0; r < nr; ++r) {
    const float* xr = x + b.logit_rows[r] * H;
    if (add_pending) {  // the last sublayer's residual, into h (x untouched: a row may be listed twice)
      const float* o = out + b.logit_rows[r] * H;
      float* hr = h + r * H;
      for (int64_t i = 0; i < H; ++i) hr[i] = xr[i] + o[i];
      xr = hr;
    }
    rmsnorm(xr, w_.final_norm.data(), 1, H, cfg_.rms_eps, h + r * H);  // in place when added
  }
  if (q8 && q8_dot_usable(w_.lm_head))
    matmul_q8(w_.lm_head, h, nr, logits.data(), nullptr, pool);
  else
    matmul(w_.lm_head, h, nr, logits.data(), nullptr, pool, next_after(-1));
}

}  // namespace swift
