#include "cli/bandwidth.h"

#include <algorithm>
#include <stdexcept>
#include <string>
#include <vector>

#include "util/timer.h"

namespace swift::cli {

double triad_gbps(ThreadPool& pool) {
  const int64_t n = 32ll << 20;  // 128 MiB per array
  std::vector<float> x(n, 1.0f), y(n, 2.0f), z(n, 0.0f);
  double best = 1e300;
  for (int rep = 0; rep < 5; ++rep) {
    const double t0 = now_ms();
    pool.parallel_for(n, [&](int64_t b, int64_t e, int) {
      for (int64_t i = b; i < e; ++i) z[i] = x[i] + 0.5f * y[i];
    });
    best = std::min(best, now_ms() - t0);
  }
  volatile float sink = z[n / 2];
  (void)sink;
  return 3.0 * 4.0 * static_cast<double>(n) / (best * 1e6);
}

uint64_t sum_words(const uint64_t* p, int64_t n) {
  uint64_t s[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int k = 0; k < 8; ++k) s[k] += p[i + k];
  for (; i < n; ++i) s[0] += p[i];
  return s[0] + s[1] + s[2] + s[3] + s[4] + s[5] + s[6] + s[7];
}

ReadProbe read_probe(ThreadPool& pool, int64_t bytes, int reps) {
  if (bytes < 1 || reps < 1)
    throw std::invalid_argument("read bandwidth probe of " + std::to_string(bytes) + " bytes, " + std::to_string(reps) +
                                " repetitions");
  const int64_t lines = bytes / 64 + (bytes % 64 != 0), n = lines * 8;  // words
  std::vector<uint64_t> buf(n);
  for (int64_t i = 0; i < n; ++i) buf[i] = static_cast<uint64_t>(i);
  // Chunks of whole cache lines per thread (a line split between chunks would be fetched by both
  // cores); each thread's sum in its own line.
  struct alignas(64) Sum {
    uint64_t v = 0;
  };
  std::vector<Sum> sums(pool.size());
  auto read = [&] {
    for (Sum& s : sums) s.v = 0;
    pool.parallel_for(lines,
                      [&](int64_t b, int64_t e, int t) { sums[t].v += sum_words(buf.data() + b * 8, (e - b) * 8); });
  };
  for (int w = 0; w < 3; ++w) read();  // into whichever cache level holds a buffer of this size
  double best = 1e300;
  for (int rep = 0; rep < reps; ++rep) {
    const double t0 = now_ms();
    read();
    best = std::min(best, now_ms() - t0);
  }
  ReadProbe r;
  for (const Sum& s : sums) r.checksum += s.v;  // used: the reads cannot be optimised away
  r.words = n;
  r.gbps = 8.0 * static_cast<double>(n) / (std::max(best, 1e-6) * 1e6);
  return r;
}

}  // namespace swift::cli
