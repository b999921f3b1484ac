//! Property tests: arbitrary input never panics and always yields valid JSON; records
//! rendered from random values in a random field order round-trip to those values.

mod common;

use common::{get, run_bytes, settings, try_run_bytes};
use flowlog_forwarder::flowlog::{Field, Kind, Line, LineParser, Schema};
use flowlog_forwarder::source::Limits;
use proptest::prelude::*;
use proptest::strategy::Strategy;

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic_and_give_valid_json(input in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let limits = Limits { max_line_bytes: 512, ..Limits::default() };
        // A corrupt gzip stream (the input may start with the gzip magic) ends with a
        // read error, which the handler reports as the object's failure.
        let (docs, counts, _error) = try_run_bytes(&settings(&[]), input, limits);
        prop_assert_eq!(docs.len() as u64, counts.read - counts.filtered);
    }

    #[test]
    fn arbitrary_text_lines_never_panic(line in "[ -~\t]{0,300}", format in "[a-z${} -]{1,80}") {
        let schema = Schema::parse_format(&format).unwrap_or_else(|_| Schema::default_v2());
        let mut parser = LineParser::new(schema);
        let _ = parser.parse(&line);
        let wrapped = serde_json::json!({ "message": line }).to_string();
        let _ = parser.parse(&wrapped);
    }

    #[test]
    fn random_records_round_trip(
        order in Just(Field::ALL.to_vec()).prop_shuffle(),
        take in 1usize..Field::COUNT,
        seed in any::<u64>(),
        dollar in any::<bool>(),
    ) {
        let fields = &order[..take];
        let values: Vec<String> = fields.iter().enumerate().map(|(i, f)| value_for(*f, seed.wrapping_add(i as u64 * 7919))).collect();
        let format: Vec<String> = fields.iter().map(|f| if dollar { format!("${{{}}}", f.name()) } else { f.name().to_string() }).collect();
        let s = settings(&[("LOG_FORMAT", &format.join(" "))]);
        let (docs, counts) = run_bytes(&s, values.join(" ").into_bytes(), Limits::default());
        prop_assert_eq!(counts.malformed, 0, "{:?}", docs);
        prop_assert_eq!(docs.len(), 1);
        let d = &docs[0];
        for (f, v) in fields.iter().zip(&values) {
            if v == "-" { continue; }
            let (path, want): (&str, serde_json::Value) = match f {
                Field::SrcAddr => ("source.ip", v.as_str().into()),
                Field::DstAddr => ("destination.ip", v.as_str().into()),
                Field::SrcPort => ("source.port", v.parse::<u64>().unwrap().into()),
                Field::DstPort => ("destination.port", v.parse::<u64>().unwrap().into()),
                Field::Protocol => ("network.iana_number", v.as_str().into()),
                Field::Packets => ("network.packets", v.parse::<u64>().unwrap().into()),
                Field::Bytes => ("network.bytes", v.parse::<u64>().unwrap().into()),
                Field::Start => ("event.start", flowlog_forwarder::timestamp::format_timestamp(v.parse().unwrap()).into()),
                Field::End => ("event.end", flowlog_forwarder::timestamp::format_timestamp(v.parse().unwrap()).into()),
                Field::Region => ("cloud.region", v.as_str().into()),
                Field::AzId => ("cloud.availability_zone", v.as_str().into()),
                Field::FlowDirection => ("network.direction", v.as_str().into()),
                Field::SublocationType => ("aws.vpcflow.sublocation.type", v.as_str().into()),
                Field::SublocationId => ("aws.vpcflow.sublocation.id", v.as_str().into()),
                other => match other.vpcflow_key() {
                    flowlog_forwarder::flowlog::fields::VpcflowKey::Top(k) => {
                        let path = format!("aws.vpcflow.{k}");
                        prop_assert_eq!(get(d, &path), Some(&serde_json::Value::from(v.as_str())), "{} in {}", path, d);
                        continue;
                    }
                    _ => continue,
                },
            };
            prop_assert_eq!(get(d, path), Some(&want), "{} in {}", path, d);
        }
    }
}

/// A valid random value for a field (or `-`).
fn value_for(field: Field, seed: u64) -> String {
    if seed.is_multiple_of(11) {
        return "-".to_string();
    }
    match field.kind() {
        Kind::Ip if seed.is_multiple_of(3) => {
            std::net::Ipv6Addr::from((seed as u128) << 64 | seed as u128).to_string()
        }
        Kind::Ip => std::net::Ipv4Addr::from(seed as u32).to_string(),
        Kind::Port => (seed % 65536).to_string(),
        Kind::Protocol => (seed % 256).to_string(),
        Kind::Integer => ((seed >> (seed % 64)) % (field.max_integer() + 1)).to_string(),
        Kind::Timestamp => (seed % 4_000_000_000).to_string(),
        Kind::Text => {
            const WORDS: [&str; 5] = [
                "ACCEPT",
                "eni-0a1b2c",
                "us-east-1",
                "S3",
                "arn:aws:ecs:x:1:task/a\\b\"c",
            ];
            WORDS[(seed % 5) as usize].to_string()
        }
    }
}

