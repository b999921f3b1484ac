//! Fault matrix through the real binary's `invoke`: S3 errors from a scripted S3
//! endpoint (AccessDenied, 503 SlowDown retried by the SDK, a connection reset in the
//! middle of an object), a truncated gzip object and a decompression bomb from moto, and
//! a destination that redirects. Every record is forwarded, filtered or reported failed
//! (the invariant is checked on every invocation's summary), nothing panics.

mod common;

use std::io::Write;
use std::process::{Command, Output};

use common::moto::{moto, put_objects};
use common::receiver::{Receiver, Reply};
use common::{assert_accounting, gzip};
use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_flowlog-forwarder");
const HEADER: &str = "version account-id interface-id srcaddr dstaddr srcport dstport protocol packets bytes start end action log-status\n";

fn records(n: usize) -> String {
    (0..n).map(|i| format!("2 123456789012 eni-9 10.0.0.{} 198.51.100.9 {} 443 6 1 60 1700000000 1700000060 ACCEPT OK\n", i % 250, 2000 + i)).collect()
}

fn notification(bucket: &str, key: &str) -> String {
    json!({"Records":[{"eventSource":"aws:s3","eventName":"ObjectCreated:Put","s3":{"bucket":{"name":bucket},"object":{"key":key,"eTag":"e"}}}]}).to_string()
}

fn sqs(keys: &[(&str, &str)]) -> Value {
    let records: Vec<Value> = keys
        .iter()
        .enumerate()
        .map(|(i, (bucket, key))| json!({"messageId": format!("m{}", i + 1), "body": notification(bucket, key), "eventSource":"aws:sqs"}))
        .collect();
    json!({ "Records": records })
}

/// Runs `invoke` with S3 at `s3_endpoint`; returns the output, the documents and the
/// handler response.
fn invoke(event: &Value, s3_endpoint: &str, env: &[(&str, &str)]) -> (Output, Vec<Value>, Value) {
    let dir = common::scratch_dir().to_path_buf();
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!(
        "{}.json",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    std::fs::write(&path, event.to_string()).unwrap();
    let mut cmd = Command::new(BIN);
    cmd.arg("invoke").arg(&path);
    cmd.env_remove("DESTINATION_URL")
        .env_remove("AWS_LAMBDA_RUNTIME_API");
    cmd.envs(moto().env());
    cmd.env("AWS_ENDPOINT_URL", s3_endpoint);
    cmd.envs(env.iter().copied());
    let out = cmd.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(assert_accounting(&stderr), 1, "{stderr}");
    let docs = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let response =
        serde_json::from_str(stderr.lines().last().unwrap_or("null")).unwrap_or(Value::Null);
    (out, docs, response)
}

fn s3_error(code: u16, name: &str) -> Reply {
    Reply::Status {
        code,
        headers: vec![("Content-Type".into(), "application/xml".into())],
        body: format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>{name}</Code><Message>{name} from the test</Message><RequestId>R1</RequestId></Error>"),
    }
}

fn object(body: &str) -> Reply {
    Reply::Status {
        code: 200,
        headers: vec![("Content-Type".into(), "application/octet-stream".into())],
        body: body.to_string(),
    }
}

#[test]
fn access_denied_fails_only_its_message() {
    let s3 = Receiver::start(
        vec![
            s3_error(403, "AccessDenied"),
            object(&format!("{HEADER}{}", records(3))),
        ],
        Reply::status(500),
    );
    let (out, docs, response) =
        invoke(&sqs(&[("b", "denied.log"), ("b", "ok.log")]), &s3.base, &[]);
    assert!(out.status.success());
    assert_eq!(
        response,
        json!({"batchItemFailures":[{"itemIdentifier":"m1"}]})
    );
    assert_eq!(docs.len(), 3);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("s3://b/denied.log") && stderr.contains("AccessDenied"),
        "{stderr}"
    );
    assert_eq!(
        s3.requests()[0].path.split('?').next(),
        Some("/b/denied.log")
    );
}

#[test]
fn slow_down_is_retried_by_the_sdk() {
    let s3 = Receiver::start(
        vec![
            s3_error(503, "SlowDown"),
            object(&format!("{HEADER}{}", records(4))),
        ],
        Reply::status(500),
    );
    let (out, docs, response) = invoke(&sqs(&[("b", "busy.log")]), &s3.base, &[]);
    assert!(out.status.success());
    assert_eq!(response, json!({"batchItemFailures":[]}));
    assert_eq!(docs.len(), 4);
    assert_eq!(s3.requests().len(), 2);
}

