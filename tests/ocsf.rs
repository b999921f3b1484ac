//! OUTPUT_SCHEMA=ocsf: every event written for the sample corpus (the AWS
//! documentation examples, every flow log version, Transit Gateway, ECS task fields,
//! custom and unknown fields, NODATA/SKIPDATA, parse failures) is validated against
//! the compiled OCSF 1.1.0 schema (tests/data/ocsf-1.1.0-compiled.json.gz, the
//! schema as the OCSF project compiles it): every attribute exists in its class or object, has the declared
//! type, uses an allowed enum value with its `_name` sibling, and every required
//! attribute is present. Then the values themselves are checked against the record.

mod common;

use std::io::Read;
use std::net::IpAddr;
use std::sync::OnceLock;

use common::{examples, run, DEFAULT};
use serde_json::{Map, Value};

/// The compiled OCSF 1.1.0 schema.
fn schema() -> &'static Value {
    static SCHEMA: OnceLock<Value> = OnceLock::new();
    SCHEMA.get_or_init(|| {
        let gz = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/data/ocsf-1.1.0-compiled.json.gz"
        ))
        .expect("the compiled OCSF schema");
        let mut text = String::new();
        flate2::read::GzDecoder::new(&gz[..])
            .read_to_string(&mut text)
            .expect("gzip");
        serde_json::from_str(&text).expect("JSON")
    })
}

