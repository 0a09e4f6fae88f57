#!/usr/bin/env bash
# Fuzzes one target on stable Rust, then merges what it found into the repo corpus.
#   fuzz/run.sh <target> [seconds]      (default 600 s)
# Needs `cargo install cargo-fuzz` (0.13+); `--sanitizer none` is what makes it work on
# stable (no -Z flags): coverage comes from the stable `-Cpasses=sancov-module` flags.
# Writes: scratch/<target>/ (working corpus), logs/<target>.log, artifacts/<target>/ (crashes).
set -euo pipefail
cd "$(dirname "$0")"
t=$1
secs=${2:-600}
mkdir -p "scratch/$t" "corpus/$t" "seeds/$t" logs "artifacts/$t"
cargo fuzz build --sanitizer none "$t"
bin=target/x86_64-unknown-linux-gnu/release/$t
limits=(-rss_limit_mb=2048 -malloc_limit_mb=2048 -timeout=10 -max_len=8192)
"$bin" "scratch/$t" "corpus/$t" "seeds/$t" "${limits[@]}" \
    -max_total_time="$secs" -print_final_stats=1 \
    -artifact_prefix="artifacts/$t/" >"logs/$t.log" 2>&1 || {
    echo "fuzzer stopped with a finding: see logs/$t.log and artifacts/$t/" >&2
    exit 1
}
# Minimize: keep only the inputs that add coverage, into a fresh corpus directory.
rm -rf "scratch/$t.min" && mkdir -p "scratch/$t.min"
"$bin" -merge=1 "${limits[@]}" "scratch/$t.min" "corpus/$t" "scratch/$t" "seeds/$t" \
    >"logs/$t.merge.log" 2>&1
rm -rf "corpus/$t" && mv "scratch/$t.min" "corpus/$t"
grep -E "^(#[0-9]+|stat::|Done)" "logs/$t.log" | tail -8
echo "corpus/$t: $(ls "corpus/$t" | wc -l) files, $(du -sh "corpus/$t" | cut -f1)"
