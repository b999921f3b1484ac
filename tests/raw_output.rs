//! OUTPUT_SCHEMA=raw: each record as a flow log line in `message`, for Elastic's AWS
//! integration to parse with its own ingest pipeline. The line is checked the way that
//! pipeline reads it (its format chosen by token count, then split on spaces), for text
//! lines in any field order, JSON records and Parquet rows; the document carries the
//! record's time, id and origin, and sent to a data stream, `data_stream.*` and no
//! `pipeline` parameter (the data stream's own pipeline must run).

mod common;

use std::process::Command;

use common::receiver::{Receiver, Reply};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_flowlog-forwarder");

const V2: &str = "version account-id interface-id srcaddr dstaddr srcport dstport protocol packets bytes start end action log-status";
const V5: &str = "version account-id interface-id srcaddr dstaddr srcport dstport protocol packets bytes start end action log-status vpc-id subnet-id instance-id tcp-flags type pkt-srcaddr pkt-dstaddr region az-id sublocation-type sublocation-id pkt-src-aws-service pkt-dst-aws-service flow-direction traffic-path";

/// What the integration's pipeline makes of `message`: the field names of its format
/// for that many tokens (14: v2, 29: every field up to v5), paired with the tokens.
fn as_the_integration_reads(message: &str) -> Vec<(String, String)> {
    let tokens: Vec<&str> = message.split(' ').collect();
    let format = match tokens.len() {
        14 => V2,
        29 => V5,
        n => panic!("{n} tokens: the integration parses none of its formats: {message}"),
    };
    format
        .split(' ')
        .zip(tokens)
        .map(|(f, v)| (f.to_string(), v.to_string()))
        .collect()
}

fn field<'a>(parsed: &'a [(String, String)], name: &str) -> &'a str {
    &parsed.iter().find(|(f, _)| f == name).unwrap().1
}

fn process(input: &[u8], name: &str, env: &[(&str, &str)]) -> Vec<Value> {
    let path = common::scratch_dir().join(name);
    std::fs::write(&path, input).unwrap();
    let out = Command::new(BIN)
        .args(["process", path.to_str().unwrap()])
        .env_remove("DESTINATION_URL")
        .env("OUTPUT_SCHEMA", "raw")
        .envs(env.iter().copied())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    common::stdout_docs(&out)
}

#[test]
fn a_default_format_line_is_sent_as_read_with_time_id_and_origin() {
    let line = "2 123456789010 eni-1235b8ca123456789 172.31.16.139 172.31.16.21 20641 22 6 20 4249 1418530010 1418530070 ACCEPT OK";
    let docs = process(format!("{V2}\n{line}\n").as_bytes(), "raw-v2.log", &[]);
    assert_eq!(docs.len(), 1, "the header line is no document");
    let doc = &docs[0];
    assert_eq!(doc["message"], line);
    assert_eq!(doc["@timestamp"], "2014-12-14T04:07:50Z");
    assert_eq!(doc["cloud"]["provider"], "aws");
    assert!(doc["log"]["file"]["path"]
        .as_str()
        .unwrap()
        .ends_with("raw-v2.log"));
    // The same id as the ECS document of the record: switching schemas re-sends nothing.
    let ecs = Command::new(BIN)
        .args([
            "process",
            common::scratch_dir().join("raw-v2.log").to_str().unwrap(),
        ])
        .env_remove("DESTINATION_URL")
        .output()
        .unwrap();
    let ecs: Value =
        serde_json::from_slice(ecs.stdout.split(|b| *b == b'\n').next().unwrap()).unwrap();
    assert_eq!(doc["event"]["id"], ecs["event"]["id"]);
    assert!(
        doc.get("source").is_none() && doc.get("aws").is_none(),
        "{doc}"
    );
}

/// A header in another order, and the v5 fields read from JSON records: the message is
/// in the integration's order, so that it maps each value to its own field.
#[test]
fn custom_orders_and_json_records_are_written_in_the_integrations_order() {
    let header = "dstaddr srcaddr action log-status version account-id interface-id srcport dstport protocol packets bytes start end";
    let line = "172.31.16.21 172.31.16.139 REJECT OK 2 123456789010 eni-1 20641 22 6 20 4249 1418530010 1418530070";
    let docs = process(
        format!("{header}\n{line}\n").as_bytes(),
        "raw-order.log",
        &[],
    );
    let parsed = as_the_integration_reads(docs[0]["message"].as_str().unwrap());
    assert_eq!(field(&parsed, "srcaddr"), "172.31.16.139");
    assert_eq!(field(&parsed, "dstaddr"), "172.31.16.21");
    assert_eq!(field(&parsed, "action"), "REJECT");
    assert_eq!(field(&parsed, "end"), "1418530070");

    let values = "2 123456789010 eni-1 10.0.0.1 198.51.100.7 443 50000 6 3 180 1700000000 1700000060 ACCEPT OK vpc-1 subnet-1 i-1 19 IPv4 10.0.0.1 198.51.100.7 us-east-1 use1-az1 - - - - egress 8";
    let mut object = serde_json::Map::new();
    for (name, value) in V5.split(' ').zip(values.split(' ')) {
        object.insert(name.replace('-', "_"), Value::String(value.to_string()));
    }
    let json = Value::Object(object).to_string();
    let docs = process(format!("{json}\n").as_bytes(), "raw-json.log", &[]);
    assert_eq!(docs[0]["message"], values);
}

/// A Parquet row is written as the equivalent text line.
#[test]
fn parquet_rows_become_text_lines() {
    use common::parquet_file::{parquet_file, V5 as COLUMNS};
    let row = vec![
        "2",
        "123456789010",
        "eni-1",
        "10.0.0.1",
        "198.51.100.7",
        "443",
        "50000",
        "6",
        "3",
        "180",
        "1700000000",
        "1700000060",
        "ACCEPT",
        "OK",
    ];
    let docs = process(
        &parquet_file(&COLUMNS[..14], std::slice::from_ref(&row), 1),
        "raw.parquet",
        &[],
    );
    assert_eq!(docs[0]["message"], row.join(" "));
}

/// Sent to Elasticsearch's default data stream: `data_stream.*` on every document and no
/// `pipeline` parameter, so that the integration's pipeline parses the lines.
#[test]
fn to_a_data_stream_the_integrations_pipeline_runs() {
    let file = common::distinct_flows_file("raw-bulk.log", 3);
    let rx = Receiver::start(vec![], Reply::ok());
    let mut cmd = Command::new(BIN);
    cmd.args(["process", "--destination", &rx.url, &file]);
    common::delivery_env(
        &mut cmd,
        &[
            ("DESTINATION_FORMAT", "elasticsearch"),
            ("OUTPUT_SCHEMA", "raw"),
        ],
    );
    let out = cmd.output().unwrap();
    let requests = rx.requests();
    assert!(
        !requests.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(requests[0].path, "/ingest", "no pipeline parameter");
    let docs: Vec<Value> = requests[0]
        .body
        .lines()
        .filter(|l| !l.starts_with("{\"create\"") && !l.starts_with("{\"index\""))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(docs.len(), 3);
    for doc in docs {
        assert_eq!(doc["data_stream"]["dataset"], "aws.vpcflow");
        assert_eq!(doc["data_stream"]["type"], "logs");
        assert_eq!(doc["data_stream"]["namespace"], "default");
        as_the_integration_reads(doc["message"].as_str().unwrap());
    }
}
