//! Hostile and unusual records: failure documents stay small whatever the format's
//! width, numbers never written outside their output field's type, JSON records as
//! collectors write them (integral floats, nulls), and Transit Gateway records
//! recognised by any of their fields.

mod common;

use common::{is_failure, one, run, settings};
use serde_json::Value;

fn failure_message(doc: &Value) -> &str {
    assert!(is_failure(doc), "{doc}");
    doc["error"]["message"].as_str().unwrap_or_default()
}

#[test]
fn failure_documents_are_bounded_whatever_the_header() {
    // A header of 3,000 unknown fields, then one-byte lines: each failure names the
    // line, the missing field and its column, never the whole format.
    let names: Vec<String> = (0..3000).map(|i| format!("custom-field-{i}")).collect();
    let mut text = format!("version srcaddr {}\n", names.join(" "));
    for _ in 0..200 {
        text.push_str("x\n");
    }
    let (docs, counts) = run(&settings(&[]), &text);
    assert_eq!(counts.read, 200);
    assert_eq!(counts.malformed, 200);
    for (i, doc) in docs.iter().enumerate() {
        let message = failure_message(doc);
        assert!(message.len() <= 1024, "{} bytes", message.len());
        assert!(message.contains(&format!("line {}", i + 2)), "{message}");
        assert!(
            message.contains("'srcaddr' (column 2) is missing"),
            "{message}"
        );
        assert!(
            doc.to_string().len() < 4096,
            "{} bytes",
            doc.to_string().len()
        );
    }
    // Too many values: the first extra one is named, shortened.
    let long = "v".repeat(5000);
    let doc = one(
        Some("srcaddr dstaddr"),
        &format!("10.0.0.1 10.0.0.2 {long} more"),
    );
    let message = failure_message(&doc);
    assert!(message.contains("expected 2 fields, found 4"), "{message}");
    assert!(message.contains("in column 3"), "{message}");
    assert!(message.len() < 300, "{message}");
}

/// `bytes`, `packets` or `tcp-flags` beyond the signed fields they are written into
/// (ECS `long`, OCSF `long_t` / `integer_t`, which Elasticsearch refuses) make a failure
/// document naming the field; the largest values that fit are written as they are.
#[test]
fn numbers_beyond_their_output_type_are_failures_naming_the_field() {
    let format = "version account-id interface-id srcaddr dstaddr srcport dstport protocol packets bytes start end action log-status tcp-flags";
    let line = |packets: &str, bytes: &str, flags: &str| {
        format!("5 1 eni-1 10.0.0.1 10.0.0.2 1 2 6 {packets} {bytes} 100 160 ACCEPT OK {flags}")
    };
    for schema in ["ecs", "ocsf"] {
        let vars = [("LOG_FORMAT", format), ("OUTPUT_SCHEMA", schema)];
        for (l, field) in [
            (line("1", "18446744073709551615", "2"), "bytes"),
            (line("9223372036854775808", "1", "2"), "packets"),
            (line("1", "1", "18446744073709551615"), "tcp-flags"),
            (line("1", "1", "2147483648"), "tcp-flags"),
        ] {
            let (docs, counts) = run(&settings(&vars), &l);
            assert_eq!((counts.read, counts.malformed), (1, 1), "{l}");
            let doc = &docs[0];
            let message = if schema == "ecs" {
                failure_message(doc).to_string()
            } else {
                doc["status_detail"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string()
            };
            assert!(message.contains(&format!("field '{field}'")), "{message}");
            assert!(message.contains("out of range"), "{message}");
        }
        let (docs, counts) = run(
            &settings(&vars),
            &line("9223372036854775807", "9223372036854775807", "2147483647"),
        );
        assert_eq!(counts.malformed, 0, "{docs:?}");
        let text = docs[0].to_string();
        assert!(
            text.contains("9223372036854775807") && text.contains("2147483647"),
            "{text}"
        );
    }
}

#[test]
fn an_invalid_value_is_named_shortened_with_its_field_and_column() {
    let bad_ip = format!("10.0.0.{}", "9".repeat(10_000));
    let doc = one(Some("srcaddr dstaddr"), &format!("{bad_ip} 10.0.0.2"));
    let message = failure_message(&doc);
    assert!(
        message.starts_with("line 1: field 'srcaddr' (column 1)"),
        "{message}"
    );
    assert!(message.len() < 300, "{message}");
}

#[test]
fn json_records_with_integral_floats_and_nulls() {
    let line = r#"{"version": 2.0, "account-id": "123456789012", "srcaddr": "10.0.0.1", "dstaddr": "10.0.0.2", "srcport": 443.0, "dstport": 5e4, "protocol": 6.0, "packets": 10.0, "bytes": 412.0, "start": 1.6e9, "end": 1600000060.0, "action": "ACCEPT", "log-status": "OK", "traffic_path": null, "interface-id": null}"#;
    let doc = one(None, line);
    assert!(!is_failure(&doc), "{doc}");
    assert_eq!(doc["source"]["bytes"], 412);
    assert_eq!(doc["source"]["port"], 443);
    assert_eq!(doc["destination"]["port"], 50000);
    assert_eq!(doc["network"]["iana_number"], "6");
    assert_eq!(doc["event"]["start"], "2020-09-13T12:26:40Z");
    let vpcflow = doc["aws"]["vpcflow"].as_object().unwrap();
    assert!(!vpcflow.contains_key("traffic_path"), "{doc}");
    assert!(!vpcflow.contains_key("interface_id"), "{doc}");
    assert_eq!(vpcflow["version"], "2");

    // A real fraction in a numeric field fails, naming the field.
    let doc = one(None, r#"{"srcaddr": "10.0.0.1", "bytes": 412.5}"#);
    let message = failure_message(&doc);
    assert!(message.contains("'bytes'"), "{message}");
    let doc = one(None, r#"{"srcaddr": "10.0.0.1", "packets": 1.5e-3}"#);
    assert!(failure_message(&doc).contains("'packets'"));
}

#[test]
fn transit_gateway_records_are_recognised_by_any_of_their_fields() {
    let service = |format: &str, line: &str| {
        let doc = one(Some(format), line);
        assert!(!is_failure(&doc), "{doc}");
        doc["cloud"]["service"]["name"]
            .as_str()
            .unwrap()
            .to_string()
    };
    // A custom format without tgw-id and tgw-attachment-id.
    assert_eq!(
        service("srcaddr dstaddr tgw-src-vpc-id", "10.0.0.1 10.0.0.2 vpc-1"),
        "transitgateway"
    );
    assert_eq!(
        service(
            "srcaddr dstaddr tgw-pair-attachment-id",
            "10.0.0.1 10.0.0.2 -"
        ),
        "transitgateway"
    );
    assert_eq!(
        service("srcaddr resource-type", "10.0.0.1 TransitGatewayAttachment"),
        "transitgateway"
    );
    assert_eq!(
        service("srcaddr resource-type", "10.0.0.1 TransitGateway"),
        "transitgateway"
    );
    assert_eq!(service("srcaddr resource-type", "10.0.0.1 -"), "vpc");
    assert_eq!(service("srcaddr dstaddr", "10.0.0.1 10.0.0.2"), "vpc");
}
