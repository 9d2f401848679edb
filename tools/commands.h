// Copyright (c) glint authors.
//
// The inspecting commands of the glint tool (ls, stat, check), as functions
// over a connected Client that write to a stream, so that tests and the
// fuzz targets run exactly what `glint ls|stat|check` runs.

#ifndef GLINT_TOOLS_COMMANDS_H_
#define GLINT_TOOLS_COMMANDS_H_

#include <ostream>
#include <string>

#include "glint/glint.h"

namespace glint::tools {

// `glint ls`: every object (building ones too), oldest first, as a table or
// one JSON array. Does not block. Errors: those of Client::ListObjects.
Status ListCommand(Client& client, bool json, std::ostream& out);

// `glint stat`: capacity, memory and object counts; the client count leaves
// out `client` itself. Does not block. Errors: those of Client::Stats.
Status StatCommand(Client& client, bool json, std::ostream& out);

// `glint check`: runs the region checker (core/check.h) over the store that
// `client` maps and writes its report. *sound says whether it found no
// problem. Does not block; always OK (a damaged store is a report, not an
// error).
Status CheckCommand(Client& client, bool quiescent, bool json, std::ostream& out,
                    bool* sound);

// A string as a JSON string literal (quotes included; bytes outside
// printable ASCII as \u00XX).
std::string JsonString(const std::string& s);

}  // namespace glint::tools

#endif  // GLINT_TOOLS_COMMANDS_H_
