// OpenAI API request validation and response shapes (completions and chat completions).
//
// Every field a request may carry is type- and range-checked here, before any work is queued;
// a violation is an ApiError carrying the HTTP status, OpenAI error type/code and the field.
// Unknown fields are ignored (clients send many optional ones: user, logit_bias, ...).
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <vector>

#include "engine/generation.h"

namespace swift {

class ChatTemplate;

class ApiError : public std::runtime_error {
 public:
  ApiError(int status, std::string type, std::string message, std::string param = "", std::string code = "")
      : std::runtime_error(message), status(status), type(std::move(type)), param(std::move(param)),
        code(std::move(code)) {}
  nlohmann::json body() const;
  int status;
  std::string type, param, code;
};

// Limits and defaults of the API, from the server's options.
struct ApiLimits {
  int64_t n_ctx = 0;              // context of one request (prompt + completion)
  int64_t vocab = 0;
  int64_t max_tokens_cap = 0;     // hard upper bound on max_tokens (0 = n_ctx)
  int max_stop = 16;              // stop strings per request
  size_t max_stop_len = 1024;     // bytes per stop string
  size_t max_depth = 64;          // JSON nesting depth
  std::vector<std::string> modes;  // decoding modes a request may pick
  std::string default_mode;
};

struct ApiRequest {
  bool chat = false;
  bool stream = false;
  bool include_usage = false;  // stream_options.include_usage
  std::string model;
  std::vector<int32_t> prompt;
  GenerateOptions opt;
  std::string mode, task;
};

// Parses a request body with a depth limit checked before parsing (a 10,000-deep body never
// reaches the recursive JSON code). Throws ApiError.
nlohmann::json parse_body(const std::string& body, const ApiLimits& lim);

// Validates and converts a /v1/completions or /v1/chat/completions body. `tmpl` renders chat
// messages (null with `template_error` when the model has no usable template).
ApiRequest parse_request(const nlohmann::json& body, bool chat, const Model& model, const ChatTemplate* tmpl,
                         const std::string& template_error, const ApiLimits& lim);

// Response bodies. `stats` is the extension field with the decoding statistics.
nlohmann::json completion_response(const ApiRequest& req, const std::string& id, int64_t created,
                                   const std::string& model, const GenerateResult& r, const nlohmann::json& stats);
nlohmann::json stream_chunk(const ApiRequest& req, const std::string& id, int64_t created, const std::string& model,
                            const std::string& text, const char* finish_reason, bool first);
nlohmann::json usage_json(const GenerateResult& r);
nlohmann::json swift_stats(const GenerateResult& r, const nlohmann::json& mode_stats, const std::string& mode,
                           double queue_ms);

}  // namespace swift
