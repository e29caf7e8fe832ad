#!/bin/sh
# Build bench/torch/lora_step with Debian's libtorch-dev (1.13). Output: bench/torch/build/lora_step.
# Run it with LD_LIBRARY_PATH=/usr/lib/x86_64-linux-gnu/openblas-openmp (Debian's default BLAS is
# the slow reference one); bench/side-by-side.ts does both.
set -e
here=$(dirname "$0")
mkdir -p "$here/build"
g++ -O2 -std=c++17 -D_GLIBCXX_USE_CXX11_ABI=1 \
  -I/usr/include/torch/csrc/api/include \
  "$here/lora_step.cpp" -o "$here/build/lora_step" \
  -ltorch -ltorch_cpu -lc10 -Wl,--no-as-needed -lpthread
