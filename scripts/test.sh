#!/usr/bin/env bash
# The whole test suite, on a fresh machine: installs what the tests need, then runs them.
# This is exactly what CI runs (.ci/run calls it).
set -euo pipefail
cd "$(dirname "$0")/.."

# Kernel tools for the tests that check against the Linux kernel (they skip, saying why,
# where these or root are missing).
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  missing=()
  for tool in ip:iproute2 nsenter:util-linux nft:nftables iptables-legacy-restore:iptables \
    iptables-nft-restore:iptables ipset:ipset conntrack:conntrack; do
    command -v "${tool%%:*}" >/dev/null || missing+=("${tool##*:}")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
  fi
fi

cargo build --release -p fwsim
# The bundled scenarios must all pass (exit 0).
./target/release/fwsim run scenarios/
# The simulator against the kernel: a short check (the tests run one too; both skip,
# saying why, without root).
# Exit 1 (a disagreement) fails the suite; exit 2 means the kernel cannot be asked here
# (no root, no namespaces, tools missing): it says why and the suite goes on.
if [ "$(id -u)" = 0 ]; then
  rc=0
  ./target/release/fwsim kernel-check --seed 1 --cases 2000 --csv target/kernel-check-ci.csv \
    --out target/kernel-check-ci || rc=$?
  if [ "$rc" = 1 ]; then exit 1; fi
  if [ "$rc" != 0 ]; then echo "kernel-check skipped (exit $rc)"; fi
fi
# The kernel as a cluster dataplane: the rendered calico-iptables rules loaded into one
# namespace per node and per pod, real traffic sent, verdicts compared (root only).
if [ "$(id -u)" = 0 ]; then
  ./target/release/fwsim run scenarios/dataplanes/host-firewalls.yaml scenarios/dataplanes/calico.yaml \
    scenarios/semantics/node-traffic.yaml --dataplanes reference,calico-iptables,kernel
fi
# A short divergence hunt on every target (exit 1 on a finding fails the suite), and the
# committed findings (reports/divergences/: minimized scenarios, fixed) replayed.
./target/release/fwsim fuzz --seconds 5 --seed 1 --out target/fuzz-ci --csv target/fuzz-ci.csv
./target/release/fwsim run reports/divergences
# The cargo-fuzz targets build where a nightly toolchain is present (cargo-fuzz installed
# if missing); their corpora are replayed on stable by `cargo test` (fuzz_corpus).
if cargo +nightly --version >/dev/null 2>&1; then
  cargo fuzz --version >/dev/null 2>&1 || cargo install cargo-fuzz --locked
  cargo +nightly fuzz build --fuzz-dir fuzz
fi
cargo test --workspace --release
