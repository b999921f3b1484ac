#!/usr/bin/env bash
# What each volume setting sends, on a corpus with real VPCs' repetition
# (benches/corpus.py: 10-minute objects of a busy VPC, 400,000 default-format records):
# `process` of every object to standard output, per setting: the documents out, their
# gzip size (gzip -6, as the request bodies), and the records of every REJECT and
# threat match; then the instructions per input record (callgrind, first object).
#   benches/volume.sh      BIN=path/to/flowlog-forwarder benches/volume.sh
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=bench-out
CORPUS=$OUT/realistic
mkdir -p "$OUT"
if [ -z "${BIN:-}" ]; then
  cargo build --release --quiet
  BIN=${CARGO_TARGET_DIR:-target}/release/flowlog-forwarder
fi
[ -d "$CORPUS" ] || python3 benches/corpus.py 400000 "$CORPUS"
# Some scanners (sources of REJECTs from the internet) are listed as threats, so that
# matches are measured too.
zcat "$CORPUS"/object-000.log.gz | awk '$13 == "REJECT" && $4 !~ /^10\./ && NR % 7 == 0 { print $4 }' | sort -u | head -50 > "$OUT/volume-threats.txt"
RULE='action == "REJECT" || !(srcaddr in "10.0.0.0/8" && dstaddr in "10.0.0.0/8")'
run() {
  local label=$1; shift
  local docs bytes summary
  summary=$(env "$@" THREAT_INTEL_URI="$OUT/volume-threats.txt" "$BIN" process "$CORPUS"/*.log.gz 2>"$OUT/volume.err" \
    | tee >(wc -l > "$OUT/volume.docs") | gzip -6 | wc -c)
  docs=$(cat "$OUT/volume.docs")
  echo "$label | documents $docs | gzip bytes $summary | $(grep -o 'read=[0-9]* forwarded=[0-9]* filtered=[0-9]*' "$OUT/volume.err")"
}
run "off"
run "FILTER (drop internal accepts)" FILTER="$RULE"
run "AGGREGATE=flows" AGGREGATE=flows
run "AGGREGATE=connections" AGGREGATE=connections
run "AGGREGATE=conversations" AGGREGATE=conversations
run "PROFILE=security" PROFILE=security
zcat "$CORPUS"/object-000.log.gz > "$OUT/object-000.log"
count() {
  env "$@" valgrind --tool=callgrind --callgrind-out-file=/dev/null "$BIN" process "$OUT/object-000.log" 2>&1 >/dev/null \
    | sed -n 's/.*I *refs: *//p'
}
records=$(($(wc -l < "$OUT/object-000.log") - 1))
echo "instructions, first object ($records records):"
echo "  off: $(count X=1)"
echo "  FILTER: $(count FILTER="$RULE")"
echo "  FILTER keeping every record: $(count FILTER='action == "REJECT" || !(srcaddr in "192.0.2.0/24" && dstaddr in "192.0.2.0/24")')"
echo "  AGGREGATE=flows: $(count AGGREGATE=flows)"
echo "  AGGREGATE=connections: $(count AGGREGATE=connections)"
echo "  AGGREGATE=conversations: $(count AGGREGATE=conversations)"
echo "  PROFILE=security: $(count PROFILE=security)"
