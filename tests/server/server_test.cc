// End-to-end tests of `swiftllm serve` over loopback HTTP: OpenAI completions and chat,
// streaming (SSE) and not, stop strings, usage, greedy output equal to `swiftllm generate`,
// SWIFT/hybrid/AR identical, concurrency, disconnects, authentication, and a table of hostile
// requests that must each get a 4xx while the server stays healthy.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cstdio>
#include <future>
#include <nlohmann/json.hpp>

#include "server_fixture.h"
#include "test_util.h"

namespace swift {
namespace {

using nlohmann::json;
const char* kKey = "test-key-0123456789";

test::ServerProcess& server() {
  // One server for the suite: API key on, chat template llama2 (the demo model has none),
  // 2 slots, 1 s read timeout (slowloris test), context 256 (context tests).
  static test::ServerProcess s({"--api-key", kKey, "--chat-template", "llama2", "--parallel", "2", "--read-timeout",
                                "1", "--ctx-size", "256", "-q"});
  return s;
}

struct Reply {
  int status = 0;
  std::string body;
  json j() const { return json::parse(body, nullptr, false); }
};

Reply request(const std::string& method, const std::string& path, const std::string& body = "",
              const std::string& key = kKey) {
  httplib::Client c("127.0.0.1", server().port());
  c.set_read_timeout(120, 0);
  httplib::Headers h;
  if (!key.empty()) h.emplace("Authorization", "Bearer " + key);
  httplib::Result r = method == "GET" ? c.Get(path.c_str(), h) : c.Post(path.c_str(), h, body, "application/json");
  if (!r) return {0, "transport error " + httplib::to_string(r.error())};
  return {r->status, r->body};
}
Reply post(const std::string& path, const json& body, const std::string& key = kKey) {
  return request("POST", path, body.dump(), key);
}

// Sends raw bytes, returns everything the server sends back until it closes (or timeout_s).
std::string raw(const std::string& bytes, int timeout_s = 10, int pause_ms = 0) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(server().port()));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    ::close(fd);
    return "connect failed";
  }
  timeval tv{timeout_s, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  size_t sent = 0;
  while (sent < bytes.size()) {
    const ssize_t n = ::send(fd, bytes.data() + sent, std::min<size_t>(bytes.size() - sent, 1 << 16), MSG_NOSIGNAL);
    if (n <= 0) break;  // the server may close early (413)
    sent += static_cast<size_t>(n);
  }
  if (pause_ms) std::this_thread::sleep_for(std::chrono::milliseconds(pause_ms));
  std::string out;
  char buf[4096];
  for (ssize_t n; (n = ::recv(fd, buf, sizeof(buf), 0)) > 0;) out.append(buf, static_cast<size_t>(n));
  ::close(fd);
  return out;
}

int status_of(const std::string& http) {
  if (http.rfind("HTTP/1.1 ", 0) != 0) return 0;
  return std::atoi(http.c_str() + 9);
}

// Text, finish_reason and final chunk of an SSE body; checks the framing.
struct Stream {
  std::string text, finish_reason;
  json last;
  bool done = false;
  int chunks = 0;
};
Stream parse_sse(const std::string& body, bool chat) {
  Stream s;
  std::stringstream ss(body);
  std::string line;
  while (std::getline(ss, line)) {
    if (line.empty() || line[0] == ':') continue;
    EXPECT_EQ(line.rfind("data: ", 0), 0u) << line;
    const std::string payload = line.substr(6);
    if (payload == "[DONE]") {
      s.done = true;
      continue;
    }
    EXPECT_FALSE(s.done) << "data after [DONE]";
    const json j = json::parse(payload);
    const json& c = j["choices"][0];
    s.text += chat ? c["delta"].value("content", "") : c.value("text", "");
    if (!c["finish_reason"].is_null()) {
      s.finish_reason = c["finish_reason"];
      s.last = j;
    }
    ++s.chunks;
  }
  return s;
}

json generate_cli(const std::string& prompt, int n, const std::string& mode) {
  const std::string file = "/tmp/swiftllm_server_test_prompt.txt";
  std::ofstream(file) << prompt;
  const std::string cmd = std::string(SWIFT_CLI) + " generate -m " + SWIFT_MODELS_DIR +
                          "/swift-mini-24L -f " + file + " -n " + std::to_string(n) + " --temp 0 -t 2 --json --decode " +
                          mode + " 2>/dev/null";
  FILE* p = ::popen(cmd.c_str(), "r");
  std::string out;
  char buf[4096];
  for (size_t n_read; (n_read = std::fread(buf, 1, sizeof(buf), p)) > 0;) out.append(buf, n_read);
  ::pclose(p);
  return json::parse(out);
}

