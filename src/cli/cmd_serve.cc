// `swiftllm serve`: OpenAI-compatible HTTP server (engine/server/http_server.h).
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <pthread.h>
#include <thread>

#include "cli/common.h"
#include "cli/decode_options.h"
#include "engine/server/http_server.h"
#include "model/chat_template.h"
#include "util/check.h"

namespace swift::cli {

namespace {

struct ServeArgs {
  std::string model, api_key_file, chat_template, alias;
  std::string math = "auto";
  int threads = 0;
  ServerOptions server;
  DecodeArgs decode;
  bool quiet = false;
};

std::string trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) s.pop_back();
  return s;
}

void run(ServeArgs& a) {
  ServerOptions o = a.server;
  if (!a.api_key_file.empty()) {
    if (!o.api_key.empty()) fail("give --api-key or --api-key-file, not both");
    o.api_key = trim(read_file(a.api_key_file));
    if (o.api_key.empty()) fail("--api-key-file '{}' is empty", a.api_key_file);
  }
  if (o.parallel < 1 || o.parallel > 64) fail("--parallel must be in [1, 64], got {}", o.parallel);
  if (o.max_body < 1024) fail("--max-body must be at least 1024 bytes, got {}", o.max_body);
  o.default_mode = a.decode.mode;
  o.modes = {"ar", "hybrid", "lookup", "swift", "swift-notree", "swift-noearly", "swift-noopt"};
  if (std::find(o.modes.begin(), o.modes.end(), o.default_mode) == o.modes.end())
    fail("--decode must be one of ar, hybrid, lookup, swift (or a swift ablation), got '{}'", o.default_mode);
  o.log_requests = !a.quiet;

  // Block SIGINT/SIGTERM in every thread started from here on; one thread waits for them.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  auto model = load_model(a.model, parse_math(a.math));
  if (o.n_ctx < 0 || o.n_ctx > model->config.max_positions)
    fail("--ctx-size must be in [1, {}] for this model, got {}", model->config.max_positions, o.n_ctx);
  if (o.model_name.empty()) o.model_name = a.alias.empty() ? std::filesystem::path(a.model).filename().string() : a.alias;
  if (o.model_name.empty()) o.model_name = "swiftllm";
  std::unique_ptr<ChatTemplate> tmpl;
  std::string template_error;
  try {
    tmpl = load_chat_template(*model, a.chat_template);
  } catch (const Error& e) {
    if (!a.chat_template.empty()) throw;  // asked for explicitly: a startup error
    template_error = e.what();
    std::fprintf(stderr, "[serve] chat completions unavailable: %s\n", e.what());
  }
  ThreadPool pool(a.threads > 0 ? a.threads : ThreadPool::default_threads());
  DecodeArgs& d = a.decode;
  d.share_plans = true;
  const Model& m = *model;
  DecoderFactory factory = [&d, &m, &pool](const std::string& mode, const SamplingParams& sampling,
                                           const std::string& task) -> std::unique_ptr<DecoderHandle> {
    return std::make_unique<DecoderRun>(d, mode, m, sampling, pool, task);
  };
  Server server(*model, tmpl.get(), template_error, pool, factory, o);
  std::thread sig([&server, signals] {
    int sig = 0;
    sigwait(&signals, &sig);
    std::fprintf(stderr, "[serve] signal %d: shutting down\n", sig);
    server.stop();
  });
  sig.detach();
  server.run([&](int port) {
    std::fprintf(stderr,
                 "[serve] %s: %d layers, context %lld, decode %s, math %s, %d slots, %d threads, chat template %s%s\n"
                 "[serve] listening on http://%s:%d (OpenAI API at /v1)\n",
                 o.model_name.c_str(), static_cast<int>(model->config.n_layer),
                 static_cast<long long>(o.n_ctx > 0 ? o.n_ctx : model->config.max_positions), o.default_mode.c_str(),
                 model->transformer->math_description().c_str(), o.parallel, pool.size(), tmpl ? tmpl->name().c_str() : "none",
                 o.api_key.empty() ? "" : ", API key required", o.host.c_str(), port);
    std::fflush(stderr);
  });
}

}  // namespace

void add_serve(CLI::App& app) {
  auto a = std::make_shared<ServeArgs>();
  CLI::App* c = app.add_subcommand("serve", "OpenAI-compatible HTTP server (/v1/completions, /v1/chat/completions)");
  c->add_option("-m,--model", a->model, "Model folder (Hugging Face layout) or GGUF file")->required();
  add_math_option(*c, a->math);
  auto& o = a->server;
  c->add_option("--host", o.host, "Address to bind (default 127.0.0.1: this machine only)");
  c->add_option("--port", o.port, "Port (default 8080; 0 = any free port, printed at start)");
  c->add_option("--api-key", o.api_key, "Require 'Authorization: Bearer KEY' on every endpoint but /health");
  c->add_option("--api-key-file", a->api_key_file, "Read the API key from a file (keeps it out of `ps`)");
  c->add_option("--parallel", o.parallel, "Requests decoded at the same time (slots, default 4); more wait in a queue");
  c->add_option("--queue-size", o.queue_size, "Requests that may wait for a slot before 503 (default 256)");
  c->add_option("--ctx-size", o.n_ctx, "Context per request: prompt + completion (default: the model's)");
  c->add_option("--max-tokens-cap", o.max_tokens_cap, "Largest max_tokens a request may ask for (default: context)");
  c->add_option("--max-body", o.max_body, "Largest request body in bytes (default 8 MiB; larger gets 413)");
  c->add_option("--read-timeout", o.read_timeout_s,
                "Seconds a client may stall while sending a request before it is dropped (default 10)");
  c->add_option("--http-threads", o.http_threads,
                "HTTP worker threads (default max(64, 4*parallel+16); each open stream holds one)");
  c->add_option("--chat-template", a->chat_template,
                "Chat template: built-in name (" + ChatTemplate::builtin_list() + ") or Jinja file; default: the model's own");
  c->add_option("--alias", a->alias, "Model id reported by /v1/models (default: the model path's last part)");
  c->add_option("-t,--threads", a->threads, "Compute threads (default: physical cores)");
  c->add_flag("-q,--quiet", a->quiet, "Do not log each request to stderr");
  a->decode.mode = "hybrid";  // lossless; never much slower than plain decoding (README, issue 8)
  a->decode.add_to(*c, false);
  c->callback([a] { run(*a); });
}

}  // namespace swift::cli
