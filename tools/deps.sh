#!/usr/bin/env bash
# Installs the Debian 12 packages loco's build, tests and demo need.
# Usage: tools/deps.sh [extra packages...]   (as root; apt-get update runs first
# unless every package is already installed)
set -euo pipefail

packages=(
  g++ cmake ninja-build make pkg-config git python3
  libxtensor-dev libxsimd-dev xtl-dev libxtensor-blas-dev libopenblas-dev liblapack-dev
  catch2 libbenchmark-dev libcli11-dev
  libboost-dev libssl-dev zlib1g-dev
  libopenmpi-dev openmpi-bin
  dataset-fashion-mnist
  iproute2
  python3-matplotlib clang-14 libclang-rt-14-dev
  libtorch-dev
  python3-torch  # PyTorch's side of experiments/vs_pytorch
  "$@"
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "loco deps: all ${#packages[@]} packages present"
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "loco deps: missing packages (${missing[*]}); run as root or install them:" >&2
  echo "  apt-get update && apt-get install -y ${missing[*]}" >&2
  exit 1
fi
echo "loco deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "loco deps: done"
