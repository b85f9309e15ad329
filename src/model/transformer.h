// The decoder-only transformer shared by LLaMA, Mistral, Qwen2 and Qwen3:
//
//   x = embed(tokens)
//   for each layer l:
//     if (!plan.skip_attn[l]) x += Attn_l(RMSNorm(x))      // writes K/V to the batch's slots
//     if (!plan.skip_mlp[l])  x += MLP_l(RMSNorm(x))
//   logits = lm_head(RMSNorm(x))
//
// One forward() serves prefill, single-token decode, tree verification and drafting: the batch
// carries each token's position, the cache slot its K/V go to, and which earlier slots it may
// see (a shared prefix of committed slots plus a mask over the batch's own tokens). The skip
// plan is an explicit argument, never state of the model.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "model/config.h"
#include "model/kv_cache.h"
#include "model/skip_plan.h"
#include "model/weights.h"
#include "ops/attention.h"
#include "ops/rope.h"
#include "util/page_buffer.h"
#include "util/thread_pool.h"

namespace swift {

struct ForwardBatch {
  std::vector<int32_t> tokens;      // [n]
  std::vector<int32_t> positions;   // [n] rotary position of each token
  std::vector<int32_t> slots;       // [n] cache slot each token's K/V are written to
  int64_t n_prefix = 0;             // every token sees cache slots [0, n_prefix)
  std::vector<uint8_t> mask;        // [n, n] token i sees batch token j iff mask[i*n+j]; empty = causal
  std::vector<int32_t> logit_rows;  // batch rows whose logits are wanted, in output order
  // A prompt prefill: batches of at least kPrefillGemmMin tokens may use matmul_prefill, which
  // rounds differently from matmul() (ops/matmul.h). Never set for decode, verification or
  // drafting passes, whose results must not depend on how tokens are batched.
  bool prefill = false;
  static constexpr int64_t kPrefillGemmMin = 16;

  // Plain causal batch: tokens at positions/slots start..start+n-1 after `start` committed slots.
  static ForwardBatch causal(const std::vector<int32_t>& tokens, int64_t start, bool all_logits);
};

class Transformer {
 public:
  // Throws swift::Error when `math` cannot apply: MatMath::kBf16 without AVX-512 BF16 or without
  // any BF16 matrix in the model, MatMath::kQ8 without AVX2 integer products or without any matrix
  // that q8_dot_usable takes (Q8_0, Q4_0, Q4_K, Q5_K, Q6_K). MatMath::kAuto picks kQ8 or kF32
  // (model/weights.h); math() says which.
  Transformer(ModelConfig cfg, ModelWeights weights, MatMath math = MatMath::kF32);

  const ModelConfig& config() const { return cfg_; }
  MatMath math() const { return math_; }
  // "f32", "bf16 on AMX tiles", "bf16 with AVX-512 BF16 dot products" or "q8 (...)": the math and, for bf16,
  // the kernel the layers' matrices run (ops/bf16_amx.h: chosen by machine and matrix shape),
  // with ", attention on AMX tiles" (or "with AVX-512 BF16 dot products") when attention runs in bf16.
  std::string math_description() const;
  // Whether attention runs in bf16 (the KV cache then keeps K and V in bf16 only: half its bytes).
  bool bf16_attention() const { return bf16_attention_; }
  const ModelWeights& weights() const { return w_; }

  // Runs the batch; logits gets [batch.logit_rows.size(), vocab]. Throws swift::Error for token
  // ids outside the vocabulary or positions beyond the model's limits.
  // A causal batch (no mask; slots n_prefix, n_prefix + 1, ...: a prompt, a scored text) of more
  // than chunk_tokens() tokens (and a model without dynamic NTK rotary, whose angles depend on
  // the batch's largest position) runs as consecutive chunks of near-equal size (each at least half
  // of it: a prefill's chunks all take the prompt products, ForwardBatch::kPrefillGemmMin), each
  // chunk seeing the slots the ones before it wrote, as the whole batch would. Same bits: every
  // kernel is batch-invariant and a token's visible slots are the same list (tested). Why (issue
  // 6): the activations stay bounded by a chunk whatever the prompt's length (a 4,096-token
  // prompt held ~1.35 GB of them for a LLaMA-7B shape, 329 KB per token; a chunk ~169 MB), and
  // so do the slot lists (~34 MB for that prompt; at most ~8 MB per chunk). Cost: each chunk
  // reads the weights again (llama.cpp's micro-batches do too): for a 7B model in BF16, 13.5 GB
  // per chunk beside its ~7 T multiply-adds, a few percent of a long prefill.
  void forward(const ForwardBatch& batch, KvCache& cache, const SkipPlan& plan, ThreadPool& pool,
               std::vector<float>& logits);
  static constexpr int64_t kChunkTokens = 512;  // llama.cpp's default micro-batch (n_ubatch)
  int64_t chunk_tokens() const { return chunk_tokens_; }
  void set_chunk_tokens_for_test(int64_t n) { chunk_tokens_ = n; }
  // Passes the last forward() ran (1 unless it was chunked), for tests.
  int64_t last_chunks() const { return last_chunks_; }

