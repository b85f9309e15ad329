// swiftllm command-line entry point. The one place where errors are caught and turned into a
// single line on stderr and a non-zero exit status.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <string>

#include "cli/common.h"
#include "util/check.h"
#include "util/cpu_features.h"

int main(int argc, char** argv) {
  // A variant of a portable build run directly on a CPU without its instructions: say so here
  // rather than die of an illegal instruction later (util/cpu_features.h).
  if (const std::string missing = swift::build_variant_missing(); !missing.empty()) {
    std::fprintf(stderr,
                 "error: this swiftllm was built for the %s CPU variant, and this CPU lacks %s; run the `swiftllm` "
                 "launcher of the same build, which picks a variant this CPU runs\n",
                 swift::build_variant(), missing.c_str());
    return 1;
  }
  CLI::App app{
      "swiftllm: LLaMA-family inference on the CPU with SWIFT self-speculative decoding.\n"
      "Models are Hugging Face folders (config.json + safetensors + tokenizer.model) or GGUF files."};
  app.require_subcommand(1);
  app.set_help_all_flag("--help-all", "Help for every command");
  app.set_version_flag("--version", "swiftllm " SWIFTLLM_VERSION ", build " + swift::build_description(),
                       "Version and the CPU variant of this build");
  swift::cli::add_generate(app);
  swift::cli::add_score(app);
  swift::cli::add_info(app);
  swift::cli::add_tokenize(app);
  swift::cli::add_bench(app);
  swift::cli::add_convert(app);
  swift::cli::add_template(app);
  swift::cli::add_serve(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const swift::Error& e) {
    std::fflush(stdout);
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    std::fflush(stdout);
    std::fprintf(stderr, "internal error: %s\n", e.what());
    return 3;
  }
  return 0;
}
