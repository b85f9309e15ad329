#include "engine/server/http_server.h"

#include <httplib.h>

#include <chrono>
#include <ctime>

#include "engine/server/openai_api.h"
#include "model/chat_template.h"
#include "model/model.h"
#include "util/timer.h"

namespace swift {

namespace {

using nlohmann::json;

std::string dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

void send_json(httplib::Response& res, int status, const json& j) {
  res.status = status;
  res.set_content(dump(j), "application/json");
}

void send_error(httplib::Response& res, const ApiError& e) { send_json(res, e.status, e.body()); }

const char* status_type(int status) {
  switch (status) {
    case 401: return "authentication_error";
    case 404: return "not_found_error";
    case 405: return "invalid_request_error";
    case 408: return "timeout_error";
    case 413: return "request_too_large";
    case 503: return "overloaded_error";
    default: return status >= 500 ? "server_error" : "invalid_request_error";
  }
}

}  // namespace

bool secrets_equal(const std::string& a, const std::string& b) {
  // Time depends only on the lengths, never on where the contents differ.
  const size_t n = std::max(a.size(), b.size());
  unsigned char diff = static_cast<unsigned char>(a.size() != b.size());
  for (size_t i = 0; i < n; ++i) {
    const unsigned char x = i < a.size() ? static_cast<unsigned char>(a[i]) : 0;
    const unsigned char y = i < b.size() ? static_cast<unsigned char>(b[i]) : 0;
    diff |= static_cast<unsigned char>(x ^ y);
  }
  return diff == 0;
}

struct Server::Impl {
  Impl(const Model& m, const ChatTemplate* t, std::string te, ThreadPool& pool, DecoderFactory f, ServerOptions o)
      : model(m), tmpl(t), template_error(std::move(te)), opt(std::move(o)), pool(pool),
        sched(m, pool, std::move(f), opt.parallel, opt.queue_size) {
    lim.n_ctx = opt.n_ctx > 0 ? opt.n_ctx : m.config.max_positions;
    lim.vocab = m.config.vocab_size;
    lim.max_tokens_cap = opt.max_tokens_cap;
    lim.modes = opt.modes;
    lim.default_mode = opt.default_mode;
    routes();
  }

  void routes();
  void completion(const httplib::Request& req, httplib::Response& res, bool chat);
  std::string metrics_text();

  const Model& model;
  const ChatTemplate* tmpl;
  std::string template_error;
  ServerOptions opt;
  ApiLimits lim;
  const ThreadPool& pool;  // read for /metrics only (ThreadPool::stats() is safe from any thread)
  Scheduler sched;
  httplib::Server http;
  std::atomic<int64_t> next_id{1}, http_requests{0}, auth_failures{0}, client_errors{0}, server_errors{0};
  std::atomic<int64_t> busy_rejections{0};
  const double started_ms = now_ms();
};

void Server::Impl::routes() {
  const int threads = opt.http_threads > 0 ? opt.http_threads : std::max(64, opt.parallel * 4 + 16);
  http.new_task_queue = [threads] { return new httplib::ThreadPool(static_cast<size_t>(threads)); };
  http.set_payload_max_length(opt.max_body);
  http.set_read_timeout(opt.read_timeout_s, 0);
  http.set_write_timeout(30, 0);
  // A stalled client is dropped after read_timeout; an idle keep-alive connection after at most
  // as long (httplib waits keep_alive_timeout for the next request on a connection, also after
  // a request it failed to read, so this bounds what a slowloris client can hold).
  http.set_keep_alive_timeout(std::min(5, opt.read_timeout_s));

  http.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
    ++http_requests;
    if (opt.api_key.empty() || req.path == "/health") return httplib::Server::HandlerResponse::Unhandled;
    const std::string h = req.get_header_value("Authorization");
    const std::string key = h.rfind("Bearer ", 0) == 0 ? h.substr(7) : std::string();
    if (!secrets_equal(key, opt.api_key)) {
      ++auth_failures;
      send_error(res, ApiError(401, "authentication_error",
                               h.empty() ? "missing API key: send 'Authorization: Bearer KEY'" : "invalid API key",
                               "", "invalid_api_key"));
      return httplib::Server::HandlerResponse::Handled;
    }
    return httplib::Server::HandlerResponse::Unhandled;
  });
  // Responses httplib makes itself (404, 413, 400 for malformed HTTP) get an OpenAI error body.
  http.set_error_handler([this](const httplib::Request& req, httplib::Response& res) {
    if (res.status >= 500) ++server_errors;
    else if (res.status != 401) ++client_errors;
    if (!res.body.empty()) return;
    std::string msg = fmt::format("HTTP {}", res.status);
    if (res.status == 404) msg = fmt::format("no route for {} {}", req.method, req.path);
    if (res.status == 413) msg = fmt::format("the request body is larger than the limit of {} bytes", opt.max_body);
    send_json(res, res.status, ApiError(res.status, status_type(res.status), msg).body());
  });
  http.set_exception_handler([this](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
    std::string what = "unknown";
    try {
      std::rethrow_exception(ep);
    } catch (const std::exception& e) {
      what = e.what();
    } catch (...) {
    }
    ++server_errors;
    send_json(res, 500, ApiError(500, "server_error", "internal error: " + what).body());
  });
  if (opt.log_requests) {
    http.set_logger([](const httplib::Request& req, const httplib::Response& res) {
      std::fprintf(stderr, "[serve] %s %s -> %d\n", req.method.c_str(), req.path.c_str(), res.status);
    });
  }

  http.Get("/health", [this](const httplib::Request&, httplib::Response& res) {
    const SchedulerMetrics m = sched.metrics();
    send_json(res, 200, {{"status", "ok"}, {"slots_idle", m.slots - m.active}, {"slots_processing", m.active},
                         {"requests_queued", m.queued}});
  });
  auto models = [this](const httplib::Request&, httplib::Response& res) {
    send_json(res, 200,
              {{"object", "list"},
               {"data", json::array({{{"id", opt.model_name},
                                      {"object", "model"},
                                      {"created", static_cast<int64_t>(std::time(nullptr))},
                                      {"owned_by", "swiftllm"},
                                      {"meta",
                                       {{"n_ctx", lim.n_ctx},
                                        {"n_vocab", lim.vocab},
                                        {"n_layer", model.config.n_layer},
                                        {"decode", opt.default_mode},
                                        {"chat_template", tmpl ? json(tmpl->name()) : json()}}}}})}});
  };
  http.Get("/v1/models", models);
  http.Get("/models", models);
  http.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
    res.set_content(metrics_text(), "text/plain; version=0.0.4");
  });
  for (const char* p : {"/v1/completions", "/completions"})
    http.Post(p, [this](const httplib::Request& req, httplib::Response& res) { completion(req, res, false); });
  for (const char* p : {"/v1/chat/completions", "/chat/completions"})
    http.Post(p, [this](const httplib::Request& req, httplib::Response& res) { completion(req, res, true); });
}

