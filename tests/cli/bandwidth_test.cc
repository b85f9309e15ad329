// The read probe of `bench --roofline` (cli/bandwidth.h): it must read every word of its buffer
// exactly once per pass whatever the split (a chunking bug would inflate the bandwidth it
// reports), and reject sizes it cannot measure.
#include "cli/bandwidth.h"

#include <gtest/gtest.h>

#include <cmath>
#include <stdexcept>
#include <string>
#include <vector>

namespace swift::cli {
namespace {

TEST(Bandwidth, SumWordsAddsEveryWordWhateverTheTail) {
  std::vector<uint64_t> w(77);
  for (size_t i = 0; i < w.size(); ++i) w[i] = (i + 1) * 0x9E3779B97F4A7C15ull;  // wraps modulo 2^64
  for (int64_t n = 0; n <= 77; ++n) {
    uint64_t want = 0;
    for (int64_t i = 0; i < n; ++i) want += w[i];
    EXPECT_EQ(sum_words(w.data(), n), want) << n << " words";
  }
}

TEST(Bandwidth, ReadProbeReadsEachWordOnceOnAnyThreadCount) {
  for (int threads : {1, 2, 3})
    for (int64_t bytes : {1, 63, 64, 65, 1000, 4096 * 3 + 8, 1 << 20}) {
      ThreadPool pool(threads);
      const ReadProbe r = read_probe(pool, bytes, 2);
      const int64_t n = (bytes + 63) / 64 * 8;  // whole lines of 8 words
      EXPECT_EQ(r.words, n) << bytes;
      EXPECT_EQ(r.checksum, static_cast<uint64_t>(n) * static_cast<uint64_t>(n - 1) / 2)
          << bytes << " bytes, " << threads << " threads";
      EXPECT_TRUE(std::isfinite(r.gbps) && r.gbps > 0) << r.gbps;
    }
}

TEST(Bandwidth, ReadProbeRejectsWhatItCannotMeasure) {
  ThreadPool pool(2);
  for (auto [bytes, reps] : {std::pair<int64_t, int>{0, 3}, {-5, 3}, {64, 0}}) {
    try {
      read_probe(pool, bytes, reps);
      ADD_FAILURE() << bytes << " bytes, " << reps << " reps accepted";
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find(std::to_string(bytes) + " bytes, " + std::to_string(reps) + " repetitions"),
                std::string::npos)
          << e.what();
    }
  }
}

}  // namespace
}  // namespace swift::cli
