#!/usr/bin/env bash
# Installs every Debian package nas-service needs to build, test and run.
# Idempotent: running it twice installs nothing the second time.
# Usage: tools/setup.sh            (uses sudo when not root)
set -euo pipefail

PACKAGES=(
  # Build system (Bazel 4.2.3 from Debian) and the local rules it needs.
  bazel-bootstrap bazel-rules-java
  # Toolchain pieces Bazel and the fuzz targets use.
  g++ clang libclang-rt-14-dev pkg-config python3 git ca-certificates openssl
  # Libraries.
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  libabsl-dev prometheus-cpp-dev libtorch-dev libsqlite3-dev sqlite3 libcurl4-openssl-dev
  libyaml-cpp-dev zlib1g-dev libgoogle-perftools-dev
  googletest libgtest-dev libgmock-dev
  # The image_folder dataset's PNG and JPEG decoders (worker/image_decode).
  libpng-dev libjpeg62-turbo-dev
  # nasctl's command line (issue 24): CLI11, header-only.
  libcli11-dev
  # Data and tools the demo and tests use.
  dataset-fashion-mnist prometheus curl procps
  # Command evaluator: examples/trainers/pytorch_trainer.py and its test (issue 22).
  python3-torch
)

die() { echo "setup: $*" >&2; exit 1; }

[[ "$(uname -s)" == "Linux" ]] || die "nas-service builds on Debian 12 (bookworm); this is $(uname -s)."
if [[ -r /etc/os-release ]]; then
  # shellcheck disable=SC1091
  . /etc/os-release
fi
if [[ "${ID:-}" != "debian" && "${ID_LIKE:-}" != *debian* ]]; then
  die "nas-service needs Debian 12 (bookworm) packages; this system is '${PRETTY_NAME:-unknown}'. Install the packages listed in tools/setup.sh by hand or use a Debian 12 machine or container."
fi
if [[ "${ID:-}" == "debian" && "${VERSION_ID:-}" != "12" ]]; then
  echo "setup: warning: tested on Debian 12, this is Debian ${VERSION_ID:-?}" >&2
fi

SUDO=""
if [[ "$(id -u)" != "0" ]]; then
  command -v sudo >/dev/null || die "not root and sudo is missing: run as root or install sudo."
  SUDO="sudo"
fi

# tools/check_deploy.sh renders deploy/k8s with `kubectl kustomize` and validates it
# with Node.js. Use whatever kubectl and node are already installed (a newer
# kubectl from elsewhere is fine); otherwise Debian's (kubectl 1.20, whose
# kustomize v2.0.3 the manifests are written for; Node.js 18).
# NAS_SETUP_DEPLOY_CHECKS=0 skips them (the image builds in deploy/docker).
deploy_checks="${NAS_SETUP_DEPLOY_CHECKS:-1}"
if [[ "$deploy_checks" == "1" ]]; then
  command -v kubectl >/dev/null || PACKAGES+=(kubernetes-client)
  command -v node >/dev/null || PACKAGES+=(nodejs)
  command -v npm >/dev/null || PACKAGES+=(npm)
fi

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if ((${#missing[@]})); then
  echo "setup: installing ${#missing[@]} packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -q
  $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
else
  echo "setup: all ${#PACKAGES[@]} packages already installed"
fi

command -v bazel >/dev/null || die "bazel is not on PATH after installing bazel-bootstrap."
[[ -d /usr/share/bazel/rules/java ]] || die "/usr/share/bazel/rules/java is missing (package bazel-rules-java)."
if [[ "$deploy_checks" == "1" ]]; then
  command -v kubectl >/dev/null || die "kubectl is not on PATH after installing kubernetes-client."
  # The offline manifest validator's npm packages, pinned by package-lock.json.
  # Reinstalled only when the lock file changes.
  validate_dir="$(cd "$(dirname "$0")/.." && pwd)/deploy/validate"
  stamp="$validate_dir/node_modules/.nas-setup-lock.sha256"
  lock_sum="$(sha256sum "$validate_dir/package-lock.json" | cut -d' ' -f1)"
  if [[ -f "$stamp" && "$(cat "$stamp")" == "$lock_sum" ]]; then
    echo "setup: deploy/validate npm packages already installed"
  else
    echo "setup: npm ci in deploy/validate"
    (cd "$validate_dir" && npm ci --no-audit --no-fund --loglevel=error)
    echo "$lock_sum" >"$stamp"
  fi
fi

# Penn Treebank (Mikolov's split, gzipped; no Debian package) for the recurrent-cell tests and
# benchmarks: copied from the project's shared data into /usr/share/datasets/ptb, where the
# WORKSPACE's @ptb repository and examples/ptb_*.yaml look. Found in $NAS_PTB_DIR, beside the
# repository (../shared/data/ptb) or in /work/shared/data/ptb.
ptb_dest=/usr/share/datasets/ptb
repo_root="$(cd "$(dirname "$0")/.." && pwd)"
ptb_src=""
for d in "${NAS_PTB_DIR:-}" "$repo_root/../shared/data/ptb" /work/shared/data/ptb; do
  if [[ -n "$d" && -r "$d/ptb.train.txt.gz" && -r "$d/ptb.valid.txt.gz" && -r "$d/ptb.test.txt.gz" ]]; then
    ptb_src="$d"
    break
  fi
done
if [[ -n "$ptb_src" ]]; then
  for f in ptb.train.txt.gz ptb.valid.txt.gz ptb.test.txt.gz; do
    if ! cmp -s "$ptb_src/$f" "$ptb_dest/$f"; then
      $SUDO install -D -m 0644 "$ptb_src/$f" "$ptb_dest/$f"
    fi
  done
  echo "setup: Penn Treebank in $ptb_dest"
elif [[ ! -r "$ptb_dest/ptb.train.txt.gz" ]]; then
  die "Penn Treebank not found: put ptb.{train,valid,test}.txt.gz in $ptb_dest, or name their directory in NAS_PTB_DIR (the tests and benchmarks of recurrent cells read them)."
fi
echo "setup: ok"
