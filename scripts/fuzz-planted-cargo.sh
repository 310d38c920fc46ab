#!/usr/bin/env bash
# Time to find each planted bug with the matching cargo-fuzz target (libFuzzer), as in
# reports/README.md: every run starts from the committed seed corpus and stops at the
# first crash or after MAX seconds (default 60). Appends to reports/fuzz-planted-cargo.csv.
# Needs nightly and cargo-fuzz; builds the targets without sanitizer first.
set -uo pipefail
cd "$(dirname "$0")/.."
MAX=${MAX:-60}
cargo build --release -p fwsim
(cd fuzz && cargo +nightly fuzz build -s none calico_iptables && cargo +nightly fuzz build -s none calico_nftables) || exit 2
bin=fuzz/target/x86_64-unknown-linux-gnu/release
out=reports/fuzz-planted-cargo.csv
[ -f "$out" ] || echo "date,bug,target,found,seconds,executions" > "$out"
work=$(mktemp -d)
for bug in ${BUGS:-$(./target/release/fwsim fuzz --planted list)}; do
  t=calico_iptables
  [ "$bug" = nft-accept-final ] && t=calico_nftables
  mkdir -p "$work/$bug" && cp "fuzz/corpus/$t/"* "$work/$bug/"
  start=$(date +%s.%N)
  FWSIM_PLANTED=$bug "$bin/$t" "$work/$bug" -max_total_time="$MAX" -rss_limit_mb=4096 \
    -print_final_stats=1 -artifact_prefix="$work/$bug-" > "$work/$bug.log" 2>&1
  end=$(date +%s.%N)
  found=no; grep -q panicked "$work/$bug.log" && found=yes
  execs=$(grep -oE "stat::number_of_executed_units: [0-9]+" "$work/$bug.log" | grep -oE "[0-9]+$")
  secs=$(python3 -c "print(round($end - $start, 1))")
  echo "$(date -u +%F),$bug,$t,$found,$secs,$execs" | tee -a "$out"
done
rm -rf "$work"
