//! Custom formats, headers, malformed lines, filters, ids and accounting through the
//! record path (source -> parse -> filter -> normalize).

mod common;

use common::{gzip, is_failure, one, run, run_bytes, settings};
use flowlog_forwarder::flowlog::Field;
use flowlog_forwarder::source::Limits;
use serde_json::{json, Value};

const ACCEPT: &str =
    "2 123456789010 eni-1 10.0.0.1 10.0.0.2 443 51000 6 10 840 1600000000 1600000060 ACCEPT OK";

#[test]
fn header_line_sets_the_format_and_is_never_a_record() {
    let text = "\
dstport srcaddr version dstaddr action protocol
22 203.0.113.9 4 10.1.1.1 REJECT 6
443 198.51.100.7 4 10.1.1.2 ACCEPT 6
";
    let (docs, counts) = run(&settings(&[]), text);
    assert_eq!(counts.read, 2);
    assert_eq!(docs.len(), 2);
    // The REJECT document leaves at the unit's end (REJECT_ATTRIBUTION holds it).
    let reject = docs
        .iter()
        .find(|d| d["event"]["action"] == "reject")
        .unwrap();
    assert_eq!(reject["destination"]["port"], 22);
    assert_eq!(reject["source"]["ip"], "203.0.113.9");
    let accept = docs
        .iter()
        .find(|d| d["event"]["action"] == "accept")
        .unwrap();
    assert_eq!(accept["destination"]["ip"], "10.1.1.2");
    assert!(docs.iter().all(|d| !is_failure(d)));
    // No document mentions the header.
    assert!(!docs
        .iter()
        .any(|d| d.to_string().contains("dstport srcaddr")));
}

#[test]
fn a_second_header_switches_format_midway() {
    let text = format!(
        "{}\n{ACCEPT}\nsrcaddr dstaddr\n1.1.1.1 2.2.2.2\n",
        flowlog_forwarder::flowlog::Schema::default_v2()
            .to_format_string()
            .replace("${", "")
            .replace('}', "")
    );
    let (docs, counts) = run(&settings(&[]), &text);
    assert_eq!((docs.len(), counts.read, counts.malformed), (2, 2, 0));
    assert_eq!(docs[1]["destination"]["ip"], "2.2.2.2");
}

#[test]
fn every_field_in_a_reversed_format_with_dashes_anywhere() {
    let all: Vec<&str> = Field::ALL.iter().map(|f| f.name()).rev().collect();
    let format = all.join(" ");
    // All absent: still a document, no failure, no empty objects.
    let dashes = vec!["-"; all.len()].join(" ");
    let d = one(Some(&format), &dashes);
    assert!(!is_failure(&d), "{d}");
    assert!(
        d.get("source").is_none() && d.get("network").is_none(),
        "{d}"
    );
    assert_eq!(d["aws"].get("vpcflow"), None, "{d}");
}

#[test]
fn unknown_fields_pass_through() {
    let d = one(
        Some("${srcaddr} ${next-gen-field} ${instance-tag.Name}"),
        "1.2.3.4 hello web-1",
    );
    assert_eq!(d["aws"]["vpcflow"]["next_gen_field"], "hello");
    assert_eq!(d["aws"]["vpcflow"]["instance_tag.Name"], "web-1");
}

#[test]
fn v11_fields_are_known() {
    let d = one(
        Some("srcaddr interface-type next-hop-interface-id next-hop-az-id encryption-status resource-id"),
        "1.2.3.4 interface eni-9 use1-az1 1 ngw-1",
    );
    assert_eq!(d["aws"]["vpcflow"]["interface_type"], "interface");
    assert_eq!(d["aws"]["vpcflow"]["next_hop_interface_id"], "eni-9");
    assert_eq!(d["aws"]["vpcflow"]["encryption_status"], "1");
    assert_eq!(d["aws"]["vpcflow"]["resource_id"], "ngw-1");
    let bad = one(Some("encryption-status"), "x");
    assert!(is_failure(&bad));
}

fn failure_message(format: Option<&str>, line: &str) -> String {
    let d = one(format, line);
    assert!(is_failure(&d), "expected a failure document: {d}");
    assert!(d["event"]["original"]
        .as_str()
        .is_some_and(|o| !o.is_empty()));
    d["error"]["message"].as_str().unwrap().to_string()
}

