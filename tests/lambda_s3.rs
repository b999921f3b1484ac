//! The Lambda handler through the real binary's `invoke`, reading objects with the real
//! aws-sdk-s3 from a local S3 API server (moto), for every trigger shape; failure
//! isolation in SQS batches; errors for direct triggers.

mod common;

use std::process::{Command, Output};

use common::gzip;
use common::moto::{moto, put_objects};
use common::receiver::{Receiver, Reply};
use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_flowlog-forwarder");
const HEADER: &str = "version account-id interface-id srcaddr dstaddr srcport dstport protocol packets bytes start end action log-status\n";

fn records(n: usize, tag: u32) -> String {
    (0..n)
        .map(|i| format!("2 123456789012 eni-{tag} 10.0.0.{} 198.51.100.{} {} 443 6 1 60 1700000000 1700000060 ACCEPT OK\n", i % 250, tag, 1024 + i))
        .collect()
}

fn encode_key(key: &str) -> String {
    key.bytes()
        .map(|b| match b {
            b' ' => "+".to_string(),
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'/' | b'-' | b'_' | b'.' => {
                (b as char).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}

fn s3_notification(bucket: &str, key: &str) -> Value {
    json!({"Records":[{"eventVersion":"2.1","eventSource":"aws:s3","eventName":"ObjectCreated:Put","eventTime":"2024-11-24T08:00:00.000Z",
        "s3":{"bucket":{"name":bucket},"object":{"key":encode_key(key),"size":1,"eTag":"etag"}}}]})
}

fn sqs(bodies: &[String]) -> Value {
    let records: Vec<Value> = bodies
        .iter()
        .enumerate()
        .map(|(i, b)| json!({"messageId": format!("m{}", i + 1), "receiptHandle":"r", "body": b, "eventSource":"aws:sqs", "awsRegion":"us-east-1"}))
        .collect();
    json!({ "Records": records })
}

fn invoke(event: &Value, env: &[(&str, &str)]) -> (Output, Vec<Value>, String) {
    let dir = common::scratch_dir().to_path_buf();
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("event-{}.json", rand_suffix()));
    std::fs::write(&path, event.to_string()).unwrap();
    let mut cmd = Command::new(BIN);
    cmd.arg("invoke").arg(&path);
    for var in [
        "DESTINATION_URL",
        "AWS_LAMBDA_RUNTIME_API",
        "LOG_FORMAT",
        "AWS_PROFILE",
    ] {
        cmd.env_remove(var);
    }
    cmd.envs(moto().env());
    cmd.envs(env.iter().copied());
    let out = cmd.output().unwrap();
    if out.status.code() != Some(2) {
        assert_eq!(
            common::assert_accounting(&String::from_utf8_lossy(&out.stderr)),
            1,
            "one summary per invocation"
        );
    }
    let docs = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON document"))
        .collect();
    let last = String::from_utf8_lossy(&out.stderr)
        .lines()
        .last()
        .unwrap_or_default()
        .to_string();
    (out, docs, last)
}

fn rand_suffix() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

#[test]
fn sqs_batch_isolates_the_two_failing_messages() {
    let bucket = "isolation";
    let spaced = "AWSLogs/2024/11/24/flow log é+1.log.gz";
    let mut multi = gzip(format!("{HEADER}{}", records(3, 2)).as_bytes());
    multi.extend(gzip(records(2, 2).as_bytes()));
    let custom = "srcaddr dstaddr action\n10.9.9.9 10.8.8.8 REJECT\n";
    put_objects(
        bucket,
        &[
            (
                "plain.log",
                format!("{HEADER}{}", records(4, 1)).into_bytes(),
            ),
            (spaced, multi),
            ("custom.log", custom.as_bytes().to_vec()),
        ],
    );

    let event = sqs(&[
        s3_notification(bucket, "plain.log").to_string(),
        s3_notification(bucket, spaced).to_string(),
        s3_notification(bucket, "does-not-exist.log.gz").to_string(),
        "this is not JSON".to_string(),
        s3_notification(bucket, "custom.log").to_string(),
    ]);
    let (out, docs, last) = invoke(&event, &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let response: Value = serde_json::from_str(&last).unwrap();
    assert_eq!(
        response,
        json!({"batchItemFailures":[{"itemIdentifier":"m3"},{"itemIdentifier":"m4"}]})
    );
    // Messages 1, 2 and 5 fully delivered: 4 + 5 + 1 records.
    assert_eq!(docs.len(), 10);
    let keys: Vec<&str> = docs
        .iter()
        .map(|d| d["aws"]["s3"]["object"]["key"].as_str().unwrap())
        .collect();
    assert_eq!(keys.iter().filter(|k| **k == spaced).count(), 5);
    assert!(docs
        .iter()
        .any(|d| d["event"]["action"] == "reject" && d["source"]["ip"] == "10.9.9.9"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("does-not-exist.log.gz") && stderr.contains("NoSuchKey"),
        "{stderr}"
    );
}

#[test]
fn direct_s3_event_fails_the_invocation_when_the_object_is_missing() {
    put_objects(
        "direct",
        &[("ok.log", format!("{HEADER}{}", records(2, 3)).into_bytes())],
    );
    let (out, docs, last) = invoke(&s3_notification("direct", "ok.log"), &[]);
    assert!(out.status.success());
    assert_eq!(docs.len(), 2);
    assert_eq!(
        serde_json::from_str::<Value>(&last).unwrap()["status"],
        "delivered"
    );

    let (out, _, last) = invoke(&s3_notification("direct", "missing.log"), &[]);
    assert_eq!(out.status.code(), Some(1));
    let error: Value = serde_json::from_str(&last).unwrap();
    assert_eq!(error["errorType"], "UnitsNotDelivered");
    // The object named once, then what S3 answered.
    let message = error["errorMessage"].as_str().unwrap();
    assert!(
        message.contains("first: s3://direct/missing.log: GetObject failed: NoSuchKey"),
        "{error}"
    );
    assert_eq!(
        message.matches("s3://direct/missing.log").count(),
        1,
        "{error}"
    );
}

#[test]
fn eventbridge_sns_and_test_events() {
    put_objects(
        "shapes",
        &[(
            "eb/obj.log.gz",
            gzip(format!("{HEADER}{}", records(3, 4)).as_bytes()),
        )],
    );
    let eb = json!({"version":"0","detail-type":"Object Created","source":"aws.s3","time":"2024-11-24T08:00:00Z",
        "detail":{"bucket":{"name":"shapes"},"object":{"key":"eb/obj.log.gz","size":10,"etag":"etag"}}});
    let (out, docs, _) = invoke(&eb, &[]);
    assert!(out.status.success());
    assert_eq!(docs.len(), 3);

    let sns = json!({"Type":"Notification","Message": s3_notification("shapes", "eb/obj.log.gz").to_string()});
    let test = json!({"Service":"Amazon S3","Event":"s3:TestEvent","Bucket":"shapes"});
    let (out, docs, last) = invoke(
        &sqs(&[sns.to_string(), eb.to_string(), test.to_string()]),
        &[],
    );
    assert!(out.status.success());
    assert_eq!(docs.len(), 6);
    assert_eq!(
        serde_json::from_str::<Value>(&last).unwrap(),
        json!({"batchItemFailures":[]})
    );
    // The same object read twice gives the same ids: retries are idempotent.
    assert_eq!(docs[0]["event"]["id"], docs[3]["event"]["id"]);
}

#[test]
fn destination_down_reports_every_message_then_redelivery_uses_the_same_ids() {
    put_objects(
        "down",
        &[
            ("a.log", format!("{HEADER}{}", records(3, 5)).into_bytes()),
            ("b.log", format!("{HEADER}{}", records(2, 6)).into_bytes()),
        ],
    );
    let event = sqs(&[
        s3_notification("down", "a.log").to_string(),
        s3_notification("down", "b.log").to_string(),
    ]);
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_url = format!("http://{}/", dead.local_addr().unwrap());
    drop(dead);
    let (out, _, last) = invoke(
        &event,
        &[
            ("DESTINATION_URL", &dead_url),
            ("MAX_RETRIES", "1"),
            ("RETRY_BASE_DELAY_MS", "10"),
        ],
    );
    assert!(out.status.success());
    assert_eq!(
        serde_json::from_str::<Value>(&last).unwrap(),
        json!({"batchItemFailures":[{"itemIdentifier":"m1"},{"itemIdentifier":"m2"}]})
    );

    let rx = Receiver::start(vec![], Reply::ok());
    let (out, _, last) = invoke(&event, &[("DESTINATION_URL", &rx.url)]);
    assert!(out.status.success());
    assert_eq!(
        serde_json::from_str::<Value>(&last).unwrap(),
        json!({"batchItemFailures":[]})
    );
    let ids: Vec<String> = rx
        .documents()
        .iter()
        .map(|d| d["event"]["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids.len(), 5);
    // Same ids as the stdout run of the same event.
    let (_, docs, _) = invoke(&event, &[]);
    let stdout_ids: Vec<String> = docs
        .iter()
        .map(|d| d["event"]["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids, stdout_ids);
}

#[test]
fn malformed_payload_is_an_error_naming_the_accepted_shapes() {
    let (out, _, last) = invoke(&json!({"hello":"world"}), &[]);
    assert_eq!(out.status.code(), Some(1));
    let error: Value = serde_json::from_str(&last).unwrap();
    let message = error["errorMessage"].as_str().unwrap();
    assert!(
        message.contains("S3 event notification") && message.contains("awslogs.data"),
        "{message}"
    );
}

fn create_secret(name: &str, value: &str) -> String {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let client = aws_sdk_secretsmanager::Client::new(&moto().sdk_config());
        let out = client
            .create_secret()
            .name(name)
            .secret_string(value)
            .send()
            .await
            .expect("create_secret");
        out.arn().unwrap().to_string()
    })
}

#[test]
fn destination_headers_from_secrets_manager_are_used_and_never_logged() {
    put_objects(
        "secret",
        &[("s.log", format!("{HEADER}{}", records(2, 7)).into_bytes())],
    );
    let arn = create_secret(
        "flowlog-dest",
        r#"{"Authorization":"Splunk s3cr3t-hec-t0ken"}"#,
    );
    let rx = Receiver::start(vec![Reply::status(503)], Reply::ok());
    let (out, _, last) = invoke(
        &s3_notification("secret", "s.log"),
        &[
            ("DESTINATION_URL", &rx.url),
            ("DESTINATION_SECRET_ARN", &arn),
            ("LOG_LEVEL", "debug"),
            ("RETRY_BASE_DELAY_MS", "10"),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        serde_json::from_str::<Value>(&last).unwrap()["status"],
        "delivered"
    );
    let reqs = rx.requests();
    assert_eq!(reqs.len(), 2);
    assert!(reqs
        .iter()
        .all(|r| r.header("authorization") == Some("Splunk s3cr3t-hec-t0ken")));
    let logs = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!logs.contains("s3cr3t-hec-t0ken"), "{logs}");

    // A secret that is not a JSON object fails the cold start, naming the variable only.
    let bad = create_secret("flowlog-bad", "Splunk n0t-js0n-t0ken");
    let (out, _, _) = invoke(
        &s3_notification("secret", "s.log"),
        &[
            ("DESTINATION_URL", &rx.url),
            ("DESTINATION_SECRET_ARN", &bad),
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("DESTINATION_SECRET_ARN") && !err.contains("n0t-js0n-t0ken"),
        "{err}"
    );
    let (out, _, _) = invoke(
        &s3_notification("secret", "s.log"),
        &[
            ("DESTINATION_URL", &rx.url),
            (
                "DESTINATION_SECRET_ARN",
                "arn:aws:secretsmanager:us-east-1:123456789012:secret:missing-AbCdEf",
            ),
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("ResourceNotFoundException"));
}

fn put_ssm_parameter(name: &str, value: &str) -> String {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let client = aws_sdk_ssm::Client::new(&moto().sdk_config());
        client
            .put_parameter()
            .name(name)
            .value(value)
            .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
            .overwrite(true)
            .send()
            .await
            .expect("put_parameter");
        format!("arn:aws:ssm:us-east-1:123456789012:parameter{name}")
    })
}

#[test]
fn destination_from_an_ssm_securestring_parameter() {
    put_objects(
        "ssm-secret",
        &[("s.log", format!("{HEADER}{}", records(2, 8)).into_bytes())],
    );
    // Headers form.
    let rx = Receiver::start(vec![], Reply::ok());
    let arn = put_ssm_parameter("/flowlog/headers", r#"{"X-Sumo-Token":"ssm-t0k3n-h3ader"}"#);
    let (out, _, last) = invoke(
        &s3_notification("ssm-secret", "s.log"),
        &[
            ("DESTINATION_URL", &rx.url),
            ("DESTINATION_SECRET_ARN", &arn),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        serde_json::from_str::<Value>(&last).unwrap()["status"],
        "delivered"
    );
    assert_eq!(
        rx.requests()[0].header("x-sumo-token"),
        Some("ssm-t0k3n-h3ader")
    );
    // URL form (as the Sumo Logic Lambda keeps its HTTP source endpoint): no DESTINATION_URL.
    let rx2 = Receiver::start(vec![Reply::status(503)], Reply::ok());
    let url_arn = put_ssm_parameter(
        "/flowlog/endpoint",
        &format!("{}/receiver/v1/http/ssm-URL-t0k3n", rx2.base),
    );
    let (out, _, _) = invoke(
        &s3_notification("ssm-secret", "s.log"),
        &[("DESTINATION_SECRET_ARN", &url_arn), ("LOG_LEVEL", "debug")],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The first request was answered 503 and retried: the retry is logged, the token not.
    assert_eq!(rx2.requests().len(), 2);
    assert_eq!(rx2.requests()[1].path, "/receiver/v1/http/ssm-URL-t0k3n");
    let logs = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!logs.contains("ssm-URL-t0k3n"), "{logs}");
}
