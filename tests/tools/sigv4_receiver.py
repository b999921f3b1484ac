"""An Elasticsearch-like bulk receiver that checks AWS Signature Version 4 as Amazon
OpenSearch Service does: it recomputes each request's signature with botocore from the
credentials it is given and the headers the request says it signed, and answers 403
with the service's message when they differ (or when the body's hash, the date or the
credential scope is wrong); otherwise every bulk item is created.

    python3 tests/tools/sigv4_receiver.py ACCESS_KEY SECRET_KEY TOKEN|- REGION SERVICE

Prints its port on the first line, then one line per request: `ok` or `refused: why`.
"""
import hashlib
import json
import sys

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from receiving import Handler, serve

ACCESS, SECRET, TOKEN, REGION, SERVICE = sys.argv[1:6]
TOKEN = None if TOKEN == "-" else TOKEN
MISMATCH = "The request signature we calculated does not match the signature you provided."


def check(handler, body):
    auth = handler.headers.get("Authorization", "")
    if not auth.startswith("AWS4-HMAC-SHA256 "):
        return "no SigV4 Authorization header"
    parts = dict(p.strip().split("=", 1) for p in auth[len("AWS4-HMAC-SHA256 "):].split(","))
    access, date, region, service, _ = parts["Credential"].split("/")
    if access != ACCESS:
        return "The security token included in the request is invalid."
    if (region, service) != (REGION, SERVICE):
        return f"Credential should be scoped to {REGION}/{SERVICE}, not {region}/{service}."
    signed = parts["SignedHeaders"].split(";")
    for required in ("host", "x-amz-date", "x-amz-content-sha256"):
        if required not in signed:
            return f"{required} is not signed"
    if TOKEN is not None and ("x-amz-security-token" not in signed
                              or handler.headers.get("x-amz-security-token") != TOKEN):
        return "The security token included in the request is invalid."
    if handler.headers.get("x-amz-content-sha256") != hashlib.sha256(body).hexdigest():
        return "The provided 'x-amz-content-sha256' header does not match what was computed."
    amz_date = handler.headers.get("x-amz-date", "")
    if amz_date[:8] != date:
        return "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP"
    request = AWSRequest(
        method=handler.command,
        url=f"http://{handler.headers['host']}{handler.path}",
        data=body,
        headers={name: handler.headers[name] for name in signed},
    )
    request.context["timestamp"] = amz_date
    signer = SigV4Auth(Credentials(ACCESS, SECRET, TOKEN), SERVICE, REGION)
    canonical = signer.canonical_request(request)
    expected = signer.signature(signer.string_to_sign(request, canonical), request)
    if expected != parts["Signature"]:
        return MISMATCH
    return None


class Receiver(Handler):
    def do_POST(self):
        raw = self.raw_body()
        why = check(self, raw)
        if why is not None:
            print(f"refused: {why}", flush=True)
            return self.answer_json(403, {"message": why})
        print("ok", flush=True)
        items = []
        for line in self.decoded(raw).decode().splitlines():
            action = json.loads(line)
            if "create" in action:
                items.append({"create": {"_id": action["create"].get("_id"), "status": 201}})
        self.answer_json(200, {"took": 1, "errors": False, "items": items})


serve(Receiver)
