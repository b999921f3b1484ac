"""What the local test receivers share: a request's body (its gzip undone), answers,
and serving on 127.0.0.1 with no access log.

    from receiving import Handler, serve
"""
import gzip
import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Handler(BaseHTTPRequestHandler):
    def raw_body(self):
        """The body as sent (for a signature over it)."""
        return self.rfile.read(int(self.headers.get("Content-Length", 0)))

    def decoded(self, raw):
        """`raw` with its Content-Encoding (gzip) undone."""
        if self.headers.get("Content-Encoding") == "gzip":
            return gzip.decompress(raw)
        return raw

    def body(self):
        return self.decoded(self.raw_body())

    def answer(self, code, body=b"", content_type="application/json"):
        self.send_response(code)
        if body:
            self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def answer_json(self, code, value):
        self.answer(code, json.dumps(value).encode())

    def log_message(self, *args):
        pass


def print_port(port):
    """The tests read the port from the first line of standard output."""
    print(port, flush=True)


def serve(handler, port=0, announce=print_port):
    """Serves `handler` on 127.0.0.1:`port` (0: one the system picks) until killed,
    once `announce` has been given the port."""
    server = ThreadingHTTPServer(("127.0.0.1", port), handler)
    announce(server.server_address[1])
    server.serve_forever()


def announce_on_stderr(path):
    """An `announce` for a person: where to send, on standard error."""
    return lambda port: print(f"receiving on http://127.0.0.1:{port}{path}", file=sys.stderr, flush=True)
