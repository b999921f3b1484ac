//! DESTINATION_FORMAT=otlp: OTLP/HTTP logs, decoded by a local receiver with the
//! official opentelemetry-proto package, in protobuf (the default) and OTLP/JSON: one
//! LogRecord per flow record, its time the window end, the fields under OpenTelemetry's
//! semantic-convention names, one resource per account and region; a partialSuccess
//! that rejects records fails that many.

mod common;

use std::process::{Child, Command, Output};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_flowlog-forwarder");

struct Receiver {
    child: Child,
    port: u16,
}

impl Receiver {
    fn start(mode: &str) -> Receiver {
        let check = Command::new("python3")
            .args(["-c", "import opentelemetry.proto"])
            .status();
        if !check.is_ok_and(|s| s.success()) {
            common::pip_install("opentelemetry-proto>=1.27");
        }
        let (child, port) = common::python_server("otlp_receiver.py", &[mode]);
        Receiver { child, port }
    }

    /// (path, content type, decoded request) of each request received.
    fn requests(self) -> Vec<(String, String, Value)> {
        common::python_server_log(self.child)
            .iter()
            .map(|line| {
                let mut parts = line.splitn(3, ' ');
                let (path, content_type) = (parts.next().unwrap(), parts.next().unwrap_or(""));
                assert_ne!(path, "undecodable", "{line}");
                let request = serde_json::from_str(parts.next().unwrap_or("null")).unwrap();
                (path.to_string(), content_type.to_string(), request)
            })
            .collect()
    }
}

const RECORDS: &str = "version account-id region interface-id srcaddr dstaddr srcport dstport protocol packets bytes start end action log-status
5 111111111111 eu-west-1 eni-1 10.0.0.1 203.0.113.9 40000 443 6 10 6000 1700000000 1700000060 ACCEPT OK
5 111111111111 eu-west-1 eni-1 203.0.113.9 10.0.0.1 443 40000 6 8 4000 1700000000 1700000061 ACCEPT OK
5 222222222222 us-east-1 eni-2 198.51.100.7 10.1.0.5 51000 22 6 1 40 1700000100 1700000162 REJECT OK
5 111111111111 eu-west-1 eni-1 10.0.0.2 203.0.113.10 40001 53 17 1 70 1700000000 1700000063 ACCEPT OK
";

fn run(url: &str, env: &[(&str, &str)]) -> Output {
    let file = common::input_file("otlp.log", RECORDS);
    let mut cmd = Command::new(BIN);
    cmd.args(["process", "--destination", url, &file.to_string_lossy()]);
    common::delivery_env(
        &mut cmd,
        &[("DESTINATION_FORMAT", "otlp"), ("MAX_RETRIES", "0")],
    );
    cmd.envs(env.iter().copied());
    cmd.output().unwrap()
}

/// An attribute's value, as protobuf's JSON mapping writes an AnyValue.
fn attribute<'v>(attributes: &'v Value, key: &str) -> Option<&'v Value> {
    attributes
        .as_array()?
        .iter()
        .find(|kv| kv["key"] == key)
        .map(|kv| &kv["value"])
}

/// Every log record of a request, with its resource's attributes.
fn records(request: &Value) -> Vec<(&Value, &Value)> {
    let mut out = Vec::new();
    for resource_logs in request["resourceLogs"].as_array().unwrap() {
        for scope_logs in resource_logs["scopeLogs"].as_array().unwrap() {
            assert_eq!(scope_logs["scope"]["name"], "flowlog-forwarder");
            for record in scope_logs["logRecords"].as_array().unwrap() {
                out.push((&resource_logs["resource"]["attributes"], record));
            }
        }
    }
    out
}

