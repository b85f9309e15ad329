// The GGUF reader against hostile files: a generator of malformed images (one defect each, the
// classes behind llama.cpp's GGUF CVEs) and every prefix truncation of a valid file. Each must be
// rejected with a swift::Error naming the field and a byte offset; none may crash (CI runs this
// under ASan + UBSan) or allocate more than the file's size while parsing.
#include <gtest/gtest.h>

#include <atomic>
#include <cstdio>
#include <cstring>
#include <cstdlib>
#include <functional>
#include <new>

#include "model/gguf.h"
#include "model/gguf_builder.h"
#include "util/check.h"

// Largest single allocation while `g_track` is set (global operator new of this test binary).
static std::atomic<bool> g_track{false};
static std::atomic<size_t> g_max_alloc{0};
void* operator new(size_t n) {
  if (g_track.load(std::memory_order_relaxed) && n > g_max_alloc.load(std::memory_order_relaxed)) g_max_alloc = n;
  if (void* p = std::malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, size_t) noexcept { std::free(p); }

namespace swift {

namespace {

using test::GgufSpec;
using test::kv_f32s;
using test::kv_str;
using test::kv_u32;
using test::kv_u64;

GgufSpec valid_spec() {
  GgufSpec s;
  s.kv = {kv_str("general.architecture", "test"), kv_u32("general.alignment", 32), kv_f32s("test.scores", {1, 2, 3})};
  s.tensors = {{"a", {8, 2}, 0, 0}, {"b", {16}, 1, 64}};  // F32 [2 x 8] = 64 bytes; F16 [16] = 32 bytes
  s.data_bytes = 96;  // ends exactly at the last tensor: any truncation cuts tensor data
  return s;
}

// With SWIFT_GGUF_CORPUS=dir, every file a test parses is also written there (fuzzer seeds).
void save_seed(const std::vector<uint8_t>& bytes) {
  static int n = 0;
  const char* dir = std::getenv("SWIFT_GGUF_CORPUS");
  if (!dir) return;
  const std::string path = std::string(dir) + "/seed_" + std::to_string(n++) + ".gguf";
  if (FILE* f = std::fopen(path.c_str(), "wb")) {
    std::fwrite(bytes.data(), 1, bytes.size(), f);
    std::fclose(f);
  }
}

// Parses with allocation tracking; returns the error message ("" if it parsed).
std::string parse_error(const std::vector<uint8_t>& bytes) {
  save_seed(bytes);
  g_max_alloc = 0;
  g_track = true;
  std::string msg;
  try {
    GgufFile::parse(bytes.data(), bytes.size(), "t.gguf");
  } catch (const Error& e) {
    msg = e.what();
  }
  g_track = false;
  // Bookkeeping (vectors of small structs, the message) may exceed a tiny file by a constant.
  EXPECT_LE(g_max_alloc.load(), bytes.size() + 4096) << "allocation larger than the file while parsing";
  return msg;
}

struct Case {
  const char* name;
  const char* needle;  // part of the expected message
  std::function<void(GgufSpec&)> spec;
  std::function<void(std::vector<uint8_t>&)> bytes = nullptr;
};

std::vector<uint8_t> str_kv_raw(const std::string& key, uint32_t type, const std::vector<uint8_t>& payload) {
  test::GgufBytes g;
  g.str(key).put(type).raw(payload);
  return g.b;
}

std::vector<Case> cases() {
  std::vector<Case> c;
  auto spec = [&](const char* name, const char* needle, std::function<void(GgufSpec&)> f) { c.push_back({name, needle, f}); };
  spec("bad magic", "magic", [](GgufSpec& s) { s.magic = 0x4c4c4747; });
  spec("version 1", "version", [](GgufSpec& s) { s.version = 1; });
  spec("version 4", "version", [](GgufSpec& s) { s.version = 4; });
  spec("huge tensor count", "tensor count", [](GgufSpec& s) { s.n_tensors_override = 1ull << 62; });
  spec("huge metadata count", "metadata count", [](GgufSpec& s) { s.n_kv_override = ~0ull - 1; });
  spec("metadata count past the end", "metadata", [](GgufSpec& s) { s.n_kv_override = 40; });
  spec("key length past the end", "key", [](GgufSpec& s) {
    test::GgufBytes g;
    g.put<uint64_t>(1000).put<uint32_t>(4);
    s.kv.push_back(g.b);
  });
  spec("key length 2^63", "key", [](GgufSpec& s) {
    test::GgufBytes g;
    g.put<uint64_t>(1ull << 63);
    s.kv.push_back(g.b);
  });
  spec("empty key", "empty", [](GgufSpec& s) { s.kv.push_back(kv_u32("", 1)); });
  spec("duplicate key", "duplicate metadata key", [](GgufSpec& s) { s.kv.push_back(kv_str("general.architecture", "x")); });
  spec("unknown value type", "unknown type 99", [](GgufSpec& s) { s.kv.push_back(str_kv_raw("k", 99, {0, 0, 0, 0})); });
  spec("string value past the end", "value of 'k'", [](GgufSpec& s) {
    test::GgufBytes p;
    p.put<uint64_t>(1ull << 40);
    s.kv.push_back(str_kv_raw("k", 8, p.b));
  });
  spec("unknown array element type", "unknown element type", [](GgufSpec& s) {
    test::GgufBytes p;
    p.put<uint32_t>(77).put<uint64_t>(1);
    s.kv.push_back(str_kv_raw("k", 9, p.b));
  });
  spec("array of arrays", "array of arrays", [](GgufSpec& s) {
    test::GgufBytes p;
    p.put<uint32_t>(9).put<uint64_t>(1);
    s.kv.push_back(str_kv_raw("k", 9, p.b));
  });
  spec("array count 2^62", "elements", [](GgufSpec& s) {
    test::GgufBytes p;
    p.put<uint32_t>(4).put<uint64_t>(1ull << 62);
    s.kv.push_back(str_kv_raw("k", 9, p.b));
  });
  spec("array elements past the end", "elements", [](GgufSpec& s) {
    test::GgufBytes p;
    p.put<uint32_t>(12).put<uint64_t>(1000);
    s.kv.push_back(str_kv_raw("k", 9, p.b));
  });
  spec("string array element past the end", "element", [](GgufSpec& s) {
    test::GgufBytes p;
    p.put<uint32_t>(8).put<uint64_t>(2).str("ok").put<uint64_t>(1ull << 35);
    s.kv.push_back(str_kv_raw("k", 9, p.b));
  });
  spec("bool value 2", "bool", [](GgufSpec& s) { s.kv.push_back(str_kv_raw("k", 7, {2})); });
  spec("bool array value 7", "bool", [](GgufSpec& s) {
    test::GgufBytes p;
    p.put<uint32_t>(7).put<uint64_t>(2).put<uint8_t>(1).put<uint8_t>(7);
    s.kv.push_back(str_kv_raw("k", 9, p.b));
  });
  spec("alignment typed u64", "general.alignment", [](GgufSpec& s) { s.kv[1] = kv_u64("general.alignment", 32); });
  spec("alignment 0", "power of two", [](GgufSpec& s) { s.kv[1] = kv_u32("general.alignment", 0); });
  spec("alignment 24", "power of two", [](GgufSpec& s) { s.kv[1] = kv_u32("general.alignment", 24); });
  spec("alignment 2^20", "power of two", [](GgufSpec& s) { s.kv[1] = kv_u32("general.alignment", 1u << 20); });
  c.push_back({"tensor name past the end", "tensor 1 name", [](GgufSpec&) {}, [](std::vector<uint8_t>& b) {
                 // Offset of tensor 1's info: the same file with tensor 0 only and no padding.
                 GgufSpec one = valid_spec();
                 one.tensors.resize(1);
                 one.n_tensors_override = 2;
                 one.alignment = 1;
                 one.data_bytes = 0;
                 const size_t at = one.build().size();
                 const uint64_t huge = 1ull << 40;
                 std::memcpy(b.data() + at, &huge, 8);
               }});
  spec("empty tensor name", "empty name", [](GgufSpec& s) { s.tensors[0].name = ""; });
  spec("duplicate tensor name", "duplicate tensor name", [](GgufSpec& s) { s.tensors[1].name = "a"; });
  spec("n_dims 0", "n_dims", [](GgufSpec& s) { s.tensors[0].n_dims_override = 0; s.tensors[0].ne.clear(); });
  spec("n_dims 5", "n_dims", [](GgufSpec& s) { s.tensors[0].ne = {1, 1, 1, 1, 8}; });
  spec("n_dims 2^31", "n_dims", [](GgufSpec& s) { s.tensors[0].n_dims_override = 1u << 31; });
  spec("dimension 0", "dimension 1", [](GgufSpec& s) { s.tensors[0].ne = {8, 0}; });
  spec("dimension 2^63", "dimension", [](GgufSpec& s) { s.tensors[0].ne = {8, 1ull << 63}; });
  spec("element count overflow", "element count overflows", [](GgufSpec& s) { s.tensors[0].ne = {1ull << 40, 1ull << 40}; });
  spec("byte size overflow", "byte size overflows", [](GgufSpec& s) { s.tensors[0].ne = {1ull << 62, 1}; });
  spec("unknown ggml type", "unknown ggml type 99", [](GgufSpec& s) { s.tensors[0].type = 99; });
  spec("row not a multiple of the block", "block size", [](GgufSpec& s) { s.tensors[0].type = 8; s.tensors[0].ne = {31, 2}; });
  spec("misaligned offset", "alignment", [](GgufSpec& s) { s.tensors[1].offset = 68; });
  spec("data past the end", "outside", [](GgufSpec& s) { s.tensors[1].offset = 4096; });
  spec("offset + size wraps", "outside", [](GgufSpec& s) { s.tensors[1].offset = ~0ull - 31; });
  spec("overlapping tensors", "overlap", [](GgufSpec& s) { s.tensors[1].offset = 32; });
  spec("data section past the end", "data section", [](GgufSpec& s) { s.data_bytes = 0; s.alignment = 1; });
  return c;
}

}  // namespace

TEST(GgufMalformed, ValidBaseFileParses) {
  const auto bytes = valid_spec().build();
  EXPECT_EQ(parse_error(bytes), "");
  const auto g = GgufFile::parse(bytes.data(), bytes.size(), "t.gguf");
  ASSERT_EQ(g->tensors().size(), 2u);
  EXPECT_EQ(g->get_string("general.architecture"), "test");
  const auto scores = g->numbers(*g->get_array("test.scores", GgufType::kF32));
  EXPECT_EQ(scores, (std::vector<double>{1, 2, 3}));
}

TEST(GgufMalformed, EveryDefectIsRejectedWithFieldAndOffset) {
  const auto all = cases();
  EXPECT_GE(all.size(), 30u);
  for (const auto& c : all) {
    GgufSpec s = valid_spec();
    c.spec(s);
    auto bytes = s.build();
    if (c.bytes) c.bytes(bytes);
    const std::string msg = parse_error(bytes);
    EXPECT_NE(msg, "") << c.name << ": accepted";
    if (std::getenv("SWIFT_SHOW")) std::printf("%-36s %s\n", c.name, msg.c_str());
    EXPECT_NE(msg.find(c.needle), std::string::npos) << c.name << ": " << msg;
    EXPECT_NE(msg.find("byte"), std::string::npos) << c.name << ": no byte offset in: " << msg;
  }
}

TEST(GgufMalformed, EveryTruncationIsRejected) {
  const auto bytes = valid_spec().build();
  for (size_t n = 0; n < bytes.size(); ++n) {
    const std::vector<uint8_t> cut(bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(n));
    const std::string msg = parse_error(cut);
    EXPECT_NE(msg, "") << "prefix of " << n << " bytes accepted";
    EXPECT_NE(msg.find("byte"), std::string::npos) << n << ": " << msg;
  }
}

TEST(GgufMalformed, TypedAccessNamesTheKey) {
  const auto bytes = valid_spec().build();
  const auto g = GgufFile::parse(bytes.data(), bytes.size(), "t.gguf");
  try {
    (void)g->get_int("general.architecture");
    FAIL() << "string read as integer";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("'general.architecture' at byte"), std::string::npos) << e.what();
  }
  EXPECT_THROW(g->get_array("test.scores", GgufType::kI32), Error);
  EXPECT_FALSE(g->get_int("missing.key").has_value());
}

}  // namespace swift
