// `swiftllm template`: renders a chat with a model's (or a built-in) chat template, as the
// server does for /v1/chat/completions; --batch renders many cases for the template tests.
#include <cstdio>
#include <iostream>
#include <iterator>
#include <nlohmann/json.hpp>

#include "cli/common.h"
#include "model/chat_template.h"
#include "util/check.h"

namespace swift::cli {

namespace {

struct TemplateArgs {
  std::string model, chat_template, messages, batch;
  bool no_generation_prompt = false, ids = false, builtins = false;
};

nlohmann::json read_json(const std::string& path) {
  const std::string text = path == "-" ? std::string(std::istreambuf_iterator<char>(std::cin), {}) : read_file(path);
  nlohmann::json j = nlohmann::json::parse(text, nullptr, false);
  if (j.is_discarded()) fail("{}: not valid JSON", path);
  return j;
}

void run(const TemplateArgs& a) {
  if (a.builtins) {
    nlohmann::json out = nlohmann::json::object();
    for (const auto& n : ChatTemplate::builtin_names()) out[n] = ChatTemplate::builtin_source(n);
    std::puts(out.dump(2).c_str());
    return;
  }
  if (!a.batch.empty()) {
    // [{template, messages, add_generation_prompt, bos_token, eos_token}] -> [{text} | {error}]
    const nlohmann::json cases = read_json(a.batch);
    if (!cases.is_array()) fail("{}: expected a JSON array of cases", a.batch);
    nlohmann::json out = nlohmann::json::array();
    for (const auto& c : cases) {
      try {
        ChatTemplate t("case", c.at("template").get<std::string>(), c.value("bos_token", ""), c.value("eos_token", ""));
        out.push_back({{"text", t.apply(c.at("messages"), c.value("add_generation_prompt", false))}});
      } catch (const std::exception& e) {
        out.push_back({{"error", e.what()}});
      }
    }
    std::puts(out.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
    return;
  }
  if (a.model.empty() || a.messages.empty()) fail("give -m MODEL and --messages FILE (or --builtins / --batch FILE)");
  auto model = load_model(a.model);
  auto tmpl = load_chat_template(*model, a.chat_template);
  const nlohmann::json messages = read_json(a.messages);
  if (!messages.is_array()) fail("{}: expected a JSON array of {{role, content}} messages", a.messages);
  const std::string text = tmpl->apply(messages, !a.no_generation_prompt);
  if (a.ids) {
    const auto ids = encode_chat_prompt(model->tok(), text);
    for (size_t i = 0; i < ids.size(); ++i) std::printf("%s%d", i ? "," : "", ids[i]);
    std::printf("\n");
  } else {
    std::fwrite(text.data(), 1, text.size(), stdout);
  }
}

}  // namespace

void add_template(CLI::App& app) {
  auto a = std::make_shared<TemplateArgs>();
  CLI::App* c = app.add_subcommand("template", "Render a chat (JSON messages) with the model's chat template");
  c->add_option("-m,--model", a->model, "Model folder or GGUF file");
  c->add_option("--messages", a->messages, "JSON file with [{\"role\": ..., \"content\": ...}, ...] ('-' = stdin)");
  c->add_option("--chat-template", a->chat_template,
                "Built-in template name (" + ChatTemplate::builtin_list() + ") or a Jinja file; default: the model's own");
  c->add_flag("--no-generation-prompt", a->no_generation_prompt, "Do not append the assistant turn header");
  c->add_flag("--ids", a->ids, "Print the prompt's token ids instead of its text");
  c->add_flag("--builtins", a->builtins, "Print the built-in templates as JSON {name: source}");
  c->add_option("--batch", a->batch, "Render a JSON array of test cases (used by tests/node)");
  c->callback([a] { run(*a); });
}

}  // namespace swift::cli
