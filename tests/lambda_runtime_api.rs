//! The real binary in Lambda mode, driven through a small Lambda Runtime API server on
//! 127.0.0.1 (GET next invocation, POST response / error): an SQS event (objects read
//! from moto through the real SDK) and a CloudWatch Logs event, delivered over HTTP.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::moto::put_objects;
use common::receiver::{Receiver, Reply};
use common::runtime_api::{
    lambda_command, start_runtime_api, start_runtime_api_with_deadline, wait_for_results,
};
use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_flowlog-forwarder");

fn cloudwatch_event() -> Value {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/events/cloudwatch-logs.json"
    ))
    .unwrap();
    serde_json::from_str(&text).unwrap()
}

#[test]
fn sqs_and_cloudwatch_events_through_the_runtime_api() {
    let header = "version account-id interface-id srcaddr dstaddr srcport dstport protocol packets bytes start end action log-status\n";
    let body = format!("{header}2 123456789012 eni-1 10.0.0.1 198.51.100.1 1024 443 6 1 60 1700000000 1700000060 ACCEPT OK\n");
    put_objects("runtime", &[("obj.log", body.into_bytes())]);
    let s3 = json!({"Records":[{"eventSource":"aws:s3","eventName":"ObjectCreated:Put","s3":{"bucket":{"name":"runtime"},"object":{"key":"obj.log","eTag":"e"}}}]});
    let sqs = json!({"Records":[
        {"messageId":"ok-1","receiptHandle":"r","body":s3.to_string(),"eventSource":"aws:sqs"},
        {"messageId":"bad-2","receiptHandle":"r","body":"{\"not\":\"s3\"}","eventSource":"aws:sqs"}]});
    let (api, state) =
        start_runtime_api(vec![sqs, cloudwatch_event(), json!({"unexpected": true})]);
    let rx = Receiver::start(vec![], Reply::ok());

    let mut child = lambda_command(BIN, &api, &rx.url)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_results(&state, 3, Duration::from_secs(60));
    let _ = child.kill();
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        common::assert_accounting(&String::from_utf8_lossy(&out.stdout)),
        3,
        "one summary per invocation"
    );
    let logs = String::from_utf8_lossy(&out.stdout).into_owned();
    let st = state.lock().unwrap();
    assert!(st.init_errors.is_empty(), "{:?}", st.init_errors);
    assert_eq!(
        st.results.len(),
        3,
        "logs: {logs}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let (_, kind, body) = &st.results[0];
    assert_eq!(kind, "response");
    assert_eq!(
        serde_json::from_str::<Value>(body).unwrap(),
        json!({"batchItemFailures":[{"itemIdentifier":"bad-2"}]})
    );
    let (_, kind, body) = &st.results[1];
    assert_eq!(kind, "response");
    assert_eq!(serde_json::from_str::<Value>(body).unwrap()["forwarded"], 4);
    let (_, kind, body) = &st.results[2];
    assert_eq!(
        kind, "error",
        "an unrecognized payload is an invocation error"
    );
    assert!(body.contains("awslogs.data"), "{body}");

    // 1 document from S3, 4 from CloudWatch, at the receiver.
    let docs = rx.documents();
    assert_eq!(docs.len(), 5);
    assert!(docs
        .iter()
        .any(|d| d["aws"]["cloudwatch"]["log_group"] == "/vpc/flowlogs"));
    assert!(docs
        .iter()
        .any(|d| d["aws"]["s3"]["bucket"]["name"] == "runtime"));

    // One EMF summary line per invocation on stdout.
    let summaries: Vec<Value> = logs
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v.get("_aws").is_some())
        .collect();
    assert_eq!(summaries.len(), 3, "{logs}");
    assert_eq!(summaries[1]["RecordsForwarded"], 4);
    assert!(
        summaries[1]["BytesIn"].as_u64().unwrap() > 0
            && summaries[1]["BytesOut"].as_u64().unwrap() > 0
    );
    assert_eq!(
        summaries[1]["_aws"]["CloudWatchMetrics"][0]["Namespace"],
        "FlowlogForwarder"
    );
}

#[test]
fn missing_destination_fails_the_cold_start() {
    let (api, _state) = start_runtime_api(vec![]);
    let out = Command::new(BIN)
        .env_clear()
        .env("AWS_LAMBDA_RUNTIME_API", &api)
        .env("AWS_LAMBDA_FUNCTION_NAME", "f")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stdout).contains("DESTINATION_URL"));
}

