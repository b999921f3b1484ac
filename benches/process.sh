#!/usr/bin/env bash
# Whole-process benchmark: `process` of a generated gzip flow log file (AWS-like v5 custom
# format with header) to /dev/null and to a local HTTP receiver with gzip bodies, against
# `gzip -1` of the same NDJSON output; peak RSS from /usr/bin/time -v.
#   benches/process.sh [RECORDS]      (default 1000000; 3000000 is about AWS's largest object)
#   BIN=path/to/flowlog-forwarder benches/process.sh ...   (measure a binary already built)
# Results go to bench-out/ and are summarised on stdout; record them in BENCHMARKS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-1000000}
OUT=bench-out
mkdir -p "$OUT"
if [ -z "${BIN:-}" ]; then
  cargo build --release --quiet
  BIN=${CARGO_TARGET_DIR:-target}/release/flowlog-forwarder
fi
INPUT="$OUT/flows-$N.log.gz"
if [ ! -f "$INPUT" ]; then
  python3 - "$N" "$INPUT" <<'PY'
import gzip, random, sys
n, path = int(sys.argv[1]), sys.argv[2]
random.seed(1)
fmt = "version account-id interface-id srcaddr dstaddr srcport dstport protocol packets bytes start end action log-status vpc-id subnet-id instance-id tcp-flags type pkt-srcaddr pkt-dstaddr region az-id sublocation-type sublocation-id pkt-src-aws-service pkt-dst-aws-service flow-direction traffic-path"
with gzip.open(path, "wt", compresslevel=6) as f:
    f.write(fmt + "\n")
    for i in range(n):
        src = f"10.{i % 7}.{(i >> 3) % 250}.{i % 251}"
        dst = f"{random.choice((52, 198, 203, 185))}.{random.randrange(256)}.{random.randrange(256)}.{random.randrange(1, 255)}"
        t = 1732435200 + i // 1000
        act = "REJECT" if i % 9 == 0 else "ACCEPT"
        f.write(f"5 123456789012 eni-0a1b2c3d4e5f60718 {src} {dst} {1024 + i % 60000} 443 6 {i % 90 + 1} {(i % 90 + 1) * 700} {t} {t + 60} {act} OK vpc-0abc1234def567890 subnet-0123456789abcdef0 i-0fedcba9876543210 19 IPv4 {src} {dst} eu-west-1 euw1-az1 - - - - egress 8\n")
PY
fi
echo "input: $INPUT ($(du -h "$INPUT" | cut -f1), $N records)"

echo "== process to /dev/null"
/usr/bin/time -v "$BIN" process "$INPUT" > /dev/null 2> "$OUT/time-stdout.txt" || true
grep -E "summary|Elapsed|Maximum resident" "$OUT/time-stdout.txt"

echo "== gzip -1 of the same NDJSON output (the target: process + HTTP no slower than this)"
"$BIN" process "$INPUT" 2>/dev/null > "$OUT/docs.ndjson"
/usr/bin/time -f "gzip -1: %e s" gzip -1 -c "$OUT/docs.ndjson" > /dev/null

echo "== process to a local HTTP receiver (gzip bodies)"
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
python3 - "$PORT" <<'PY' &
import sys
from http.server import ThreadingHTTPServer, BaseHTTPRequestHandler
class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(200); self.send_header("Content-Length", "2"); self.end_headers(); self.wfile.write(b"{}")
    def log_message(self, *a): pass
ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
PY
RECEIVER=$!
trap 'kill $RECEIVER 2>/dev/null || true' EXIT
sleep 1
/usr/bin/time -v "$BIN" process --destination "http://127.0.0.1:$PORT/" "$INPUT" 2> "$OUT/time-http.txt" || true
grep -E "summary|Elapsed|Maximum resident" "$OUT/time-http.txt"

echo "== invoke (the Lambda handler) on an S3 event for the same object, HTTP destination"
mkdir -p "$OUT/s3/bench-bucket"
cp -f "$INPUT" "$OUT/s3/bench-bucket/flows.log.gz"
printf '{"Records":[{"eventSource":"aws:s3","eventName":"ObjectCreated:Put","s3":{"bucket":{"name":"bench-bucket"},"object":{"key":"flows.log.gz","eTag":"e"}}}]}' > "$OUT/s3-event.json"
/usr/bin/time -v "$BIN" invoke "$OUT/s3-event.json" --s3-dir "$OUT/s3" --destination "http://127.0.0.1:$PORT/" 2> "$OUT/time-invoke.txt" || true
grep -E '"status"|Elapsed|Maximum resident' "$OUT/time-invoke.txt"

if command -v moto_server >/dev/null 2>&1; then
  echo "== invoke reading the object from a local S3 API server (moto) with aws-sdk-s3"
  MPORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  moto_server -H 127.0.0.1 -p "$MPORT" > /dev/null 2>&1 &
  MOTO=$!
  trap 'kill $RECEIVER $MOTO 2>/dev/null || true' EXIT
  sleep 2
  export AWS_ENDPOINT_URL="http://127.0.0.1:$MPORT" AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_REGION=us-east-1
  python3 - "$INPUT" <<'PY'
import sys, boto3
s3 = boto3.client("s3")
s3.create_bucket(Bucket="bench-bucket")
s3.upload_file(sys.argv[1], "bench-bucket", "flows.log.gz")
PY
  /usr/bin/time -v "$BIN" invoke "$OUT/s3-event.json" --destination "http://127.0.0.1:$PORT/" 2> "$OUT/time-invoke-s3.txt" || true
  grep -E '"status"|Elapsed|Maximum resident' "$OUT/time-invoke-s3.txt"
fi
