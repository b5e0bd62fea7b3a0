#!/usr/bin/env bash
# The worker's CUDA path on a GPU machine that has a CUDA PyTorch (its
# LibTorch: the wheel's torch/include and torch/lib), CMake and a C++ compiler
# but none of our Debian libraries and no network. Three steps:
#
#   bash tools/gpu_check.sh prepare   # here (Debian 12, online): fills .gpu_check/
#   bash tools/gpu_check.sh run       # there, with .gpu_check/ carried along
#   bash tools/gpu_check.sh dry-run   # here: prepare, then run on the CPU against
#                                     # Debian's LibTorch 1.13 (--expect_cuda=false)
#
# prepare: the sources of //tools:gpu_check (tools/gpu_check.cc and the
#   worker's training code it links: device, train_evaluator, child_net,
#   dataset ...) as `bazel query` lists them, the protobuf code Bazel generates
#   from proto/, and Debian 12's .debs of the libraries that code needs besides
#   LibTorch (abseil, protobuf, zlib headers), downloaded with apt (checked
#   against Debian's signed index) at the versions installed here. About 10 MiB.
# run: unpacks the .debs with dpkg-deb -x into a scratch folder (never /),
#   builds gpu_check with CMake against python3's torch (or $NAS_LIBTORCH, a
#   LibTorch folder with include/ and lib/), and runs it: CUDA available, the
#   worker's --device resolution, a child network trained for 512 steps on
#   cuda:0 with falling loss, the same on the CPU, figures as `name value unit`.
#   Exits non-zero when the build or any check fails. Extra arguments go to
#   gpu_check (--epochs=N, --train_images=N ...). Figures and the build log are
#   copied to $OUT when it is set (the device tool's output folder).
#
# With the device tool (15 minutes of device time; this takes about 2-4):
#   run(command="bash tools/gpu_check.sh run", carry=[".gpu_check"], timeout_s=480)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUNDLE="${GPU_CHECK_BUNDLE:-${ROOT}/.gpu_check}"
DEB_PACKAGES=(libabsl-dev libabsl20220623 libprotobuf-dev libprotobuf32 zlib1g-dev)

die() { echo "gpu_check.sh: $*" >&2; exit 1; }

prepare() {
  command -v bazel >/dev/null || die "prepare runs where the project builds (bazel, Debian 12)"
  cd "${ROOT}"
  bazel build //proto:nas_cc_proto >/dev/null
  # Our own sources of the check (third_party wraps system libraries: no sources).
  mapfile -t sources < <(bazel query --output=label \
      'kind("source file", deps(//tools:gpu_check))' 2>/dev/null |
    sed -n -E 's#^//([^:]*):(.*\.(cc|h))$#\1/\2#p' | sort)
  [[ "${#sources[@]}" -gt 5 ]] || die "bazel query found no sources of //tools:gpu_check"
  rm -rf "${BUNDLE}"
  mkdir -p "${BUNDLE}/src/proto" "${BUNDLE}/debs"
  for file in "${sources[@]}"; do
    mkdir -p "${BUNDLE}/src/$(dirname "${file}")"
    cp "${file}" "${BUNDLE}/src/${file}"
  done
  # The messages only: the check uses no gRPC service.
  find bazel-bin/proto -maxdepth 1 \( -name '*.pb.h' -o -name '*.pb.cc' \) ! -name '*grpc.pb.*' \
    -exec cp {} "${BUNDLE}/src/proto/" \;
  (cd "${BUNDLE}/src" && find . -name '*.cc' | sed 's|^\./||' | sort) >"${BUNDLE}/sources.txt"
  local versioned=()
  for package in "${DEB_PACKAGES[@]}"; do
    versioned+=("${package}=$(dpkg-query -W -f='${Version}' "${package}")")
  done
  (cd "${BUNDLE}/debs" && apt-get -q -o APT::Sandbox::User=root download "${versioned[@]}" >/dev/null)
  write_cmakelists
  printf '%s\n' "${versioned[@]}" >"${BUNDLE}/debs.txt"
  echo "gpu_check bundle: ${BUNDLE} ($(du -sh "${BUNDLE}" | cut -f1); $(wc -l <"${BUNDLE}/sources.txt") sources," \
       "debs: ${versioned[*]})"
}

write_cmakelists() {
  cat >"${BUNDLE}/CMakeLists.txt" <<'EOF'
# Written by tools/gpu_check.sh prepare. -DTORCH_INCLUDE_DIRS, -DTORCH_LIB_DIR
# and -DDEPS (the unpacked Debian .debs) come from tools/gpu_check.sh run.
cmake_minimum_required(VERSION 3.16)
project(nas_gpu_check CXX)
set(CMAKE_CXX_STANDARD 17)
set(CMAKE_CXX_STANDARD_REQUIRED ON)
set(DEPS_LIB ${DEPS}/usr/lib/x86_64-linux-gnu)
file(STRINGS ${CMAKE_SOURCE_DIR}/sources.txt SOURCES)
list(TRANSFORM SOURCES PREPEND ${CMAKE_SOURCE_DIR}/src/)
add_executable(gpu_check ${SOURCES})
target_include_directories(gpu_check PRIVATE ${CMAKE_SOURCE_DIR}/src)
# Debian's abseil / protobuf / zlib first: a LibTorch may carry headers of its own.
target_include_directories(gpu_check SYSTEM PRIVATE ${DEPS}/usr/include ${TORCH_INCLUDE_DIRS})
target_compile_options(gpu_check PRIVATE -O2 -Wno-deprecated-declarations)
target_compile_definitions(gpu_check PRIVATE _GLIBCXX_USE_CXX11_ABI=1)
file(GLOB ABSL_LIBS ${DEPS_LIB}/libabsl_*.so)
set(TORCH_LIBS -ltorch -ltorch_cpu -lc10)
if(EXISTS ${TORCH_LIB_DIR}/libtorch_cuda.so)
  # Linked although nothing names them, so that the CUDA kernels register.
  list(APPEND TORCH_LIBS -ltorch_cuda -lc10_cuda)
endif()
target_link_directories(gpu_check PRIVATE ${TORCH_LIB_DIR})
target_link_libraries(gpu_check PRIVATE -Wl,--no-as-needed ${TORCH_LIBS} -Wl,--as-needed
                      ${DEPS_LIB}/libprotobuf.so ${ABSL_LIBS} -l:libz.so.1 pthread)
# LibTorch's own dependencies (CUDA's libraries in a wheel's nvidia/ folders)
# resolve at run time through its RPATH; the linker need not find them.
target_link_options(gpu_check PRIVATE -Wl,-rpath-link,${DEPS_LIB} -Wl,--allow-shlib-undefined)
set_target_properties(gpu_check PROPERTIES BUILD_RPATH "${TORCH_LIB_DIR};${DEPS_LIB}")
EOF
}