void Server::Impl::completion(const httplib::Request& req, httplib::Response& res, bool chat) {
  std::shared_ptr<ApiRequest> r;
  auto job = std::make_shared<Job>();
  try {
    r = std::make_shared<ApiRequest>(parse_request(parse_body(req.body, lim), chat, model, tmpl, template_error, lim));
    job->prompt = r->prompt;
    job->opt = r->opt;
    job->mode = r->mode;
    job->task = r->task;
    try {
      sched.submit(job);
    } catch (const Error& e) {
      ++busy_rejections;
      throw ApiError(503, "overloaded_error", e.what());
    }
  } catch (const ApiError& e) {
    send_error(res, e);
    return;
  } catch (const Error& e) {
    send_error(res, ApiError(400, "invalid_request_error", e.what()));
    return;
  }
  const std::string id = fmt::format("{}-{}", chat ? "chatcmpl" : "cmpl", next_id++);
  const int64_t created = static_cast<int64_t>(std::time(nullptr));
  const std::string name = r->model.empty() ? opt.model_name : r->model;
  auto error_of = [](const Job& j) {
    return ApiError(j.error_is_client ? 400 : 500, j.error_is_client ? "invalid_request_error" : "server_error",
                    j.error);
  };

  if (!r->stream) {
    std::string ignored;
    while (!job->wait(&ignored, 1000)) ignored.clear();
    if (!job->error.empty()) {
      send_error(res, error_of(*job));
      return;
    }
    send_json(res, 200,
              completion_response(*r, id, created, name, job->result,
                                  swift_stats(job->result, job->mode_stats, job->mode, job->queue_ms)));
    return;
  }
  res.set_header("Cache-Control", "no-cache");
  res.set_chunked_content_provider(
      "text/event-stream", [this, job, r, id, created, name, error_of](size_t, httplib::DataSink& sink) {
        auto send = [&](const json& j) {
          const std::string s = "data: " + dump(j) + "\n\n";
          return sink.write(s.data(), s.size());
        };
        bool first = true;
        double last_write = now_ms();
        for (;;) {
          std::string text;
          const bool done = job->wait(&text, 100);
          if (!text.empty()) {
            if (!send(stream_chunk(*r, id, created, name, text, nullptr, first))) {
              job->cancelled = true;  // the client went away: free the slot before its next step
              return false;
            }
            first = false;
            last_write = now_ms();
          } else if (!done && now_ms() - last_write > 1000) {
            // An SSE comment while queued or prefilling: a client that left is noticed here.
            static const char kPing[] = ": waiting\n\n";
            if (!sink.write(kPing, sizeof(kPing) - 1)) {
              job->cancelled = true;
              return false;
            }
            last_write = now_ms();
          }
          if (!done) continue;
          if (!job->error.empty()) {
            send(error_of(*job).body());
          } else {
            json last = stream_chunk(*r, id, created, name, "", job->result.finish_reason.c_str(), first);
            last["usage"] = usage_json(job->result);  // also without stream_options (clients ignore it)
            last["swift"] = swift_stats(job->result, job->mode_stats, job->mode, job->queue_ms);
            send(last);
          }
          static const char kDone[] = "data: [DONE]\n\n";
          sink.write(kDone, sizeof(kDone) - 1);
          sink.done();
          return true;
        }
      });
}

