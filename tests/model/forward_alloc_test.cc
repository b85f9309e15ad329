// No allocation on the per-token path (issue 6): after a warm-up, Transformer::forward of a
// decode step or a verification batch calls no global operator new, in f32 math and, where the
// CPU has it, bf16 math on AMX (thread-pool rounds and the attention hook are referenced, not
// copied: util/function_ref.h). Own binary: it replaces global operator new.
#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <new>

#include "model/model.h"
#include "ops/bf16_amx.h"
#include "test_util.h"

static std::atomic<bool> g_count{false};
static std::atomic<long> g_news{0};
void* operator new(size_t n) {
  if (g_count.load(std::memory_order_relaxed)) g_news.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(n == 0 ? 1 : n)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, size_t) noexcept { std::free(p); }

namespace swift {

TEST(ForwardAllocations, NonePerStepOnceWarm) {
  for (MatMath math : {MatMath::kF32, MatMath::kBf16}) {
    if (math == MatMath::kBf16 && !bf16_amx_available()) continue;
    auto model = load_model(test::model_path("swift-mini-24L"), math);
    Transformer& tf = *model->transformer;
    const int64_t L = model->config.n_layer;
    KvCache cache(model->config, 512);
    ThreadPool pool(2);
    // Other load on the cores can make the pool run rounds on the calling thread alone for a
    // while (util/thread_pool.h); a kernel's per-thread scratch then grows on the worker the first
    // time it sees a batch shape that appeared meanwhile, one allocation outside what this test
    // measures (seen here when the first passes were contended). The workers' run delay is held
    // at zero, so the pool keeps both threads whatever else runs.
    pool.set_run_delay_source_for_test([] { return int64_t{0}; });
    std::vector<float> logits;
    const std::vector<int32_t> prompt(40, 100);
    ForwardBatch pre = ForwardBatch::causal(prompt, 0, false);
    pre.prefill = true;
    tf.forward(pre, cache, SkipPlan::none(L), pool, logits);
    SkipPlan skip = SkipPlan::none(L);  // a draft's plan: the deferred residual adds across skips
    for (int64_t l = 1; l + 1 < L; l += 3) skip.skip_attn[l] = skip.skip_mlp[l + 1] = 1;
    for (int n : {1, 16}) {
      const ForwardBatch b = ForwardBatch::causal(std::vector<int32_t>(n, 42), 40, true);
      const SkipPlan full = SkipPlan::none(L);
      for (int i = 0; i < 3; ++i) tf.forward(b, cache, full, pool, logits), tf.forward(b, cache, skip, pool, logits);
      g_news = 0;
      g_count = true;
      for (int i = 0; i < 5; ++i) tf.forward(b, cache, full, pool, logits), tf.forward(b, cache, skip, pool, logits);
      g_count = false;
      EXPECT_EQ(g_news.load(), 0) << (math == MatMath::kBf16 ? "bf16" : "f32") << " math, " << n << " tokens";
    }
  }
}

}  // namespace swift
