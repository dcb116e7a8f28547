#!/usr/bin/env bash
# Build and run the whole comparison (3 runs, medians).
# Tables go to results.md, per-run lines to results-runs.log.
# Data goes to ./bench-data (must be on a real disk, not tmpfs).
set -euo pipefail
cd "$(dirname "$0")"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/tmp/store-compare-target}"
cargo build --release --locked
BIN="$CARGO_TARGET_DIR/release/store-compare"
mkdir -p bench-data
{
  echo "date: $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(free -g | awk '/Mem:/{print $2}') GiB RAM, kernel $(uname -r)"
  echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
  "$BIN" "$@" 2> >(tee results-runs.log >&2)
  echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
  if command -v strace >/dev/null; then
    echo
    echo "Sync calls per commit (strace -f -c; 1000 commits of 1 record, 1000 commits of 64 records):"
    echo
    echo "| store | g=1 | g=64 |"
    echo "|---|---|---|"
    for s in own own-prealloc own-zerofill redb fjall-syncdata fjall-syncall sqlite-wal-full sqlite-wal-normal; do
      row="| $s"
      for g in 1 64; do
        strace -f -c -o bench-data/strace.txt -e trace=fsync,fdatasync,sync_file_range,msync \
          "$BIN" syscount --store "$s" --commits 1000 --group "$g" 2>/dev/null
        row="$row | $(awk '$NF ~ /^(fsync|fdatasync|sync_file_range|msync)$/ {printf "%s %.3f ", $NF, $(NF-1)/1000}' bench-data/strace.txt)"
      done
      echo "$row |"
    done
    rm -f bench-data/strace.txt
  fi
} | tee results.md