std::vector<std::string> code_prompts(size_t n) {
  std::vector<std::string> out;
  std::ifstream in(test::data_path("code.jsonl"));
  for (std::string line; std::getline(in, line) && out.size() < n;) {
    std::string t = json::parse(line)["text"];
    out.push_back(t.substr(t.size() > 300 ? t.size() - 300 : 0));  // fits the 256-token test context
  }
  return out;
}

TEST(Server, HealthModelsAndMetrics) {
  const Reply h = request("GET", "/health", "", "");  // public
  ASSERT_EQ(h.status, 200) << h.body;
  EXPECT_EQ(h.j()["status"], "ok");
  const Reply m = request("GET", "/v1/models");
  ASSERT_EQ(m.status, 200);
  EXPECT_EQ(m.j()["data"][0]["id"], "swift-mini-24L");
  EXPECT_EQ(m.j()["data"][0]["meta"]["n_ctx"], 256);
  const Reply met = request("GET", "/metrics");
  ASSERT_EQ(met.status, 200);
  for (const char* k : {"swiftllm_requests_total", "swiftllm_generated_tokens_total", "swiftllm_acceptance_rate",
                        "swiftllm_slots_active", "swiftllm_decode_tokens_per_second", "swiftllm_pool_rounds_total",
                        "swiftllm_pool_contended_rounds_total", "swiftllm_pool_serial_rounds_total"})
    EXPECT_NE(met.body.find(k), std::string::npos) << k;
}

TEST(Server, GreedyCompletionEqualsGenerateInEveryMode) {
  for (const std::string& prompt : code_prompts(2)) {
    const json cli = generate_cli(prompt, 40, "ar");
    for (const char* mode : {"hybrid", "swift", "ar", "lookup"}) {
      const Reply r = post("/v1/completions", {{"prompt", prompt}, {"max_tokens", 40}, {"temperature", 0}, {"decode", mode}});
      ASSERT_EQ(r.status, 200) << r.body;
      const json j = r.j();
      EXPECT_EQ(j["choices"][0]["text"], cli["text"]) << mode;
      EXPECT_EQ(j["usage"]["completion_tokens"], cli["tokens"].size()) << mode;
      EXPECT_EQ(j["usage"]["prompt_tokens"], cli["stats"]["prompt_tokens"]) << mode;
      EXPECT_EQ(j["usage"]["total_tokens"], j["usage"]["prompt_tokens"].get<int>() + j["usage"]["completion_tokens"].get<int>());
      EXPECT_EQ(j["object"], "text_completion");
      EXPECT_EQ(j["swift"]["decode"], mode);
      EXPECT_TRUE(j["swift"].contains("acceptance_rate"));
      EXPECT_TRUE(j["swift"].contains("accepted_tokens_per_step"));
    }
  }
}

TEST(Server, StreamingEqualsNonStreaming) {
  const std::string prompt = code_prompts(1)[0];
  const json body = {{"prompt", prompt}, {"max_tokens", 32}, {"temperature", 0}};
  const Reply plain = post("/v1/completions", body);
  ASSERT_EQ(plain.status, 200);
  json sb = body;
  sb["stream"] = true;
  const Reply streamed = post("/v1/completions", sb);
  ASSERT_EQ(streamed.status, 200) << streamed.body;
  const Stream s = parse_sse(streamed.body, false);
  EXPECT_TRUE(s.done);
  EXPECT_GT(s.chunks, 2);
  EXPECT_EQ(s.text, plain.j()["choices"][0]["text"]);
  EXPECT_EQ(s.finish_reason, plain.j()["choices"][0]["finish_reason"]);
  EXPECT_EQ(s.last["usage"], plain.j()["usage"]);
}

TEST(Server, StopStringsAndFinishReasons) {
  const std::string prompt = code_prompts(1)[0];
  const Reply full = post("/v1/completions", {{"prompt", prompt}, {"max_tokens", 40}, {"temperature", 0}});
  const std::string text = full.j()["choices"][0]["text"];
  ASSERT_GT(text.size(), 20u);
  const std::string stop = text.substr(text.size() / 2, 3);  // a stop string the model will produce
  for (bool stream : {false, true}) {
    const Reply r = post("/v1/completions",
                         {{"prompt", prompt}, {"max_tokens", 40}, {"temperature", 0}, {"stop", {"never-seen", stop}}, {"stream", stream}});
    ASSERT_EQ(r.status, 200) << r.body;
    const std::string got = stream ? parse_sse(r.body, false).text : r.j()["choices"][0]["text"].get<std::string>();
    const std::string reason = stream ? parse_sse(r.body, false).finish_reason : r.j()["choices"][0]["finish_reason"].get<std::string>();
    EXPECT_EQ(got, text.substr(0, text.find(stop))) << stream;
    EXPECT_EQ(reason, "stop");
  }
  EXPECT_EQ(full.j()["choices"][0]["finish_reason"], "length");
}