#[test]
fn connection_reset_mid_object_reports_the_message_and_redelivery_is_idempotent() {
    let full = format!("{HEADER}{}", records(200));
    let cut = full.len() / 2;
    let s3 = Receiver::start(
        vec![
            Reply::Truncated {
                body: full.as_bytes()[..cut].to_vec(),
                declared: full.len(),
            },
            object(&full),
        ],
        Reply::status(500),
    );
    let event = sqs(&[("b", "reset.log")]);
    let (out, first, response) = invoke(&event, &s3.base, &[]);
    assert!(out.status.success());
    assert_eq!(
        response,
        json!({"batchItemFailures":[{"itemIdentifier":"m1"}]})
    );
    assert!(
        !first.is_empty() && first.len() < 200,
        "{} records before the cut",
        first.len()
    );
    // SQS redelivers the message: every record, with the same ids as before the cut.
    let (out, second, response) = invoke(&event, &s3.base, &[]);
    assert!(out.status.success());
    assert_eq!(response, json!({"batchItemFailures":[]}));
    assert_eq!(second.len(), 200);
    for (a, b) in first.iter().zip(&second) {
        assert_eq!(a["event"]["id"], b["event"]["id"]);
    }
}

#[test]
fn truncated_gzip_object_is_reported() {
    let full = gzip(format!("{HEADER}{}", records(5000)).as_bytes());
    put_objects(
        "faults",
        &[
            ("cut.log.gz", full[..full.len() * 2 / 3].to_vec()),
            ("fine.log", format!("{HEADER}{}", records(2)).into_bytes()),
        ],
    );
    let (out, docs, response) = invoke(
        &sqs(&[("faults", "cut.log.gz"), ("faults", "fine.log")]),
        &moto().endpoint,
        &[],
    );
    assert!(out.status.success());
    assert_eq!(
        response,
        json!({"batchItemFailures":[{"itemIdentifier":"m1"}]})
    );
    let cut_docs = docs
        .iter()
        .filter(|d| d["aws"]["s3"]["object"]["key"] == "cut.log.gz")
        .count();
    assert!(cut_docs > 0 && cut_docs < 5000);
    assert_eq!(docs.len() - cut_docs, 2);
    assert!(String::from_utf8_lossy(&out.stderr).contains("s3://faults/cut.log.gz"));
}

#[test]
fn decompression_bomb_is_refused_with_a_clear_error() {
    // 10 GB of zeros: one gzip member of 10 MB of zeros (about 10 KB), repeated 1000 times.
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    e.write_all(&vec![0u8; 10 * 1024 * 1024]).unwrap();
    let member = e.finish().unwrap();
    let bomb: Vec<u8> = member
        .iter()
        .copied()
        .cycle()
        .take(member.len() * 1000)
        .collect();
    put_objects("faults", &[("bomb.log.gz", bomb)]);
    let (out, docs, response) = invoke(&sqs(&[("faults", "bomb.log.gz")]), &moto().endpoint, &[]);
    assert!(out.status.success());
    assert_eq!(
        response,
        json!({"batchItemFailures":[{"itemIdentifier":"m1"}]})
    );
    assert!(
        docs.len() <= 1,
        "at most the bomb's first 'line' as a failure document"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("decompression ratio") && stderr.contains("bomb.log.gz"),
        "{stderr}"
    );
}

#[test]
fn redirects_are_not_followed() {
    let elsewhere = Receiver::start(vec![], Reply::ok());
    let redirecting = Receiver::start(
        vec![],
        Reply::Status {
            code: 307,
            headers: vec![("Location".into(), elsewhere.url.clone())],
            body: String::new(),
        },
    );
    put_objects(
        "faults",
        &[(
            "redirect.log",
            format!("{HEADER}{}", records(2)).into_bytes(),
        )],
    );
    let (out, _, response) = invoke(
        &sqs(&[("faults", "redirect.log")]),
        &moto().endpoint,
        &[("DESTINATION_URL", &redirecting.url)],
    );
    assert!(out.status.success());
    assert_eq!(
        response,
        json!({"batchItemFailures":[{"itemIdentifier":"m1"}]})
    );
    assert_eq!(
        redirecting.requests().len(),
        1,
        "a redirect is a permanent failure, not retried"
    );
    assert!(
        elsewhere.requests().is_empty(),
        "the redirect was not followed"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("HTTP 307"));
}