std::string Server::Impl::metrics_text() {
  const SchedulerMetrics m = sched.metrics();
  std::string out;
  auto metric = [&](const char* name, const char* type, const char* help, double v) {
    out += fmt::format("# HELP swiftllm_{0} {1}\n# TYPE swiftllm_{0} {2}\nswiftllm_{0} {3}\n", name, help, type, v);
  };
  metric("http_requests_total", "counter", "HTTP requests received", static_cast<double>(http_requests.load()));
  metric("requests_total", "counter", "Generation requests finished (any finish_reason)", static_cast<double>(m.requests_done));
  metric("requests_failed_total", "counter", "Generation requests that failed after being queued", static_cast<double>(m.requests_failed));
  metric("requests_aborted_total", "counter", "Generations ended because the client disconnected", static_cast<double>(m.requests_aborted));
  metric("requests_rejected_busy_total", "counter", "Requests refused with 503 (queue full)", static_cast<double>(busy_rejections.load()));
  metric("client_errors_total", "counter", "Responses with a 4xx status from the HTTP layer", static_cast<double>(client_errors.load()));
  metric("auth_failures_total", "counter", "Requests refused for a missing or wrong API key", static_cast<double>(auth_failures.load()));
  metric("prompt_tokens_total", "counter", "Prompt tokens processed", static_cast<double>(m.prompt_tokens));
  metric("generated_tokens_total", "counter", "Tokens generated", static_cast<double>(m.generated_tokens));
  metric("prefill_seconds_total", "counter", "Time spent in prefill", m.prefill_ms / 1000.0);
  metric("decode_seconds_total", "counter", "Time from prefill end to finish, summed over requests", m.decode_ms / 1000.0);
  metric("decode_tokens_per_second", "gauge", "Generated tokens per second of request decode time (all requests)",
         m.decode_ms > 0 ? m.generated_tokens * 1000.0 / m.decode_ms : 0.0);
  metric("drafted_tokens_total", "counter", "Speculative tokens proposed", static_cast<double>(m.drafted_tokens));
  metric("accepted_tokens_total", "counter", "Speculative tokens accepted", static_cast<double>(m.accepted_tokens));
  metric("acceptance_rate", "gauge", "Accepted over drafted speculative tokens (all requests)",
         m.drafted_tokens > 0 ? static_cast<double>(m.accepted_tokens) / m.drafted_tokens : 0.0);
  metric("slots_active", "gauge", "Generations decoding now", static_cast<double>(m.active));
  metric("slots_total", "gauge", "Generations that may decode at once (--parallel)", static_cast<double>(m.slots));
  metric("requests_queued", "gauge", "Requests waiting for a slot", static_cast<double>(m.queued));
  const ThreadPool::Stats ps = pool.stats();
  metric("pool_rounds_total", "counter", "Parallel rounds of the compute threads", static_cast<double>(ps.rounds));
  metric("pool_contended_rounds_total", "counter",
         "Rounds that waited past the spin phase for a compute thread that was itself waiting for a CPU (other load)",
         static_cast<double>(ps.contended));
  metric("pool_serial_rounds_total", "counter",
         "Rounds run on one compute thread after contended ones (util/thread_pool.h)", static_cast<double>(ps.serial_rounds));
  metric("uptime_seconds", "gauge", "Seconds since the server started", (now_ms() - started_ms) / 1000.0);
  return out;
}

Server::Server(const Model& model, const ChatTemplate* tmpl, std::string template_error, ThreadPool& pool,
               DecoderFactory factory, ServerOptions opt)
    : impl_(std::make_unique<Impl>(model, tmpl, std::move(template_error), pool, std::move(factory), std::move(opt))) {}

Server::~Server() = default;

void Server::run(const std::function<void(int port)>& on_listening) {
  auto& o = impl_->opt;
  int port = o.port;
  if (port == 0) {
    port = impl_->http.bind_to_any_port(o.host);
    if (port <= 0) fail("cannot bind {} to a free port", o.host);
  } else if (!impl_->http.bind_to_port(o.host, port)) {
    fail("cannot listen on {}:{} (in use, or not an address of this machine)", o.host, port);
  }
  if (on_listening) on_listening(port);
  impl_->http.listen_after_bind();
}

void Server::stop() {
  // Open streams end now (finish_reason "abort") instead of generating to their max_tokens
  // while the HTTP workers are joined.
  impl_->sched.cancel_all();
  impl_->http.stop();
}

}  // namespace swift