/// A destination that never answers: the function reports every message of the batch
/// as failed before its deadline instead of being killed by the timeout.
#[test]
fn slow_destination_reports_unfinished_messages_before_the_deadline() {
    let header = "version account-id interface-id srcaddr dstaddr srcport dstport protocol packets bytes start end action log-status\n";
    let line = "2 123456789012 eni-1 10.0.0.1 198.51.100.1 1024 443 6 1 60 1700000000 1700000060 ACCEPT OK\n";
    put_objects(
        "deadline",
        &[
            ("a.log", format!("{header}{line}").into_bytes()),
            ("b.log", format!("{header}{line}").into_bytes()),
        ],
    );
    let body = |key: &str| {
        json!({"Records":[{"eventSource":"aws:s3","eventName":"ObjectCreated:Put","s3":{"bucket":{"name":"deadline"},"object":{"key":key}}}]}).to_string()
    };
    let sqs = json!({"Records":[
        {"messageId":"a","receiptHandle":"r","body":body("a.log"),"eventSource":"aws:sqs"},
        {"messageId":"b","receiptHandle":"r","body":body("b.log"),"eventSource":"aws:sqs"}]});
    let (api, state) = start_runtime_api_with_deadline(vec![sqs], 4_000);
    let rx = Receiver::start(vec![], Reply::Hang(Duration::from_secs(30)));
    let mut child = lambda_command(BIN, &api, &rx.url)
        .env("DEADLINE_MARGIN_MS", "1000")
        .spawn()
        .unwrap();
    // Measured from just after the spawn; the deadline was set when `next` answered.
    let answered = wait_for_results(&state, 1, Duration::from_secs(30));
    let _ = child.kill();
    let out = child.wait_with_output().unwrap();
    let st = state.lock().unwrap();
    assert_eq!(
        st.results.len(),
        1,
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        answered < Duration::from_secs(4),
        "answered after {answered:?}, past the deadline"
    );
    let (_, kind, body) = &st.results[0];
    assert_eq!(kind, "response");
    assert_eq!(
        serde_json::from_str::<Value>(body).unwrap(),
        json!({"batchItemFailures":[{"itemIdentifier":"a"},{"itemIdentifier":"b"}]})
    );
}

#[test]
fn log_stream_prefix_skips_other_streams_counting_them_filtered() {
    let (api, state) = start_runtime_api(vec![cloudwatch_event()]);
    let rx = Receiver::start(vec![], Reply::ok());
    let mut child = lambda_command(BIN, &api, &rx.url)
        .env("LOG_STREAM_PREFIX", "other-,also-other")
        .spawn()
        .unwrap();
    wait_for_results(&state, 1, Duration::from_secs(30));
    let _ = child.kill();
    let out = child.wait_with_output().unwrap();
    let st = state.lock().unwrap();
    let (_, kind, body) = &st.results[0];
    assert_eq!(kind, "response");
    let response: Value = serde_json::from_str(body).unwrap();
    assert_eq!(
        (
            response["read"].as_u64(),
            response["filtered"].as_u64(),
            response["forwarded"].as_u64()
        ),
        (Some(4), Some(4), Some(0))
    );
    assert!(rx.requests().is_empty());
    assert_eq!(
        common::assert_accounting(&String::from_utf8_lossy(&out.stdout)),
        1
    );
}

#[test]
fn log_stream_prefix_forwards_matching_streams() {
    let (api, state) = start_runtime_api(vec![cloudwatch_event()]);
    let rx = Receiver::start(vec![], Reply::ok());
    let mut child = lambda_command(BIN, &api, &rx.url)
        .env("LOG_STREAM_PREFIX", "other-, eni-0a1b")
        .spawn()
        .unwrap();
    wait_for_results(&state, 1, Duration::from_secs(30));
    let _ = child.kill();
    let _ = child.wait();
    let st = state.lock().unwrap();
    let response: Value = serde_json::from_str(&st.results[0].2).unwrap();
    assert_eq!(response["forwarded"].as_u64(), Some(4));
    assert_eq!(rx.requests().len(), 1);
}

