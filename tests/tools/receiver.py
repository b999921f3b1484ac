"""A local HTTP receiver for trying the function: accepts every POST (gzip bodies
included), prints each document it receives on standard output, answers 200.

    python3 tests/tools/receiver.py [PORT]      (default 8089)

Then DESTINATION_URL=http://127.0.0.1:PORT/ingest (loopback: plain http is allowed).
"""
import gzip
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Receiver(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if self.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        sys.stdout.write(body.decode("utf-8", "replace"))
        sys.stdout.flush()
        answer = b"{}"
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args):
        pass


if __name__ == "__main__":
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 8089
    print(f"receiving on http://127.0.0.1:{port}/ingest", file=sys.stderr, flush=True)
    ThreadingHTTPServer(("127.0.0.1", port), Receiver).serve_forever()
