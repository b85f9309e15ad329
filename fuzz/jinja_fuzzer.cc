// libFuzzer target for the chat-template interpreter (src/model/jinja): templates come from
// model files (tokenizer_config.json, GGUF metadata), so any text must parse and render or be
// rejected with swift::Error (TemplateError); ASan/UBSan (fuzz/run) catch everything else.
// The input is the template; it is rendered over a fixed conversation with small limits.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "model/jinja/jinja.h"
#include "util/check.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace swift::jinja;
  static const Object globals = [] {
    const nlohmann::json messages = nlohmann::json::parse(R"([
      {"role": "system", "content": "Be brief."},
      {"role": "user", "content": "Hello {{ there }} \u00e9\ud83d\ude80"},
      {"role": "assistant", "content": "  Hi.  "},
      {"role": "user", "content": ""}])");
    return Object{{"messages", Value::from_json(messages)}, {"add_generation_prompt", Value(true)},
                  {"bos_token", Value("<s>")}, {"eos_token", Value("</s>")}};
  }();
  RenderLimits lim;
  lim.max_output = 1 << 16;
  lim.max_iterations = 10000;
  try {
    Template t(std::string_view(reinterpret_cast<const char*>(data), size));
    (void)t.render(globals, lim);
  } catch (const swift::Error&) {
  }
  return 0;
}
