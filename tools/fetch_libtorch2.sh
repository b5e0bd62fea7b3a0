#!/usr/bin/env bash
# Fetches a LibTorch 2.x to compile against, next to Debian 12's LibTorch 1.13:
# Debian 13 (trixie)'s libtorch-dev (headers) and libtorch2.6 (shared
# libraries), downloaded with apt from trixie's pool (apt checks each .deb's
# SHA-256 against trixie's signed Packages index) and unpacked with dpkg -x
# into third_party/libtorch2/debian (git-ignored), laid out like a LibTorch
# archive (include/, lib/). Nothing is installed on the system.
#
#   bash tools/fetch_libtorch2.sh
#   bazel build --config=libtorch2 --output_groups=compilation_outputs //worker/... //controller/...
#
# Only compiling works on Debian 12: trixie's libraries need glibc 2.38 and
# GCC 14's libstdc++ (and some twenty trixie libraries), so linking and running
# need trixie or a LibTorch 2.x made for this system (NAS_LIBTORCH, see
# docs/development.md).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEST="${ROOT}/third_party/libtorch2/debian"
VERSION="${LIBTORCH2_DEBIAN_VERSION:-2.6.0+dfsg-7}"
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
# libtorch-dev: the headers; libtorch2.6: the libraries (for NAS_LIBTORCH's
# lib/, and so that the layout is a whole LibTorch).
PACKAGES=("libtorch-dev=${VERSION}" "libtorch2.6=${VERSION}")

if [[ -f "${DEST}/.version" && "$(cat "${DEST}/.version")" == "${VERSION}" ]]; then
  echo "LibTorch ${VERSION} already in ${DEST}"
  exit 0
fi

work="$(mktemp -d)"
trap 'rm -rf "${work}"' EXIT
mkdir -p "${work}/lists/partial" "${work}/cache/archives/partial" "${work}/debs"
echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] ${MIRROR} trixie main" \
  >"${work}/sources.list"
# A private apt state: trixie's index never mixes with the system's bookworm one.
apt_opts=(
  -o "Dir::Etc::SourceList=${work}/sources.list" -o Dir::Etc::SourceParts=/dev/null
  -o "Dir::State::Lists=${work}/lists" -o "Dir::Cache=${work}/cache"
  -o Dir::State::status=/dev/null -o APT::Architecture=amd64 -o APT::Architectures=amd64
  -o APT::Sandbox::User=root -q
)
apt-get "${apt_opts[@]}" update >/dev/null
# apt-get download verifies each file's SHA-256 against the signed index.
(cd "${work}/debs" && apt-get "${apt_opts[@]}" download "${PACKAGES[@]}")

rm -rf "${DEST}"
mkdir -p "${DEST}/debian-root"
for deb in "${work}"/debs/*.deb; do
  dpkg-deb -x "${deb}" "${DEST}/debian-root"
done
ln -s debian-root/usr/include "${DEST}/include"
ln -s debian-root/usr/lib/x86_64-linux-gnu "${DEST}/lib"
grep -q "TORCH_VERSION_MAJOR 2" "${DEST}/include/torch/csrc/api/include/torch/version.h" ||
  { echo "fetch_libtorch2: ${DEST} holds no LibTorch 2.x headers" >&2; exit 1; }
echo "${VERSION}" >"${DEST}/.version"
echo "LibTorch ${VERSION} (Debian trixie) in ${DEST}: include/, lib/"
