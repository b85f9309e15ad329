// Helpers shared by the CLI commands: option parsing of id lists, prompt input, JSON output.
#pragma once

#include <CLI/CLI.hpp>
#include <cstdint>
#include <string>
#include <vector>

#include "model/model.h"

namespace swift::cli {

// "1,2,3" -> {1,2,3}; throws swift::Error naming the bad element.
std::vector<int32_t> parse_ids(const std::string& s, const char* option);

// Prompt from exactly one of -p TEXT, -f FILE, --prompt-ids; text gets BOS per tokenizer config.
struct PromptOptions {
  std::string text, file, ids;
  bool no_bos = false;
  void add_to(CLI::App& app);
  std::vector<int32_t> resolve(const Model& model) const;
};

std::string read_file(const std::string& path);

// `--math auto|f32|bf16|q8` (model/weights.h, MatMath): how matrix products round.
void add_math_option(CLI::App& app, std::string& value);
MatMath parse_math(const std::string& value);

// Resident set size of this process in bytes (from /proc/self/status), 0 if unknown.
uint64_t resident_bytes();

// Registers each subcommand; its callback runs the command.
void add_generate(CLI::App& app);
void add_score(CLI::App& app);
void add_info(CLI::App& app);
void add_tokenize(CLI::App& app);
void add_bench(CLI::App& app);
void add_convert(CLI::App& app);
void add_template(CLI::App& app);
void add_serve(CLI::App& app);

}  // namespace swift::cli
