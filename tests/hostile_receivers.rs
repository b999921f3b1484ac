//! Receivers that misbehave on purpose, through the real binary (`process
//! --destination`): bodies far larger than any answer needs, echoed credentials,
//! framing headers, URLs that read two ways, bulk replies that lie about their items,
//! Splunk HEC refusals inside a 200, Retry-After beyond the configured wait, and TLS
//! certificates that cannot be trusted. Each ends in delivered or reported failed
//! documents (read = forwarded + filtered + failed), bounded memory and no secret in
//! any log line.

mod common;

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use base64::Engine as _;
use common::receiver::{Receiver, Reply};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_flowlog-forwarder");

/// `process FILE --destination URL` under GNU time (peak RSS on stderr); the
/// accounting of its summary is checked unless the configuration was refused.
fn run(file: &str, url: &str, env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new("/usr/bin/time");
    cmd.args([
        "-f",
        "peak_rss_kb=%M",
        BIN,
        "process",
        "--destination",
        url,
        file,
    ]);
    common::delivery_env(&mut cmd, env);
    let out = cmd
        .output()
        .expect("GNU time runs the binary: apt-get install time");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    if out.status.code() != Some(2) {
        assert_eq!(common::assert_accounting(&stderr), 1, "{stderr}");
    }
    out
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn summary(out: &Output) -> String {
    stderr(out)
        .lines()
        .rfind(|l| l.starts_with("summary "))
        .unwrap_or_default()
        .to_string()
}

fn peak_rss_mb(out: &Output) -> u64 {
    stderr(out)
        .lines()
        .find_map(|l| l.strip_prefix("peak_rss_kb="))
        .and_then(|v| v.trim().parse::<u64>().ok())
        .expect("GNU time's peak RSS")
        >> 10
}

/// An Elasticsearch 200 declaring 10 GiB and streaming 300 MB, or a 400 declaring
/// 1 GiB: the answer is read only as far as its format needs, the batch fails, and the
/// process stays under 64 MB.
#[test]
fn huge_response_bodies_are_read_with_a_bound() {
    for (code, declared, format) in [
        (200, 10u64 << 30, "elasticsearch"),
        (400, 1 << 30, "elasticsearch"),
        (400, 1 << 30, "ndjson"),
        (200, 10 << 30, "splunk-hec"),
        (200, 10 << 30, "ndjson"),
    ] {
        let rx = Receiver::start(
            vec![],
            Reply::Flood {
                code,
                declared,
                total: 300 << 20,
            },
        );
        let file = common::distinct_flows_file("flood.log", 20);
        let started = Instant::now();
        let out = run(
            &file,
            &rx.url,
            &[("DESTINATION_FORMAT", format), ("MAX_RETRIES", "1")],
        );
        let took = started.elapsed();
        let peak = peak_rss_mb(&out);
        assert!(peak < 64, "{code} {format}: peak RSS {peak} MB");
        assert!(took < Duration::from_secs(20), "{code} {format}: {took:?}");
        let sum = summary(&out);
        if code == 200 && format != "elasticsearch" {
            // A 2xx that needs no reading is a delivery, whatever follows it.
            assert!(sum.contains("forwarded=20"), "{format}: {sum}");
        } else {
            assert_eq!(out.status.code(), Some(1), "{code} {format}: {sum}");
            assert!(sum.contains("failed=20"), "{code} {format}: {sum}");
        }
        if code == 200 && format == "elasticsearch" {
            assert!(
                stderr(&out).contains("malformed bulk response"),
                "{}",
                stderr(&out)
            );
            assert_eq!(rx.requests().len(), 1, "a malformed answer is not retried");
        }
    }
}

/// The URL's user info goes out as `Authorization: Basic base64(user:password)`; a
/// receiver quoting it back, whole or cut, gets none of its forms into the logs. A
/// token cut by the error's shortening is scrubbed before the cut.
#[test]
fn echoed_credentials_never_reach_the_logs_in_any_form() {
    let rx = Receiver::start(vec![], Reply::ok());
    // Every request is refused with a 401 quoting the Authorization header sent.
    rx.require_header("Authorization", "something else");
    let url = rx.url.replace("http://", "http://svc-user:Pa55w0rd-9x7y@");
    let file = common::distinct_flows_file("basic.log", 2);
    let out = run(&file, &url, &[("LOG_LEVEL", "debug")]);
    assert_eq!(out.status.code(), Some(1));
    let text = stderr(&out);
    let basic = base64::engine::general_purpose::STANDARD.encode("svc-user:Pa55w0rd-9x7y");
    assert!(
        rx.requests()[0]
            .header("Authorization")
            .is_some_and(|v| v.contains(&basic)),
        "the client sends the user info as Basic credentials"
    );
    assert!(text.contains("invalid credentials"), "{text}");
    for secret in [&basic[..], &basic[..10], "Pa55w0rd-9x7y", "Pa55w0rd"] {
        assert!(!text.contains(secret), "{secret} leaked: {text}");
    }

    // A 20-character token placed where the 64-byte cut of the error falls.
    let rx = Receiver::start(vec![], Reply::ok());
    rx.require_header("X-Api-Key", "right");
    let token = "tk-0123456789abcdefg";
    let file = common::distinct_flows_file("cut.log", 2);
    let out = run(
        &file,
        &rx.url,
        &[(
            "DESTINATION_HEADERS",
            &format!(r#"{{"X-Api-Key":"{token}"}}"#),
        )],
    );
    let text = stderr(&out);
    assert!(text.contains("HTTP 401"), "{text}");
    for n in 8..=token.len() {
        assert!(
            !text.contains(&token[..n]),
            "{} leaked: {text}",
            &token[..n]
        );
    }
}

/// DESTINATION_HEADERS cannot set the headers that frame or route a request.
#[test]
fn framing_and_routing_headers_are_refused_at_start() {
    let rx = Receiver::start(vec![], Reply::ok());
    let file = common::distinct_flows_file("framing.log", 61);
    for header in [
        "Content-Length",
        "Transfer-Encoding",
        "Host",
        "Connection",
        "Content-Encoding",
        "content-length",
    ] {
        let headers = format!(r#"{{"{header}":"5"}}"#);
        let out = run(&file, &rx.url, &[("DESTINATION_HEADERS", &headers)]);
        assert_eq!(out.status.code(), Some(2), "{header}: {}", stderr(&out));
        let text = stderr(&out);
        assert!(text.contains("DESTINATION_HEADERS"), "{text}");
        assert!(text.contains(header), "{text}");
    }
    assert!(rx.requests().is_empty(), "nothing was sent");
}

/// The plain-http rule reads the URL as the client does: `\` ends the authority, so
/// the host of `http://0.0.0.0:PORT\@127.0.0.1:1/` is 0.0.0.0, not loopback, and the
/// URL is refused; no log names 127.0.0.1 as the destination.
#[test]
fn a_url_is_read_once_the_way_the_client_reads_it() {
    let file = common::distinct_flows_file("url.log", 3);
    let out = run(&file, "http://0.0.0.0:9\\@127.0.0.1:1/", &[]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let text = stderr(&out);
    assert!(text.contains("ALLOW_PLAIN_HTTP"), "{text}");
    assert!(text.contains("http://0.0.0.0:9"), "{text}");
    assert!(!text.contains("127.0.0.1"), "{text}");
}

/// A bulk response whose items are in reverse order: the one refused item (429, the
/// first document's) is retried, not the last document.
fn bulk_reversed_first_refused(body: &str) -> (u16, String) {
    let ids: Vec<String> = body
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter_map(|v| v["create"]["_id"].as_str().map(str::to_string))
        .collect();
    let first = ids[0].clone();
    let items: Vec<String> = ids
        .iter()
        .rev()
        .map(|id| {
            if *id == first && ids.len() > 1 {
                format!(r#"{{"create":{{"_id":"{id}","status":429,"error":{{"type":"es_rejected_execution_exception","reason":"busy"}}}}}}"#)
            } else {
                format!(r#"{{"create":{{"_id":"{id}","status":201}}}}"#)
            }
        })
        .collect();
    (
        200,
        format!(r#"{{"errors":true,"items":[{}]}}"#, items.join(",")),
    )
}

/// A bulk response whose items all name ids that were not sent.
fn bulk_wrong_ids(body: &str) -> (u16, String) {
    let n = body.lines().count() / 2;
    let items: Vec<String> = (0..n)
        .map(|i| format!(r#"{{"create":{{"_id":"not-sent-{i}","status":201}}}}"#))
        .collect();
    (
        200,
        format!(r#"{{"errors":false,"items":[{}]}}"#, items.join(",")),
    )
}

fn ids_of(body: &str) -> Vec<String> {
    body.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter_map(|v| v["create"]["_id"].as_str().map(str::to_string))
        .collect()
}

#[test]
fn elasticsearch_bulk_items_are_matched_by_id() {
    let rx = Receiver::start(vec![], Reply::With(bulk_reversed_first_refused));
    let file = common::distinct_flows_file("reordered.log", 5);
    let out = run(&file, &rx.url, &[("DESTINATION_FORMAT", "elasticsearch")]);
    assert!(out.status.success(), "{}", stderr(&out));
    let reqs = rx.requests();
    assert_eq!(reqs.len(), 2, "one retry, of one document");
    let first = ids_of(&reqs[0].body);
    assert_eq!(ids_of(&reqs[1].body), vec![first[0].clone()]);
    assert!(
        summary(&out).contains("read=5 forwarded=5"),
        "{}",
        summary(&out)
    );

    let rx = Receiver::start(vec![], Reply::With(bulk_wrong_ids));
    let out = run(&file, &rx.url, &[("DESTINATION_FORMAT", "elasticsearch")]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        summary(&out).contains("read=5 forwarded=0 filtered=0 malformed=0 failed=5"),
        "{}",
        summary(&out)
    );
    assert!(stderr(&out).contains("_id"), "{}", stderr(&out));
}

/// Splunk HEC answers some refusals with a 200 whose body code is not 0.
#[test]
fn splunk_hec_200_with_an_error_code_is_a_failure() {
    let rx = Receiver::start(
        vec![],
        Reply::Status {
            code: 200,
            headers: vec![],
            body: r#"{"text":"Invalid data format","code":6,"invalid-event-number":0}"#.into(),
        },
    );
    let file = common::distinct_flows_file("hec.log", 4);
    let out = run(&file, &rx.url, &[("DESTINATION_FORMAT", "splunk-hec")]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        summary(&out).contains("forwarded=0 filtered=0 malformed=0 failed=4"),
        "{}",
        summary(&out)
    );
    assert!(
        stderr(&out).contains("Invalid data format"),
        "{}",
        stderr(&out)
    );

    let rx = Receiver::start(
        vec![],
        Reply::Status {
            code: 200,
            headers: vec![],
            body: r#"{"text":"Success","code":0}"#.into(),
        },
    );
    let out = run(&file, &rx.url, &[("DESTINATION_FORMAT", "splunk-hec")]);
    assert!(out.status.success(), "{}", stderr(&out));
}

/// A Retry-After of 300 s is waited no longer than RETRY_MAX_DELAY_MS.
#[test]
fn retry_after_is_capped_by_the_configured_maximum() {
    let rx = Receiver::start(vec![Reply::retry_after(503, 300)], Reply::ok());
    let file = common::distinct_flows_file("retry-after.log", 3);
    let started = Instant::now();
    let out = run(&file, &rx.url, &[("RETRY_MAX_DELAY_MS", "300")]);
    assert!(out.status.success(), "{}", stderr(&out));
    let reqs = rx.requests();
    assert_eq!(reqs.len(), 2);
    let waited = reqs[1].at - reqs[0].at;
    assert!(
        waited >= Duration::from_millis(250) && waited < Duration::from_secs(3),
        "waited {waited:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(10));
}

/// A certificate from an unknown CA, for another name, or expired: the error says so
/// and the request is not retried.
#[test]
fn tls_failures_are_named_and_not_retried() {
    let file = common::distinct_flows_file("tls.log", 2);
    let cases = [
        (
            common::tls::TlsReceiver::start(),
            false,
            "not signed by a trusted CA",
        ),
        (
            common::tls::TlsReceiver::start_with(&["other.example"], false),
            true,
            "not valid for this host name",
        ),
        (
            common::tls::TlsReceiver::start_with(&["127.0.0.1"], true),
            true,
            "expired",
        ),
    ];
    for (rx, trust_ca, expected) in cases {
        let ca_file = common::scratch_dir().join("tls-ca.pem");
        std::fs::write(&ca_file, &rx.ca_pem).unwrap();
        let mut env = vec![("MAX_RETRIES", "3"), ("LOG_LEVEL", "warn")];
        let ca = ca_file.to_string_lossy().into_owned();
        if trust_ca {
            env.push(("DESTINATION_CA_BUNDLE", &ca));
        }
        let out = run(&file, &rx.url, &env);
        let text = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{text}");
        assert!(text.contains("TLS failure"), "{text}");
        assert!(text.contains(expected), "{expected}: {text}");
        assert!(!text.contains("retrying delivery"), "{text}");
        assert!(summary(&out).contains("failed=2"), "{}", summary(&out));
    }
}