/// Issue 16: the deadline holds inside a unit. A slow, large object (trickled by a
/// scripted S3 endpoint) started with little time left is read only until the margin:
/// the function then finishes the requests in flight, reports that message failed (to
/// be retried, idempotently) and answers before the deadline, with the documents read
/// so far delivered and the summary consistent.
#[test]
fn the_deadline_stops_reading_inside_a_slow_large_object() {
    let line = "2 123456789012 eni-1 10.0.0.1 198.51.100.1 1024 443 6 1 60 1700000000 1700000060 ACCEPT OK\n";
    let s3 = Receiver::start(
        vec![Reply::Trickle {
            chunk: line.repeat(100),
            times: 2_000,
            pause: Duration::from_millis(20),
        }],
        Reply::status(500),
    );
    let body = json!({"Records":[{"eventSource":"aws:s3","eventName":"ObjectCreated:Put",
        "s3":{"bucket":{"name":"slow"},"object":{"key":"large.log","eTag":"e"}}}]})
    .to_string();
    let sqs = json!({"Records":[{"messageId":"slow-1","receiptHandle":"r","body":body,"eventSource":"aws:sqs"}]});
    let (api, state) = start_runtime_api_with_deadline(vec![sqs], 5_000);
    let rx = Receiver::start(vec![], Reply::ok());
    let mut child = lambda_command(BIN, &api, &rx.url)
        .env("AWS_ENDPOINT_URL", &s3.base)
        .env("DEADLINE_MARGIN_MS", "3000")
        .spawn()
        .unwrap();
    let answered = wait_for_results(&state, 1, Duration::from_secs(60));
    let _ = child.kill();
    let out = child.wait_with_output().unwrap();
    let logs = String::from_utf8_lossy(&out.stdout).into_owned();
    let st = state.lock().unwrap();
    assert_eq!(st.results.len(), 1, "{logs}");
    assert!(
        answered < Duration::from_secs(5),
        "answered after {answered:?}"
    );
    let (_, kind, response) = &st.results[0];
    assert_eq!(kind, "response");
    assert_eq!(
        serde_json::from_str::<Value>(response).unwrap(),
        json!({"batchItemFailures":[{"itemIdentifier":"slow-1"}]})
    );
    assert!(logs.contains("deadline is near"), "{logs}");
    assert_eq!(common::assert_accounting(&logs), 1);
    let summary: Value = logs
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| v.get("_aws").is_some())
        .unwrap();
    let read = summary["RecordsRead"].as_u64().unwrap();
    assert!(read > 0 && read < 200_000, "{summary}");
    assert_eq!(
        rx.documents().len() as u64,
        summary["RecordsForwarded"].as_u64().unwrap()
    );
}

/// Issue 20: cargo-lambda's emulator sends `Lambda-Runtime-Deadline-Ms: 600000`, a
/// duration; the function takes it as unknown (a budget from now, with a warning)
/// instead of refusing all work. A malformed payload is recorded with its own
/// errorType.
#[test]
fn a_deadline_that_is_a_duration_is_not_a_deadline_in_the_past() {
    let line = "2 123456789012 eni-1 10.0.0.1 198.51.100.1 1024 443 6 1 60 1700000000 1700000060 ACCEPT OK\n";
    put_objects("emulator", &[("obj.log", line.repeat(3).into_bytes())]);
    let body = json!({"Records":[{"eventSource":"aws:s3","eventName":"ObjectCreated:Put",
        "s3":{"bucket":{"name":"emulator"},"object":{"key":"obj.log","eTag":"e"}}}]})
    .to_string();
    let sqs = json!({"Records":[{"messageId":"m1","receiptHandle":"r","body":body,"eventSource":"aws:sqs"}]});
    let (api, state) = start_runtime_api(vec![sqs, json!({"not": "an event"})]);
    state.lock().unwrap().deadline_header = Some("600000".to_string());
    let rx = Receiver::start(vec![], Reply::ok());
    let mut child = lambda_command(BIN, &api, &rx.url).spawn().unwrap();
    wait_for_results(&state, 2, Duration::from_secs(60));
    let _ = child.kill();
    let out = child.wait_with_output().unwrap();
    let logs = String::from_utf8_lossy(&out.stdout).into_owned();
    let st = state.lock().unwrap();
    assert_eq!(st.results.len(), 2, "{logs}");
    assert_eq!(
        serde_json::from_str::<Value>(&st.results[0].2).unwrap(),
        json!({"batchItemFailures":[]}),
        "{logs}"
    );
    assert_eq!(rx.documents().len(), 3);
    assert!(logs.contains("not a plausible deadline"), "{logs}");
    let (_, kind, error) = &st.results[1];
    assert_eq!(kind, "error");
    let error: Value = serde_json::from_str(error).unwrap();
    assert_eq!(error["errorType"], "MalformedPayload", "{error}");
}