#[test]
fn malformed_lines_become_failure_documents_naming_line_and_field() {
    let m = failure_message(
        None,
        "2 123 eni-1 10.0.0.1 10.0.0.2 443 70000 6 10 840 1600000000 1600000060 ACCEPT OK",
    );
    assert!(
        m.contains("line 1") && m.contains("'dstport'") && m.contains("70000"),
        "{m}"
    );
    let m = failure_message(
        None,
        "2 123 eni-1 10.0.0.300 10.0.0.2 443 7 6 10 840 1600000000 1600000060 ACCEPT OK",
    );
    assert!(m.contains("'srcaddr'") && m.contains("10.0.0.300"), "{m}");
    let m = failure_message(
        None,
        "2 123 eni-1 10.0.0.1 10.0.0.2 443 7 6 10 840 1600000000 ACCEPT OK",
    );
    assert!(
        m.contains("expected 14 fields") && m.contains("found 13"),
        "{m}"
    );
    let m = failure_message(None, &format!("{ACCEPT} extra"));
    assert!(m.contains("found 15"), "{m}");
    let m = failure_message(
        None,
        "2 123 eni-1 10.0.0.1 10.0.0.2 443 7 256 10 840 1600000000 1600000060 ACCEPT OK",
    );
    assert!(m.contains("'protocol'"), "{m}");
    let m = failure_message(
        None,
        "2 123 eni-1 10.0.0.1 10.0.0.2 443 7 6 -5 840 1600000000 1600000060 ACCEPT OK",
    );
    assert!(m.contains("'packets'"), "{m}");
    let m = failure_message(
        None,
        "2 123 eni-1 10.0.0.1 10.0.0.2 443 7 6 5 840 yesterday 1600000060 ACCEPT OK",
    );
    assert!(m.contains("'start'"), "{m}");
    let m = failure_message(None, "{\"srcaddr\": \"1.2.3.4\", ");
    assert!(m.contains("invalid JSON"), "{m}");
}

#[test]
fn invalid_utf8_and_huge_lines_are_reported_not_dropped() {
    let mut input = b"2 123 eni-\xff\xfe 10.0.0.1 10.0.0.2 1 2 6 1 1 1 2 ACCEPT OK\n".to_vec();
    input.extend_from_slice(&vec![b'7'; 1024 * 1024]);
    input.extend_from_slice(b"\n");
    input.extend_from_slice(ACCEPT.as_bytes());
    let (docs, counts) = run_bytes(&settings(&[]), input, Limits::default());
    assert_eq!((counts.read, counts.malformed, docs.len()), (3, 2, 3));
    assert!(docs[0]["error"]["message"]
        .as_str()
        .unwrap()
        .contains("UTF-8"));
    assert!(docs[0]["event"]["original"]
        .as_str()
        .unwrap()
        .contains("eni-\u{fffd}"));
    let m = docs[1]["error"]["message"].as_str().unwrap();
    assert!(
        m.contains("line 2") && m.contains("1048576 bytes") && m.contains("MAX_LINE_BYTES"),
        "{m}"
    );
    assert_eq!(
        docs[1]["event"]["original"].as_str().unwrap().len(),
        Limits::default().max_line_bytes
    );
    assert!(!is_failure(&docs[2]));
}

#[test]
fn gzip_and_multi_member_gzip_give_the_same_documents() {
    let text = format!("{ACCEPT}\n{ACCEPT}\n");
    let (plain, _) = run(&settings(&[]), &text);
    let mut two = gzip(format!("{ACCEPT}\n").as_bytes());
    two.extend(gzip(format!("{ACCEPT}\n").as_bytes()));
    let (gz, _) = run_bytes(&settings(&[]), two, Limits::default());
    assert_eq!(plain, gz);
}

#[test]
fn ids_are_deterministic_and_distinct_per_line() {
    let text = format!("{ACCEPT}\n{ACCEPT}\n");
    let (a, _) = run(&settings(&[]), &text);
    let (b, _) = run(&settings(&[]), &text);
    assert_eq!(a[0]["event"]["id"], b[0]["event"]["id"]);
    assert_ne!(a[0]["event"]["id"], a[1]["event"]["id"]);
    assert_eq!(a[0]["event"]["id"].as_str().unwrap().len(), 32);
}

#[test]
fn filters_count_what_they_drop() {
    let text = "\
2 1 eni-1 10.0.0.1 10.0.0.2 1 2 6 1 1 1 2 ACCEPT OK
2 1 eni-1 10.0.0.1 8.8.8.8 1 2 6 1 1 1 2 ACCEPT OK
2 1 eni-1 10.0.0.1 10.0.0.2 1 2 6 1 1 1 2 REJECT OK
2 1 eni-1 - - - - - - - 1 2 - NODATA
2 1 eni-1 100.0.0.1 8.8.8.8 1 2 6 1 1 1 2 REJECT OK
";
    let s = settings(&[("INTERNAL_CIDRS", "10.0.0.0/8"), ("ACTIONS", "REJECT")]);
    let (docs, counts) = run(&s, text);
    assert_eq!(counts.read, 5);
    assert_eq!(counts.filtered, 3);
    assert_eq!(docs.len(), 2);
    assert_eq!(docs[0]["aws"]["vpcflow"]["log_status"], "NODATA");
    assert_eq!(docs[1]["source"]["ip"], "100.0.0.1");
    assert_eq!(
        counts.read,
        counts.forwarded + counts.filtered + counts.failed
    );
}

