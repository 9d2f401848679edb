#!/bin/bash
# README.md's example, built and run exactly as README.md says: its first
# C++ block after "## Example", compiled by the shell block after it, from a
# directory where client/ is this source tree and build/ this build tree.
# Keeps the README's code and command true (the command once lacked
# -Ibuild/include and nothing noticed).
# Usage: readme_example_test.sh SOURCE_DIR BUILD_DIR
set -euo pipefail
src=$1
bin=$2
block() {  # the first fenced block of language $1 after "## Example"
  awk -v lang="$1" '/^## Example/ { f = 1 }
    f && $0 == "```" lang { c = 1; next }
    c && /^```/ { exit }
    c { print }' "$src/README.md"
}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
block cpp > "$work/demo.cc"
cmd=$(block sh)
if [ ! -s "$work/demo.cc" ] || [ -z "$cmd" ]; then
  echo "README.md: no example (cpp block) or no command (sh block) after '## Example'"
  exit 1
fi
ln -s "$src/client" "$work/client"
ln -s "$bin" "$work/build"
cd "$work"
echo "+ $cmd"
bash -c "$cmd"
echo "README example: built, ran, exit 0"
