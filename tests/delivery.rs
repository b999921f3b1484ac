//! HTTP delivery through the real binary (`process --destination`) to a scripted local
//! receiver: every record is received exactly once (by event.id) or reported failed,
//! with the attempts and backoff the contract specifies.

mod common;

use std::collections::BTreeMap;
use std::process::{Command, Output};
use std::time::Duration;

use common::receiver::{Receiver, Reply, Request};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_flowlog-forwarder");

fn run(file: &str, url: &str, env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.args(["process", "--destination", url, file]);
    common::delivery_env(&mut cmd, env);
    let out = cmd.output().expect("run");
    if out.status.code() != Some(2) {
        assert_eq!(
            common::assert_accounting(&String::from_utf8_lossy(&out.stderr)),
            1
        );
    }
    out
}

/// The event ids `process` produces for a file (its stdout run).
fn expected_ids(file: &str) -> Vec<String> {
    let out = Command::new(BIN)
        .args(["process", file])
        .env_remove("DESTINATION_URL")
        .output()
        .unwrap();
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["event"]["id"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect()
}

/// Documents of a request body, for any of the three formats.
fn documents(req: &Request) -> Vec<Value> {
    let lines: Vec<Value> = req
        .body
        .lines()
        .map(|l| serde_json::from_str(l).expect("each body line is JSON"))
        .collect();
    if lines.first().is_some_and(|l| l.get("create").is_some()) {
        return lines.chunks(2).map(|pair| pair[1].clone()).collect();
    }
    lines
        .into_iter()
        .map(|l| {
            if l.get("event").is_some_and(|e| e.get("id").is_none()) {
                l["event"].clone()
            } else {
                l
            }
        })
        .collect()
}

/// How many times each id was accepted (answered 2xx, for bulk: item not failed).
fn accepted(requests: &[Request]) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for r in requests.iter().filter(|r| (200..300).contains(&r.status)) {
        for d in documents(r) {
            *m.entry(d["event"]["id"].as_str().unwrap().to_string())
                .or_insert(0) += 1;
        }
    }
    m
}

fn summary(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr)
        .lines()
        .rfind(|l| l.starts_with("summary "))
        .unwrap_or_default()
        .to_string()
}

fn assert_all_once(file: &str, requests: &[Request]) {
    let want = expected_ids(file);
    let got = accepted(requests);
    assert_eq!(got.len(), want.len(), "every record received");
    for id in &want {
        assert_eq!(got.get(id), Some(&1), "{id} received exactly once");
    }
}

