#!/usr/bin/env bash
# Installs what is missing, builds glint, and runs `glint demo`: a producer
# and a consumer process moving objects through a temporary store.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
ninja -C build glint_tool >/dev/null
exec build/glint demo
