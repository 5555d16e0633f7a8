#!/usr/bin/env bash
# Runs kompi's fuzz targets with libFuzzer for a set time each and prints what they did.
#
#   fuzz/run.sh [SECONDS] [TARGET...]     (default: 300 s each; targets: values set mca hostfile)
#
# Needs the nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz`). Each target grows its corpus
# in fuzz/corpus/<target>/ (seeded from fuzz/seeds/<target>/); a crash stops that target and leaves
# its input in fuzz/artifacts/<target>/. Commit both: crates/kompi-fuzz/tests/replay.rs replays them in
# the normal test run. Afterwards `fuzz/run.sh --minimize` shrinks the corpora (cargo fuzz cmin).
set -euo pipefail
cd "$(dirname "$0")"
all=(values set mca hostfile)
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
# Safe Rust: AddressSanitizer finds nothing the borrow checker has not; without it libFuzzer runs
# about twice as fast. Debug assertions (and so integer overflow checks) stay on.
build_flags=(--sanitizer none --debug-assertions)

if [ "${1:-}" = "--minimize" ]; then
  for t in "${all[@]}"; do
    cargo +nightly fuzz cmin "${build_flags[@]}" "$t" "corpus/$t" -- -max_len=8192 >"/tmp/kompi-fuzz-cmin-$t.log" 2>&1
    echo "$t: $(ls "corpus/$t" | wc -l) corpus entries after cmin"
  done
  exit 0
fi

seconds=${1:-300}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=("${all[@]}")

cargo +nightly fuzz build "${build_flags[@]}"
# The built targets are run directly: a source edit during a long campaign does not rebuild them midway.
bin_dir="$CARGO_TARGET_DIR/$(rustc -vV | sed -n 's/^host: //p')/release"
printf '| target | seconds | executions | execs/s | corpus before | corpus after | crashes (new) |\n|---|---|---|---|---|---|---|\n'
for t in "${targets[@]}"; do
  mkdir -p "corpus/$t" "artifacts/$t" "seeds/$t"
  before=$(ls "corpus/$t" | wc -l)
  crashes_before=$(ls "artifacts/$t" | wc -l)
  log="/tmp/kompi-fuzz-$t.log"
  status=0
  "$bin_dir/$t" "corpus/$t" "seeds/$t" \
    -max_total_time="$seconds" -max_len=8192 -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="artifacts/$t/" >"$log" 2>&1 || status=$?
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo "?")
  rate=$(grep -o 'stat::average_exec_per_sec: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo "?")
  secs=$(grep -o 'Done [0-9]* runs in [0-9]* second' "$log" | grep -o 'in [0-9]*' | grep -o '[0-9]*' || echo "$seconds")
  after=$(ls "corpus/$t" | wc -l)
  crashes=$(( $(ls "artifacts/$t" | wc -l) - crashes_before ))
  printf '| %s | %s | %s | %s | %s | %s | %s |\n' "$t" "$secs" "$runs" "$rate" "$before" "$after" "$crashes"
  if [ "$status" -ne 0 ]; then
    echo "   $t stopped (status $status): $(grep -m1 -E 'panicked at|ERROR: libFuzzer' "$log" || true); log: $log" >&2
  fi
done
