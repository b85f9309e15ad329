// Chat templates: our Jinja subset against the official Hugging Face Jinja implementation
// (tests/data/chat_template_cases.json, recorded by tests/node/chat_cases.mjs with
// @huggingface/jinja), plus the interpreter's errors and limits and chat prompt encoding.
#include <gtest/gtest.h>

#include <cstdio>
#include <limits>
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

TEST(Jinja, ParseDepthIsBounded) {
  // Parsing and rendering recurse per nesting level; a template from a model file must not be
  // able to overflow the stack (the fuzzer found `((((...` 3000 deep).
  auto message = [](const std::string& src) -> std::string {
    try {
      return "rendered " + render(src);
    } catch (const TemplateError& e) {
      return e.what();
    }
  };
  auto repeat = [](const std::string& s, int n) {
    std::string r;
    for (int i = 0; i < n; ++i) r += s;
    return r;
  };
  EXPECT_NE(message("{{ " + repeat("(", 5000) + "1" + repeat(")", 5000) + " }}").find("nested more than 128 levels"),
            std::string::npos);
  EXPECT_NE(message("{{ " + repeat("- ", 5000) + "1 }}").find("nested more than 128 levels"), std::string::npos);
  EXPECT_NE(message("{{ " + repeat("not ", 5000) + "1 }}").find("nested more than 128 levels"), std::string::npos);
  EXPECT_NE(message("{{ " + repeat("[", 5000) + repeat("]", 5000) + " }}").find("nested more than 128 levels"),
            std::string::npos);
  // Left-deep chains build tall trees without recursing in the parser.
  EXPECT_NE(message("{{ 1" + repeat(" + 1", 100000) + " }}").find("line 1: expression nested more than 256 levels deep"),
            std::string::npos);
  EXPECT_NE(message("{{ 'x'" + repeat(" | trim", 100000) + " }}").find("nested more than 256 levels"),
            std::string::npos);
  EXPECT_NE(message(repeat("{% if true %}", 10000) + repeat("{% endif %}", 10000)).find("blocks nested more than 64 levels deep"),
            std::string::npos);
  // Within the bounds all of it still works.
  EXPECT_EQ(render("{{ " + repeat("(", 100) + "1" + repeat(")", 100) + " }}"), "1");
  EXPECT_EQ(render("{{ 0" + repeat(" + 1", 250) + " }}"), "250");
  EXPECT_EQ(render(repeat("{% if true %}", 60) + "in" + repeat("{% endif %}", 60)), "in");
}

TEST(Jinja, IntegerArithmeticIsExactOrAnError) {
  // Python ints are unbounded, ours int64: a result past int64 is a named error, never wrapped
  // (signed overflow; found by the fuzzer as `**` casting a huge double to int64).
  const int64_t kMax = std::numeric_limits<int64_t>::max();
  const std::string max = std::to_string(kMax);
  auto message = [](const std::string& src) -> std::string {
    try {
      return "rendered " + render(src);
    } catch (const TemplateError& e) {
      return e.what();
    }
  };
  EXPECT_EQ(render("{{ 2 ** 62 }}|{{ (-2) ** 63 }}|{{ 3 ** 0 }}|{{ 2 ** -1 }}"), "4611686018427387904|-9223372036854775808|1|0.5");
  EXPECT_EQ(render("{{ " + max + " - 1 + 1 }}|{{ -" + max + " - 1 }}"), max + "|" + std::to_string(-kMax - 1));
  EXPECT_EQ(message("{{ 2 ** 63 }}"), "line 1: integer overflow in **");
  EXPECT_EQ(message("{{ " + max + " ** 2 }}"), "line 1: integer overflow in **");
  EXPECT_EQ(message("{{ " + max + " + 1 }}"), "line 1: integer overflow in +");
  EXPECT_EQ(message("{{ -" + max + " - 2 }}"), "line 1: integer overflow in -");
  EXPECT_EQ(message("{{ " + max + " * 2 }}"), "line 1: integer overflow in *");
  EXPECT_EQ(message("{% set m = -" + max + " - 1 %}{{ -m }}"), "line 1: integer overflow in unary -");
  EXPECT_EQ(message("{% set m = -" + max + " - 1 %}{{ m | abs }}"), "line 1: integer overflow in abs");
  EXPECT_EQ(message("{% set m = -" + max + " - 1 %}{{ m // -1 }}"), "line 1: integer overflow in //");
  EXPECT_EQ(render("{% set m = -" + max + " - 1 %}{{ m % -1 }}|{{ m // 1 }}"), "0|" + std::to_string(-kMax - 1));
  EXPECT_EQ(message("{{ (10.0 ** 300) | int }}"), "line 1: int() of 1e+300 does not fit a 64-bit integer");
  EXPECT_EQ(render("{{ -2.7 | int }}|{{ 2.7 | int }}"), "-2|2");
  // Loops whose next index would leave int64 end instead of wrapping around.
  EXPECT_EQ(render("{% for i in range(" + max + " - 1, " + max + ", 5) %}{{ i }}{% endfor %}"), std::to_string(kMax - 1));
  EXPECT_EQ(render("{{ 'abc'[::" + max + "] }}|{{ 'abc'[::-" + max + "] }}"), "a|c");
  EXPECT_EQ(message("{{ [1] | tojson(indent=1000000000) }}"), "line 1: tojson indent 1000000000 is outside 0..64");
  EXPECT_EQ(render("{{ [1] | tojson(indent=2) }}"), "[\n  1\n]");
  // A repeat count whose product with the length wraps uint64 is still too long.
  EXPECT_EQ(message("{{ 'abcd' * 4611686018427387904 }}"), "line 1: string repeat too long");
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