TEST(Server, ChatCompletionsWithTemplate) {
  const json msgs = json::array({{{"role", "system"}, {"content", "Write Python."}},
                                 {{"role", "user"}, {"content", "def add(a, b):"}}});
  const Reply r = post("/v1/chat/completions", {{"messages", msgs}, {"max_tokens", 24}, {"temperature", 0}});
  ASSERT_EQ(r.status, 200) << r.body;
  const json j = r.j();
  EXPECT_EQ(j["object"], "chat.completion");
  EXPECT_EQ(j["choices"][0]["message"]["role"], "assistant");
  const Reply s = post("/v1/chat/completions", {{"messages", msgs}, {"max_tokens", 24}, {"temperature", 0}, {"stream", true}});
  ASSERT_EQ(s.status, 200);
  const Stream st = parse_sse(s.body, true);
  EXPECT_EQ(st.text, j["choices"][0]["message"]["content"]);
  EXPECT_EQ(st.last["object"], "chat.completion.chunk");
  EXPECT_EQ(st.last["usage"]["prompt_tokens"], j["usage"]["prompt_tokens"]);
  // The prompt is the llama2 rendering: "<s>[INST] <<SYS>>\n...": compare with the CLI's tokens.
  // A template that refuses the conversation: 400 with its message.
  const Reply bad = post("/v1/chat/completions",
                         {{"messages", json::array({{{"role", "user"}, {"content", "a"}}, {{"role", "user"}, {"content", "b"}}})}});
  EXPECT_EQ(bad.status, 400);
  EXPECT_NE(bad.body.find("Conversation roles must alternate"), std::string::npos) << bad.body;
  // Text parts are accepted as content.
  const Reply parts = post("/v1/chat/completions",
                           {{"messages", json::array({{{"role", "user"},
                                                       {"content", json::array({{{"type", "text"}, {"text", "def add(a, b):"}}})}}})},
                            {"max_tokens", 4}});
  EXPECT_EQ(parts.status, 200) << parts.body;
}

TEST(Server, ConcurrentRequestsGiveTheSequentialResults) {
  const auto prompts = code_prompts(4);
  std::vector<std::string> expected;
  for (const auto& p : prompts)
    expected.push_back(post("/v1/completions", {{"prompt", p}, {"max_tokens", 24}, {"temperature", 0}}).j()["choices"][0]["text"]);
  std::vector<std::future<Reply>> futures;
  for (int round = 0; round < 2; ++round)
    for (const auto& p : prompts)
      futures.push_back(std::async(std::launch::async, [p, round] {
        return post("/v1/completions", {{"prompt", p}, {"max_tokens", 24}, {"temperature", 0}, {"stream", round == 1}});
      }));
  for (size_t i = 0; i < futures.size(); ++i) {
    const Reply r = futures[i].get();
    ASSERT_EQ(r.status, 200) << r.body;
    const std::string text = i >= prompts.size() ? parse_sse(r.body, false).text : r.j()["choices"][0]["text"].get<std::string>();
    EXPECT_EQ(text, expected[i % prompts.size()]) << i;
  }
}

TEST(Server, DisconnectFreesTheSlot) {
  // Own server with the full context: a 1,000-token generation runs long enough to hang up in.
  test::ServerProcess own({"-q", "--parallel", "1"});
  auto metric = [&](const std::string& name) {
    httplib::Client c("127.0.0.1", own.port());
    auto r = c.Get("/metrics");
    const std::string body = r ? r->body : "";
    const size_t at = body.find("\n" + name + " ");
    return at == std::string::npos ? -1.0 : std::stod(body.substr(at + name.size() + 2));
  };
  const double aborted_before = metric("swiftllm_requests_aborted_total");
  const json body = {{"prompt", "def f(x):"}, {"max_tokens", 1000}, {"temperature", 0}, {"stream", true},
                     {"decode", "ar"}, {"ignore_eos", true}};
  const std::string text = body.dump();
  // Read the first bytes of the stream, then hang up.
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(own.port()));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  const std::string req = "POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: " + std::to_string(text.size()) +
                          "\r\n\r\n" + text;
  ASSERT_EQ(::send(fd, req.data(), req.size(), MSG_NOSIGNAL), static_cast<ssize_t>(req.size()));
  char buf[512];
  ASSERT_GT(::recv(fd, buf, sizeof(buf), 0), 0);
  ::close(fd);
  // Within a few decode steps the slot is free and the generation counted as aborted.
  bool freed = false;
  for (int i = 0; i < 100 && !freed; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    freed = metric("swiftllm_requests_aborted_total") > aborted_before && metric("swiftllm_slots_active") == 0;
  }
  EXPECT_TRUE(freed) << own.log();
  // The server still serves.
  httplib::Client c("127.0.0.1", own.port());
  auto r = c.Post("/v1/completions", json{{"prompt", "def f(x):"}, {"max_tokens", 4}}.dump(), "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
}

