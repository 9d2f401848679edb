// Copyright (c) glint authors.

#ifndef GLINT_TOOLS_DEMO_H_
#define GLINT_TOOLS_DEMO_H_

namespace glint::tools {

// Runs `glint demo`; returns the process exit status (0: every byte arrived).
int RunDemo();

}  // namespace glint::tools

#endif  // GLINT_TOOLS_DEMO_H_
