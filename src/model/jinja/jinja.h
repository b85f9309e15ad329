// A Jinja subset interpreter, enough for the chat templates that Hugging Face models ship in
// tokenizer_config.json / GGUF `tokenizer.chat_template` (LLaMA-2/3, Mistral, ChatML/Qwen2,
// CodeLlama and similar).
//
// Supported: {{ }}, {% if/elif/else %}, {% for x[, y] in ... [if ...] %} with loop.* and
// {% else %}, {% set %} (also ns.attr and block form), break/continue, raw, comments, `-`
// whitespace control with trim_blocks + lstrip_blocks (transformers' settings); expressions
// with Python semantics (literals, lists, dicts, attribute/index/slice access, arithmetic,
// comparisons, in, and/or/not, conditional expressions, ~), the common filters, tests, string
// and dict methods, and the globals raise_exception, range, namespace. Anything else (macros,
// call blocks, includes, unknown filters) is a TemplateError naming the line, never a silent
// empty render. Rendering is bounded (output size, loop iterations) because templates may come
// from model files and run once per request.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "model/jinja/ast.h"
#include "model/jinja/value.h"

namespace swift::jinja {

struct RenderLimits {
  size_t max_output = size_t{32} << 20;  // bytes
  int64_t max_iterations = 1'000'000;    // loop iterations over the whole render
};

class Template {
 public:
  // Parses; throws TemplateError for syntax errors and unsupported tags.
  explicit Template(std::string_view source);
  // Renders with these top-level variables. Throws TemplateError (raise_exception() in the
  // template included: its message is kept).
  std::string render(const Object& globals, const RenderLimits& limits = {}) const;

 private:
  std::shared_ptr<const Body> body_;
};

}  // namespace swift::jinja
