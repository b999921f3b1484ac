#!/usr/bin/env bash
# Binary size and cold start of the release binary in Lambda mode: time from spawning
# the process to its first GET /runtime/invocation/next (init), and to the response of a
# first invocation (an SQS s3:TestEvent, which needs no network), against a local
# Runtime API server. `benches/cold-start.sh [RUNS]`; record results in BENCHMARKS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-20}
cargo build --release --quiet
BIN=${CARGO_TARGET_DIR:-target}/release/flowlog-forwarder
echo "binary: $(stat -c %s "$BIN") bytes ($(du -h "$BIN" | cut -f1)), $(uname -m)"
python3 - "$BIN" "$RUNS" <<'PY'
import json, os, statistics, subprocess, sys, threading, time
from http.server import ThreadingHTTPServer, BaseHTTPRequestHandler
binary, runs = sys.argv[1], int(sys.argv[2])
event = json.dumps({"Records": [{"messageId": "m1", "eventSource": "aws:sqs",
    "body": json.dumps({"Service": "Amazon S3", "Event": "s3:TestEvent"})}]}).encode()
marks = {}
class Api(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a): pass
    def do_GET(self):
        if "next" not in marks:
            marks["next"] = time.perf_counter()
            deadline = int(time.time() * 1000) + 60000
            self.send_response(200)
            for k, v in [("Lambda-Runtime-Aws-Request-Id", "req-1"), ("Lambda-Runtime-Deadline-Ms", str(deadline)),
                         ("Lambda-Runtime-Invoked-Function-Arn", "arn:aws:lambda:us-east-1:123456789012:function:f"),
                         ("Content-Type", "application/json"), ("Content-Length", str(len(event)))]:
                self.send_header(k, v)
            self.end_headers(); self.wfile.write(event)
        else:
            time.sleep(30)
    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        marks["response"] = time.perf_counter()
        self.send_response(202); self.send_header("Content-Length", "0"); self.end_headers()
class Server(ThreadingHTTPServer):
    def handle_error(self, request, client_address):
        pass  # the killed function's connections reset: expected
server = Server(("127.0.0.1", 0), Api)
threading.Thread(target=server.serve_forever, daemon=True).start()
env = {"PATH": os.environ.get("PATH", ""), "AWS_LAMBDA_RUNTIME_API": f"127.0.0.1:{server.server_port}",
       "AWS_LAMBDA_FUNCTION_NAME": "f", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "512", "AWS_LAMBDA_FUNCTION_VERSION": "1",
       "AWS_LAMBDA_LOG_STREAM_NAME": "s", "AWS_LAMBDA_LOG_GROUP_NAME": "g", "AWS_REGION": "us-east-1",
       "AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x", "AWS_SESSION_TOKEN": "x",
       "DESTINATION_URL": "https://logs.example.com/ingest"}
inits, firsts = [], []
for _ in range(runs):
    marks.clear()
    start = time.perf_counter()
    p = subprocess.Popen([binary], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while "response" not in marks and time.perf_counter() - start < 10:
        time.sleep(0.0005)
    p.kill(); p.wait()
    inits.append((marks["next"] - start) * 1000)
    firsts.append((marks["response"] - start) * 1000)
print(f"init (spawn to first next): median {statistics.median(inits):.1f} ms, min {min(inits):.1f}, max {max(inits):.1f} ({runs} runs)")
print(f"first response (s3:TestEvent): median {statistics.median(firsts):.1f} ms, min {min(firsts):.1f}, max {max(firsts):.1f}")
PY
