#!/usr/bin/env bash
# loco's demo: installs what it needs (as root on Debian 12), builds the demo
# program in Release and runs it. Extra arguments go to the program.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${LOCO_BUILD_ROOT:-$root/build/demo}"
bash "$root/tools/deps.sh"
cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DLOCO_BUILD_TESTS=OFF \
  -DLOCO_BUILD_BENCHMARKS=OFF -DLOCO_BUILD_EXAMPLES=ON >/dev/null
cmake --build "$build" -j "$(nproc 2>/dev/null || echo 2)" --target quickstart
echo "loco demo: running $build/examples/quickstart/quickstart"
exec "$build/examples/quickstart/quickstart" "$@"