fn check_records(request: &Value) {
    let records = records(request);
    assert_eq!(records.len(), 4, "{request}");
    assert_eq!(
        request["resourceLogs"].as_array().unwrap().len(),
        2,
        "one resource per account and region: {request}"
    );
    let (resource, first) = records[0];
    assert_eq!(
        attribute(resource, "cloud.account.id").unwrap()["stringValue"],
        "111111111111"
    );
    assert_eq!(
        attribute(resource, "cloud.region").unwrap()["stringValue"],
        "eu-west-1"
    );
    assert_eq!(
        attribute(resource, "cloud.provider").unwrap()["stringValue"],
        "aws"
    );
    // The window end, in nanoseconds.
    assert_eq!(first["timeUnixNano"], "1700000060000000000");
    let attributes = &first["attributes"];
    assert_eq!(
        attribute(attributes, "source.address").unwrap()["stringValue"],
        "10.0.0.1"
    );
    assert_eq!(
        attribute(attributes, "source.port").unwrap()["intValue"],
        "40000"
    );
    assert_eq!(
        attribute(attributes, "destination.address").unwrap()["stringValue"],
        "203.0.113.9"
    );
    assert_eq!(
        attribute(attributes, "network.transport").unwrap()["stringValue"],
        "tcp"
    );
    assert_eq!(
        attribute(attributes, "source.bytes").unwrap()["intValue"],
        "6000"
    );
    let uid = attribute(attributes, "log.record.uid").unwrap()["stringValue"]
        .as_str()
        .unwrap();
    assert!(uid.len() >= 16, "{uid}");
    // Keys are unique (ECS has both `source.address` and `source.ip`).
    let mut keys: Vec<&str> = attributes
        .as_array()
        .unwrap()
        .iter()
        .map(|kv| kv["key"].as_str().unwrap())
        .collect();
    let n = keys.len();
    keys.sort_unstable();
    keys.dedup();
    assert_eq!(keys.len(), n, "{keys:?}");
    // Arrays stay arrays; the resource's and the record's own fields are not repeated.
    assert!(attribute(attributes, "related.ip").unwrap()["arrayValue"]["values"].is_array());
    for moved in ["cloud.account.id", "@timestamp", "source.ip", "event.id"] {
        assert!(attribute(attributes, moved).is_none(), "{moved}");
    }
    let (resource, reject) = records
        .iter()
        .find(|(_, r)| {
            attribute(&r["attributes"], "event.action").unwrap()["stringValue"] == "reject"
        })
        .unwrap();
    assert_eq!(
        attribute(resource, "cloud.account.id").unwrap()["stringValue"],
        "222222222222"
    );
    assert_eq!(reject["timeUnixNano"], "1700000162000000000");
}

#[test]
fn protobuf_requests_decode_with_the_official_package() {
    let receiver = Receiver::start("ok");
    // A URL with no path gets OTLP's /v1/logs.
    let out = run(&format!("http://127.0.0.1:{}", receiver.port), &[]);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let requests = receiver.requests();
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("forwarded=4"), "{stderr}");
    assert_eq!(requests.len(), 1, "{requests:?}");
    let (path, content_type, request) = &requests[0];
    assert_eq!(path, "/v1/logs");
    assert_eq!(content_type, "application/x-protobuf");
    check_records(request);
}

#[test]
fn json_requests_decode_with_the_official_package() {
    let receiver = Receiver::start("ok");
    let url = format!("http://127.0.0.1:{}/otlp/v1/logs", receiver.port);
    let out = run(
        &url,
        &[
            ("DESTINATION_OTLP_ENCODING", "json"),
            ("OUTPUT_SCHEMA", "raw"),
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let requests = receiver.requests();
    assert!(out.status.success(), "{stderr}");
    let (path, content_type, request) = &requests[0];
    assert_eq!(path, "/otlp/v1/logs");
    assert_eq!(content_type, "application/json");
    // The raw schema's line is each record's body.
    let records = records(request);
    assert_eq!(records.len(), 4);
    let body = records[0].1["body"]["stringValue"].as_str().unwrap();
    assert!(
        body.starts_with("5 111111111111 eu-west-1 eni-1 10.0.0.1"),
        "{body}"
    );
}

#[test]
fn json_and_protobuf_carry_the_same_records() {
    let receiver = Receiver::start("ok");
    let url = format!("http://127.0.0.1:{}/v1/logs", receiver.port);
    assert!(run(&url, &[]).status.success());
    assert!(run(&url, &[("DESTINATION_OTLP_ENCODING", "json")])
        .status
        .success());
    let requests = receiver.requests();
    assert_eq!(requests.len(), 2);
    for (_, _, request) in &requests {
        check_records(request);
    }
    let strip = |r: &Value| {
        let mut r = r.clone();
        for rl in r["resourceLogs"].as_array_mut().unwrap() {
            for sl in rl["scopeLogs"].as_array_mut().unwrap() {
                for lr in sl["logRecords"].as_array_mut().unwrap() {
                    lr.as_object_mut().unwrap().remove("observedTimeUnixNano");
                }
            }
        }
        r
    };
    assert_eq!(strip(&requests[0].2), strip(&requests[1].2));
}

#[test]
fn rejected_records_of_a_partial_success_are_failed() {
    for encoding in ["protobuf", "json"] {
        let receiver = Receiver::start("partial");
        let url = format!("http://127.0.0.1:{}/v1/logs", receiver.port);
        let out = run(&url, &[("DESTINATION_OTLP_ENCODING", encoding)]);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        let _ = receiver.requests();
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(
            stderr.contains("forwarded=2") && stderr.contains("failed=2"),
            "{encoding}: {stderr}"
        );
        assert!(stderr.contains("rejected 2 of 4"), "{stderr}");
        assert!(stderr.contains("over the attribute limit"), "{stderr}");
        common::assert_accounting(&stderr);
    }
}

#[test]
fn an_unknown_encoding_is_refused_at_start() {
    let out = run(
        "http://127.0.0.1:9/v1/logs",
        &[("DESTINATION_OTLP_ENCODING", "thrift")],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("DESTINATION_OTLP_ENCODING"), "{stderr}");
}