# Sets torch_include (;-separated), torch_lib and torch_about.
find_libtorch() {
  local dir="${NAS_LIBTORCH:-}"
  if [[ -z "${dir}" && "${1:-}" == debian ]]; then
    torch_include="/usr/include/torch/csrc/api/include;/usr/include"
    torch_lib="/usr/lib/x86_64-linux-gnu"
    torch_about="Debian libtorch-dev $(dpkg-query -W -f='${Version}' libtorch-dev 2>/dev/null || echo '?')"
    return
  fi
  if [[ -z "${dir}" ]]; then
    local python="${PYTHON:-python3}"
    # The H200 machines' PyTorch lives in this venv; try it when python3 has none.
    if ! "${python}" -c 'import torch' 2>/dev/null && [[ -x /opt/torch/.venv/bin/python3 ]]; then
      python=/opt/torch/.venv/bin/python3
    fi
    dir="$("${python}" -c 'import os, torch; print(os.path.dirname(torch.__file__))')" ||
      die "${python} has no torch; set NAS_LIBTORCH=<LibTorch folder> or PYTHON=<a python with torch>"
    local abi
    abi="$("${python}" -c 'import torch; print(int(torch.compiled_with_cxx11_abi()))')"
    [[ "${abi}" == 1 ]] || die "this torch uses the pre-C++11 ABI; Debian's abseil and protobuf need the C++11 ABI"
    torch_about="$("${python}" -c 'import torch; print("PyTorch", torch.__version__, "CUDA", torch.version.cuda)')"
  else
    torch_about="LibTorch in ${dir}"
  fi
  [[ -f "${dir}/include/torch/csrc/api/include/torch/torch.h" ]] || die "no LibTorch headers in ${dir}/include"
  [[ -f "${dir}/lib/libc10.so" ]] || die "no LibTorch libraries in ${dir}/lib"
  torch_include="${dir}/include/torch/csrc/api/include;${dir}/include"
  torch_lib="${dir}/lib"
}

run() {
  local flavour="$1"
  shift
  [[ -f "${BUNDLE}/CMakeLists.txt" ]] || die "no bundle in ${BUNDLE}: run 'tools/gpu_check.sh prepare' first (and carry .gpu_check)"
  find_libtorch "${flavour}"
  local work
  work="$(mktemp -d /tmp/gpu_check.XXXXXX)"
  mkdir -p "${work}/deps"
  for deb in "${BUNDLE}"/debs/*.deb; do
    if command -v dpkg-deb >/dev/null; then
      dpkg-deb -x "${deb}" "${work}/deps"
    else  # a .deb is an ar archive holding data.tar.xz
      (cd "${work}" && ar p "${deb}" data.tar.xz | tar -xJ -C "${work}/deps")
    fi
  done
  echo "# gpu_check: ${torch_about}; $(nproc) cores; $(${CXX:-c++} --version | head -1)"
  local log="${work}/build.log" start=${SECONDS}
  local generator=()
  command -v ninja >/dev/null && generator=(-G Ninja)
  if ! { cmake -S "${BUNDLE}" -B "${work}/build" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release \
           "-DTORCH_INCLUDE_DIRS=${torch_include}" "-DTORCH_LIB_DIR=${torch_lib}" "-DDEPS=${work}/deps" &&
         cmake --build "${work}/build" -j "${GPU_CHECK_JOBS:-$(nproc)}"; } >"${log}" 2>&1; then
    tail -n 60 "${log}" >&2
    [[ -n "${OUT:-}" ]] && cp "${log}" "${OUT}/build.log"
    die "the build failed (log above)"
  fi
  echo "build_seconds $((SECONDS - start)) s"
  local status=0
  # The executable's RUNPATH covers its own needs, not those of Debian's
  # libraries (libabsl_statusor.so needs libabsl_status.so ...).
  LD_LIBRARY_PATH="${work}/deps/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:${LD_LIBRARY_PATH}}" \
    "${work}/build/gpu_check" "$@" 2>&1 | tee "${work}/figures.txt" || status=$?
  if [[ -n "${OUT:-}" ]]; then cp "${log}" "${work}/figures.txt" "${OUT}/"; fi
  rm -rf "${work}"
  return "${status}"
}

case "${1:-}" in
  prepare) prepare ;;
  run) shift; run wheel "$@" ;;
  dry-run) shift; prepare; run debian --expect_cuda=false "$@" ;;
  *) die "usage: tools/gpu_check.sh prepare | run [gpu_check flags] | dry-run [gpu_check flags]" ;;
esac
