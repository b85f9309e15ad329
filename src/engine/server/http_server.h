// `swiftllm serve`: an OpenAI-compatible HTTP server (cpp-httplib) in front of the Scheduler.
//
// Safe by default: binds 127.0.0.1; optional API key (Bearer token, compared in constant time;
// /health stays public); request bodies over `max_body` get 413 before they are read; JSON
// nesting, max_tokens, stop strings, temperature and token ids are bounded (openai_api.h); a
// per-read timeout drops clients that stall mid-request; every handler catches everything, so
// no request can take the server down.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "engine/server/scheduler.h"

namespace swift {

class ChatTemplate;

struct ServerOptions {
  std::string host = "127.0.0.1";
  int port = 8080;              // 0 = any free port (printed when listening)
  std::string api_key;          // empty = no authentication
  int parallel = 4;             // slots decoding at the same time
  size_t queue_size = 256;      // requests waiting beyond the slots before 503
  int http_threads = 0;         // 0 = parallel + queue headroom (see http_server.cc)
  int64_t n_ctx = 0;            // per request; 0 = the model's
  size_t max_body = size_t{8} << 20;
  int read_timeout_s = 10;      // per read while receiving a request
  int64_t max_tokens_cap = 0;   // 0 = n_ctx
  std::string model_name;       // id in /v1/models and responses
  std::vector<std::string> modes;  // decoding modes a request may select
  std::string default_mode = "hybrid";
  bool log_requests = true;
};

class Server {
 public:
  Server(const Model& model, const ChatTemplate* tmpl, std::string template_error, ThreadPool& pool,
         DecoderFactory factory, ServerOptions opt);
  ~Server();
  // Binds, calls on_listening(port), and serves until stop(). Throws swift::Error when it
  // cannot bind.
  void run(const std::function<void(int port)>& on_listening);
  void stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Constant-time comparison of secrets (no early exit on the first differing byte).
bool secrets_equal(const std::string& a, const std::string& b);

}  // namespace swift
