#!/bin/bash -eu
# Builds every cargo-fuzz target of fwsim for ClusterFuzzLite / OSS-Fuzz ($OUT), with
# its committed seed corpus (fuzz/corpus/<target>) as <target>_seed_corpus.zip.
cd "$SRC/fwsim/fuzz"
cargo fuzz build -O
for target in $(cargo fuzz list); do
  cp "target/x86_64-unknown-linux-gnu/release/$target" "$OUT/"
  if [ -d "corpus/$target" ]; then
    (cd "corpus/$target" && zip -q -r "$OUT/${target}_seed_corpus.zip" .)
  fi
done