#[test]
fn gzip_magic_then_garbage_is_a_read_error_not_a_panic() {
    let mut input = vec![0x1f, 0x8b];
    input
        .extend_from_slice(b"not really gzip\n2 1 eni-1 1.1.1.1 2.2.2.2 1 2 6 1 1 1 1 ACCEPT OK\n");
    let (docs, counts, error) = try_run_bytes(&settings(&[]), input, Limits::default());
    assert!(docs.is_empty());
    assert_eq!(counts.read, 0);
    assert!(error.is_some_and(|e| e.contains("gzip")));
}

#[test]
fn parser_reports_header_for_a_header() {
    let mut p = LineParser::new(Schema::default_v2());
    assert!(matches!(p.parse("version srcaddr"), Line::Header));
}

/// Arbitrary JSON values of limited depth, biased toward the keys triggers use.
fn json_value() -> impl Strategy<Value = serde_json::Value> {
    use serde_json::Value;
    let key = prop_oneof![
        Just("Records".to_string()),
        Just("eventSource".to_string()),
        Just("s3".to_string()),
        Just("body".to_string()),
        Just("messageId".to_string()),
        Just("awslogs".to_string()),
        Just("data".to_string()),
        Just("Message".to_string()),
        Just("Type".to_string()),
        Just("detail-type".to_string()),
        Just("source".to_string()),
        Just("detail".to_string()),
        Just("bucket".to_string()),
        Just("object".to_string()),
        Just("key".to_string()),
        Just("name".to_string()),
        "[a-zA-Z:-]{0,12}",
    ];
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        prop_oneof![
            Just("aws:sqs".to_string()),
            Just("aws:s3".to_string()),
            Just("aws.s3".to_string()),
            Just("Object Created".to_string()),
            Just("Notification".to_string()),
            Just("%zz+%C3".to_string()),
            ".{0,40}"
        ]
        .prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 64, 6, move |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::vec((key.clone(), inner), 0..5)
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn trigger_decoder_never_panics(payload in json_value()) {
        let _ = flowlog_forwarder::trigger::decode(&payload);
        // The same value as an SQS body and as an SNS message.
        let sqs = serde_json::json!({"Records":[{"eventSource":"aws:sqs","messageId":"m","body": payload.to_string()}]});
        let decoded = flowlog_forwarder::trigger::decode(&sqs);
        prop_assert!(decoded.is_ok(), "an SQS event always decodes; bad bodies are per-message failures");
        let inv = decoded.unwrap();
        prop_assert!(inv.units.len() + inv.bad_messages.len() + inv.ignored as usize >= 1);
    }

    #[test]
    fn awslogs_decoder_never_panics(data in "[A-Za-z0-9+/=]{0,200}", bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = flowlog_forwarder::trigger::decode_awslogs(&data);
        use base64::Engine as _;
        let gz = common::gzip(&bytes);
        let _ = flowlog_forwarder::trigger::decode_awslogs(&base64::engine::general_purpose::STANDARD.encode(gz));
    }

    #[test]
    fn format_parser_never_panics(format in ".{0,200}") {
        if let Ok(schema) = Schema::parse_format(&format) {
            prop_assert!(!schema.is_empty());
            // What it prints parses back to the same schema.
            prop_assert_eq!(Schema::parse_format(&schema.to_format_string()).unwrap(), schema);
        }
    }

    #[test]
    fn column_split_agrees_with_split_ascii_whitespace(s in "[ \t\r\n\x0b\x0c\x00!a-z0-9.\u{e9}]{0,80}") {
        let mut spans = Vec::new();
        flowlog_forwarder::flowlog::record::split_columns(&s, &mut spans);
        let ours: Vec<&str> = spans.iter().map(|&(a, b)| &s[a as usize..b as usize]).collect();
        prop_assert_eq!(ours, s.split_ascii_whitespace().collect::<Vec<_>>());
    }

    #[test]
    fn ip_parser_agrees_with_the_standard_library(s in "[0-9.:a-f]{0,20}") {
        let ours = flowlog_forwarder::flowlog::record::parse_ip(&s);
        prop_assert_eq!(ours, s.parse::<std::net::IpAddr>().ok());
    }

    #[test]
    fn json_strings_round_trip(s in any::<String>()) {
        let mut out = Vec::new();
        flowlog_forwarder::json::write_str(&mut out, &s);
        let back: String = serde_json::from_slice(&out).expect("valid JSON string");
        prop_assert_eq!(back, s);
    }

    #[test]
    fn documents_of_arbitrary_text_fields_are_valid_json(values in proptest::collection::vec("[^ \t\r\n\u{b}\u{c}]{1,30}", 3)) {
        let line = values.join(" ");
        let s = settings(&[("LOG_FORMAT", "interface-id vpc-id brand-new-field")]);
        let (docs, counts) = run_bytes(&s, line.into_bytes(), Limits::default());
        prop_assert_eq!(docs.len() as u64, counts.read);
    }
}
