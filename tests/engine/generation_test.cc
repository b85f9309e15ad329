// The generation driver: EOS, stop strings (text cut before the stop, streamed text never shows
// a partial stop string), max tokens, context checks, abort from the callback.
#include "engine/generation.h"

#include <gtest/gtest.h>

#include "engine/ar_decoder.h"
#include "model_fixtures.h"
#include "util/check.h"

namespace swift {

namespace {

Model& mini() { return test::demo_model(); }

ThreadPool& pool() {
  static ThreadPool p(2);
  return p;
}

std::vector<int32_t> prompt() { return mini().tok().encode_with_specials("def fibonacci(n):\n"); }

GenerateResult gen(const GenerateOptions& o, const TextCallback& cb = nullptr) {
  ArDecoder d(mini(), o.sampling, pool());
  return generate(mini(), d, prompt(), o, pool(), cb);
}

}  // namespace

TEST(Generation, StopsAtLengthAndStreamsTheSameText) {
  GenerateOptions o;
  o.max_tokens = 40;
  std::string streamed;
  const auto r = gen(o, [&](const std::string& s) {
    streamed += s;
    return true;
  });
  EXPECT_EQ(r.finish_reason, "length");
  EXPECT_EQ(r.tokens.size(), 40u);
  EXPECT_EQ(streamed, r.text);
  EXPECT_EQ(r.text, mini().tok().decode(r.tokens));
}

TEST(Generation, StopStringCutsTextBeforeIt) {
  GenerateOptions o;
  o.max_tokens = 60;
  const auto full = gen(o);
  ASSERT_GT(full.text.size(), 30u);
  const std::string stop = full.text.substr(20, 6);  // a string that really occurs
  const size_t first = full.text.find(stop);
  o.stop = {"never appears here", stop};
  std::string streamed;
  const auto r = gen(o, [&](const std::string& s) {
    streamed += s;
    return true;
  });
  EXPECT_EQ(r.finish_reason, "stop");
  EXPECT_EQ(r.text, full.text.substr(0, first));
  EXPECT_EQ(streamed, r.text);  // the held-back prefix of the stop string was never printed
  EXPECT_LT(r.tokens.size(), full.tokens.size());
}

TEST(Generation, StopsAtEos) {
  GenerateOptions o;
  o.max_tokens = 30;
  const auto full = gen(o);
  const auto saved = mini().eos_ids;
  mini().eos_ids = {full.tokens[7]};  // pretend the 8th token is end-of-sequence
  const auto r = gen(o);
  mini().eos_ids = saved;
  EXPECT_EQ(r.finish_reason, "stop");
  const size_t at = std::find(full.tokens.begin(), full.tokens.end(), full.tokens[7]) - full.tokens.begin();
  EXPECT_EQ(r.tokens.size(), at + 1);  // the EOS id is reported, its text is not
  GenerateOptions ig = o;
  ig.ignore_eos = true;
  mini().eos_ids = {full.tokens[7]};
  const auto r2 = gen(ig);
  mini().eos_ids = saved;
  EXPECT_EQ(r2.tokens, full.tokens);
}

TEST(Generation, CallbackCanAbort) {
  GenerateOptions o;
  o.max_tokens = 50;
  int calls = 0;
  const auto r = gen(o, [&](const std::string&) { return ++calls < 3; });
  EXPECT_EQ(r.finish_reason, "abort");
  EXPECT_LT(r.tokens.size(), 50u);
}

TEST(Generation, RejectsPromptsThatDoNotFit) {
  GenerateOptions o;
  o.max_tokens = 2000;
  EXPECT_THROW(gen(o), Error);
  o.max_tokens = 10;
  o.n_ctx = 5;
  EXPECT_THROW(gen(o), Error);
  o.n_ctx = 0;
  ArDecoder d(mini(), o.sampling, pool());
  EXPECT_THROW(generate(mini(), d, {}, o, pool()), Error);
  EXPECT_THROW(generate(mini(), d, {1, 9000}, o, pool()), Error);
}

TEST(Generation, SamplingIsSeededAndRespectsTopK) {
  GenerateOptions o;
  o.max_tokens = 30;
  o.sampling.temperature = 1.0f;
  o.sampling.top_k = 1;  // top-k 1 is greedy whatever the temperature
  const auto a = gen(o);
  GenerateOptions g;
  g.max_tokens = 30;
  EXPECT_EQ(a.tokens, gen(g).tokens);
  o.sampling.top_k = 0;
  o.sampling.seed = 3;
  EXPECT_EQ(gen(o).tokens, gen(o).tokens);
}

}  // namespace swift
