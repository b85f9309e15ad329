// Chat templates: our Jinja subset against the official Hugging Face Jinja implementation
// (tests/data/chat_template_cases.json, recorded by tests/node/chat_cases.mjs with
// @huggingface/jinja), plus the interpreter's errors and limits and chat prompt encoding.
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>

#include "model/chat_template.h"
#include "model/model.h"
#include "model/tokenizer.h"
#include "test_util.h"

namespace swift {
namespace {

using jinja::Template;
using jinja::TemplateError;
using jinja::Value;

std::string render(const std::string& src, const jinja::Object& globals = {}) { return Template(src).render(globals); }

TEST(ChatTemplateCases, MatchHuggingFaceJinja) {
  const auto j = test::load_json(test::data_path("chat_template_cases.json"));
  const auto& cases = j.at("cases");
  ASSERT_GE(cases.size(), 250u);
  int compared = 0, errors = 0, python = 0;
  for (const auto& c : cases) {
    SCOPED_TRACE(c.at("name").get<std::string>() + " " + c.at("messages").dump() +
                 (c.at("add_generation_prompt").get<bool>() ? " +gen" : ""));
    ChatTemplate t(c.at("name"), c.at("template"), c.at("bos_token"), c.at("eos_token"));
    // Where Python's Jinja2 and the JS port disagree, transformers (Python) is the reference.
    const auto& want = c.contains("python") ? c.at("python") : c.at("expected");
    python += c.contains("python");
    if (want.contains("error")) {
      try {
        t.apply(c.at("messages"), c.at("add_generation_prompt"));
        ADD_FAILURE() << "expected an error: " << want.at("error");
      } catch (const TemplateError& e) {
        // raise_exception() messages are passed through to the client.
        EXPECT_NE(std::string(e.what()).find(want.at("error").get<std::string>()), std::string::npos) << e.what();
      }
      ++errors;
    } else {
      EXPECT_EQ(t.apply(c.at("messages"), c.at("add_generation_prompt")), want.at("text").get<std::string>());
      ++compared;
    }
  }
  EXPECT_GT(errors, 10);
  EXPECT_GT(compared, 200);
  EXPECT_EQ(python, 4);
}

TEST(ChatTemplateCases, BuiltinsAreTheRecordedTemplates) {
  // The fixture must be regenerated when a built-in changes (tests/node/chat_cases.mjs).
  const auto j = test::load_json(test::data_path("chat_template_cases.json"));
  std::set<std::string> seen;
  for (const auto& c : j.at("cases")) {
    const std::string name = c.at("name");
    if (name.rfind("features", 0) == 0) continue;
    seen.insert(name);
    EXPECT_EQ(ChatTemplate::builtin_source(name), c.at("template").get<std::string>()) << name;
  }
  EXPECT_EQ(seen.size(), ChatTemplate::builtin_names().size());
}

TEST(Jinja, WhitespaceControlAsTransformers) {
  // trim_blocks: the newline after a block tag goes; lstrip_blocks: indentation before it goes.
  EXPECT_EQ(render("{% if true %}\n  yes\n{% endif %}\nend"), "  yes\nend");
  EXPECT_EQ(render("a  {%- if true -%}  b  {%- endif -%}  c"), "abc");
  EXPECT_EQ(render("x {{- ' y ' -}} z"), "x y z");
  EXPECT_EQ(render("    {% set a = 1 %}v{{ a }}"), "v1");
  EXPECT_EQ(render("{# comment #}\nz"), "z");
  EXPECT_EQ(render("{% raw %}{{ not rendered }}{% endraw %}"), "{{ not rendered }}");
}

TEST(Jinja, PythonSemantics) {
  EXPECT_EQ(render("{{ true }} {{ none }} {{ 1.0 }} {{ [1, 'a'] }} {{ {'k': none} }}"), "True None 1.0 [1, 'a'] {'k': None}");
  EXPECT_EQ(render("{{ '' or 'x' }} {{ 0 and 1 }} {{ -7 // 2 }} {{ -7 % 3 }} {{ 'ab' * 2 }}"), "x 0 -4 2 abab");
  EXPECT_EQ(render("{% for x in xs %}{% set y = x %}{% endfor %}[{{ y }}]", {{"xs", Value::array({1, 2})}}), "[]");
  EXPECT_EQ(render("{% set ns = namespace(v=0) %}{% for x in [1,2,3] %}{% set ns.v = ns.v + x %}{% endfor %}{{ ns.v }}"),
            "6");
  EXPECT_EQ(render("{% for x in [1,2,3,4] %}{% if x == 3 %}{% break %}{% endif %}{{ x }}{% endfor %}"), "12");
  EXPECT_EQ(render("{{ {'a': [1, 'é\n']} | tojson }}"), "{\"a\": [1, \"é\\n\"]}");
  EXPECT_EQ(render("{{ 'abcdef'[1:-1:2] }}|{{ [1,2,3][-1] }}|{{ 'x'[5] }}"), "bd|3|");
}

TEST(Jinja, ErrorsNameTheLineAndConstruct) {
  auto message = [](const std::string& src) -> std::string {
    try {
      render(src);
    } catch (const TemplateError& e) {
      return e.what();
    }
    return "no error";
  };
  EXPECT_NE(message("a\n{% macro m() %}{% endmacro %}").find("line 2: unsupported template tag '{% macro %}'"),
            std::string::npos);
  EXPECT_NE(message("{{ x | frobnicate }}").find("unsupported filter 'frobnicate'"), std::string::npos);
  EXPECT_NE(message("{% if x %}").find("missing {% endif %}"), std::string::npos);
  EXPECT_NE(message("{{ 'a' + 1 }}").find("unsupported operand types for +: string and int"), std::string::npos);
  EXPECT_NE(message("{{ raise_exception('no system role') }}").find("no system role"), std::string::npos);
  EXPECT_NE(message("ok\n{{ 'unterminated }}").find("line 2: unclosed '{{' tag"), std::string::npos);
}

TEST(Jinja, RenderIsBounded) {
  // Templates come from model files: a hostile one must not hang or exhaust memory.
  EXPECT_THROW(render("{% for i in range(100000000) %}{% endfor %}"), TemplateError);
  jinja::RenderLimits lim;
  lim.max_output = 1000;
  EXPECT_THROW(Template("{% for i in range(1000) %}xx{% endfor %}").render({}, lim), TemplateError);
  EXPECT_THROW(render("{% set ns = namespace(s='x') %}{% for i in range(60) %}{% set ns.s = ns.s + ns.s %}{% endfor %}"), TemplateError);
  // A namespace that contains itself (found by the fuzzer: printing it overflowed the stack).
  EXPECT_THROW(render("{% set ns = namespace(c=0) %}{% set ns.c = ns %}{{ ns }}"), TemplateError);
  EXPECT_THROW(render("{% set ns = namespace(c=0) %}{% set ns.c = ns %}{{ [ns] }}"), TemplateError);
  EXPECT_THROW(render("{% set ns = namespace(c=0) %}{% set ns.c = ns %}{{ ns | tojson }}"), TemplateError);
  // Deep but finite nesting still prints.
  EXPECT_EQ(render("{{ [[[[1]]]] }}"), "[[[[1]]]]");
}

TEST(ChatPrompt, SpecialTokenTextBecomesTokensAndBosIsNotDoubled) {
  auto model = load_model(test::model_path("swift-mini-24L"));
  const Tokenizer& tok = model->tok();
  auto tmpl = load_chat_template(*model, "llama2");
  const nlohmann::json msgs = {{{"role", "user"}, {"content", "Hi"}}, {{"role", "assistant"}, {"content", "Yo"}},
                               {{"role", "user"}, {"content", "More"}}};
  const std::string text = tmpl->apply(msgs, true);
  EXPECT_EQ(text, "<s>[INST] Hi [/INST] Yo </s><s>[INST] More [/INST]");
  const auto ids = encode_chat_prompt(tok, text);
  ASSERT_GT(ids.size(), 4u);
  EXPECT_EQ(ids[0], tok.bos_id);
  EXPECT_NE(ids[1], tok.bos_id);
  EXPECT_EQ(std::count(ids.begin(), ids.end(), tok.bos_id), 2);
  EXPECT_EQ(std::count(ids.begin(), ids.end(), tok.eos_id), 1);
  // A model without a template: a clear error that names the built-ins.
  try {
    load_chat_template(*model, "");
    ADD_FAILURE() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("--chat-template NAME (chatml, codellama, llama2, llama3, mistral, qwen2)"),
              std::string::npos) << e.what();
  }
  EXPECT_THROW(load_chat_template(*model, "no-such-template"), Error);
  // A template file using something the interpreter does not support: refused at load, naming
  // the construct and line and pointing at the built-ins (the server then answers chat
  // requests with this message as a 400).
  const std::string path = "/tmp/swiftllm_unsupported_template.jinja";
  std::ofstream(path) << "{{ bos_token }}\n{% macro turn(m) %}{{ m.content }}{% endmacro %}";
  try {
    load_chat_template(*model, path);
    ADD_FAILURE() << "expected an error";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("is not supported: line 2: unsupported template tag '{% macro %}'"), std::string::npos) << msg;
    EXPECT_NE(msg.find("--chat-template NAME"), std::string::npos) << msg;
  }
  std::remove(path.c_str());
}

}  // namespace
}  // namespace swift
