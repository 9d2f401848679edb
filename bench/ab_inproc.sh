#!/usr/bin/env bash
# Compares two builds of libglint in one process (bench/ab_inproc.cc).
#
#   bench/ab_inproc.sh BUILD_A BUILD_B [MODES] [ROUNDS]
#
# BUILD_A, BUILD_B: CMake build directories (any build type with a
# libglint.so; each may come from another commit: its shim is compiled
# against that build's own source headers, read from its CMakeCache.txt).
# MODES: letters of c (create+write+seal), g (get+release), d (delete),
# f (full cycle); default "cgdf". ROUNDS: default 400.
# Prints, per mode, each build's median ns/op and the median of the
# per-round ratios B/A with their quartiles. A/A runs of this script agree
# within about 4% on the 2-core VM; smaller differences need callgrind.
set -euo pipefail
[ $# -ge 2 ] || { sed -n 2,13p "$0"; exit 2; }
here=$(cd "$(dirname "$0")" && pwd)
a=$(cd "$1" && pwd); b=$(cd "$2" && pwd)
modes=${3:-cgdf}; rounds=${4:-400}
cxx=${CXX:-g++}
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
shim() {  # BUILD OUT
  local src
  src=$(sed -n 's/^glint_SOURCE_DIR:STATIC=//p' "$1/CMakeCache.txt")
  [ -f "$1/libglint.so" ] || { echo "$1: no libglint.so" >&2; exit 1; }
  "$cxx" -O2 -std=c++20 -shared -fPIC "$here/ab_shim.cc" -I"$src/client/include" \
    -I"$1/include" -L"$1" -lglint -Wl,-rpath,"$1" -o "$2"
}
shim "$a" "$tmp/a.so"
shim "$b" "$tmp/b.so"
"$cxx" -O2 -std=c++20 "$here/ab_inproc.cc" -o "$tmp/ab_inproc" -ldl
for ((i = 0; i < ${#modes}; i++)); do
  "$tmp/ab_inproc" "$tmp/a.so" "$tmp/b.so" "${modes:i:1}" "$rounds"
done
