#!/usr/bin/env bash
# Run HERE (Debian 12, with scripts/install-deps.sh's packages), before a GPU run: gathers what the bare GPU machine
# lacks into build-gpu-stage/ (ignored by git, so name it in the device call's `carry`), about 35 MB:
#   deps.tar.xz  headers, CMake and pkg-config files and shared libraries of the Debian packages the build needs
#                (Eigen, nlohmann_json, stb, libjpeg-turbo, libpng, zlib, Cairo + fontconfig, GoogleTest, pkgconf),
#                every shared library they load (not glibc, libstdc++, libgcc_s), and the reference BLAS as
#                libblas.so.3 (the engine's CPU attention calls sgemm_; no BLAS is needed on the GPU path).
#   shared/      what the golden tests read from ../shared (DeiT-Ti, the golden file), since ../shared does not
#                travel with the repository.
# scripts/gpu_check.sh unpacks deps.tar.xz to /tmp/msdeps and uses it for whatever the machine does not have.
# usage: bash scripts/gpu/stage.sh        (then: device run with carry ["build-gpu-stage"])
set -euo pipefail
cd "$(dirname "$0")/../.."
out=build-gpu-stage
root=$out/root
rm -rf "$out"
mkdir -p "$root"

pkgs=(libeigen3-dev nlohmann-json3-dev libstb-dev libstb0 libjpeg62-turbo-dev libpng-dev zlib1g-dev libcairo2-dev
      libfontconfig-dev libgtest-dev pkgconf-bin libpkgconf3)
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q 'ok installed' || {
    echo "stage.sh: Debian package $p is not installed (run scripts/install-deps.sh first)" >&2
    exit 1
  }
  dpkg -L "$p" | grep -Ev '^/usr/share/(doc|man|lintian|bug)/' | while read -r f; do
    if [[ -L $f ]] || [[ -f $f && ! -d $f ]]; then echo "${f#/}"; fi
  done >>"$out/files.txt"
done
tar -C / --no-recursion -cf - -T "$out/files.txt" | tar -C "$root" -xf -
rm "$out/files.txt"
# Multiarch headers (jconfig.h, ...) next to the others: FindJPEG only adds the folder that holds jpeglib.h.
if [[ -d $root/usr/include/x86_64-linux-gnu ]]; then
  cp -a "$root"/usr/include/x86_64-linux-gnu/. "$root/usr/include/"
fi
# Every pkg-config file of this system (text, small), so that Requires.private chains (cairo -> pixman, xcb, ...)
# resolve; their -I folders need not exist.
mkdir -p "$root/usr/lib/x86_64-linux-gnu/pkgconfig" "$root/usr/share/pkgconfig"
cp -a /usr/lib/x86_64-linux-gnu/pkgconfig/*.pc "$root/usr/lib/x86_64-linux-gnu/pkgconfig/"
cp -a /usr/share/pkgconfig/*.pc "$root/usr/share/pkgconfig/" 2>/dev/null || true

lib=$root/usr/lib/x86_64-linux-gnu
# Reference BLAS (Fortran-free, 0.4 MB) as libblas.so.3: the symbol the engine links (sgemm_), not OpenBLAS (36 MB).
cp -L /usr/lib/x86_64-linux-gnu/blas/libblas.so.3 "$lib/libblas.so.3"
# The dev packages ship libX.so -> libX.so.N.M links: bring the libraries behind those the build links (each under
# its SONAME, the link pointing there), drop the other links.
for name in libcairo.so libfontconfig.so libjpeg.so libpng16.so libpng.so libz.so libstb.so; do
  real=$(readlink -f "/usr/lib/x86_64-linux-gnu/$name")
  soname=$(objdump -p "$real" | awk '/SONAME/ {print $2}')
  cp -L "$real" "$lib/$soname"
  ln -sfn "$soname" "$lib/$name"
done
find "$lib" -maxdepth 1 -xtype l -delete
# Shared libraries the staged ones load, transitively (glibc, libstdc++ and libgcc_s come from the machine).
skip='^(linux-vdso|ld-linux|libc\.so|libm\.so|libdl\.so|libpthread\.so|librt\.so|libstdc\+\+\.so|libgcc_s\.so)'
for _ in 1 2 3; do
  for f in "$lib"/*.so* /usr/bin/pkgconf; do
    [[ -f $f ]] || continue
    ldd "$f" 2>/dev/null | awk '$2 == "=>" && $3 ~ /^\// {print $1, $3}' | while read -r soname path; do
      [[ $soname =~ $skip ]] && continue
      [[ -e $lib/$soname ]] || cp -L "$path" "$lib/$soname"
    done
  done
done
find "$lib" -maxdepth 1 -name '*.a' ! -name 'libgtest*' -delete  # static archives: only GoogleTest's are linked
tar -C "$root" -cf - . | xz -T2 -6 >"$out/deps.tar.xz"
rm -rf "$root"

# The part of ../shared that the golden tests read.
src=../shared
for f in golden/deit_tiny_merge_reference.safetensors golden/README.md models/deit_tiny_patch16_224/config.json \
         models/deit_tiny_patch16_224/model.safetensors; do
  [[ -f $src/$f ]] || { echo "stage.sh: missing $src/$f" >&2; exit 1; }
  mkdir -p "$out/shared/$(dirname "$f")"
  cp "$src/$f" "$out/shared/$f"
done
du -sh "$out" "$out"/* | sed 's/^/stage.sh: /'
echo "stage.sh: done; carry \"$out\" in the device call (with the repository it must stay under 64 MiB)"
