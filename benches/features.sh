#!/usr/bin/env bash
# What the optional record features cost, in instructions (callgrind: repeatable on a
# shared machine): `process` of the first 200,000 records of the whole-process corpus
# (benches/process.sh; v5, 29 fields, one REJECT in nine) to /dev/null, as ECS with
# REJECT attribution (the default), without it, as OCSF, and with a 100,000-entry
# THREAT_INTEL_URI list; then the load time and peak RSS of a 1,000,000-entry list.
#   benches/features.sh          (needs valgrind; results on stdout, for BENCHMARKS.md)
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-${CARGO_TARGET_DIR:-target}/release/flowlog-forwarder}
[ -x "$BIN" ] || cargo build --release --quiet
OUT=bench-out
mkdir -p "$OUT"
[ -f "$OUT/flows-200000.log.gz" ] || benches/process.sh 200000 >/dev/null
list() {
  python3 - "$1" "$2" <<'PY'
import random, sys
n, path = int(sys.argv[1]), sys.argv[2]
random.seed(7)
with open(path, "w") as f:
    f.write("# generated feed\n")
    for i in range(n):
        a = random.choice((52, 198, 203, 185, 45, 91))
        ip = f"{a}.{random.randrange(256)}.{random.randrange(256)}"
        f.write(f"{ip}.0/24,feed-{i % 7}\n" if i % 50 == 0 else f"{ip}.{random.randrange(1, 255)},feed-{i % 7}\n")
PY
}
[ -f "$OUT/threat-100k.txt" ] || list 100000 "$OUT/threat-100k.txt"
[ -f "$OUT/threat-1m.txt" ] || list 1000000 "$OUT/threat-1m.txt"
count() {
  local log
  log=$(mktemp)
  env "$@" valgrind --tool=callgrind --callgrind-out-file=/dev/null "$BIN" process "$OUT/flows-200000.log.gz" 2>"$log" >/dev/null
  grep -o "Collected : [0-9]*" "$log" | awk '{printf "%.3f G", $3 / 1e9}'
  grep -o "threat_matches=[0-9]*" "$log" | sed 's/^/ /' || true
  rm -f "$log"
}
echo "ECS, REJECT attribution (default): $(count OUTPUT_SCHEMA=ecs)"
echo "ECS, REJECT_ATTRIBUTION=false:     $(count REJECT_ATTRIBUTION=false)"
echo "OCSF:                              $(count OUTPUT_SCHEMA=ocsf)"
echo "ECS, 100k-entry threat list:       $(count THREAT_INTEL_URI="$OUT/threat-100k.txt")"
for with in no yes; do
  vars=()
  [ "$with" = yes ] && vars=(THREAT_INTEL_URI="$OUT/threat-1m.txt")
  env "${vars[@]}" /usr/bin/time -f "%e s, peak RSS %M KB" "$BIN" process /dev/null 2>&1 >/dev/null | tail -1 | sed "s/^/1M-entry list: $with: /"
done