/// Lambda's log-level filtering as its documentation states it: a JSON line's `level`
/// (TRACE to FATAL, any case) decides, but a line whose `level` is missing or invalid,
/// or whose `timestamp` is not RFC 3339, is INFO; a line passes when its level is at
/// least the function's ApplicationLogLevel. A line that is not JSON is INFO.
fn lambda_keeps(line: &str, application_level: &str) -> bool {
    const LEVELS: [&str; 6] = ["TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"];
    let rank = |l: &str| LEVELS.iter().position(|x| x.eq_ignore_ascii_case(l));
    let level = serde_json::from_str::<Value>(line)
        .ok()
        .filter(|v| v["timestamp"].as_str().is_some_and(is_rfc3339))
        .and_then(|v| v["level"].as_str().and_then(rank))
        .unwrap_or(2);
    level >= rank(application_level).unwrap()
}

/// `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)`.
fn is_rfc3339(t: &str) -> bool {
    let b = t.as_bytes();
    let digits =
        |r: std::ops::Range<usize>| b.get(r).is_some_and(|s| s.iter().all(u8::is_ascii_digit));
    if b.len() < 20
        || !(digits(0..4)
            && digits(5..7)
            && digits(8..10)
            && digits(11..13)
            && digits(14..16)
            && digits(17..19))
    {
        return false;
    }
    if (b[4], b[7], b[10], b[13], b[16]) != (b'-', b'-', b'T', b':', b':') {
        return false;
    }
    let mut rest = &t[19..];
    if let Some(fraction) = rest.strip_prefix('.') {
        let n = fraction.bytes().take_while(u8::is_ascii_digit).count();
        if n == 0 {
            return false;
        }
        rest = &fraction[n..];
    }
    rest == "Z"
        || (rest.len() == 6
            && (rest.starts_with('+') || rest.starts_with('-'))
            && rest.as_bytes()[3] == b':')
}

/// The metrics summary (EMF) reaches CloudWatch at every ApplicationLogLevel, and so do
/// the errors at WARN and ERROR: each output line is passed through Lambda's filter.
#[test]
fn metrics_and_errors_survive_every_application_log_level() {
    for level in ["TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"] {
        // One CloudWatch Logs event whose documents the destination refuses (500), so
        // that an error is logged; no retry, to be quick.
        let (api, state) = start_runtime_api(vec![cloudwatch_event()]);
        let rx = Receiver::start(vec![], Reply::status(500));
        let mut child = lambda_command(BIN, &api, &rx.url)
            .env("AWS_LAMBDA_LOG_LEVEL", level)
            .env("MAX_RETRIES", "0")
            .spawn()
            .unwrap();
        wait_for_results(&state, 1, Duration::from_secs(60));
        let _ = child.kill();
        let out = child.wait_with_output().unwrap();
        let logs = String::from_utf8_lossy(&out.stdout).into_owned();
        let kept: Vec<&str> = logs.lines().filter(|l| lambda_keeps(l, level)).collect();
        let summaries = kept.iter().filter(|l| l.contains("\"_aws\"")).count();
        assert_eq!(
            summaries, 1,
            "ApplicationLogLevel {level}: the summary was dropped\n{logs}"
        );
        if level != "FATAL" {
            assert!(
                kept.iter()
                    .any(|l| l.contains("\"ERROR\"") && l.contains("not fully delivered")),
                "ApplicationLogLevel {level}: the delivery error was dropped\n{logs}"
            );
        }
    }
}

/// A CloudWatch Logs delivery that failed lands in the on-failure queue as an invocation
/// record; read from that queue through the runtime loop, it is replayed: the same
/// documents with the same ids as the original invocation, and the message succeeds.
#[test]
fn an_invocation_record_from_the_failure_queue_replays_through_the_runtime_loop() {
    let replay: Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/events/sqs-cloudwatch-replay.json"
        ))
        .unwrap(),
    )
    .unwrap();
    let ids_of = |event: Value| {
        let (api, state) = start_runtime_api(vec![event]);
        let rx = Receiver::start(vec![], Reply::ok());
        let mut child = lambda_command(BIN, &api, &rx.url).spawn().unwrap();
        wait_for_results(&state, 1, Duration::from_secs(60));
        let _ = child.kill();
        let _ = child.wait();
        let (_, kind, body) = state.lock().unwrap().results[0].clone();
        let mut ids: Vec<String> = rx
            .requests()
            .iter()
            .flat_map(|r| r.body.lines().map(str::to_string).collect::<Vec<_>>())
            .map(|l| serde_json::from_str::<Value>(&l).unwrap()["event"]["id"].to_string())
            .collect();
        ids.sort();
        (kind, body, ids)
    };
    let (_, _, original) = ids_of(cloudwatch_event());
    let (kind, body, replayed) = ids_of(replay);
    assert_eq!(original.len(), 4);
    assert_eq!(replayed, original);
    assert_eq!(kind, "response", "{body}");
    let response: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(response["batchItemFailures"], json!([]), "{body}");
}