TEST(Server, HostileRequestsGet4xxAndTheServerStaysHealthy) {
  const std::string ok_prompt = "def f(x):";
  std::string deep(10000, '[');
  deep += std::string(10000, ']');
  std::vector<int> too_long(300, 5);
  struct Case {
    const char* what;
    std::string body;
    int status;
    const char* needle;
  };
  const std::vector<Case> cases = {
      {"bad JSON", "{\"prompt\": ", 400, "not valid JSON"},
      {"not an object", "[1,2]", 400, "must be a JSON object"},
      {"nested 10,000 deep", "{\"prompt\": " + deep + "}", 400, "nested deeper"},
      {"negative max_tokens", json{{"prompt", ok_prompt}, {"max_tokens", -5}}.dump(), 400, "max_tokens"},
      {"huge max_tokens", json{{"prompt", ok_prompt}, {"max_tokens", 1000000000000LL}}.dump(), 400, "max_tokens"},
      {"max_tokens of wrong type", json{{"prompt", ok_prompt}, {"max_tokens", "lots"}}.dump(), 400, "must be an integer"},
      {"token id -1", json{{"prompt", {-1}}}.dump(), 400, "outside the vocabulary"},
      {"token id = vocab", json{{"prompt", {1, 8000}}}.dump(), 400, "outside the vocabulary"},
      {"token id huge", R"({"prompt": [18446744073709551615]})", 400, "outside the vocabulary"},
      {"prompt over context", json{{"prompt", too_long}}.dump(), 400, "context_length_exceeded"},
      {"prompt + max_tokens over context", json{{"prompt", std::vector<int>(200, 5)}, {"max_tokens", 100}}.dump(), 400,
       "context_length_exceeded"},
      {"temperature out of range", json{{"prompt", ok_prompt}, {"temperature", 50}}.dump(), 400, "temperature"},
      {"temperature of wrong type", json{{"prompt", ok_prompt}, {"temperature", "hot"}}.dump(), 400, "temperature"},
      {"n > 1", json{{"prompt", ok_prompt}, {"n", 3}}.dump(), 400, "'n' must be 1"},
      {"stop of wrong type", json{{"prompt", ok_prompt}, {"stop", 5}}.dump(), 400, "'stop'"},
      {"empty stop", json{{"prompt", ok_prompt}, {"stop", {""}}}.dump(), 400, "'stop'"},
      {"stream of wrong type", json{{"prompt", ok_prompt}, {"stream", "yes"}}.dump(), 400, "'stream'"},
      {"prompt of wrong type", json{{"prompt", {{"a", 1}}}}.dump(), 400, "'prompt'"},
      {"missing prompt", json{{"max_tokens", 3}}.dump(), 400, "'prompt' is required"},
      {"invalid UTF-8", std::string("{\"prompt\": \"\xff\xfe\"}"), 400, "not valid JSON"},
      {"unknown decode mode", json{{"prompt", ok_prompt}, {"decode", "warp"}}.dump(), 400, "'decode'"},
      {"logprobs", json{{"prompt", ok_prompt}, {"logprobs", 5}}.dump(), 400, "logprobs"},
  };
  for (const auto& c : cases) {
    const Reply r = request("POST", "/v1/completions", c.body);
    EXPECT_EQ(r.status, c.status) << c.what << ": " << r.body.substr(0, 300);
    EXPECT_NE(r.body.find(c.needle), std::string::npos) << c.what << ": " << r.body.substr(0, 300);
    EXPECT_TRUE(r.j().contains("error")) << c.what;
  }
  // Chat-specific.
  EXPECT_EQ(post("/v1/chat/completions", {{"messages", "hi"}}).status, 400);
  EXPECT_EQ(post("/v1/chat/completions", {{"messages", json::array({{{"role", 3}}})}}).status, 400);
  EXPECT_EQ(post("/v1/chat/completions",
                 {{"messages", json::array({{{"role", "user"}, {"content", json::array({{{"type", "image_url"}}})}}})}}).status,
            400);
  // Authentication: wrong or missing key -> 401 authentication_error; /health stays public.
  const Reply wrong = post("/v1/completions", {{"prompt", ok_prompt}}, "wrong-key");
  EXPECT_EQ(wrong.status, 401);
  EXPECT_EQ(wrong.j()["error"]["type"], "authentication_error");
  EXPECT_EQ(post("/v1/completions", {{"prompt", ok_prompt}}, "").status, 401);
  EXPECT_EQ(request("GET", "/v1/models", "", "").status, 401);
  EXPECT_EQ(request("GET", "/health", "", "").status, 200);
  // Unknown route.
  const Reply nf = request("GET", "/v1/nothing");
  EXPECT_EQ(nf.status, 404);
  EXPECT_TRUE(nf.j().contains("error"));
  // 100 MB body: refused from its Content-Length, before it is read.
  std::string big = "POST /v1/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + std::string(kKey) +
                    "\r\nContent-Type: application/json\r\nContent-Length: 104857600\r\n\r\n";
  big += std::string(1 << 20, ' ');
  EXPECT_EQ(status_of(raw(big)), 413);
  // Slowloris: partial headers, then silence. The server drops the connection after its read
  // timeout (1 s here) and serves others meanwhile.
  auto slow = std::async(std::launch::async, [] {
    const auto t0 = std::chrono::steady_clock::now();
    const std::string got = raw("POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Le", 30);
    return std::make_pair(got, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  });
  EXPECT_EQ(request("GET", "/health", "", "").status, 200);
  const auto [got, seconds] = slow.get();
  EXPECT_LT(seconds, 4.0) << "slow client held its connection for " << seconds << " s";
  EXPECT_TRUE(got.empty() || status_of(got) >= 400) << got;
  // Still healthy and still correct.
  EXPECT_EQ(request("GET", "/health", "", "").status, 200);
  EXPECT_EQ(post("/v1/completions", {{"prompt", ok_prompt}, {"max_tokens", 4}}).status, 200);
  EXPECT_TRUE(server().alive());
}

TEST(Server, SwiftPlansAreSharedAcrossRequestsOfATask) {
  // The first SWIFT request of a task searches for a skip plan (after its 50-token context
  // window); the next request of the task starts from that plan without searching.
  const std::string prompt = code_prompts(1)[0];
  const json body = {{"prompt", prompt}, {"max_tokens", 120}, {"temperature", 0}, {"decode", "swift"},
                     {"task", "plan-sharing-test"}, {"ignore_eos", true}};
  const Reply first = post("/v1/completions", body);
  ASSERT_EQ(first.status, 200) << first.body;
  EXPECT_EQ(first.j()["swift"]["layer_cache_hit"], false);
  const Reply second = post("/v1/completions", body);
  ASSERT_EQ(second.status, 200) << second.body;
  EXPECT_EQ(second.j()["swift"]["layer_cache_hit"], true);
  EXPECT_EQ(second.j()["swift"]["skip_attn"], first.j()["swift"]["skip_attn"]);
  EXPECT_EQ(second.j()["swift"]["skip_mlp"], first.j()["swift"]["skip_mlp"]);
  EXPECT_EQ(second.j()["choices"][0]["text"], first.j()["choices"][0]["text"]);  // lossless either way
  // Another task searches on its own.
  json other = body;
  other["task"] = "another-task";
  EXPECT_EQ(post("/v1/completions", other).j()["swift"]["layer_cache_hit"], false);
}

TEST(Server, ShutsDownCleanlyOnSigterm) {
  test::ServerProcess s({"-q"});
  httplib::Client c("127.0.0.1", s.port());
  auto r = c.Get("/health");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  // A long stream in progress does not hold the shutdown: it is cancelled.
  auto streaming = std::async(std::launch::async, [port = s.port()] {
    httplib::Client cl("127.0.0.1", port);
    std::string got;
    cl.Post("/v1/completions",
            json{{"prompt", "def f(x):"}, {"max_tokens", 1000}, {"stream", true}, {"decode", "ar"}, {"ignore_eos", true}}.dump(),
            "application/json");
    return got;
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_EQ(s.stop(), 0) << s.log();
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 3.0);
  streaming.get();
}

}  // namespace
}  // namespace swift
