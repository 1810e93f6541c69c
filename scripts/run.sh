#!/usr/bin/env bash
# The main job: install dependencies, build (release) and run `ipckit tour`.
#   scripts/run.sh [extra ipckit tour options]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cmake --preset release >/dev/null
cmake --build --preset release --target ipckit_cli
exec build/release/tools/ipckit/ipckit tour "$@"
