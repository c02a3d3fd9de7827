#!/usr/bin/env bash
# Copy the Fashion-MNIST IDX files next to the GPU check (benchmarks/data is git-ignored; the files
# travel with the working tree to a GPU machine that has no internet).
set -euo pipefail
dst="$(dirname "$0")/data/fashion-mnist"
mkdir -p "$dst"
cp /usr/share/datasets/fashion-mnist/*-ubyte.gz "$dst"/
ls -l "$dst"
