#!/usr/bin/env bash
# Installs mergescope's Debian 12 build, test and reference dependencies. Idempotent: packages
# already present are skipped, so a second run costs one dpkg query.
set -euo pipefail

PACKAGES=(
  build-essential cmake ninja-build pkg-config ccache git
  libtorch-dev libopenblas0-openmp
  libeigen3-dev libspectra-dev libstb-dev libjpeg62-turbo-dev libpng-dev nlohmann-json3-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  libimgui-dev libglfw3-dev libepoxy-dev libfreetype-dev libgl-dev libopengl-dev
  libcairo2-dev libfontconfig-dev poppler-utils  # plots as PNG/PDF (Cairo, fonts through fontconfig); pdftotext in tests
  xvfb xauth libgl1-mesa-dri mesa-utils fonts-dejavu-core
  python3-torch python3-torchvision python3-pil python3-numpy
  slurmctld slurmd slurm-client munge  # test_sweep_slurm: a one-node cluster on 127.0.0.1
  clang-format-14  # scripts/test.sh checks the formatting
  clang-14 libclang-rt-14-dev llvm-14  # the sanitizer + fuzz build (libFuzzer, ASan/UBSan runtimes, llvm-symbolizer)
)

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

if [ ${#missing[@]} -gt 0 ]; then
  echo "install-deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Debian's LibTorch calls whatever libblas.so.3 resolves to; the reference BLAS is 15-30x slower.
# Point the alternative at OpenBLAS (OpenMP flavour) and verify it.
arch_dir=/usr/lib/$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || echo x86_64-linux-gnu)
for lib in libblas.so.3 liblapack.so.3; do
  name="${lib}-$(basename "$arch_dir")"
  target=$(ls "$arch_dir"/openblas-openmp/"$lib" 2>/dev/null || true)
  if [ -n "$target" ]; then
    $SUDO update-alternatives --set "$name" "$target" >/dev/null 2>&1 || true
  fi
done
resolved=$(readlink -f "$arch_dir/libblas.so.3")
case "$resolved" in
  *openblas*) echo "install-deps: libblas.so.3 -> $resolved" ;;
  *) echo "install-deps: ERROR: libblas.so.3 resolves to $resolved, not OpenBLAS" >&2; exit 1 ;;
esac
