// Parses Jinja template text into a syntax tree. Throws TemplateError naming the line.
#pragma once

#include <string_view>

#include "model/jinja/ast.h"

namespace swift::jinja {

Body parse_template(std::string_view source);

}  // namespace swift::jinja
