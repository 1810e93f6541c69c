#!/bin/sh
# Installs a built ipckit tree into a temporary prefix, then builds and runs
# tests/install/consumer against it twice: with find_package(ipckit) and with
# pkg-config. Usage: run_install_test.sh BUILD_DIR CONSUMER_SRC WORK_DIR [FLAGS]
# FLAGS (e.g. -fsanitize=address,undefined) must match how ipckit was built.
set -eu
build=$1
consumer=$2
work=$3
flags=${4:-}

rm -rf "$work"
mkdir -p "$work"
prefix=$work/prefix
cmake --install "$build" --prefix "$prefix" >"$work/install.log"

# The library directory (lib or lib/<multiarch>, whatever GNUInstallDirs chose).
so=$(find "$prefix" -name 'libipckit.so' | head -n 1)
[ -n "$so" ] || { echo "libipckit.so not installed under $prefix"; exit 1; }
libdir=$(dirname "$so")
for f in "$prefix/include/ipckit/channel.hpp" "$libdir/libipckit.a" \
         "$libdir/cmake/ipckit/ipckitConfig.cmake" "$libdir/pkgconfig/ipckit.pc" \
         "$prefix/bin/ipckit"; do
    [ -e "$f" ] || { echo "missing after install: $f"; exit 1; }
done

echo "== find_package(ipckit)"
generator=
command -v ninja >/dev/null 2>&1 && generator="-GNinja"
cmake $generator -S "$consumer" -B "$work/cmake-build" -DCMAKE_PREFIX_PATH="$prefix" \
      -DCMAKE_CXX_FLAGS="$flags" -DCMAKE_EXE_LINKER_FLAGS="$flags" >"$work/cmake-configure.log"
cmake --build "$work/cmake-build" >"$work/cmake-build.log"
"$work/cmake-build/consumer"
# It must run against the installed shared library, not a static copy.
ldd "$work/cmake-build/consumer" | grep -q "$libdir/libipckit.so" || {
    echo "consumer is not linked to $libdir/libipckit.so"; ldd "$work/cmake-build/consumer"; exit 1; }

echo "== pkg-config"
# The .pc file locates the prefix relative to itself (${pcfiledir}), so the
# tree installed into a temporary prefix works without overrides.
if command -v make >/dev/null 2>&1; then
    make -C "$consumer" --no-print-directory OUT="$work/consumer-pc" \
         PKG_CONFIG_PATH="$libdir/pkgconfig" \
         CXXFLAGS="-O2 $flags" LDFLAGS="$flags" >"$work/make.log"
else  # the same command as the Makefile's
    pc="pkg-config"
    PKG_CONFIG_PATH="$libdir/pkgconfig" sh -c \
        "${CXX:-c++} -O2 $flags \$($pc --cflags ipckit) -o '$work/consumer-pc' '$consumer/main.cpp' $flags \$($pc --libs ipckit)"
fi
LD_LIBRARY_PATH="$libdir" "$work/consumer-pc"
LD_LIBRARY_PATH="$libdir" ldd "$work/consumer-pc" | grep -q "$libdir/libipckit.so" || {
    echo "pkg-config consumer is not linked to $libdir/libipckit.so"; exit 1; }

echo "install test passed"
