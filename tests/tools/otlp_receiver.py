"""An OpenTelemetry collector's OTLP/HTTP logs receiver, decoding each request with the
official opentelemetry-proto package (protobuf, or OTLP/JSON through protobuf's JSON
mapping) and answering in the request's encoding, as the OTLP specification says.

    python3 tests/tools/otlp_receiver.py MODE     (MODE: ok | partial)

ok accepts every record; partial answers a partialSuccess rejecting 2 records of each
request. Prints its port on the first line, then per request one line:
`<path> <content-type> <the request as JSON (protobuf's JSON mapping)>`. A body that
does not decode is answered 400 and printed as `undecodable <error>`.
"""
import json
import sys

from google.protobuf import json_format
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from receiving import Handler, serve

MODE = sys.argv[1]


class Receiver(Handler):
    def do_POST(self):
        body = self.body()
        content_type = self.headers.get("Content-Type", "")
        is_json = content_type.startswith("application/json")
        request = ExportLogsServiceRequest()
        try:
            if is_json:
                json_format.Parse(body, request)
            else:
                request.ParseFromString(body)
        except Exception as e:  # noqa: BLE001 - any decoding failure is the test's answer
            print(f"undecodable {e!r}", flush=True)
            return self.answer(400)
        print(self.path, content_type, json.dumps(json_format.MessageToDict(request)), flush=True)
        response = ExportLogsServiceResponse()
        if MODE == "partial":
            response.partial_success.rejected_log_records = 2
            response.partial_success.error_message = "2 records over the attribute limit"
        if is_json:
            answer = json_format.MessageToJson(response).encode()
        else:
            answer = response.SerializeToString()
        self.answer(200, answer, content_type)


serve(Receiver)
