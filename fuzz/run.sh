#!/usr/bin/env bash
# Builds the fuzz targets with libFuzzer's coverage instrumentation on the stable toolchain (no
# cargo-fuzz or nightly needed) and fuzzes one of them. Usage: fuzz/run.sh [TARGET] [SECONDS]
set -euo pipefail
cd "$(dirname "$0")"
target=${1:-pipeline}
secs=${2:-60}
triple=$(rustc -vV | sed -n 's/^host: //p')
RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=3 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares -Cdebug-assertions -Coverflow-checks" \
  cargo build --release --target "$triple" --bin "$target"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp corpus/"$target"/* "$work"/
"target/$triple/release/$target" "$work" -max_total_time="$secs" -max_len=4096