#[test]
fn ok_gzip_bodies_all_received_once() {
    let rx = Receiver::start(vec![], Reply::ok());
    let file = common::distinct_flows_file("ok.log", 300);
    let out = run(&file, &rx.url, &[("BATCH_MAX_EVENTS", "100")]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let reqs = rx.requests();
    assert_eq!(reqs.len(), 3);
    for r in &reqs {
        assert_eq!(r.header("content-encoding"), Some("gzip"));
        assert_eq!(r.header("content-type"), Some("application/x-ndjson"));
        assert_eq!(r.path, "/ingest");
    }
    assert_all_once(&file, &reqs);
    assert_eq!(
        summary(&out),
        "summary read=300 forwarded=300 filtered=0 malformed=0 failed=0 inputs=1 input_errors=0"
    );
}

#[test]
fn retry_after_is_honoured() {
    let rx = Receiver::start(vec![Reply::retry_after(429, 1)], Reply::ok());
    let file = common::distinct_flows_file("429.log", 10);
    let out = run(&file, &rx.url, &[("RETRY_MAX_DELAY_MS", "2000")]);
    assert!(out.status.success());
    let reqs = rx.requests();
    assert_eq!(reqs.len(), 2);
    let waited = reqs[1].at - reqs[0].at;
    assert!(waited >= Duration::from_millis(950), "waited {waited:?}");
    assert_all_once(&file, &reqs);
}

#[test]
fn server_errors_are_retried_with_capped_backoff() {
    let rx = Receiver::start(vec![Reply::status(500), Reply::status(503)], Reply::ok());
    let file = common::distinct_flows_file("500.log", 10);
    let out = run(&file, &rx.url, &[]);
    assert!(out.status.success());
    let reqs = rx.requests();
    assert_eq!(reqs.len(), 3, "two retries");
    // Full jitter: retry n waits at most min(200ms cap, 20ms * 2^(n-1)) (+ scheduling).
    assert!(reqs[1].at - reqs[0].at < Duration::from_millis(20 + 150));
    assert!(reqs[2].at - reqs[1].at < Duration::from_millis(40 + 150));
    assert_all_once(&file, &reqs);
}

#[test]
fn retries_are_bounded_and_the_failure_reported() {
    let rx = Receiver::start(vec![], Reply::status(503));
    let file = common::distinct_flows_file("503.log", 10);
    let out = run(&file, &rx.url, &[("MAX_RETRIES", "2")]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(rx.requests().len(), 3);
    assert!(
        summary(&out).contains("forwarded=0 filtered=0 malformed=0 failed=10"),
        "{}",
        summary(&out)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("HTTP 503"));
}

#[test]
fn a_hanging_receiver_times_out_and_is_retried() {
    let rx = Receiver::start(vec![Reply::Hang(Duration::from_secs(3))], Reply::ok());
    let file = common::distinct_flows_file("hang.log", 10);
    let out = run(&file, &rx.url, &[("REQUEST_TIMEOUT_MS", "300")]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let reqs = rx.requests();
    assert_eq!(reqs.len(), 2);
    assert!(reqs[1].at - reqs[0].at >= Duration::from_millis(300));
    assert!(
        reqs[1].at - reqs[0].at < Duration::from_secs(2),
        "did not wait for the hang"
    );
    assert_all_once(&file, &reqs);
}

#[test]
fn payload_too_large_is_split_and_retried() {
    let rx = Receiver::start(vec![Reply::status(413), Reply::status(413)], Reply::ok());
    let file = common::distinct_flows_file("413.log", 40);
    let out = run(&file, &rx.url, &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let reqs = rx.requests();
    // 40 -> 413; 20 -> 413; 10 + 10 -> ok; 20 -> ok.
    assert_eq!(
        reqs.iter().map(|r| documents(r).len()).collect::<Vec<_>>(),
        [40, 20, 10, 10, 20]
    );
    assert_all_once(&file, &reqs);
}

#[test]
fn unauthorized_is_permanent_reported_and_not_retried() {
    let rx = Receiver::start(vec![], Reply::status(401));
    let file = common::distinct_flows_file("401.log", 10);
    let out = run(&file, &rx.url, &[]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(rx.requests().len(), 1);
    assert!(summary(&out).contains("failed=10"));
    assert!(String::from_utf8_lossy(&out.stderr).contains("HTTP 401"));
}

/// The `_id`s of a bulk request's documents, in order.
fn bulk_ids(body: &str) -> Vec<String> {
    body.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter_map(|v| v["create"]["_id"].as_str().map(str::to_string))
        .collect()
}

fn bulk_half_429_some_400(body: &str) -> (u16, String) {
    // Items alternate: even positions 429 (retry), position 1 gets 400, others 201.
    let items: Vec<String> = bulk_ids(body)
        .iter()
        .enumerate()
        .map(|(i, id)| match i {
            1 => format!(r#"{{"create":{{"_id":"{id}","status":400,"error":{{"type":"mapper_parsing_exception","reason":"failed to parse field [source.port]"}}}}}}"#),
            i if i % 2 == 0 => format!(r#"{{"create":{{"_id":"{id}","status":429,"error":{{"type":"es_rejected_execution_exception","reason":"queue full"}}}}}}"#),
            _ => format!(r#"{{"create":{{"_id":"{id}","status":201}}}}"#),
        })
        .collect();
    (
        200,
        format!(r#"{{"errors":true,"items":[{}]}}"#, items.join(",")),
    )
}

/// A bulk response creating every document of the request.
fn bulk_all_created(body: &str) -> (u16, String) {
    let items: Vec<String> = bulk_ids(body)
        .iter()
        .map(|id| format!(r#"{{"create":{{"_id":"{id}","status":201}}}}"#))
        .collect();
    (
        200,
        format!(r#"{{"errors":false,"items":[{}]}}"#, items.join(",")),
    )
}

/// A bulk response that says `errors: false` but lists only the first item.
fn bulk_one_item(body: &str) -> (u16, String) {
    let id = &bulk_ids(body)[0];
    (
        200,
        format!(r#"{{"errors":false,"items":[{{"create":{{"_id":"{id}","status":201}}}}]}}"#),
    )
}

/// Items missing from a bulk response are failures of those documents,
/// whatever its `errors` flag says.
#[test]
fn elasticsearch_bulk_items_missing_from_the_response_fail() {
    let rx = Receiver::start(vec![], Reply::With(bulk_one_item));
    let file = common::distinct_flows_file("bulk-short.log", 4);
    let out = run(&file, &rx.url, &[("DESTINATION_FORMAT", "elasticsearch")]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        summary(&out).contains("read=4 forwarded=1 filtered=0 malformed=0 failed=3"),
        "{}",
        summary(&out)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("no item of the bulk response"));
}

#[test]
fn elasticsearch_bulk_retries_only_rejected_items() {
    let rx = Receiver::start(
        vec![Reply::With(bulk_half_429_some_400)],
        Reply::With(bulk_all_created),
    );
    let file = common::distinct_flows_file("bulk.log", 6);
    let out = run(&file, &rx.url, &[("DESTINATION_FORMAT", "elasticsearch")]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "the 400 item is a reported failure"
    );
    let reqs = rx.requests();
    assert_eq!(reqs.len(), 2);
    let first: Vec<Value> = reqs[0]
        .body
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(first.len(), 12);
    for pair in first.chunks(2) {
        assert_eq!(pair[0]["create"]["_index"], "logs-aws.vpcflow-default");
        assert_eq!(pair[0]["create"]["_id"], pair[1]["event"]["id"]);
    }
    // Only the three 429 items (positions 0, 2, 4) are sent again.
    let again: Vec<Value> = documents(&reqs[1]);
    let ids = |docs: &[Value], pos: &[usize]| {
        pos.iter()
            .map(|&i| docs[i]["event"]["id"].clone())
            .collect::<Vec<_>>()
    };
    let first_docs = documents(&reqs[0]);
    assert_eq!(ids(&again, &[0, 1, 2]), ids(&first_docs, &[0, 2, 4]));
    assert!(
        summary(&out).contains("forwarded=5 filtered=0 malformed=0 failed=1"),
        "{}",
        summary(&out)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("mapper_parsing_exception"));
}

#[test]
fn splunk_hec_envelope() {
    let rx = Receiver::start(vec![], Reply::ok());
    let file = common::distinct_flows_file("hec.log", 2);
    let out = run(
        &file,
        &rx.url,
        &[
            ("DESTINATION_FORMAT", "splunk-hec"),
            ("DESTINATION_INDEX", "netflow"),
            (
                "DESTINATION_HEADERS",
                r#"{"Authorization":"Splunk 0000-token"}"#,
            ),
        ],
    );
    assert!(out.status.success());
    let reqs = rx.requests();
    assert_eq!(reqs[0].header("authorization"), Some("Splunk 0000-token"));
    let events: Vec<Value> = reqs[0]
        .body
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(events[0]["time"], 1700000060);
    // ECS documents do not claim the Splunk Add-on for AWS's raw-line sourcetype.
    assert_eq!(events[0]["sourcetype"], "_json");
    assert_eq!(events[0]["index"], "netflow");
    assert_eq!(events[0]["event"]["event"]["dataset"], "aws.vpcflow");
}

/// Each schema's HEC events carry the sourcetype its Splunk content reads (raw: the
/// line itself as the event, for the Splunk Add-on for AWS; ocsf: the `ocsf:` prefix
/// the OCSF-CIM Add-On maps), and SPLUNK_SOURCETYPE / SOURCE / HOST are sent as given.
#[test]
fn splunk_hec_sourcetypes_per_schema() {
    let file = common::distinct_flows_file("hec-schemas.log", 2);
    let first_line = std::fs::read_to_string(&file)
        .unwrap()
        .lines()
        .find(|l| !l.starts_with("version"))
        .unwrap()
        .to_string();
    let events = |env: &[(&str, &str)]| -> Vec<Value> {
        let rx = Receiver::start(vec![], Reply::ok());
        let mut all = vec![("DESTINATION_FORMAT", "splunk-hec")];
        all.extend_from_slice(env);
        let out = run(&file, &rx.url, &all);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        rx.requests()[0]
            .body
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    let raw = events(&[("OUTPUT_SCHEMA", "raw")]);
    assert_eq!(raw[0]["sourcetype"], "aws:cloudwatchlogs:vpcflow");
    assert_eq!(
        raw[0]["event"],
        first_line.as_str(),
        "the event is the line itself"
    );
    assert!(raw[0].get("source").is_none() && raw[0].get("host").is_none());
    let ocsf = events(&[("OUTPUT_SCHEMA", "ocsf")]);
    assert_eq!(ocsf[0]["sourcetype"], "ocsf:aws:cloudwatchlogs:vpcflow");
    assert_eq!(ocsf[0]["event"]["class_uid"], 4001);
    let named = events(&[
        ("SPLUNK_SOURCETYPE", "vpc:flow"),
        ("SPLUNK_SOURCE", "s3://flows"),
        ("SPLUNK_HOST", "forwarder-1"),
    ]);
    assert_eq!(named[0]["sourcetype"], "vpc:flow");
    assert_eq!(named[0]["source"], "s3://flows");
    assert_eq!(named[0]["host"], "forwarder-1");
}

#[test]
fn secrets_never_appear_in_output_or_logs() {
    let rx = Receiver::start(vec![], Reply::status(500));
    let file = common::distinct_flows_file("secret.log", 3);
    let url = rx.url.replace("http://", "http://svc-user:pa55-w0rd-x@") + "?token=qu3ry-s3cret";
    let out = run(
        &file,
        &url,
        &[
            ("MAX_RETRIES", "1"),
            ("LOG_LEVEL", "debug"),
            (
                "DESTINATION_HEADERS",
                r#"{"Authorization":"Bearer t0k3n-v4lue","X-Api-Key":"k3y-v4lue"}"#,
            ),
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(all.contains("HTTP 500"), "{all}");
    for secret in ["pa55-w0rd-x", "qu3ry-s3cret", "t0k3n-v4lue", "k3y-v4lue"] {
        assert!(!all.contains(secret), "{secret} leaked: {all}");
    }
}

#[test]
fn plain_http_to_a_remote_host_is_refused() {
    let file = common::distinct_flows_file("plain.log", 1);
    let out = run(&file, "http://192.0.2.10/ingest", &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("ALLOW_PLAIN_HTTP"));
}

/// A receiver that echoes the request (an auth error quoting the header,
/// Elasticsearch's "no handler found for uri [...]") never puts a token in the logs:
/// every configured secret (header values, URL user info, path, query) is scrubbed.
#[test]
fn tokens_echoed_by_the_receiver_never_reach_the_logs() {
    let rx = Receiver::start(vec![], Reply::ok());
    rx.require_header("Authorization", "Splunk the-right-token-000");
    let url = rx
        .url
        .replace("http://", "http://elastic:pw-hunter2-secret@")
        + "/hec-3f9a7c2e1d?api_key=q-7e6d5c4b3a";
    let file = common::distinct_flows_file("echo.log", 3);
    let out = run(
        &file,
        &url,
        &[
            (
                "DESTINATION_HEADERS",
                r#"{"Authorization":"Splunk tok-8c1b2a3d4e5f"}"#,
            ),
            ("LOG_LEVEL", "debug"),
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("HTTP 401"), "{stderr}");
    assert!(stderr.contains("invalid credentials"), "{stderr}");
    for secret in [
        "tok-8c1b2a3d4e5f",
        "hunter2",
        "hec-3f9a7c2e1d",
        "q-7e6d5c4b3a",
    ] {
        assert!(!stderr.contains(secret), "{secret} in {stderr}");
    }
    // The receiver did see the token: it was echoed, then scrubbed.
    assert!(rx.requests()[0]
        .header("Authorization")
        .is_some_and(|v| v.contains("tok-8c1b2a3d4e5f")));
}

/// A destination whose certificate comes from a private CA is refused by
/// default (verification is on) and accepted once DESTINATION_CA_BUNDLE names the CA,
/// as a file path or as the PEM text itself.
#[test]
fn private_ca_through_destination_ca_bundle() {
    let rx = common::tls::TlsReceiver::start();
    let file = common::distinct_flows_file("tls.log", 3);
    let refused = run(&file, &rx.url, &[]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        summary(&refused).contains("forwarded=0"),
        "{}",
        summary(&refused)
    );
    assert!(rx.bodies.lock().unwrap().is_empty());

    let ca_file = common::scratch_dir().join("ca.pem");
    std::fs::write(&ca_file, &rx.ca_pem).unwrap();
    for bundle in [ca_file.to_str().unwrap(), rx.ca_pem.as_str()] {
        let out = run(&file, &rx.url, &[("DESTINATION_CA_BUNDLE", bundle)]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(summary(&out).contains("forwarded=3"), "{}", summary(&out));
    }
    let received: usize = rx
        .bodies
        .lock()
        .unwrap()
        .iter()
        .map(|b| b.lines().count())
        .sum();
    assert_eq!(received, 6);
}

/// Documents written to an Elasticsearch data stream carry `data_stream.*` equal to
/// the parts of its name (the default `logs-aws.vpcflow-default` included), as
/// Elastic's integration and dashboards filter on them; other indexes and formats get
/// none.
#[test]
fn documents_for_a_data_stream_carry_its_parts() {
    let file = common::distinct_flows_file("data-stream.log", 3);
    for (index, want) in [
        (None, Some(("logs", "aws.vpcflow", "default"))),
        (
            Some("logs-aws.vpcflow-prod"),
            Some(("logs", "aws.vpcflow", "prod")),
        ),
        (Some("flowlogs-archive"), None),
        (Some("my-flow-logs"), None),
    ] {
        let rx = Receiver::start(vec![], Reply::With(bulk_all_created));
        let mut env = vec![("DESTINATION_FORMAT", "elasticsearch")];
        if let Some(index) = index {
            env.push(("DESTINATION_INDEX", index));
        }
        let out = run(&file, &rx.url, &env);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let docs = documents(&rx.requests()[0]);
        assert_eq!(docs.len(), 3);
        for doc in docs {
            match want {
                Some((kind, dataset, namespace)) => {
                    assert_eq!(doc["data_stream"]["type"], kind, "{index:?}");
                    assert_eq!(doc["data_stream"]["dataset"], dataset);
                    assert_eq!(doc["data_stream"]["namespace"], namespace);
                }
                None => assert!(doc.get("data_stream").is_none(), "{index:?}: {doc}"),
            }
        }
    }
    // NDJSON and OCSF documents: none.
    let rx = Receiver::start(vec![], Reply::ok());
    let out = run(&file, &rx.url, &[]);
    assert!(out.status.success());
    assert!(documents(&rx.requests()[0])
        .iter()
        .all(|d| d.get("data_stream").is_none()));
}

/// Bulk requests name their ingest pipeline (DESTINATION_PIPELINE): `_none` by default,
/// so that the integration's raw-line pipeline does not break parsed documents; a
/// name as given; empty sends none; other formats never.
#[test]
fn bulk_requests_name_their_pipeline() {
    let file = common::distinct_flows_file("pipeline.log", 2);
    for (pipeline, want) in [
        (None, Some("pipeline=_none")),
        (
            Some("logs-aws.vpcflow-2.1.0"),
            Some("pipeline=logs-aws.vpcflow-2.1.0"),
        ),
        (Some(""), None),
    ] {
        let rx = Receiver::start(vec![], Reply::With(bulk_all_created));
        let mut env = vec![("DESTINATION_FORMAT", "elasticsearch")];
        if let Some(p) = pipeline {
            env.push(("DESTINATION_PIPELINE", p));
        }
        let out = run(&file, &rx.url, &env);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let path = rx.requests()[0].path.clone();
        match want {
            Some(query) => assert_eq!(path, format!("/ingest?{query}")),
            None => assert_eq!(path, "/ingest"),
        }
    }
    let rx = Receiver::start(vec![], Reply::ok());
    let out = run(&file, &rx.url, &[]);
    assert!(out.status.success());
    assert_eq!(rx.requests()[0].path, "/ingest");
}
