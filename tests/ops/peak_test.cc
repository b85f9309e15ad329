// The arithmetic peak probes of `bench --roofline` (ops/peak.h): a plausible figure for every
// unit this build has, none for the others.
#include "ops/peak.h"

#include <gtest/gtest.h>

#include <string>

namespace swift {

TEST(PeakProbe, MeasuresAPlausibleRateForEveryUnitThisBuildHas) {
  // Bounds per thread, wide enough for any x86 core at any load: at least one 256-bit FMA per
  // 16 ns (1 G ops/s: a loaded 1 GHz core still does 16), at most 2,000 G ops/s (two 512-bit
  // VNNI instructions per cycle at 8 GHz would be 2,048; no core comes near). A wrong count of
  // operations per instruction, of instructions, or of seconds lands outside by orders of magnitude.
  for (int threads : {1, 2}) {
    ThreadPool pool(threads);
    for (PeakUnit u : {PeakUnit::kF32Fma, PeakUnit::kBf16Dot, PeakUnit::kInt8Dot}) {
      const double g = peak_gops(u, pool);
      SCOPED_TRACE(std::string(peak_unit_name(u)) + ", threads " + std::to_string(threads));
      if (!peak_unit_native(u)) {
        EXPECT_EQ(g, 0.0);
        continue;
      }
      EXPECT_GT(g, 1.0);
      EXPECT_LT(g, 2000.0 * threads);
    }
  }
}

}  // namespace swift
