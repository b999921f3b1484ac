//! SPLUNK_HEC_ACK: with Splunk's indexer acknowledgement, a batch is delivered only when
//! Splunk acknowledges its ackId (Splunk's own Firehose integration requires it: a
//! `200` from HEC means received, not indexed). Against a local HEC that acknowledges
//! at once, late, never, or refuses a request without a channel.

mod common;

use std::process::{Child, Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_flowlog-forwarder");

struct Hec {
    child: Child,
    url: String,
}

impl Hec {
    fn start(mode: &str) -> Hec {
        let (child, port) = common::python_server("hec_ack_receiver.py", &[mode]);
        Hec {
            url: format!("http://127.0.0.1:{port}/services/collector/event"),
            child,
        }
    }

    fn log(self) -> Vec<String> {
        common::python_server_log(self.child)
    }
}

fn run(url: &str, env: &[(&str, &str)]) -> Output {
    let file = common::distinct_flows_file("hec-ack.log", 4);
    let mut cmd = Command::new(BIN);
    cmd.args(["process", "--destination", url, &file]);
    common::delivery_env(
        &mut cmd,
        &[("DESTINATION_FORMAT", "splunk-hec"), ("MAX_RETRIES", "0")],
    );
    cmd.envs(env.iter().copied());
    cmd.output().unwrap()
}

#[test]
fn acknowledged_batches_are_delivered_prompt_or_late() {
    for mode in ["prompt", "late"] {
        let hec = Hec::start(mode);
        let out = run(&hec.url.clone(), &[("SPLUNK_HEC_ACK", "true")]);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        let log = hec.log();
        assert!(out.status.success(), "{mode}: {stderr}\n{log:?}");
        assert!(stderr.contains("forwarded=4"), "{stderr}");
        let events: Vec<&String> = log.iter().filter(|l| l.starts_with("event")).collect();
        assert!(!events.is_empty());
        // Every request names one channel, a UUID.
        let channel = events[0].split(' ').nth(2).unwrap();
        assert_eq!(channel.len(), 36, "{channel}");
        assert!(
            log.iter()
                .any(|l| l.starts_with("ack") && l.contains("True")),
            "{log:?}"
        );
    }
}

#[test]
fn a_batch_never_acknowledged_is_not_delivered() {
    let hec = Hec::start("never");
    let out = run(
        &hec.url.clone(),
        &[
            ("SPLUNK_HEC_ACK", "true"),
            ("SPLUNK_HEC_ACK_TIMEOUT_SECONDS", "2"),
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let _ = hec.log();
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("did not acknowledge"), "{stderr}");
    assert!(
        stderr.contains("forwarded=0") && stderr.contains("failed=4"),
        "{stderr}"
    );
}

/// Without SPLUNK_HEC_ACK no channel is sent, and a HEC token that requires one refuses
/// the batch with its code 10, which is reported.
#[test]
fn a_token_requiring_acknowledgement_refuses_a_request_without_channel() {
    let hec = Hec::start("prompt");
    let out = run(&hec.url.clone(), &[]);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let log = hec.log();
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("Data channel is missing"), "{stderr}");
    assert!(log.iter().all(|l| l.starts_with("refused")), "{log:?}");
}
