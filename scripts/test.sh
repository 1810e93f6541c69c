#!/usr/bin/env bash
# Installs dependencies, builds and runs every test:
#   0. layout: every C/C++ source matches .clang-format
#   1. release build, all CTest tests (unit, integration, cli, examples)
#   2. ASan+UBSan build, all CTest tests
#   3. TSan build, the ring/sync/shm tests (label tsan)
#   4. clang 14 build of everything, unit tests (the code must build with both)
#   5. libFuzzer (clang) build, a short run of every fuzz target
# Usage: scripts/test.sh [format|release|asan|tsan|clang|fuzz ...]   (default: all six)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh

stages=("$@")
[ ${#stages[@]} -eq 0 ] && stages=(format release asan tsan clang fuzz)
fuzz_seconds=${IPCKIT_FUZZ_SECONDS:-30}

step() { printf '\n== %s ==\n' "$*"; }

for stage in "${stages[@]}"; do
  case "$stage" in
    format)
      step "format: clang-format --dry-run"
      find include src tools tests examples bench -name '*.[ch]pp' -o -name '*.[ch]' |
        sort | xargs clang-format --dry-run --Werror
      ;;
    release|asan)
      step "$stage: build"
      cmake --preset "$stage" >/dev/null
      cmake --build --preset "$stage"
      step "$stage: test"
      ctest --preset "$stage"
      ;;
    clang)
      step "clang: build"
      cmake --preset clang >/dev/null
      cmake --build --preset clang
      step "clang: test (label unit)"
      ctest --test-dir build/clang -L unit -j2 --timeout 120 --output-on-failure
      ;;
    tsan)
      step "tsan: build"
      cmake --preset tsan >/dev/null
      cmake --build --preset tsan
      step "tsan: test (label tsan)"
      # TSan needs a fixed address layout; older kernels' ASLR entropy breaks it.
      setarch "$(uname -m)" -R ctest --preset tsan
      ;;
    fuzz)
      step "fuzz: build (clang, libFuzzer)"
      cmake --preset fuzz >/dev/null
      cmake --build --preset fuzz
      for target in build/fuzz/tests/fuzz/*_fuzz; do
        [ -x "$target" ] || continue
        name=$(basename "$target")
        corpus="tests/fuzz/corpus/${name%_fuzz}"
        work=$(mktemp -d)
        [ -d "$corpus" ] && cp -r "$corpus"/. "$work"/
        step "fuzz: $name for ${fuzz_seconds}s"
        "$target" -max_total_time="$fuzz_seconds" -print_final_stats=1 "$work" 2>&1 | tail -n 5
        rm -rf "$work"
      done
      ;;
    *)
      echo "test.sh: unknown stage '$stage' (format, release, asan, tsan, clang, fuzz)" >&2
      exit 2
      ;;
  esac
done
step "all requested stages passed: ${stages[*]}"