/// Validates `event` as a Network Activity event: every violation, with its path.
fn violations(event: &Value) -> Vec<String> {
    let schema = schema();
    let class = &schema["classes"]["network_activity"];
    let profiles: Vec<String> = event["metadata"]["profiles"]
        .as_array()
        .map(|p| {
            p.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    let mut errors = Vec::new();
    match event.as_object() {
        Some(obj) => check_object(
            obj,
            class["attributes"].as_object().expect("class attributes"),
            "",
            &profiles,
            &mut errors,
        ),
        None => errors.push("the event is not a JSON object".to_string()),
    }
    if event["class_uid"] != 4001 {
        errors.push(format!("class_uid is {}", event["class_uid"]));
    }
    let (class_uid, activity) = (
        event["class_uid"].as_i64().unwrap_or(0),
        event["activity_id"].as_i64().unwrap_or(-1),
    );
    if event["type_uid"].as_i64() != Some(class_uid * 100 + activity) {
        errors.push(format!(
            "type_uid {} is not class_uid * 100 + activity_id",
            event["type_uid"]
        ));
    }
    errors
}

fn check_object(
    obj: &Map<String, Value>,
    attributes: &Map<String, Value>,
    path: &str,
    profiles: &[String],
    errors: &mut Vec<String>,
) {
    for (name, value) in obj {
        let at = format!("{path}{name}");
        let Some(attr) = attributes.get(name) else {
            errors.push(format!("{at}: no such attribute"));
            continue;
        };
        let is_array = attr["is_array"].as_bool().unwrap_or(false);
        match (is_array, value) {
            (true, Value::Array(items)) => {
                for (i, item) in items.iter().enumerate() {
                    check_value(item, attr, &format!("{at}[{i}]"), profiles, errors);
                }
            }
            (true, _) => errors.push(format!("{at}: an array is required")),
            (false, value) => check_value(value, attr, &at, profiles, errors),
        }
        if let Some(sibling) = attr["sibling"].as_str() {
            match (obj.get(sibling), attr["enum"].get(value.to_string())) {
                (None, _) => errors.push(format!("{at}: its sibling {sibling} is missing")),
                (Some(name), Some(item)) if value != 99 && name != &item["caption"] => {
                    errors.push(format!(
                        "{path}{sibling}: {name} is not the caption {}",
                        item["caption"]
                    ))
                }
                _ => {}
            }
        }
    }
    for (name, attr) in attributes {
        let required = attr["requirement"] == "required";
        let applies = match attr["profile"].as_str() {
            None => true,
            Some(profile) => profiles.iter().any(|p| p == profile),
        };
        if required && applies && !obj.contains_key(name) {
            errors.push(format!("{path}{name}: required and missing"));
        }
    }
}

fn check_value(
    value: &Value,
    attr: &Value,
    at: &str,
    profiles: &[String],
    errors: &mut Vec<String>,
) {
    let schema = schema();
    let type_name = attr["type"].as_str().unwrap_or_default();
    // `object` (unmapped) is any JSON object, not the schema's empty `object`.
    let object = (type_name != "object")
        .then(|| schema["objects"].get(type_name))
        .flatten();
    if let Some(object) = object {
        match value.as_object() {
            Some(obj) => check_object(
                obj,
                object["attributes"].as_object().expect("object attributes"),
                &format!("{at}."),
                profiles,
                errors,
            ),
            None => errors.push(format!("{at}: a {type_name} object is required")),
        }
        return;
    }
    let ok = match type_name {
        "object" => value.is_object(),
        "json_t" => true,
        "string_t" | "hostname_t" | "url_t" | "resource_uid_t" | "uuid_t" | "username_t"
        | "email_t" | "file_name_t" | "mac_t" | "process_name_t" | "datetime_t" | "subnet_t"
        | "file_hash_t" | "bytestring_t" => value.is_string(),
        "ip_t" => value.as_str().is_some_and(|s| s.parse::<IpAddr>().is_ok()),
        "integer_t" => value.as_i64().is_some_and(|n| i32::try_from(n).is_ok()),
        "long_t" | "timestamp_t" => value.is_i64() || value.is_u64(),
        "port_t" => value.as_u64().is_some_and(|n| n <= 65_535),
        "float_t" => value.is_number(),
        "boolean_t" => value.is_boolean(),
        other => {
            errors.push(format!("{at}: unknown type {other}"));
            return;
        }
    };
    if !ok {
        errors.push(format!("{at}: {value} is not a {type_name}"));
    }
    if let Some(allowed) = attr["enum"].as_object() {
        if !allowed.contains_key(&value.to_string().trim_matches('"').to_string()) {
            errors.push(format!("{at}: {value} is not an allowed value"));
        }
    }
}

/// The events of `text` (with a header line or LOG_FORMAT `format`), as OCSF.
fn ocsf(format: Option<&str>, text: &str, extra: &[(&str, &str)]) -> Vec<Value> {
    let mut vars = vec![("OUTPUT_SCHEMA", "ocsf")];
    if let Some(f) = format {
        vars.push(("LOG_FORMAT", f));
    }
    vars.extend_from_slice(extra);
    run(&common::settings(&vars), text).0
}

fn assert_valid(label: &str, event: &Value) {
    let errors = violations(event);
    assert!(errors.is_empty(), "{label}: {errors:#?}\n{event:#}");
}

const V3: &str = "version vpc-id subnet-id instance-id interface-id account-id type srcaddr dstaddr srcport dstport pkt-srcaddr pkt-dstaddr protocol bytes packets start end action tcp-flags log-status";
const V5: &str = "version account-id interface-id srcaddr dstaddr srcport dstport protocol packets bytes start end action log-status vpc-id subnet-id instance-id tcp-flags type pkt-srcaddr pkt-dstaddr region az-id sublocation-type sublocation-id pkt-src-aws-service pkt-dst-aws-service flow-direction traffic-path";
const V8: &str = "version account-id interface-id srcaddr dstaddr srcport dstport protocol packets bytes start end action log-status vpc-id subnet-id instance-id tcp-flags type pkt-srcaddr pkt-dstaddr region az-id sublocation-type sublocation-id pkt-src-aws-service pkt-dst-aws-service flow-direction traffic-path ecs-cluster-arn ecs-cluster-name ecs-container-instance-arn ecs-container-instance-id ecs-container-id ecs-second-container-id ecs-service-name ecs-task-definition-arn ecs-task-arn ecs-task-id reject-reason";
const TGW: &str = "version resource-type account-id tgw-id tgw-attachment-id tgw-src-vpc-account-id tgw-dst-vpc-account-id tgw-src-vpc-id tgw-dst-vpc-id tgw-src-subnet-id tgw-dst-subnet-id tgw-src-eni tgw-dst-eni tgw-src-az-id tgw-dst-az-id tgw-pair-attachment-id srcaddr dstaddr srcport dstport protocol packets bytes start end log-status type packets-lost-no-route packets-lost-blackhole packets-lost-mtu-exceeded packets-lost-ttl-expired tcp-flags region flow-direction pkt-src-aws-service pkt-dst-aws-service";

/// Records of every version, Transit Gateway, ECS tasks, unknown fields, IPv6, and
/// lines that are no record: (label, format, lines).
fn corpus() -> Vec<(&'static str, &'static str, &'static str)> {
    vec![
        ("v3", V3, "3 vpc-abcdefab012345678 subnet-aaaaaaaa012345678 i-01234567890123456 eni-1235b8ca123456789 123456789010 IPv4 52.213.180.42 10.0.0.62 43416 5001 52.213.180.42 10.0.0.62 6 568 8 1566848875 1566848933 ACCEPT 2 OK"),
        ("v5 egress via NAT", V5, "5 123456789012 eni-0a1b2c3d4e5f60718 10.0.1.5 203.0.113.5 40000 443 6 10 5120 1700000000 1700000060 ACCEPT OK vpc-1 subnet-1 i-1 19 IPv4 10.0.1.5 198.51.100.7 eu-west-1 euw1-az1 wavelength wlid-1 - S3 egress 2"),
        ("v8 ECS task, rejected", V8, "8 123456789012 eni-0a1b2c3d4e5f60718 10.0.1.5 10.0.2.9 40000 5432 6 3 180 1700000000 1700000060 REJECT OK vpc-1 subnet-1 - 2 IPv4 10.0.1.5 10.0.2.9 eu-west-1 euw1-az1 - - - - ingress 1 arn:aws:ecs:eu-west-1:123456789012:cluster/prod prod arn:aws:ecs:eu-west-1:123456789012:container-instance/prod/abc abc 0123456789abcdef - web arn:aws:ecs:eu-west-1:123456789012:task-definition/web:7 arn:aws:ecs:eu-west-1:123456789012:task/prod/def def BPA"),
        ("IPv6 ICMPv6", DEFAULT, "2 123456789010 eni-1235b8ca123456789 2001:db8::1 2001:db8::2 128 0 58 1 64 1700000000 1700000060 ACCEPT OK"),
        ("unknown protocol and action", DEFAULT, "2 123456789010 eni-1 10.0.0.1 10.0.0.2 0 0 253 1 64 1700000000 1700000060 DROP OK"),
        ("NODATA and SKIPDATA", DEFAULT, "2 123456789010 eni-1 - - - - - - - 1431280876 1431280934 - NODATA\n2 123456789010 eni-1 - - - - - - - 1431280876 1431280934 - SKIPDATA"),
        ("Transit Gateway", TGW, "6 TransitGatewayAttachment 123456789012 tgw-0123 tgw-attach-0456 111111111111 222222222222 vpc-src vpc-dst subnet-src subnet-dst eni-src eni-dst use1-az1 use1-az2 tgw-attach-0789 10.1.0.5 10.2.0.9 5000 443 6 10 1000 1700000000 1700000060 OK IPv4 0 0 0 0 3 us-east-1 ingress - -"),
        ("unknown fields and no times", "srcaddr dstaddr action future-field another-new-one", "10.0.0.1 10.0.0.2 ACCEPT some-value x\"y"),
        ("REJECT attribution pair", DEFAULT, "2 123456789010 eni-1235b8ca123456789 172.31.16.139 203.0.113.12 0 0 1 4 336 1432917094 1432917142 REJECT OK\n2 123456789010 eni-1235b8ca123456789 203.0.113.12 172.31.16.139 0 0 1 4 336 1432917027 1432917142 ACCEPT OK\n2 123456789010 eni-1 10.0.0.1 10.0.0.2 1 2 6 1 2 3 4 REJECT OK"),
        ("parse failures", DEFAULT, "2 123456789010 eni-1 10.0.0.999 10.0.0.2 1 2 6 1 2 3 4 ACCEPT OK\nnot a record at all\n2 123456789010 eni-1 10.0.0.1 10.0.0.2 99999 2 6 1 2 3 4 ACCEPT OK"),
    ]
}

#[test]
fn every_event_of_the_corpus_is_valid_ocsf_1_1_0() {
    let mut checked = 0;
    for (label, format, line) in examples() {
        for event in ocsf(Some(&format), &line, &[]) {
            assert_valid(&label, &event);
            checked += 1;
        }
    }
    for (label, format, lines) in corpus() {
        for event in ocsf(Some(format), lines, &[("INCLUDE_ORIGINAL", "true")]) {
            assert_valid(label, &event);
            checked += 1;
        }
    }
    assert_eq!(checked, 27 + 15);
}

#[test]
fn the_validator_finds_what_is_wrong() {
    let (format, line) = (
        DEFAULT,
        "2 123456789010 eni-1 10.0.0.1 10.0.0.2 1 2 6 1 2 3 4 ACCEPT OK",
    );
    let good = ocsf(Some(format), line, &[]).remove(0);
    assert_valid("good", &good);
    let broken = |edit: &dyn Fn(&mut Value)| {
        let mut e = good.clone();
        edit(&mut e);
        violations(&e).join("\n")
    };
    assert!(broken(&|e| e["nonsense"] = 1.into()).contains("nonsense: no such attribute"));
    assert!(broken(&|e| e["src_endpoint"]["port"] = "22".into()).contains("src_endpoint.port"));
    assert!(broken(&|e| e["src_endpoint"]["ip"] = "10.0.0.300".into()).contains("src_endpoint.ip"));
    assert!(broken(&|e| e["severity_id"] = 7.into()).contains("not an allowed value"));
    assert!(broken(&|e| {
        e.as_object_mut().unwrap().remove("metadata");
    })
    .contains("metadata: required and missing"));
    assert!(broken(&|e| {
        e["connection_info"]
            .as_object_mut()
            .unwrap()
            .remove("direction_id");
    })
    .contains("connection_info.direction_id: required"));
    assert!(broken(&|e| {
        e.as_object_mut().unwrap().remove("action");
    })
    .contains("sibling action is missing"));
    assert!(broken(&|e| e["action"] = "Denied".into()).contains("not the caption"));
    assert!(broken(&|e| e["type_uid"] = 400101.into()).contains("type_uid"));
}

/// The AWS example SVC-PATH-DIR-2 (v5, egress to S3 through an internet gateway).
#[test]
fn values_land_where_security_lake_puts_them() {
    let (_, format, line) = examples()
        .into_iter()
        .find(|(l, _, _)| l == "SVC-PATH-DIR-2")
        .unwrap();
    let e = ocsf(Some(&format), &line, &[]).remove(0);
    assert_eq!(e["class_uid"], 4001);
    assert_eq!(e["activity_id"], 6);
    assert_eq!(e["activity_name"], "Traffic");
    assert_eq!(e["type_uid"], 400106);
    assert_eq!(e["category_uid"], 4);
    assert_eq!(e["time"], 1616729349000u64);
    assert_eq!(e["start_time"], 1616729292000u64);
    assert_eq!(e["end_time"], 1616729349000u64);
    assert_eq!(
        (e["action_id"].clone(), e["disposition_id"].clone()),
        (1.into(), 1.into())
    );
    assert_eq!(e["status_code"], "OK");
    let src = &e["src_endpoint"];
    assert_eq!(src["ip"], "10.0.0.71");
    assert_eq!(src["port"], 34210);
    assert_eq!(src["interface_uid"], "eni-1235b8ca123456789");
    assert_eq!(src["vpc_uid"], "vpc-abcdefab012345678");
    assert_eq!(src["subnet_uid"], "subnet-aaaaaaaa012345678");
    assert_eq!(src["instance_uid"], "i-0c50d5961bcb2d47b");
    assert_eq!(e["dst_endpoint"]["ip"], "52.95.128.179");
    assert_eq!(e["dst_endpoint"]["port"], 80);
    assert_eq!(e["dst_endpoint"]["svc_name"], "S3");
    let c = &e["connection_info"];
    assert_eq!(c["protocol_num"], 6);
    assert_eq!(c["protocol_name"], "tcp");
    assert_eq!(c["protocol_ver_id"], 4);
    assert_eq!(c["direction_id"], 2);
    assert_eq!(c["direction"], "Outbound");
    assert_eq!(c["tcp_flags"], 3);
    assert_eq!(c["boundary_id"], 11);
    assert_eq!(c["boundary"], "Internet Gateway");
    assert_eq!(c["uid"], ocsf_and_ecs_community_id(&format, &line));
    assert_eq!(e["traffic"]["bytes"], 471);
    assert_eq!(e["traffic"]["packets"], 7);
    assert_eq!(e["cloud"]["provider"], "AWS");
    assert_eq!(e["cloud"]["region"], "ap-southeast-2");
    assert_eq!(e["cloud"]["zone"], "apse2-az3");
    assert_eq!(e["cloud"]["account"]["uid"], "123456789012");
    let m = &e["metadata"];
    assert_eq!(m["version"], "1.1.0");
    assert_eq!(m["product"]["name"], "Amazon VPC");
    assert_eq!(m["product"]["vendor_name"], "AWS");
    assert_eq!(m["product"]["feature"]["name"], "Flowlogs");
    assert_eq!(m["product"]["version"], "5");
    assert_eq!(m["log_provider"], "Amazon S3");
    assert_eq!(m["log_name"], "s3://test-bucket/AWSLogs/x.log.gz");
    assert_eq!(m["uid"].as_str().unwrap().len(), 32);
    assert_eq!(e["unmapped"]["traffic_path"], "8");
}

/// The connection uid is the ECS document's Community ID, and the event id its uid.
fn ocsf_and_ecs_community_id(format: &str, line: &str) -> Value {
    let ecs = run(&common::settings(&[("LOG_FORMAT", format)]), line)
        .0
        .remove(0);
    let ocsf = ocsf(Some(format), line, &[]).remove(0);
    assert_eq!(ocsf["metadata"]["uid"], ecs["event"]["id"]);
    ecs["network"]["community_id"].clone()
}

#[test]
fn rejects_transit_gateway_ecs_and_unknown_fields_keep_every_value() {
    let corpus = corpus();
    let find = |label: &str| corpus.iter().find(|(l, _, _)| *l == label).unwrap();

    let (_, format, line) = find("v8 ECS task, rejected");
    let e = ocsf(Some(format), line, &[]).remove(0);
    assert_eq!(
        (e["action_id"].clone(), e["action"].clone()),
        (2.into(), "Denied".into())
    );
    assert_eq!(e["disposition_id"], 2);
    assert_eq!(e["disposition"], "Blocked");
    assert_eq!(e["status_detail"], "BPA");
    assert_eq!(e["connection_info"]["direction_id"], 1);
    assert_eq!(e["connection_info"]["boundary_id"], 4);
    let u = &e["unmapped"];
    assert_eq!(u["ecs_cluster_name"], "prod");
    assert_eq!(u["ecs_task_id"], "def");
    assert_eq!(u["ecs_service_name"], "web");
    assert_eq!(u["reject_reason"], "BPA");

    let (_, format, line) = find("Transit Gateway");
    let e = ocsf(Some(format), line, &[]).remove(0);
    assert_eq!(e["metadata"]["product"]["name"], "AWS Transit Gateway");
    assert_eq!(e["src_endpoint"]["vpc_uid"], "vpc-src");
    assert_eq!(e["src_endpoint"]["subnet_uid"], "subnet-src");
    assert_eq!(e["src_endpoint"]["interface_uid"], "eni-src");
    assert_eq!(e["src_endpoint"]["zone"], "use1-az1");
    assert_eq!(e["dst_endpoint"]["vpc_uid"], "vpc-dst");
    assert_eq!(e["dst_endpoint"]["zone"], "use1-az2");
    assert_eq!(e["unmapped"]["tgw_id"], "tgw-0123");
    assert_eq!(e["unmapped"]["tgw_attachment_id"], "tgw-attach-0456");
    assert_eq!(e["unmapped"]["resource_type"], "TransitGatewayAttachment");
    assert_eq!(e["unmapped"]["packets_lost_no_route"], "0");

    let (_, format, line) = find("v5 egress via NAT");
    let e = ocsf(Some(format), line, &[]).remove(0);
    assert_eq!(
        e["dst_endpoint"]["intermediate_ips"],
        serde_json::json!(["198.51.100.7"])
    );
    assert!(e["src_endpoint"].get("intermediate_ips").is_none());
    assert_eq!(e["unmapped"]["sublocation"]["type"], "wavelength");

    let (_, format, line) = find("unknown fields and no times");
    let e = ocsf(Some(format), line, &[("INCLUDE_ORIGINAL", "true")]).remove(0);
    assert_eq!(e["unmapped"]["future_field"], "some-value");
    assert_eq!(e["unmapped"]["another_new_one"], "x\"y");
    assert_eq!(e["raw_data"], *line);
    assert!(e["time"].as_u64().unwrap() > 1_700_000_000_000);
}

#[test]
fn a_line_that_is_no_record_becomes_a_failure_event() {
    let events = ocsf(
        None,
        "2 123456789010 eni-1 10.0.0.999 10.0.0.2 1 2 6 1 2 3 4 ACCEPT OK",
        &[],
    );
    let e = &events[0];
    assert_valid("failure", e);
    assert_eq!(
        e["raw_data"],
        "2 123456789010 eni-1 10.0.0.999 10.0.0.2 1 2 6 1 2 3 4 ACCEPT OK"
    );
    assert!(
        e["status_detail"].as_str().unwrap().contains("srcaddr"),
        "{e}"
    );
    assert_eq!(e["status_id"], 2);
    assert_eq!(e["severity_id"], 3);
    assert_eq!(
        e["metadata"]["labels"],
        serde_json::json!(["_flowlog_parse_failure"])
    );
}

/// Threat-intel matches become OCSF `enrichments`; the events stay valid.
#[test]
fn threat_enrichments_are_valid_ocsf() {
    use flowlog_forwarder::context::Origin;
    use flowlog_forwarder::ids::IdSeed;
    use flowlog_forwarder::json::Document;
    use flowlog_forwarder::pipeline::{Lookups, Outcome, UnitProcessor};
    use flowlog_forwarder::source::SourceLine;
    use flowlog_forwarder::threat_intel::ThreatList;
    let list = std::sync::Arc::new(
        ThreatList::parse("198.51.100.0/24,scanner\n2001:db8:bad::/48\n", "test").unwrap(),
    );
    let settings = common::settings(&[("OUTPUT_SCHEMA", "ocsf"), ("LOG_FORMAT", V5)]);
    let mut unit = UnitProcessor::new(&settings, Origin::file("t"), IdSeed::new(&["t"]))
        .with_lookups(&Lookups {
            threats: Some(list),
            ..Lookups::default()
        });
    let lines = [
        "5 1 eni-1 10.0.0.5 198.51.100.7 40000 443 6 1 60 1700000000 1700000060 ACCEPT OK vpc-1 subnet-1 i-1 2 IPv4 198.51.100.8 198.51.100.7 - - - - - - egress 8",
        "5 1 eni-1 2001:db8:bad::9 2001:db8::1 443 40000 6 1 60 1700000000 1700000060 ACCEPT OK - - - 2 IPv6 - - - - - - - - ingress -",
    ];
    let mut doc = Document::new();
    for (i, line) in lines.iter().enumerate() {
        let line = SourceLine {
            number: i as u64 + 1,
            bytes: line.as_bytes(),
            too_long: None,
        };
        assert!(matches!(
            unit.process_line(&line, &mut doc),
            Outcome::Document { .. }
        ));
        let event: Value = serde_json::from_slice(doc.as_bytes()).unwrap();
        assert_valid("threat", &event);
        assert!(
            !event["enrichments"].as_array().unwrap().is_empty(),
            "{event}"
        );
    }
    assert_eq!(unit.counts().threat_matches, 2);
}

/// GeoIP locations (`location` on the endpoints) and autonomous systems (enrichments:
/// OCSF 1.1.0 has no `autonomous_system` object) keep the events valid.
#[test]
fn geoip_locations_and_asn_enrichments_are_valid_ocsf() {
    let dir = common::scratch_dir();
    let input = dir.join("geo.log");
    std::fs::write(
        &input,
        "2 123456789012 eni-1 203.0.113.9 2001:db8:1::5 443 40000 6 10 6000 1700000000 1700000060 ACCEPT OK\n",
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_flowlog-forwarder"))
        .arg("process")
        .arg(&input)
        .env_remove("DESTINATION_URL")
        .env("OUTPUT_SCHEMA", "ocsf")
        .env("GEOIP_DATABASE", common::mmdb("city"))
        .env("GEOIP_ASN_DATABASE", common::mmdb("asn"))
        .output()
        .unwrap();
    assert!(out.status.success());
    let events = common::stdout_docs(&out);
    assert!(events[0]["src_endpoint"]["location"].is_object());
    assert!(events[0]["dst_endpoint"]["location"].is_object());
    assert_eq!(events[0]["enrichments"].as_array().unwrap().len(), 2);
    assert_valid("geoip", &events[0]);
}

/// An aggregate's event (AGGREGATE) carries `count` and its replies' traffic
/// (`bytes_in`), and stays valid.
#[test]
fn aggregated_events_are_valid_ocsf() {
    let line = |sport: u32| {
        format!(
            "2 123456789012 eni-1 10.0.0.1 10.1.0.9 {sport} 443 6 10 600 1700000000 1700000060 ACCEPT OK\n\
             2 123456789012 eni-1 10.1.0.9 10.0.0.1 443 {sport} 6 5 2000 1700000000 1700000060 ACCEPT OK\n"
        )
    };
    let input = common::scratch_dir().join("aggregate.log");
    std::fs::write(&input, (0..4).map(|i| line(40000 + i)).collect::<String>()).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_flowlog-forwarder"))
        .arg("process")
        .arg(&input)
        .env_remove("DESTINATION_URL")
        .env("OUTPUT_SCHEMA", "ocsf")
        .env("AGGREGATE", "conversations")
        .output()
        .unwrap();
    assert!(out.status.success());
    let events = common::stdout_docs(&out);
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["count"], 8);
    assert_eq!(events[0]["traffic"]["bytes_in"], 8000);
    assert_eq!(events[0]["traffic"]["bytes_out"], 2400);
    assert_valid("aggregate", &events[0]);
}
