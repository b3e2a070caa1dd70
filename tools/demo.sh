#!/usr/bin/env bash
# loco's demo: installs what it needs (as root on Debian 12), builds the
# flagship Fashion-MNIST demo in Release, runs it (4 in-process workers:
# mini-batch SGD, local SGD, LOSCAR-SGD and CD-Adam side by side), then draws
# its plots. Extra arguments go to the program (see --help), e.g.
#   bash tools/demo.sh --model softmax --steps 1000
#   LOCO_DEMO=quickstart bash tools/demo.sh      the one-screen least-squares demo
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${LOCO_BUILD_ROOT:-$root/build/demo}"
demo="${LOCO_DEMO:-fashion_mnist_demo}"
out="${LOCO_DEMO_OUT:-$root/results/demo}"
bash "$root/tools/deps.sh"
cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DLOCO_BUILD_TESTS=OFF \
  -DLOCO_BUILD_BENCHMARKS=OFF -DLOCO_BUILD_EXPERIMENTS=OFF -DLOCO_BUILD_EXAMPLES=ON >/dev/null
cmake --build "$build" -j "$(nproc 2>/dev/null || echo 2)" --target "$demo"
export OPENBLAS_NUM_THREADS="${OPENBLAS_NUM_THREADS:-1}"
if [ "$demo" != fashion_mnist_demo ]; then
  echo "loco demo: running $build/examples/$demo/$demo"
  exec "$build/examples/$demo/$demo" "$@"
fi
echo "loco demo: running $build/examples/$demo/$demo --out $out $*"
"$build/examples/$demo/$demo" --out "$out" "$@"
# Debian's interpreter has python3-matplotlib, whatever python3 is first on PATH.
py=python3
[ -x /usr/bin/python3 ] && py=/usr/bin/python3
if "$py" -c "import matplotlib" 2>/dev/null; then
  echo
  echo "loco demo: plots of test accuracy and loss against steps, bytes sent and time:"
  "$py" "$root/tools/plot.py" "$out/trace.csv" -o "$out" --prefix demo --x step,bytes,time_s
else
  echo "loco demo: python3-matplotlib is missing, so no plots (apt-get install python3-matplotlib)"
fi