#[test]
fn include_original() {
    let (docs, _) = run(&settings(&[("INCLUDE_ORIGINAL", "true")]), ACCEPT);
    assert_eq!(docs[0]["event"]["original"], ACCEPT);
    let (docs, _) = run(&settings(&[]), ACCEPT);
    assert_eq!(docs[0]["event"].get("original"), None);
}

#[test]
fn json_lines_with_hyphen_or_underscore_keys() {
    let d = one(
        None,
        r#"{"version":"5","account-id":"1","srcaddr":"1.2.3.4","dstaddr":"5.6.7.8","srcport":"1","dstport":2,"protocol":17,"flow_direction":"egress","end":1600000000}"#,
    );
    assert_eq!(d["network"]["direction"], "egress");
    assert_eq!(d["network"]["transport"], "udp");
    assert_eq!(d["@timestamp"], "2020-09-13T12:26:40Z");
    assert_eq!(
        d["aws"]["s3"],
        json!({"bucket":{"name":"test-bucket"},"object":{"key":"AWSLogs/x.log.gz"}})
    );
}

#[test]
fn documents_have_no_empty_objects() {
    fn check(v: &Value) {
        match v {
            Value::Object(m) => {
                assert!(!m.is_empty());
                m.values().for_each(check);
            }
            Value::Array(a) => a.iter().for_each(check),
            _ => {}
        }
    }
    for line in [ACCEPT, "2 1 eni-1 - - - - - - - 1 2 - NODATA"] {
        check(&one(None, line));
    }
}

#[test]
fn zero_padded_numbers_are_written_as_json_numbers() {
    // Numbers are copied from the record's digits unless zero-padded: `0443` is not a
    // JSON number, so the parsed value is written instead; a lone `0` is kept.
    let line =
        "2 123456789010 eni-1 10.0.0.1 10.0.0.2 0443 0 006 010 00 1600000000 1600000060 ACCEPT OK";
    let doc = one(None, line);
    assert_eq!(doc["source"]["port"], 443);
    assert_eq!(doc["destination"]["port"], 0);
    assert_eq!(doc["network"]["iana_number"], "6");
    assert_eq!(doc["network"]["transport"], "tcp");
    assert_eq!(doc["source"]["packets"], 10);
    assert_eq!(doc["network"]["packets"], 10);
    assert_eq!(doc["source"]["bytes"], 0);
    assert_eq!(doc["network"]["bytes"], 0);
    assert_eq!(doc["event"]["end"], "2020-09-13T12:27:40Z");
    assert_eq!(doc["@timestamp"], doc["event"]["end"]);
}

/// The document buffer holds a document only after `Outcome::Document`: a header line,
/// a blank line or a filtered record leaves it empty, not holding the one before.
#[test]
fn the_document_buffer_is_empty_unless_a_document_was_written() {
    use flowlog_forwarder::context::Origin;
    use flowlog_forwarder::ids::IdSeed;
    use flowlog_forwarder::json::Document;
    use flowlog_forwarder::pipeline::{Outcome, UnitProcessor};
    use flowlog_forwarder::source::SourceLine;
    let settings = settings(&[("ACTIONS", "REJECT")]);
    let mut unit = UnitProcessor::new(&settings, Origin::file("f.log"), IdSeed::new(&["f"]));
    let mut doc = Document::new();
    let lines = [
        "2 1 eni-1 10.0.0.1 10.0.0.2 1 2 6 1 1 1700000000 1700000060 REJECT OK",
        "version account-id interface-id srcaddr dstaddr srcport dstport protocol packets bytes start end action log-status",
        "2 1 eni-1 10.0.0.1 10.0.0.2 1 2 6 1 1 1700000000 1700000060 REJECT OK",
        "",
        "2 1 eni-1 10.0.0.1 10.0.0.2 1 2 6 1 1 1700000000 1700000060 REJECT OK",
        "2 1 eni-1 10.0.0.1 10.0.0.2 1 2 6 1 1 1700000000 1700000060 ACCEPT OK",
    ];
    let mut outcomes = Vec::new();
    for (i, text) in lines.iter().enumerate() {
        let line = SourceLine {
            number: i as u64 + 1,
            bytes: text.as_bytes(),
            too_long: None,
        };
        let outcome = unit.process_line(&line, &mut doc);
        let document = matches!(outcome, Outcome::Document { .. });
        assert_eq!(!doc.is_empty(), document, "line {}: {outcome:?}", i + 1);
        if document {
            let parsed: Value = serde_json::from_slice(doc.as_bytes()).unwrap();
            assert_eq!(parsed["event"]["action"], "reject");
        }
        outcomes.push(outcome);
    }
    assert!(matches!(outcomes[1], Outcome::Skipped));
    assert!(matches!(outcomes[3], Outcome::Skipped));
    assert!(matches!(outcomes[5], Outcome::Filtered));
}
