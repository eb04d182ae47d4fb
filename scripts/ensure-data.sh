#!/usr/bin/env bash
# Install real Fashion-MNIST (Debian package dataset-fashion-mnist) when it is missing.
set -u
dir=/usr/share/datasets/fashion-mnist
if [ -f "$dir/train-images-idx3-ubyte.gz" ] || [ -d "${SPARTA_DATA:-/nonexistent}/fashion-mnist" ]; then
  exit 0
fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "Fashion-MNIST missing: installing the Debian package dataset-fashion-mnist"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq dataset-fashion-mnist >/dev/null 2>&1 \
    || { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq dataset-fashion-mnist >/dev/null 2>&1; } \
    || echo "could not install dataset-fashion-mnist; sparta falls back to the digits set"
else
  echo "Fashion-MNIST missing: run 'sudo apt-get install dataset-fashion-mnist'," \
       "or put the IDX files in \$SPARTA_DATA/fashion-mnist"
fi
exit 0
