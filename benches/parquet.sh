#!/usr/bin/env bash
# Parquet against gzip text for the same records: converts bench-out/flows-N.log.gz (made
# by benches/process.sh) to Parquet with AWS's column types and gzip compression
# (pyarrow: pip install pyarrow), then times `process` on both.
#   benches/parquet.sh [RECORDS]   (default 1000000)
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-1000000}
OUT=bench-out
TEXT="$OUT/flows-$N.log.gz"
PQ="$OUT/flows-$N.log.parquet"
[ -f "$TEXT" ] || benches/process.sh "$N" > /dev/null
cargo build --release --quiet
BIN=${CARGO_TARGET_DIR:-target}/release/flowlog-forwarder
if [ ! -f "$PQ" ]; then
  python3 - "$TEXT" "$PQ" <<'PY'
import gzip, sys
import pyarrow as pa, pyarrow.parquet as pq
src, dst = sys.argv[1], sys.argv[2]
i32 = {"version", "srcport", "dstport", "protocol", "tcp-flags", "traffic-path"}
i64 = {"packets", "bytes", "start", "end"}
with gzip.open(src, "rt") as f:
    names = f.readline().split()
    cols = [[] for _ in names]
    for line in f:
        for c, v in zip(cols, line.split()):
            c.append(None if v == "-" else v)
arrays, fields = [], []
for name, values in zip(names, cols):
    if name in i32 or name in i64:
        t = pa.int32() if name in i32 else pa.int64()
        arrays.append(pa.array([None if v is None else int(v) for v in values], type=t))
    else:
        t = pa.string()
        arrays.append(pa.array(values, type=t))
    fields.append(pa.field(name.replace("-", "_"), t))
pq.write_table(pa.Table.from_arrays(arrays, schema=pa.schema(fields)), dst, compression="gzip", row_group_size=131072)
PY
fi
echo "text: $TEXT ($(du -h "$TEXT" | cut -f1)); parquet: $PQ ($(du -h "$PQ" | cut -f1))"
for input in "$TEXT" "$PQ"; do
  /usr/bin/time -v "$BIN" process "$input" > /dev/null 2> "$OUT/time-one.txt" || true
  echo "$input: $(grep -E 'summary' "$OUT/time-one.txt" | cut -c1-40) $(grep -E 'Elapsed' "$OUT/time-one.txt" | awk '{print $NF}') s, peak RSS $(grep -E 'Maximum resident' "$OUT/time-one.txt" | awk '{print $NF}') kB"
done
