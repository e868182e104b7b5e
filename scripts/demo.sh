#!/usr/bin/env bash
# The mp2ml demo: compile the bundled CryptoNets-ReLU model and run it between a server and a
# client (both on this machine, over loopback TCP) on the 1,000 bundled MNIST test digits.
# The plan is calibrated on 256 training digits (models/mnist_calib.npy), which gives a tighter
# q0 than the worst case over all inputs in [0, 1]. The plan's batch is the number of images,
# so they travel in one group of ciphertexts.
# Usage: bash scripts/demo.sh [NUMBER_OF_IMAGES]
set -euo pipefail
cd "$(dirname "$0")/.."
images="${1:-1000}"
cargo build --release --bin mp2mlc --bin mp2ml-run
mkdir -p out
echo "== compiling models/cryptonets_relu.onnx =="
./target/release/mp2mlc models/cryptonets_relu.onnx -o out/cryptonets_relu.ron --report \
  --calibration models/mnist_calib.npy --batch "$images"
echo
echo "== two-party run on ${images} test digits (server and client over 127.0.0.1) =="
./target/release/mp2ml-run local out/cryptonets_relu.ron \
  --input models/mnist_test_x.npy --labels models/mnist_test_y.npy \
  --limit "$images" --output out/cryptonets_relu.logits.npy
