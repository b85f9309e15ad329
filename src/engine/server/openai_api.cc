#include "engine/server/openai_api.h"

#include <cmath>
#include <limits>

#include "model/chat_template.h"
#include "model/model.h"

namespace swift {

namespace {

using nlohmann::json;

[[noreturn]] void bad(const std::string& msg, const std::string& param = "", const std::string& code = "") {
  throw ApiError(400, "invalid_request_error", msg, param, code);
}

// Field accessors: absent or null = default; present with the wrong type = 400 naming it.
const json* field(const json& b, const char* k) {
  auto it = b.find(k);
  if (it == b.end() || it->is_null()) return nullptr;
  return &*it;
}
double number(const json& b, const char* k, double dflt, double lo, double hi) {
  const json* v = field(b, k);
  if (!v) return dflt;
  if (!v->is_number()) bad(fmt::format("'{}' must be a number, got {}", k, v->type_name()), k);
  const double x = v->get<double>();
  if (!std::isfinite(x) || x < lo || x > hi) bad(fmt::format("'{}' must be in [{}, {}], got {}", k, lo, hi, x), k);
  return x;
}
std::optional<int64_t> integer(const json& b, const char* k, int64_t lo, int64_t hi) {
  const json* v = field(b, k);
  if (!v) return std::nullopt;
  if (!v->is_number_integer() && !v->is_number_unsigned())
    bad(fmt::format("'{}' must be an integer, got {}", k, v->is_number() ? v->dump() : v->type_name()), k);
  if (v->is_number_unsigned() && v->get<uint64_t>() > static_cast<uint64_t>(hi))
    bad(fmt::format("'{}' must be in [{}, {}], got {}", k, lo, hi, v->dump()), k);
  const int64_t x = v->get<int64_t>();
  if (x < lo || x > hi) bad(fmt::format("'{}' must be in [{}, {}], got {}", k, lo, hi, x), k);
  return x;
}
bool boolean(const json& b, const char* k, bool dflt) {
  const json* v = field(b, k);
  if (!v) return dflt;
  if (!v->is_boolean()) bad(fmt::format("'{}' must be a boolean, got {}", k, v->type_name()), k);
  return v->get<bool>();
}
std::string string(const json& b, const char* k, const std::string& dflt) {
  const json* v = field(b, k);
  if (!v) return dflt;
  if (!v->is_string()) bad(fmt::format("'{}' must be a string, got {}", k, v->type_name()), k);
  return v->get<std::string>();
}

std::vector<int32_t> token_array(const json& a, int64_t vocab) {
  std::vector<int32_t> ids;
  for (const auto& t : a) {
    if (!t.is_number_integer() && !t.is_number_unsigned()) bad("'prompt' token arrays must hold integers", "prompt");
    if (t.is_number_unsigned() ? t.get<uint64_t>() >= static_cast<uint64_t>(vocab) : (t.get<int64_t>() < 0 || t.get<int64_t>() >= vocab))
      bad(fmt::format("'prompt' token id {} is outside the vocabulary [0, {})", t.dump(), vocab), "prompt");
    ids.push_back(static_cast<int32_t>(t.get<int64_t>()));
  }
  return ids;
}

std::vector<int32_t> completion_prompt(const json& b, const Model& model, const ApiLimits& lim) {
  const json* p = field(b, "prompt");
  if (!p) bad("'prompt' is required", "prompt");
  auto text_ids = [&](const std::string& s) {
    if (!model.tokenizer) bad("this model has no tokenizer; send 'prompt' as token ids", "prompt");
    try {
      return model.tokenizer->encode_with_specials(s);
    } catch (const Error& e) {
      bad(fmt::format("'prompt': {}", e.what()), "prompt");
    }
  };
  if (p->is_string()) return text_ids(p->get<std::string>());
  if (!p->is_array()) bad(fmt::format("'prompt' must be a string or an array, got {}", p->type_name()), "prompt");
  if (p->empty()) bad("'prompt' is empty", "prompt");
  if ((*p)[0].is_number()) return token_array(*p, lim.vocab);
  if (p->size() > 1) bad("several prompts in one request are not supported (send one request per prompt)", "prompt");
  const json& one = (*p)[0];
  if (one.is_string()) return text_ids(one.get<std::string>());
  if (one.is_array()) return token_array(one, lim.vocab);
  bad("'prompt' must be a string, an array of token ids, or an array holding one of those", "prompt");
}

json chat_messages(const json& b) {
  const json* m = field(b, "messages");
  if (!m) bad("'messages' is required", "messages");
  if (!m->is_array() || m->empty()) bad("'messages' must be a non-empty array", "messages");
  json out = json::array();
  for (size_t i = 0; i < m->size(); ++i) {
    const json& msg = (*m)[i];
    const std::string where = fmt::format("messages[{}]", i);
    if (!msg.is_object()) bad(where + " must be an object", "messages");
    const json* role = field(msg, "role");
    if (!role || !role->is_string()) bad(where + ".role must be a string", "messages");
    const json* content = field(msg, "content");
    std::string text;
    if (content && content->is_string()) {
      text = content->get<std::string>();
    } else if (content && content->is_array()) {  // [{type: "text", text: "..."}]
      for (const auto& part : *content) {
        if (!part.is_object() || part.value("type", "") != "text" || !part.contains("text") || !part["text"].is_string())
          bad(where + ".content: only text parts ({\"type\": \"text\", \"text\": ...}) are supported", "messages");
        text += part["text"].get<std::string>();
      }
    } else if (content) {
      bad(where + ".content must be a string or an array of text parts", "messages");
    }
    json o = msg;  // keep other fields (name, tool_call_id) for templates that use them
    o["content"] = text;
    out.push_back(std::move(o));
  }
  return out;
}

}  // namespace

json ApiError::body() const {
  return {{"error",
           {{"message", what()},
            {"type", type},
            {"param", param.empty() ? json() : json(param)},
            {"code", code.empty() ? json() : json(code)}}}};
}

json parse_body(const std::string& body, const ApiLimits& lim) {
  // Depth first, without recursion: brackets outside strings.
  size_t depth = 0;
  bool in_str = false;
  for (size_t i = 0; i < body.size(); ++i) {
    const char c = body[i];
    if (in_str) {
      if (c == '\\') ++i;
      else if (c == '"') in_str = false;
    } else if (c == '"') {
      in_str = true;
    } else if (c == '{' || c == '[') {
      if (++depth > lim.max_depth) bad(fmt::format("the JSON body is nested deeper than {} levels", lim.max_depth));
    } else if ((c == '}' || c == ']') && depth > 0) {
      --depth;
    }
  }
  json j = json::parse(body, nullptr, false);
  if (j.is_discarded()) bad("the request body is not valid JSON");
  if (!j.is_object()) bad("the request body must be a JSON object");
  return j;
}

ApiRequest parse_request(const json& b, bool chat, const Model& model, const ChatTemplate* tmpl,
                         const std::string& template_error, const ApiLimits& lim) {
  ApiRequest r;
  r.chat = chat;
  r.model = string(b, "model", "");
  r.stream = boolean(b, "stream", false);
  if (const json* so = field(b, "stream_options")) {
    if (!so->is_object()) bad("'stream_options' must be an object", "stream_options");
    r.include_usage = boolean(*so, "include_usage", false);
  }
  if (integer(b, "n", 1, std::numeric_limits<int32_t>::max()).value_or(1) != 1)
    bad("'n' must be 1: one completion per request is supported", "n");
  if (const json* lp = field(b, "logprobs")) {
    if (!(lp->is_boolean() && !lp->get<bool>()) && !(lp->is_number_integer() && lp->get<int64_t>() == 0))
      bad("'logprobs' is not supported", "logprobs");
  }
  if (boolean(b, "echo", false)) bad("'echo' is not supported", "echo");

  if (chat) {
    const json messages = chat_messages(b);
    if (!tmpl) throw ApiError(400, "invalid_request_error", template_error, "messages", "chat_template_unsupported");
    std::string text;
    try {
      text = tmpl->apply(messages, true);
    } catch (const jinja::TemplateError& e) {
      throw ApiError(400, "invalid_request_error", fmt::format("chat template '{}': {}", tmpl->name(), e.what()),
                     "messages", "chat_template_error");
    }
    try {
      r.prompt = encode_chat_prompt(model.tok(), text);
    } catch (const Error& e) {
      bad(fmt::format("'messages': {}", e.what()), "messages");
    }
    // The task key of shared skip plans: the system prompt (same assistant, same kind of text).
    if (messages[0].value("role", "") == "system") r.task = "system:" + messages[0].value("content", "");
  } else {
    r.prompt = completion_prompt(b, model, lim);
  }
  if (r.prompt.empty()) bad("the prompt is empty", chat ? "messages" : "prompt");
  const int64_t n_prompt = static_cast<int64_t>(r.prompt.size());
  if (n_prompt >= lim.n_ctx)
    throw ApiError(400, "invalid_request_error",
                   fmt::format("This model's maximum context length is {} tokens. However, your prompt is {} tokens "
                               "(no room left for a completion).", lim.n_ctx, n_prompt),
                   chat ? "messages" : "prompt", "context_length_exceeded");

  const int64_t cap = lim.max_tokens_cap > 0 ? std::min(lim.max_tokens_cap, lim.n_ctx) : lim.n_ctx;
  std::optional<int64_t> max_tokens = integer(b, chat ? "max_completion_tokens" : "max_tokens", 1, cap);
  if (!max_tokens) max_tokens = integer(b, "max_tokens", 1, cap);
  if (max_tokens && n_prompt + *max_tokens > lim.n_ctx)
    throw ApiError(400, "invalid_request_error",
                   fmt::format("This model's maximum context length is {} tokens. However, you requested {} tokens "
                               "({} in the prompt, {} for the completion).",
                               lim.n_ctx, n_prompt + *max_tokens, n_prompt, *max_tokens),
                   "max_tokens", "context_length_exceeded");
  // Defaults: 16 for completions (OpenAI's), the rest of the context for chat.
  r.opt.max_tokens = max_tokens.value_or(chat ? std::min(cap, lim.n_ctx - n_prompt) : std::min<int64_t>(16, lim.n_ctx - n_prompt));
  r.opt.n_ctx = lim.n_ctx;

  SamplingParams& s = r.opt.sampling;
  s.temperature = static_cast<float>(number(b, "temperature", 1.0, 0.0, 2.0));
  s.top_p = static_cast<float>(number(b, "top_p", 1.0, 0.0, 1.0));
  if (field(b, "top_p") && s.top_p <= 0.0f) bad("'top_p' must be > 0", "top_p");
  s.top_k = static_cast<int>(integer(b, "top_k", 0, lim.vocab).value_or(0));
  s.min_p = static_cast<float>(number(b, "min_p", 0.0, 0.0, 1.0));
  s.repetition_penalty = static_cast<float>(number(b, "repetition_penalty", 1.0, 0.01, 100.0));
  s.seed = static_cast<uint64_t>(integer(b, "seed", std::numeric_limits<int64_t>::min(), std::numeric_limits<int64_t>::max()).value_or(0));

  if (const json* st = field(b, "stop")) {
    std::vector<std::string> stops;
    if (st->is_string()) stops.push_back(st->get<std::string>());
    else if (st->is_array()) {
      for (const auto& x : *st) {
        if (!x.is_string()) bad("'stop' must be a string or an array of strings", "stop");
        stops.push_back(x.get<std::string>());
      }
    } else {
      bad("'stop' must be a string or an array of strings", "stop");
    }
    if (static_cast<int>(stops.size()) > lim.max_stop) bad(fmt::format("'stop' takes at most {} strings", lim.max_stop), "stop");
    for (const auto& x : stops) {
      if (x.empty()) bad("'stop' strings must not be empty", "stop");
      if (x.size() > lim.max_stop_len) bad(fmt::format("'stop' strings are limited to {} bytes", lim.max_stop_len), "stop");
    }
    if (!stops.empty() && !model.tokenizer) bad("'stop' needs a tokenizer, and this model has none", "stop");
    r.opt.stop = std::move(stops);
  }

  // Extensions: keep going past EOS (benchmarks, as llama-server's ignore_eos), decoding mode
  // and plan-sharing task per request.
  r.opt.ignore_eos = boolean(b, "ignore_eos", false);
  r.mode = string(b, "decode", lim.default_mode);
  if (std::find(lim.modes.begin(), lim.modes.end(), r.mode) == lim.modes.end()) {
    std::string names;
    for (const auto& m : lim.modes) names += (names.empty() ? "" : ", ") + m;
    bad(fmt::format("'decode' must be one of {}, got '{}'", names, r.mode), "decode");
  }
  const std::string task = string(b, "task", "");
  if (task.size() > 256) bad("'task' is limited to 256 bytes", "task");
  if (!task.empty()) r.task = "task:" + task;
  if (r.task.empty()) r.task = "default";
  return r;
}

json usage_json(const GenerateResult& r) {
  return {{"prompt_tokens", r.stats.prompt_tokens},
          {"completion_tokens", r.stats.generated_tokens},
          {"total_tokens", r.stats.prompt_tokens + r.stats.generated_tokens}};
}

json swift_stats(const GenerateResult& r, const json& mode_stats, const std::string& mode, double queue_ms) {
  auto x = [&](const char* k) { return r.stats.extra.count(k) ? r.stats.extra.at(k) : 0.0; };
  json s = {{"decode", mode},
            {"acceptance_rate", x("acceptance_rate")},
            {"accepted_tokens_per_step", x("mean_accepted_per_step")},
            {"drafted_tokens", static_cast<int64_t>(x("drafted_tokens"))},
            {"accepted_tokens", static_cast<int64_t>(x("accepted_tokens"))},
            {"verify_steps", static_cast<int64_t>(x("verify_steps"))},
            {"prefill_ms", r.stats.prefill_ms},
            {"decode_ms", r.stats.decode_ms},
            {"queue_ms", queue_ms},
            {"decode_tokens_per_s", r.stats.decode_tokens_per_s()}};
  for (const auto& [k, v] : mode_stats.items()) s[k] = v;
  return s;
}

json completion_response(const ApiRequest& req, const std::string& id, int64_t created, const std::string& model,
                         const GenerateResult& r, const json& stats) {
  json choice = {{"index", 0}, {"finish_reason", r.finish_reason}, {"logprobs", nullptr}};
  if (req.chat) choice["message"] = {{"role", "assistant"}, {"content", r.text}};
  else choice["text"] = r.text;
  return {{"id", id},
          {"object", req.chat ? "chat.completion" : "text_completion"},
          {"created", created},
          {"model", model},
          {"choices", json::array({choice})},
          {"usage", usage_json(r)},
          {"swift", stats}};
}

json stream_chunk(const ApiRequest& req, const std::string& id, int64_t created, const std::string& model,
                  const std::string& text, const char* finish_reason, bool first) {
  json choice = {{"index", 0}, {"finish_reason", finish_reason ? json(finish_reason) : json()}, {"logprobs", nullptr}};
  if (req.chat) {
    json delta = json::object();
    if (first) delta["role"] = "assistant";
    if (!finish_reason) delta["content"] = text;
    choice["delta"] = delta;
  } else {
    choice["text"] = text;
  }
  return {{"id", id},
          {"object", req.chat ? "chat.completion.chunk" : "text_completion"},
          {"created", created},
          {"model", model},
          {"choices", json::array({choice})}};
}

}  // namespace swift
