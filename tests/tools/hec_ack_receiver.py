"""A Splunk HEC endpoint with indexer acknowledgement, as Splunk documents it: events
to /services/collector/event need an X-Splunk-Request-Channel header (else 400, code 10
"Data channel is missing") and are answered with an ackId; /services/collector/ack
answers {"acks": {"<id>": true|false}} for the ids asked.

    python3 tests/tools/hec_ack_receiver.py MODE     (MODE: prompt | late | never)

prompt acknowledges at the first poll, late at the third, never never. Prints its port
on the first line, then `event <ackId> <channel>` and `ack <ids> <answer>` per request.
"""
import json
import sys
import threading
from urllib.parse import parse_qs, urlsplit

from receiving import Handler, serve

MODE = sys.argv[1]
lock = threading.Lock()
next_id = [0]
polls = {}


class Hec(Handler):
    def do_POST(self):
        body = self.body()
        url = urlsplit(self.path)
        channel = self.headers.get("X-Splunk-Request-Channel") or parse_qs(url.query).get("channel", [None])[0]
        if channel is None:
            print("refused: no channel", flush=True)
            return self.answer_json(400, {"text": "Data channel is missing", "code": 10})
        if url.path.endswith("/ack"):
            ids = json.loads(body)["acks"]
            acks = {}
            with lock:
                for i in ids:
                    polls[i] = polls.get(i, 0) + 1
                    acks[str(i)] = MODE == "prompt" or (MODE == "late" and polls[i] >= 3)
            print(f"ack {ids} {acks}", flush=True)
            return self.answer_json(200, {"acks": acks})
        with lock:
            ack_id = next_id[0]
            next_id[0] += 1
        print(f"event {ack_id} {channel}", flush=True)
        self.answer_json(200, {"text": "Success", "code": 0, "ackId": ack_id})


serve(Hec)
