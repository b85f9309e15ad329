// Chat templates: OpenAI-style message lists -> prompt text -> token ids.
//
// A model's own template (tokenizer_config.json `chat_template`, GGUF
// `tokenizer.chat_template`) is rendered by the Jinja subset interpreter (model/jinja) with
// transformers' variables: messages, add_generation_prompt, bos_token, eos_token. Built-in
// templates cover models that ship none (`--chat-template NAME`).
#pragma once

#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "model/jinja/jinja.h"

namespace swift {

class Tokenizer;

class ChatTemplate {
 public:
  // Parses `source`; throws jinja::TemplateError naming the line of an unsupported construct.
  ChatTemplate(std::string name, const std::string& source, std::string bos_token, std::string eos_token);

  // Names of the built-in templates, and their sources (throws swift::Error for an unknown name).
  static std::vector<std::string> builtin_names();
  static std::string builtin_list();  // "chatml, codellama, ..." for messages and --help
  static const std::string& builtin_source(const std::string& name);

  // Renders `messages` (array of {role, content}); throws jinja::TemplateError when the template
  // refuses them (raise_exception) or fails.
  std::string apply(const nlohmann::json& messages, bool add_generation_prompt) const;
  const std::string& name() const { return name_; }

 private:
  std::string name_;
  jinja::Template tmpl_;
  std::string bos_, eos_;
};

struct Model;

// The template chat requests use: `choice` is a built-in name or a Jinja file path; empty means
// the model's own template. Throws swift::Error when there is none (naming the built-ins) or it
// does not parse (the line and construct, with the hint to pick a built-in).
std::unique_ptr<ChatTemplate> load_chat_template(const Model& model, const std::string& choice);

// The chat_template of a tokenizer_config.json value: a string, or a list of {name, template}
// (the one named "default", else the first). Empty when absent.
std::string chat_template_from_config(const nlohmann::json& tokenizer_config);

// Token ids of a rendered chat prompt: the text of BOS/EOS (e.g. "<s>", "<|begin_of_text|>")
// becomes those tokens instead of being spelled out, and BOS is added when the tokenizer adds
// one and the template did not already write it.
std::vector<int32_t> encode_chat_prompt(const Tokenizer& tok, const std::string& text);

}  // namespace swift
