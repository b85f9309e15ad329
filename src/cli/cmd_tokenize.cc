// `swiftllm tokenize` and `swiftllm detokenize`.
#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>

#include "cli/common.h"
#include "model/tokenizer.h"
#include "util/check.h"

namespace swift::cli {

namespace {

struct TokArgs {
  std::string model, text, file, ids;
  bool no_bos = false, json = false;
};

void run_tokenize(const TokArgs& a) {
  auto tok = load_tokenizer(a.model);
  if (a.text.empty() == a.file.empty()) fail("give exactly one of -p TEXT or -f FILE");
  const std::string t = a.file.empty() ? a.text : read_file(a.file);
  const auto ids = tok->encode_with_specials(t, !a.no_bos);
  if (a.json) {
    std::puts(nlohmann::json({{"ids", ids}}).dump().c_str());
    return;
  }
  for (int32_t id : ids) std::printf("%6d  %s\n", id, tok->piece(id).c_str());
}

void run_detokenize(const TokArgs& a) {
  auto tok = load_tokenizer(a.model);
  const std::string text = tok->decode(parse_ids(a.ids, "--ids"));
  if (a.json) {
    std::puts(nlohmann::json({{"text", text}}).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
    return;
  }
  std::fwrite(text.data(), 1, text.size(), stdout);
  std::printf("\n");
}

}  // namespace

void add_tokenize(CLI::App& app) {
  auto a = std::make_shared<TokArgs>();
  CLI::App* c = app.add_subcommand("tokenize", "Turn text into token ids");
  c->add_option("-m,--model", a->model, "Model folder or tokenizer.model file")->required();
  c->add_option("-p,--prompt", a->text, "Text to tokenize");
  c->add_option("-f,--file", a->file, "Read the text from a file");
  c->add_flag("--no-bos", a->no_bos, "Do not add BOS");
  c->add_flag("--json", a->json, "Print {\"ids\": [...]}");
  c->callback([a] { run_tokenize(*a); });

  auto d = std::make_shared<TokArgs>();
  CLI::App* dc = app.add_subcommand("detokenize", "Turn token ids into text");
  dc->add_option("-m,--model", d->model, "Model folder or tokenizer.model file")->required();
  dc->add_option("--ids", d->ids, "Comma-separated token ids")->required();
  dc->add_flag("--json", d->json, "Print {\"text\": ...}");
  dc->callback([d] { run_detokenize(*d); });
}

}  // namespace swift::cli
