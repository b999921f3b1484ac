//! Soak test (ignored by default; `benches/soak.sh` runs it): 100 invocations of 10 S3
//! objects each through the real binary in Lambda mode, against a receiver that fails
//! 5 % of requests. The harness plays SQS: messages reported in `batchItemFailures` are
//! delivered again in a later invocation. At the end every record was received, no
//! record was received twice except those of retried messages (idempotent ids), and
//! the function's memory stayed flat.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::moto::put_objects;
use common::receiver::{Receiver, Reply};
use common::runtime_api::{lambda_command, start_runtime_api};
use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_flowlog-forwarder");
const OBJECTS: usize = 1000;
const PER_INVOCATION: usize = 10;
const RECORDS: usize = 20;

fn rss_kb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn event(messages: &[usize]) -> Value {
    let records: Vec<Value> = messages
        .iter()
        .map(|i| {
            let s3 = json!({"Records":[{"eventSource":"aws:s3","eventName":"ObjectCreated:Put",
                "s3":{"bucket":{"name":"soak"},"object":{"key":format!("o/{i}.log"),"eTag":"e"}}}]});
            json!({"messageId": format!("m{i}"), "receiptHandle":"r", "body": s3.to_string(), "eventSource":"aws:sqs"})
        })
        .collect();
    json!({ "Records": records })
}

#[test]
#[ignore = "soak test: run by benches/soak.sh"]
fn soak_no_record_lost_or_duplicated_beyond_idempotent_retries() {
    let header = "version account-id interface-id srcaddr dstaddr srcport dstport protocol packets bytes start end action log-status\n";
    let objects: Vec<(String, Vec<u8>)> = (0..OBJECTS)
        .map(|i| {
            let lines: String = (0..RECORDS)
                .map(|r| format!("2 123456789012 eni-{i} 10.{}.{}.{} 198.51.100.1 {} 443 6 1 60 1700000000 1700000060 ACCEPT OK\n", i / 250, i % 250, r, 1024 + r))
                .collect();
            (format!("o/{i}.log"), format!("{header}{lines}").into_bytes())
        })
        .collect();
    let refs: Vec<(&str, Vec<u8>)> = objects
        .iter()
        .map(|(k, v)| (k.as_str(), v.clone()))
        .collect();
    put_objects("soak", &refs);

    let rx = Receiver::start(
        vec![],
        Reply::FailSome {
            percent: 5,
            code: 503,
        },
    );
    let initial: Vec<Value> = (0..OBJECTS)
        .collect::<Vec<_>>()
        .chunks(PER_INVOCATION)
        .map(event)
        .collect();
    let (api, state) = start_runtime_api(initial);
    let mut child = lambda_command(BIN, &api, &rx.url)
        .env("MAX_RETRIES", "0")
        .env("BATCH_MAX_EVENTS", "20")
        .env("LOG_LEVEL", "error")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();

    let started = Instant::now();
    let mut seen_results = 0;
    let mut retried: BTreeSet<usize> = BTreeSet::new();
    let mut pending: Vec<usize> = Vec::new();
    let mut in_flight = OBJECTS / PER_INVOCATION;
    let mut rss_after_10 = 0;
    while (in_flight > 0 || !pending.is_empty()) && started.elapsed() < Duration::from_secs(600) {
        let results: Vec<(String, String, String)> =
            state.lock().unwrap().results[seen_results..].to_vec();
        for (_, kind, body) in &results {
            seen_results += 1;
            in_flight -= 1;
            assert_eq!(kind, "response", "{body}");
            let response: Value = serde_json::from_str(body).unwrap();
            for item in response["batchItemFailures"].as_array().unwrap() {
                let id: usize = item["itemIdentifier"].as_str().unwrap()[1..]
                    .parse()
                    .unwrap();
                retried.insert(id);
                pending.push(id);
            }
            if seen_results == 10 {
                rss_after_10 = rss_kb(child.id());
            }
        }
        if !pending.is_empty() && (pending.len() >= PER_INVOCATION || in_flight == 0) {
            let batch: Vec<usize> = pending.drain(..pending.len().min(PER_INVOCATION)).collect();
            state.lock().unwrap().events.push_back(event(&batch));
            in_flight += 1;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let rss_end = rss_kb(child.id());
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(in_flight, 0, "every invocation answered");
    assert!(pending.is_empty(), "every message eventually delivered");

    // Documents accepted (2xx), by id and by object.
    let requests = rx.requests();
    let mut by_id: BTreeMap<String, (usize, String)> = BTreeMap::new();
    for r in requests.iter().filter(|r| r.status == 200) {
        for line in r.body.lines() {
            let d: Value = serde_json::from_str(line).unwrap();
            let key = d["aws"]["s3"]["object"]["key"]
                .as_str()
                .unwrap()
                .to_string();
            by_id
                .entry(d["event"]["id"].as_str().unwrap().to_string())
                .or_insert((0, key))
                .0 += 1;
        }
    }
    let failed_requests = requests.iter().filter(|r| r.status != 200).count();
    let duplicates: Vec<&(usize, String)> = by_id.values().filter(|(n, _)| *n > 1).collect();
    assert_eq!(
        by_id.len(),
        OBJECTS * RECORDS,
        "every record received: none lost"
    );
    for (_, key) in &duplicates {
        let object: usize = key
            .trim_start_matches("o/")
            .trim_end_matches(".log")
            .parse()
            .unwrap();
        assert!(
            retried.contains(&object),
            "{key} received twice but its message was never retried"
        );
    }
    let growth = rss_end.saturating_sub(rss_after_10);
    println!(
        "soak: {} invocations, {} requests ({} failed by the receiver), {} messages retried, {} records, {} lost, \
         {} received twice (idempotent retries of retried messages), RSS {} kB after 10 invocations, {} kB at the end",
        seen_results,
        requests.len(),
        failed_requests,
        retried.len(),
        OBJECTS * RECORDS,
        OBJECTS * RECORDS - by_id.len(),
        duplicates.len(),
        rss_after_10,
        rss_end
    );
    assert!(failed_requests > 0, "the receiver injected failures");
    assert!(
        growth < 16 * 1024,
        "memory grew by {growth} kB across invocations"
    );
}
