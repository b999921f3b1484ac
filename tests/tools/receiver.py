"""A local HTTP receiver for trying the function: accepts every POST (gzip bodies
included), prints each document it receives on standard output, answers 200.

    python3 tests/tools/receiver.py [PORT]      (default 8089)

Then DESTINATION_URL=http://127.0.0.1:PORT/ingest (loopback: plain http is allowed).
"""
import sys

from receiving import Handler, announce_on_stderr, serve


class Receiver(Handler):
    def do_POST(self):
        sys.stdout.write(self.body().decode("utf-8", "replace"))
        sys.stdout.flush()
        self.answer(200, b"{}")


if __name__ == "__main__":
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 8089
    serve(Receiver, port, announce_on_stderr("/ingest"))
