#include "model/chat_template.h"

#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "model/model.h"
#include "model/tokenizer.h"
#include "util/check.h"

namespace swift {

namespace {

// The templates these model families publish in their tokenizer_config.json (as of their
// releases), used when a model has none of its own.
const std::map<std::string, std::string>& builtins() {
  static const std::map<std::string, std::string> k = {
      {"llama2",
       R"({% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}{% set system_message = messages[0]['content'] %}{% else %}{% set loop_messages = messages %}{% set system_message = false %}{% endif %}{% for message in loop_messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% if loop.index0 == 0 and system_message != false %}{% set content = '<<SYS>>\n' + system_message + '\n<</SYS>>\n\n' + message['content'] %}{% else %}{% set content = message['content'] %}{% endif %}{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}{% elif message['role'] == 'assistant' %}{{ ' '  + content.strip() + ' ' + eos_token }}{% endif %}{% endfor %})"},
      {"codellama",
       R"({% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}{% set system_message = messages[0]['content'] %}{% else %}{% set loop_messages = messages %}{% set system_message = false %}{% endif %}{% for message in loop_messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% if loop.index0 == 0 and system_message != false %}{% set content = '<<SYS>>\n' + system_message + '\n<</SYS>>\n\n' + message['content'] %}{% else %}{% set content = message['content'] %}{% endif %}{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + content | trim + ' [/INST]' }}{% elif message['role'] == 'assistant' %}{{ ' '  + content | trim + ' ' + eos_token }}{% endif %}{% endfor %})"},
      {"llama3",
       R"({% set loop_messages = messages %}{% for message in loop_messages %}{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>

'+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>

' }}{% endif %})"},
      {"mistral",
       R"({{ bos_token }}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}{% elif message['role'] == 'assistant' %}{{ message['content'] + eos_token}}{% else %}{{ raise_exception('Only user and assistant roles are supported!') }}{% endif %}{% endfor %})"},
      {"qwen2",
       R"({% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system
You are a helpful assistant.<|im_end|>
' }}{% endif %}{{'<|im_start|>' + message['role'] + '
' + message['content'] + '<|im_end|>' + '
'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant
' }}{% endif %})"},
      {"chatml",
       R"({%- for message in messages %}
    {{- '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|im_start|>assistant\n' }}
{%- endif %})"},
  };
  return k;
}

}  // namespace

ChatTemplate::ChatTemplate(std::string name, const std::string& source, std::string bos_token, std::string eos_token)
    : name_(std::move(name)), tmpl_(source), bos_(std::move(bos_token)), eos_(std::move(eos_token)) {}

std::vector<std::string> ChatTemplate::builtin_names() {
  std::vector<std::string> out;
  for (const auto& [k, v] : builtins()) out.push_back(k);
  return out;
}

std::string ChatTemplate::builtin_list() {
  std::string names;
  for (const auto& [k, v] : builtins()) names += (names.empty() ? "" : ", ") + k;
  return names;
}

const std::string& ChatTemplate::builtin_source(const std::string& name) {
  auto it = builtins().find(name);
  if (it == builtins().end()) fail("unknown chat template '{}' (built-in: {})", name, builtin_list());
  return it->second;
}

std::string ChatTemplate::apply(const nlohmann::json& messages, bool add_generation_prompt) const {
  jinja::Object globals = {{"messages", jinja::Value::from_json(messages)},
                           {"add_generation_prompt", jinja::Value(add_generation_prompt)},
                           {"bos_token", jinja::Value(bos_)},
                           {"eos_token", jinja::Value(eos_)}};
  return tmpl_.render(globals);
}

std::unique_ptr<ChatTemplate> load_chat_template(const Model& model, const std::string& choice) {
  std::string bos, eos;
  if (model.tokenizer) {
    const Tokenizer& t = *model.tokenizer;
    if (t.bos_id >= 0 && t.bos_id < t.vocab_size()) bos = t.piece(t.bos_id);
    const int32_t e = !model.eos_ids.empty() ? model.eos_ids[0] : t.eos_id;
    if (e >= 0 && e < t.vocab_size()) eos = t.piece(e);
  }
  const std::string names = ChatTemplate::builtin_list();
  std::string name = choice, source;
  if (choice.empty()) {
    if (model.chat_template.empty())
      fail("model '{}' has no chat template (tokenizer_config.json chat_template / GGUF tokenizer.chat_template); "
           "choose one with --chat-template NAME ({}) or a Jinja file",
           model.path, names);
    name = "model";
    source = model.chat_template;
  } else if (builtins().count(choice)) {
    source = builtins().at(choice);
  } else if (std::filesystem::is_regular_file(choice)) {
    std::ifstream in(choice, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    source = ss.str();
  } else {
    fail("--chat-template '{}' is neither a built-in template ({}) nor a readable file", choice, names);
  }
  try {
    return std::make_unique<ChatTemplate>(name, source, bos, eos);
  } catch (const jinja::TemplateError& e) {
    fail("chat template '{}' is not supported: {}; choose a built-in one with --chat-template NAME ({})", name,
         e.what(), names);
  }
}

std::string chat_template_from_config(const nlohmann::json& cfg) {
  if (!cfg.is_object() || !cfg.contains("chat_template")) return "";
  const auto& t = cfg["chat_template"];
  if (t.is_string()) return t.get<std::string>();
  if (t.is_array()) {
    std::string first;
    for (const auto& e : t) {
      if (!e.is_object() || !e.contains("template") || !e["template"].is_string()) continue;
      if (first.empty()) first = e["template"].get<std::string>();
      if (e.value("name", "") == "default") return e["template"].get<std::string>();
    }
    return first;
  }
  return "";
}

std::vector<int32_t> encode_chat_prompt(const Tokenizer& tok, const std::string& text) {
  struct Special {
    std::string text;
    int32_t id;
  };
  std::vector<Special> specials;
  for (int32_t id : {tok.bos_id, tok.eos_id}) {
    if (id < 0 || id >= tok.vocab_size()) continue;
    const std::string p = tok.piece(id);
    if (!p.empty()) specials.push_back({p, id});
  }
  std::vector<int32_t> out;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t best = std::string::npos;
    const Special* which = nullptr;
    for (const auto& s : specials) {
      const size_t at = text.find(s.text, pos);
      if (at < best) best = at, which = &s;
    }
    const size_t end = best == std::string::npos ? text.size() : best;
    if (end > pos) {
      const auto ids = tok.encode(std::string_view(text).substr(pos, end - pos));
      out.insert(out.end(), ids.begin(), ids.end());
    }
    if (!which) break;
    out.push_back(which->id);
    pos = end + which->text.size();
  }
  if (tok.add_bos && tok.bos_id >= 0 && (out.empty() || out[0] != tok.bos_id)) out.insert(out.begin(), tok.bos_id);
  return out;
}

}  // namespace swift