 private:
  // One chunk (or a batch that is not chunked).
  void forward_batch(const ForwardBatch& batch, KvCache& cache, const SkipPlan& plan, ThreadPool& pool,
                     std::vector<float>& logits);
  void build_visibility(const ForwardBatch& b, const KvCache& cache);
  // Points the workspace arrays at room for n tokens, growing the arena when needed.
  void reserve_workspace(int64_t n);

  ModelConfig cfg_;
  ModelWeights w_;
  MatMath math_;
  // Attention in bf16 (ops/attention.h: attention_bf16, on AMX tiles or with vdpbf16ps) over the
  // cache's bf16 copy only: bf16 math in a build with AVX-512 BF16 and a head shape it takes.
  bool bf16_attention_ = false;
  // bf16 math: activations are rounded to bf16 by the op that produces them (norms, SwiGLU,
  // attention), in parallel where those are, for the bf16 products (ops/matmul.h:
  // matmul_rounded, on AMX tiles or with dot products) instead of by each product on one thread.
  bool rounded_ = false;
  // Whether the f32 normed rows (h_) and SwiGLU rows (g_) have a reader besides the bf16 products
  // (a matrix that is not BF16); when not, only their bf16 copies are written.
  bool h_f32_needed_ = true, g_f32_needed_ = true;
  std::vector<float> inv_freq_;  // [head_dim/2] for non-dynamic rope

  // Workspace: one huge-page arena (util/page_buffer.h), grown on demand and reused, so no
  // allocation per token in steady state. As std::vectors, a fresh process's first prefill (200
  // tokens) zero-filled ~3.5 MB of 4 KiB pages: ~850 page faults, ~25 ms in this VM, before the
  // first token. Growth goes to the next power of two up to a chunk (reserve_workspace): a new
  // arena's pages are zeroed again on first touch (`perf` put 7-9 ms of the bench's 442-token f32
  // prefill after a 300-token one there, Xeon VM; the bench's totals did not resolve the change).
  std::unique_ptr<PageBuffer> work_;
  int64_t chunk_tokens_ = kChunkTokens;
  int64_t last_chunks_ = 0;
  int64_t work_tokens_ = 0;  // tokens the arena has room for
  float* x_ = nullptr;       // [n, hidden] residual stream
  float* h_ = nullptr;       // [n, hidden] normed input of a sublayer
  float* q_ = nullptr;       // [n, q_dim]
  float* k_ = nullptr;       // [n, kv_dim]
  float* v_ = nullptr;       // [n, kv_dim]
  float* att_ = nullptr;     // [n, q_dim] attention output
  float* g_ = nullptr;       // [n, intermediate] SwiGLU gate, then silu(gate) * up
  float* u_ = nullptr;       // [n, intermediate] SwiGLU up (unfused matrices only)
  float* out_ = nullptr;     // [n, hidden] sublayer output
  float* fused_ = nullptr;   // [n, max(q_dim + 2 kv_dim, 2 intermediate)] output of fused matrices
  // bf16 copies for the bf16 products (rounded_ only):
  uint16_t* h16_ = nullptr;    // [n, hidden] of h_
  uint16_t* att16_ = nullptr;  // [n, q_dim] of att_
  uint16_t* g16_ = nullptr;    // [n, intermediate] of g_
  SlotLists vis_full_, vis_window_;
  RopeTable rope_;
};

}  // namespace swift
