#!/usr/bin/env bash
# Installs every Debian package that building vitcc, its tests and its fixtures need.
# Idempotent: packages already present are left alone, and apt is not touched at all when
# nothing is missing.
set -euo pipefail

packages=(
  build-essential cmake make pkg-config
  libeigen3-dev libxsimd-dev doctest-dev nlohmann-json3-dev libbenchmark-dev
  libonnx-dev libprotobuf-dev protobuf-compiler
  python3 python3-numpy python3-torch python3-torchvision python3-onnx python3-pil
  # the Python binding (python/): pybind11 and the interpreter's headers
  pybind11-dev python3-dev
  libopenblas0-openmp
  libstb-dev
  # Fashion-MNIST: the bundled fmnist models' training and accuracy test (tools/export/fmnist_data.py)
  dataset-fashion-mnist
  # ARM: aarch64 cross-compiler and user-mode emulator (make test-aarch64), Cortex-M7 bare-metal
  # toolchain with newlib(-nano) and the MPS2 board emulator (examples/cortex-m7)
  g++-aarch64-linux-gnu qemu-user
  gcc-arm-none-eabi binutils-arm-none-eabi libnewlib-arm-none-eabi libstdc++-arm-none-eabi-newlib qemu-system-arm
)

# node and npm: test_onnx_ops_vs_ort installs onnxruntime-node with npm. Debian's packages, unless a
# node with its npm is already on the PATH (NodeSource's nodejs bundles npm and conflicts with
# Debian's npm package).
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  packages+=(nodejs npm)
fi

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -gt 0 ]; then
  echo "install-deps: installing ${missing[*]}"
  sudo_cmd=""
  [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Debian's torch calls whatever libblas.so.3 is selected; the reference BLAS is ~25x slower and
# makes fixture generation crawl. Select OpenBLAS's OpenMP build when it is installed.
for alt in libblas.so.3-x86_64-linux-gnu liblapack.so.3-x86_64-linux-gnu; do
  target=$(update-alternatives --list "$alt" 2>/dev/null | grep openblas-openmp | head -n1 || true)
  if [ -n "$target" ]; then
    current=$(update-alternatives --query "$alt" 2>/dev/null | awk '/^Value:/{print $2}')
    if [ "$current" != "$target" ]; then
      ${sudo_cmd:-} update-alternatives --set "$alt" "$target" >/dev/null
    fi
  fi
done
echo "install-deps: all packages present"
