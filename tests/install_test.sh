#!/usr/bin/env bash
# Installs glint into a temporary prefix, moves the tree (it must be
# relocatable), builds a consumer with find_package(glint) and another with
# pkg-config, and runs both against a glintd started from the moved tree.
# Usage: install_test.sh BUILD_DIR SOURCE_DIR
set -euo pipefail
build=$1
src=$2
tmp=$(mktemp -d /tmp/glint-install-test.XXXXXX)
glintd_pid=""
cleanup() {
  [ -n "$glintd_pid" ] && kill "$glintd_pid" 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT

cmake --install "$build" --prefix "$tmp/first" >/dev/null
mv "$tmp/first" "$tmp/prefix"
prefix=$tmp/prefix
for f in bin/glintd bin/glint include/glint/glint.h include/glint/version.h \
         lib/libglint.so lib/cmake/glint/glintConfig.cmake \
         lib/cmake/glint/glintConfigVersion.cmake lib/pkgconfig/glint.pc; do
  [ -e "$prefix/$f" ] || { echo "missing $f in the installed tree"; exit 1; }
done
soname=$(readelf -d "$prefix/lib/libglint.so" | sed -n 's/.*SONAME.*\[\(.*\)\]/\1/p')
[ -n "$soname" ] || { echo "libglint.so has no SONAME"; exit 1; }

# With find_package.
cmake -S "$src/tests/install_consumer" -B "$tmp/consumer-build" -G Ninja \
  -DCMAKE_PREFIX_PATH="$prefix" >/dev/null
ninja -C "$tmp/consumer-build" >/dev/null
# With pkg-config.
PKG_CONFIG_PATH="$prefix/lib/pkgconfig" c++ "$src/tests/install_consumer/consumer.cc" \
  -o "$tmp/consumer-pc" $(PKG_CONFIG_PATH="$prefix/lib/pkgconfig" pkg-config --cflags --libs glint)

sock=$tmp/store.sock
"$prefix/bin/glintd" --socket "$sock" --capacity 16MiB 2>"$tmp/glintd.log" &
glintd_pid=$!
for _ in $(seq 500); do [ -S "$sock" ] && break; sleep 0.01; done
[ -S "$sock" ] || { echo "glintd did not start"; cat "$tmp/glintd.log"; exit 1; }

"$tmp/consumer-build/consumer" "$sock"
"$tmp/consumer-pc" "$sock"
"$prefix/bin/glint" stat "$sock" >/dev/null
kill -TERM "$glintd_pid"
wait "$glintd_pid"
glintd_pid=""
[ ! -e "$sock" ] || { echo "glintd left its socket behind"; exit 1; }
echo "install test passed"
