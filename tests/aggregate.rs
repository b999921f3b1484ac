//! AGGREGATE: records of one flow (with `connections`, and its replies; with
//! `conversations`, of one client and service) become one document whose counters are
//! their sums, whose window spans theirs, and which says how many records it stands for;
//! accounting counts records, not documents. REJECTs (by default) and threat matches
//! stay documents of their own.

mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::process::{Command, Output, Stdio};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_flowlog-forwarder");

fn process(input: &str, env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.args(["process", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    common::delivery_env(&mut cmd, &[]);
    for var in [
        "AGGREGATE",
        "AGGREGATE_ACTIONS",
        "AGGREGATE_WHERE",
        "AGGREGATE_CONVERSATIONS_WHERE",
        "PROFILE",
        "FIELDS_EXCLUDE",
        "FILTER",
        "OUTPUT_SCHEMA",
        "THREAT_INTEL_URI",
        "INCLUDE_ORIGINAL",
    ] {
        cmd.env_remove(var);
    }
    cmd.envs(env.iter().copied());
    let mut child = cmd.spawn().unwrap();
    // Written from a thread of its own: the documents come out while it is read.
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_string();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(input.as_bytes());
    });
    let out = child.wait_with_output().unwrap();
    let _ = writer.join();
    out
}

/// The documents of `input` processed with `env`, once the run is asserted to have
/// succeeded with its accounting exact.
fn aggregated(input: &str, env: &[(&str, &str)]) -> Vec<Value> {
    let out = process(input, env);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    common::assert_accounting(&stderr);
    common::stdout_docs(&out)
}

#[allow(clippy::too_many_arguments)]
fn line(
    src: &str,
    dst: &str,
    sport: u32,
    dport: u32,
    proto: u32,
    packets: u64,
    bytes: u64,
    start: u64,
    action: &str,
) -> String {
    format!(
        "2 123456789012 eni-1 {src} {dst} {sport} {dport} {proto} {packets} {bytes} {start} {} {action} OK\n",
        start + 60
    )
}

/// (source, destination, service port, protocol, action) -> (packets, bytes), from
/// documents; the service port is the lower of the two (the client's may be folded
/// away). What a document says its destination sent back (`destination.bytes`) counts
/// for the other direction.
type FlowKey = (String, String, u64, String, String);

fn totals(docs: &[Value]) -> BTreeMap<FlowKey, (u64, u64)> {
    let mut out = BTreeMap::new();
    // NODATA and SKIPDATA records have no flow to count.
    for d in docs.iter().filter(|d| d["source"]["ip"].is_string()) {
        let ports = [&d["source"]["port"], &d["destination"]["port"]];
        let port = ports.iter().filter_map(|p| p.as_u64()).min().unwrap_or(0);
        let (src, dst) = (&d["source"]["ip"], &d["destination"]["ip"]);
        let key = |from: &Value, to: &Value| {
            (
                from.as_str().unwrap().to_string(),
                to.as_str().unwrap().to_string(),
                port,
                d["network"]["iana_number"].as_str().unwrap().to_string(),
                d["event"]["action"].as_str().unwrap().to_string(),
            )
        };
        let e = out.entry(key(src, dst)).or_insert((0, 0));
        e.0 += d["source"]["packets"].as_u64().unwrap();
        e.1 += d["source"]["bytes"].as_u64().unwrap();
        if let Some(bytes) = d["destination"]["bytes"].as_u64() {
            let e = out.entry(key(dst, src)).or_insert((0, 0));
            e.0 += d["destination"]["packets"].as_u64().unwrap();
            e.1 += bytes;
        }
    }
    out
}

/// Many connections of a few clients to a few services, some repeated over windows.
fn traffic() -> String {
    let mut text = String::new();
    for window in 0..3u64 {
        for client in 0..4u32 {
            for conn in 0..5u32 {
                let start = 1_700_000_000 + window * 60;
                let src = format!("10.0.0.{}", client + 1);
                let sport = 40000 + client * 100 + conn;
                text += &line(
                    &src,
                    "10.1.0.9",
                    sport,
                    443,
                    6,
                    10 + u64::from(conn),
                    1000,
                    start,
                    "ACCEPT",
                );
                text += &line("10.1.0.9", &src, 443, sport, 6, 8, 4000, start, "ACCEPT");
            }
            text += &line(
                &format!("10.0.0.{}", client + 1),
                "10.1.0.2",
                53000 + client,
                53,
                17,
                1,
                70,
                1_700_000_000 + window * 60,
                "ACCEPT",
            );
        }
        text += &line(
            "198.51.100.7",
            "10.1.0.9",
            51000 + window as u32,
            22,
            6,
            1,
            40,
            1_700_000_000 + window * 60,
            "REJECT",
        );
    }
    text
}

#[test]
fn flows_sum_counters_and_span_windows_with_exact_accounting() {
    let input = traffic();
    let plain = common::stdout_docs(&process(&input, &[]));
    let out = process(&input, &[("AGGREGATE", "flows")]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let docs = common::stdout_docs(&out);
    let records = input.lines().count();
    assert_eq!(plain.len(), records);
    // One document per flow: 4 clients x 5 connections x 2 directions + 4 DNS flows,
    // and every REJECT alone.
    assert_eq!(docs.len(), 4 * 5 * 2 + 4 + 3, "{stderr}");
    assert!(
        stderr.contains(&format!("read={records} forwarded={records} filtered=0")),
        "{stderr}"
    );
    common::assert_accounting(&stderr);
    assert_eq!(totals(&docs), totals(&plain));
    let represented: u64 = docs
        .iter()
        .map(|d| {
            d["aws"]["vpcflow"]["aggregate"]["records"]
                .as_u64()
                .unwrap_or(1)
        })
        .sum();
    assert_eq!(represented, records as u64);
    let flow = docs
        .iter()
        .find(|d| d["source"]["port"] == 40000 && d["destination"]["port"] == 443)
        .unwrap();
    assert_eq!(flow["aws"]["vpcflow"]["aggregate"]["records"], 3);
    assert_eq!(flow["source"]["packets"], 30);
    assert_eq!(flow["source"]["bytes"], 3000);
    assert_eq!(flow["network"]["bytes"], 3000);
    assert_eq!(flow["event"]["start"], "2023-11-14T22:13:20Z");
    assert_eq!(flow["event"]["end"], "2023-11-14T22:16:20Z");
    assert_eq!(flow["@timestamp"], "2023-11-14T22:16:20Z");
    let rejects: Vec<&Value> = docs
        .iter()
        .filter(|d| d["event"]["action"] == "reject")
        .collect();
    assert_eq!(rejects.len(), 3);
    assert!(rejects
        .iter()
        .all(|d| d["aws"]["vpcflow"].get("aggregate").is_none()));
    // A unit read again gives the same documents, ids included.
    assert_eq!(
        common::stdout_docs(&process(&input, &[("AGGREGATE", "flows")])),
        docs
    );
}

#[test]
fn conversations_fold_the_client_port_the_service_being_the_lower_port() {
    let input = traffic();
    let plain = common::stdout_docs(&process(&input, &[]));
    let out = process(&input, &[("AGGREGATE", "conversations")]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let docs = common::stdout_docs(&out);
    // Per client: one conversation with 443 (both directions), one DNS; REJECTs alone.
    assert_eq!(docs.len(), 4 * 2 + 3, "{docs:#?}");
    common::assert_accounting(&stderr);
    assert_eq!(totals(&docs), totals(&plain));
    let to_service = docs
        .iter()
        .find(|d| d["source"]["ip"] == "10.0.0.1" && d["destination"]["port"] == 443)
        .unwrap();
    let aggregate = &to_service["aws"]["vpcflow"]["aggregate"];
    assert_eq!(aggregate["records"], 30);
    assert_eq!(aggregate["client_ports"], 5);
    assert!(to_service["source"].get("port").is_none());
    // What the client sent, what came back, and both.
    assert_eq!(to_service["source"]["packets"], 3 * 60);
    assert_eq!(to_service["source"]["bytes"], 15 * 1000);
    assert_eq!(to_service["destination"]["packets"], 15 * 8);
    assert_eq!(to_service["destination"]["bytes"], 15 * 4000);
    assert_eq!(to_service["network"]["bytes"], 15 * 5000);
    assert_eq!(to_service["network"]["packets"], 3 * 60 + 15 * 8);
    // No document faces from the service: the replies joined their requests.
    assert!(!docs.iter().any(|d| d["source"]["port"] == 443));
}

#[test]
fn connections_join_each_flow_and_its_replies_facing_from_the_client() {
    let mut input = String::new();
    for window in 0..2u64 {
        let start = 1_700_000_000 + window * 60;
        // The reply comes first: the document still faces from the client.
        input += &line(
            "10.1.0.9", "10.0.0.1", 443, 40001, 6, 8, 4000, start, "ACCEPT",
        );
        input += &line(
            "10.0.0.1", "10.1.0.9", 40001, 443, 6, 10, 1000, start, "ACCEPT",
        );
        // NTP: equal ports, the two directions still one connection.
        for (src, dst) in [
            ("10.0.0.1", "169.254.169.123"),
            ("169.254.169.123", "10.0.0.1"),
        ] {
            input += &line(src, dst, 123, 123, 17, 1, 76, start, "ACCEPT");
        }
        // ICMP echo request and reply: types differ, so no mirror: two flows.
        input += &line("10.0.0.1", "10.1.0.9", 8, 0, 1, 1, 84, start, "ACCEPT");
        input += &line("10.1.0.9", "10.0.0.1", 0, 0, 1, 1, 84, start, "ACCEPT");
    }
    // A request whose reply never came: a connection of one direction.
    input += &line(
        "10.0.0.1",
        "10.1.0.9",
        40002,
        443,
        6,
        3,
        180,
        1_700_000_000,
        "ACCEPT",
    );
    let plain = common::stdout_docs(&process(&input, &[]));
    let docs = aggregated(&input, &[("AGGREGATE", "connections")]);
    assert_eq!(docs.len(), 5, "{docs:#?}");
    assert_eq!(totals(&docs), totals(&plain));
    let https = docs
        .iter()
        .find(|d| d["destination"]["port"] == 443 && d["source"]["port"] == 40001)
        .unwrap();
    assert_eq!(https["source"]["ip"], "10.0.0.1");
    assert_eq!(https["aws"]["vpcflow"]["aggregate"]["records"], 4);
    assert!(https["aws"]["vpcflow"]["aggregate"]
        .get("client_ports")
        .is_none());
    assert_eq!(https["source"]["bytes"], 2000);
    assert_eq!(https["destination"]["bytes"], 8000);
    assert_eq!(https["network"]["bytes"], 10000);
    assert_eq!(https["event"]["end"], "2023-11-14T22:15:20Z");
    let ntp = docs.iter().find(|d| d["source"]["port"] == 123).unwrap();
    assert_eq!(ntp["aws"]["vpcflow"]["aggregate"]["records"], 4);
    assert_eq!(ntp["destination"]["packets"], 2);
    let icmp: Vec<&Value> = docs
        .iter()
        .filter(|d| d["network"]["iana_number"] == "1")
        .collect();
    assert_eq!(icmp.len(), 2);
    assert!(icmp.iter().all(|d| d["destination"].get("bytes").is_none()));
    let alone = docs.iter().find(|d| d["source"]["port"] == 40002).unwrap();
    assert!(alone["aws"]["vpcflow"].get("aggregate").is_none());
    assert!(alone["destination"].get("bytes").is_none());
    // The same unit again gives the same documents.
    assert_eq!(
        common::stdout_docs(&process(&input, &[("AGGREGATE", "connections")])),
        docs
    );
}

#[test]
fn replies_join_only_where_every_other_column_mirrors() {
    // A format with flow-direction and tcp-flags: a reply's direction is the other, so
    // it mirrors; flags describe one direction, so differing flags keep them apart.
    let header = "version interface-id srcaddr dstaddr srcport dstport protocol packets bytes start end action log-status flow-direction tcp-flags\n";
    let rec = |src: &str, dst: &str, sport: u32, dport: u32, bytes: u64, dir: &str, flags: u32| {
        format!("5 eni-1 {src} {dst} {sport} {dport} 6 2 {bytes} 1700000000 1700000060 ACCEPT OK {dir} {flags}\n")
    };
    let mut input = header.to_string();
    input += &rec("10.0.0.1", "10.1.0.9", 40001, 443, 100, "egress", 3);
    input += &rec("10.1.0.9", "10.0.0.1", 443, 40001, 900, "ingress", 3);
    input += &rec("10.0.0.1", "10.1.0.9", 40002, 443, 100, "egress", 2);
    input += &rec("10.1.0.9", "10.0.0.1", 443, 40002, 900, "ingress", 18);
    // The same direction on both: not a mirror.
    input += &rec("10.0.0.1", "10.1.0.9", 40003, 443, 100, "egress", 3);
    input += &rec("10.1.0.9", "10.0.0.1", 443, 40003, 900, "egress", 3);
    let docs = common::stdout_docs(&process(&input, &[("AGGREGATE", "connections")]));
    assert_eq!(docs.len(), 1 + 2 + 2, "{docs:#?}");
    let joined = docs.iter().find(|d| d["source"]["port"] == 40001).unwrap();
    assert_eq!(joined["network"]["direction"], "egress");
    assert_eq!(joined["destination"]["bytes"], 900);
    assert!(docs
        .iter()
        .filter(|d| d["source"]["port"] != 40001 && d["destination"]["port"] != 40001)
        .all(|d| d["aws"]["vpcflow"].get("aggregate").is_none()));
}

#[test]
fn conversations_where_limits_the_folded_client_ports() {
    let mut input = traffic();
    input += &line(
        "81.2.69.1",
        "10.1.0.9",
        50001,
        443,
        6,
        3,
        300,
        1_700_000_000,
        "ACCEPT",
    );
    input += &line(
        "81.2.69.1",
        "10.1.0.9",
        50002,
        443,
        6,
        3,
        300,
        1_700_000_000,
        "ACCEPT",
    );
    let out = process(
        &input,
        &[
            ("AGGREGATE", "conversations"),
            ("AGGREGATE_CONVERSATIONS_WHERE", "srcaddr in \"10.0.0.0/8\""),
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let docs = common::stdout_docs(&out);
    // Internal: conversations; the internet client's two connections stay two.
    assert_eq!(docs.len(), 4 * 2 + 3 + 2, "{docs:#?}");
    assert_eq!(
        totals(&docs),
        totals(&common::stdout_docs(&process(&input, &[])))
    );
    assert_eq!(
        docs.iter()
            .filter(|d| d["source"]["ip"] == "81.2.69.1" && d["source"]["port"].is_u64())
            .count(),
        2
    );
}

#[test]
fn equal_ports_and_portless_protocols_fold_only_the_counters() {
    let mut input = String::new();
    for i in 0..3 {
        // NTP (123 to 123), an ICMP record without ports, an ICMP echo (type 8).
        for (sport, dport, proto, bytes) in [(123, 123, 17, 76), (0, 0, 1, 84), (8, 0, 1, 84)] {
            input += &line(
                "10.0.0.1",
                "10.0.0.2",
                sport,
                dport,
                proto,
                1,
                bytes,
                1_700_000_000 + i * 60,
                "ACCEPT",
            );
        }
    }
    let docs = common::stdout_docs(&process(&input, &[("AGGREGATE", "conversations")]));
    assert_eq!(docs.len(), 3, "{docs:#?}");
    for d in &docs {
        assert_eq!(d["aws"]["vpcflow"]["aggregate"]["records"], 3);
        assert!(d["source"].get("port").is_some());
    }
    let ntp = docs.iter().find(|d| d["source"]["port"] == 123).unwrap();
    assert_eq!(ntp["aws"]["vpcflow"]["aggregate"]["client_ports"], 0);
}

#[test]
fn rejects_fold_only_when_asked_and_threat_matches_never() {
    let dir = common::scratch_dir();
    std::fs::create_dir_all(dir).unwrap();
    let list = dir.join("threats.txt");
    std::fs::write(&list, "198.51.100.7\n").unwrap();
    let mut input = String::new();
    for i in 0..4 {
        input += &line(
            "203.0.113.5",
            "10.1.0.9",
            51000 + i,
            22,
            6,
            1,
            40,
            1_700_000_000,
            "REJECT",
        );
        input += &line(
            "198.51.100.7",
            "10.1.0.9",
            52000 + i,
            22,
            6,
            1,
            40,
            1_700_000_000,
            "REJECT",
        );
    }
    let docs = common::stdout_docs(&process(
        &input,
        &[
            ("AGGREGATE", "conversations"),
            ("AGGREGATE_ACTIONS", "ACCEPT,REJECT"),
            ("THREAT_INTEL_URI", list.to_str().unwrap()),
        ],
    ));
    // The scanner's REJECTs fold into one; the listed address's stay four documents.
    assert_eq!(docs.len(), 5, "{docs:#?}");
    let folded: Vec<&Value> = docs
        .iter()
        .filter(|d| d["source"]["ip"] == "203.0.113.5")
        .collect();
    assert_eq!(folded.len(), 1);
    assert_eq!(folded[0]["aws"]["vpcflow"]["aggregate"]["records"], 4);
    assert_eq!(
        folded[0]["aws"]["vpcflow"]["reject_attribution"],
        "security_group_or_network_acl"
    );
    let matched: Vec<&Value> = docs
        .iter()
        .filter(|d| d["source"]["ip"] == "198.51.100.7")
        .collect();
    assert_eq!(matched.len(), 4);
    assert!(matched
        .iter()
        .all(|d| d["threat"]["enrichments"].is_array()));
    assert!(matched
        .iter()
        .all(|d| d["aws"]["vpcflow"].get("aggregate").is_none()));
}

#[test]
fn a_full_table_lets_its_aggregates_go_and_counts_stay_exact() {
    use flowlog_forwarder::aggregate::MAX_AGGREGATES;
    let flows = MAX_AGGREGATES + 1000;
    let mut input = String::with_capacity(flows * 2 * 100);
    for round in 0..2 {
        for i in 0..flows {
            input += &line(
                &format!("10.{}.{}.{}", i >> 16, (i >> 8) & 255, i & 255),
                "10.255.0.1",
                40000,
                443,
                6,
                1,
                60,
                1_700_000_000 + round * 60,
                "ACCEPT",
            );
        }
    }
    let out = process(&input, &[("AGGREGATE", "flows")]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let records = 2 * flows;
    assert!(
        stderr.contains(&format!("read={records} forwarded={records}")),
        "{stderr}"
    );
    let docs = common::stdout_docs(&out);
    let represented: u64 = docs
        .iter()
        .map(|d| {
            d["aws"]["vpcflow"]["aggregate"]["records"]
                .as_u64()
                .unwrap_or(1)
        })
        .sum();
    assert_eq!(represented, records as u64);
    // Each table went when full (by count or by bytes), before the second round's records
    // of its flows came: in this order nothing folds, and nothing is lost either.
    assert_eq!(docs.len(), records);
}

#[test]
fn a_failed_delivery_fails_the_records_its_documents_stand_for() {
    let input = traffic();
    let out = process(
        &input,
        &[
            ("AGGREGATE", "flows"),
            ("DESTINATION_URL", "http://127.0.0.1:9/ingest"),
            ("MAX_RETRIES", "0"),
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let records = input.lines().count();
    assert!(
        stderr.contains(&format!(
            "read={records} forwarded=0 filtered=0 malformed=0 failed={records}"
        )),
        "{stderr}"
    );
}

#[test]
fn settings_that_cannot_hold_stop_the_start() {
    for (env, says) in [
        (vec![("AGGREGATE", "sessions")], "AGGREGATE"),
        (
            vec![("AGGREGATE", "flows"), ("AGGREGATE_ACTIONS", "DROP")],
            "AGGREGATE_ACTIONS",
        ),
        (
            vec![("AGGREGATE", "flows"), ("OUTPUT_SCHEMA", "raw")],
            "AGGREGATE",
        ),
        (
            vec![
                ("AGGREGATE", "connections"),
                ("AGGREGATE_CONVERSATIONS_WHERE", "dstport == 443"),
            ],
            "AGGREGATE_CONVERSATIONS_WHERE",
        ),
        (
            vec![
                ("AGGREGATE", "conversations"),
                ("AGGREGATE_CONVERSATIONS_WHERE", "dstport == \"x\""),
            ],
            "AGGREGATE_CONVERSATIONS_WHERE",
        ),
    ] {
        let out = process("", &env);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains(says), "{stderr}");
    }
}

#[test]
fn ocsf_events_of_aggregates_carry_the_count() {
    let docs = common::stdout_docs(&process(
        &traffic(),
        &[("AGGREGATE", "conversations"), ("OUTPUT_SCHEMA", "ocsf")],
    ));
    let event = docs
        .iter()
        .find(|d| d["src_endpoint"]["ip"] == "10.0.0.1" && d["dst_endpoint"]["port"] == 443)
        .unwrap();
    assert_eq!(event["count"], 30);
    assert_eq!(event["unmapped"]["aggregate_client_ports"], 5);
    // Out: what the client sent; in: what came back.
    assert_eq!(event["traffic"]["bytes_out"], 15 * 1000);
    assert_eq!(event["traffic"]["bytes_in"], 15 * 4000);
    assert_eq!(event["traffic"]["bytes"], 15 * 5000);
    assert_eq!(event["traffic"]["packets_in"], 15 * 8);
    assert_eq!(event["traffic"]["packets"], 3 * 60 + 15 * 8);
}

#[test]
fn the_security_profile_folds_internal_accepts_and_keeps_the_rest() {
    let mut input = traffic();
    for i in 0..3u32 {
        // Internet clients to the load balancer, accepted, and the replies: each
        // connection one document, its client port kept.
        input += &line(
            "81.2.69.1",
            "10.0.0.5",
            50000 + i,
            443,
            6,
            3,
            300,
            1_700_000_000,
            "ACCEPT",
        );
        input += &line(
            "10.0.0.5",
            "81.2.69.1",
            443,
            50000 + i,
            6,
            2,
            900,
            1_700_000_000,
            "ACCEPT",
        );
    }
    input += "2 123456789012 eni-1 - - - - - - - 1700000000 1700000060 - NODATA\n";
    let records = input.lines().count();
    let out = process(&input, &[("PROFILE", "security")]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    common::assert_accounting(&stderr);
    assert!(
        stderr.contains(&format!(
            "read={records} forwarded={} filtered=1",
            records - 1
        )),
        "{stderr}"
    );
    let docs = common::stdout_docs(&out);
    // Internal conversations folded (as `conversations`), 3 REJECTs alone, 3 external
    // connections, the NODATA record dropped.
    assert_eq!(docs.len(), 4 * 2 + 3 + 3, "{docs:#?}");
    assert_eq!(
        totals(&docs),
        totals(&common::stdout_docs(&process(&input, &[])))
    );
    let external: Vec<&Value> = docs
        .iter()
        .filter(|d| d["source"]["ip"] == "81.2.69.1")
        .collect();
    assert_eq!(external.len(), 3);
    for d in external {
        assert_eq!(d["aws"]["vpcflow"]["aggregate"]["records"], 2);
        assert!(d["aws"]["vpcflow"]["aggregate"]
            .get("client_ports")
            .is_none());
        assert!(d["source"]["port"].as_u64().unwrap() >= 50000);
        assert_eq!(d["destination"]["bytes"], 900);
    }
    // An explicit setting wins over the profile's.
    let unfolded = common::stdout_docs(&process(
        &input,
        &[("PROFILE", "security"), ("AGGREGATE", "off")],
    ));
    assert_eq!(unfolded.len(), records - 1);
    let out = process(&input, &[("PROFILE", "compliance")]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn fields_exclude_leaves_members_out_but_never_ids_or_time() {
    let input = line(
        "10.0.0.1",
        "8.8.8.8",
        40000,
        53,
        17,
        1,
        70,
        1_700_000_000,
        "ACCEPT",
    );
    let out = process(
        &input,
        &[("FIELDS_EXCLUDE", "related.*, source.address, aws.vpcflow.*")],
    );
    assert!(out.status.success());
    let doc = &common::stdout_docs(&out)[0];
    assert!(doc.get("related").is_none());
    assert!(doc["source"].get("address").is_none());
    assert_eq!(doc["source"]["ip"], "10.0.0.1");
    assert!(doc["aws"].get("vpcflow").is_none() && doc.get("aws").is_none());
    assert!(doc["event"]["id"].is_string() && doc["@timestamp"].is_string());
    for (rule, schema) in [
        ("event.*", "ecs"),
        ("@timestamp", "ecs"),
        ("metadata.uid", "ocsf"),
    ] {
        let out = process(
            &input,
            &[("FIELDS_EXCLUDE", rule), ("OUTPUT_SCHEMA", schema)],
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(
            stderr.contains("FIELDS_EXCLUDE") && stderr.contains("every document keeps"),
            "{stderr}"
        );
    }
}

/// JSON records (and Parquet rows) are kept as their values joined by spaces, read
/// again when others fold into them; a value holding a space keeps its record apart.
#[test]
fn json_records_fold_and_a_value_with_a_space_stays_alone() {
    let record = |sport: u32, bytes: u32, reason: &str| {
        format!(
            r#"{{"version": 5, "account-id": "123456789012", "interface-id": "eni-1", "srcaddr": "10.0.0.1", "dstaddr": "10.1.0.9", "srcport": {sport}, "dstport": 443, "protocol": 6, "packets": 1, "bytes": {bytes}, "start": 1700000000, "end": 1700000060, "action": "ACCEPT", "log-status": "OK", "ecs-service-name": "{reason}"}}"#
        ) + "\n"
    };
    let input = record(40000, 100, "web")
        + &record(40001, 200, "web")
        + &record(40002, 300, "my service")
        + &record(40003, 400, "my service")
        + &record(40004, 500, "");
    let docs = aggregated(&input, &[("AGGREGATE", "conversations")]);
    // Web's two records fold; each record with a space or an empty value stays alone.
    assert_eq!(docs.len(), 4, "{docs:#?}");
    let web = docs.iter().find(|d| d["service"]["name"] == "web").unwrap();
    assert_eq!(web["aws"]["vpcflow"]["aggregate"]["records"], 2);
    assert_eq!(web["source"]["bytes"], 300);
    assert_eq!(
        docs.iter()
            .filter(|d| d["service"]["name"] == "my service")
            .count(),
        2
    );
    // A record alone, written when its aggregate leaves, keeps its own input.
    let out = process(
        &record(40000, 100, "web"),
        &[("AGGREGATE", "flows"), ("INCLUDE_ORIGINAL", "true")],
    );
    let docs = common::stdout_docs(&out);
    assert_eq!(
        docs[0]["event"]["original"],
        record(40000, 100, "web").trim_end()
    );
}

#[test]
fn lines_fold_and_join_whatever_whitespace_separates_their_columns() {
    let request = line(
        "10.0.0.1",
        "10.1.0.9",
        40001,
        443,
        6,
        2,
        100,
        1_700_000_000,
        "ACCEPT",
    );
    let reply = line(
        "10.1.0.9",
        "10.0.0.1",
        443,
        40001,
        6,
        3,
        900,
        1_700_000_000,
        "ACCEPT",
    );
    let tabs = |l: &str| l.replace(' ', "\t");
    let runs = |l: &str| format!("  {}", l.replace(' ', "   "));
    // A connection's request three times and its reply twice: as AWS writes them and
    // with runs of spaces and a leading space; then all with tabs.
    let spaced = [
        request.clone(),
        runs(&request),
        request.clone(),
        runs(&reply),
        reply.clone(),
    ];
    let tabbed = [
        tabs(&request),
        tabs(&request),
        tabs(&request),
        tabs(&reply),
        tabs(&reply),
    ];
    for input in [spaced.concat(), tabbed.concat()] {
        for mode in ["flows", "connections", "conversations"] {
            let docs = aggregated(&input, &[("AGGREGATE", mode)]);
            let requests = docs
                .iter()
                .find(|d| d["source"]["ip"] == "10.0.0.1")
                .unwrap();
            assert_eq!(requests["source"]["bytes"], 300);
            if mode == "flows" {
                // Each direction folds alone.
                assert_eq!(docs.len(), 2, "{docs:#?}");
                assert_eq!(requests["aws"]["vpcflow"]["aggregate"]["records"], 3);
            } else {
                // The replies join their requests.
                assert_eq!(docs.len(), 1, "{mode}: {docs:#?}");
                assert_eq!(requests["aws"]["vpcflow"]["aggregate"]["records"], 5);
                assert_eq!(requests["destination"]["bytes"], 1800);
            }
        }
    }
    // Lines of one input that mix tabs and spaces fold less, but their sums stay exact.
    let mixed = [request.clone(), tabs(&request), tabs(&reply), reply].concat();
    let plain = common::stdout_docs(&process(&mixed, &[]));
    for mode in ["flows", "connections", "conversations"] {
        let docs = aggregated(&mixed, &[("AGGREGATE", mode)]);
        assert_eq!(totals(&docs), totals(&plain), "{mode}");
    }
}

#[test]
fn units_one_after_another_take_over_the_table_and_stay_exact() {
    // Every flow twice, so each folds two records. The first input is cut; each unit
    // after it takes over the memory of the table before.
    let twice = |eni: &str| {
        let flows = std::fs::read_to_string(common::distinct_flows_file("held.log", 4000)).unwrap();
        let records: String = flows.lines().skip(1).map(|l| format!("{l}\n")).collect();
        flows.replace("eni-1", eni) + &records.replace("eni-1", eni)
    };
    let full = common::gzip(twice("eni-1").as_bytes());
    let cut = common::scratch_dir().join("held-cut.log.gz");
    std::fs::write(&cut, &full[..full.len() * 3 / 4]).unwrap();
    let good = common::input_file("held-good.log", &twice("eni-2"));
    let mut cmd = Command::new(BIN);
    cmd.arg("process").arg(&cut).args([&good, &good, &good]);
    common::delivery_env(&mut cmd, &[("AGGREGATE", "flows")]);
    let out = cmd.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("input_errors=1"), "{stderr}");
    common::assert_accounting(&stderr);
    let docs: Vec<Value> = common::stdout_docs(&out)
        .into_iter()
        .filter(|d| d.to_string().contains("eni-2"))
        .collect();
    assert_eq!(docs.len(), 3 * 4000);
    assert!(docs
        .iter()
        .all(|d| d["aws"]["vpcflow"]["aggregate"]["records"] == 2));
    let bytes: u64 = docs
        .iter()
        .map(|d| d["source"]["bytes"].as_u64().unwrap())
        .sum();
    assert_eq!(bytes, 3 * 2 * (1..=4000u64).map(|i| i * 60).sum::<u64>());
}

/// A record of a small world (two interfaces, three addresses, a few ports), so that
/// random records repeat, mirror each other and fold: (interface, client, service,
/// client port, service port, protocol, reply, packets, bytes, window, reject,
/// tcp flags).
type Small = (u8, u8, u8, u8, u8, u8, bool, u16, u32, u8, bool, u8);

fn small_record(r: &Small, v5: bool) -> String {
    let (eni, a, b, cport, sport, proto, reply, packets, bytes, window, reject, flags) = *r;
    let addresses = ["10.0.0.1", "10.0.0.2", "203.0.113.9"];
    let (client, service) = (addresses[a as usize % 3], addresses[b as usize % 3]);
    let (cport, sport) = (
        [40000, 40001, 123][cport as usize % 3],
        [443, 53, 123][sport as usize % 3],
    );
    let proto = [6, 17, 1][proto as usize % 3];
    let (src, dst, sp, dp) = if reply {
        (service, client, sport, cport)
    } else {
        (client, service, cport, sport)
    };
    let start = 1_700_000_000 + u64::from(window % 3) * 60;
    let action = if reject { "REJECT" } else { "ACCEPT" };
    let packets = u64::from(packets) + 1;
    if v5 {
        let direction = if reply { "egress" } else { "ingress" };
        let flags = [2, 18, 19][flags as usize % 3];
        format!(
            "5 eni-{eni} {src} {dst} {sp} {dp} {proto} {packets} {bytes} {start} {} {action} OK {direction} {flags}\n",
            start + 60
        )
    } else {
        format!(
            "2 123456789012 eni-{eni} {src} {dst} {sp} {dp} {proto} {packets} {bytes} {start} {} {action} OK\n",
            start + 60
        )
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 48, ..Default::default() })]

    /// Whatever the records, every mode keeps the accounting whole (the records the
    /// documents stand for are the records read, less those filtered), the bytes and
    /// packets of each direction of each (source, destination, service port, protocol,
    /// action) exactly, and gives the same documents when the unit is read again.
    #[test]
    fn random_records_fold_without_losing_a_byte(
        records in proptest::collection::vec(
            (0u8..2, 0u8..3, 0u8..3, 0u8..3, 0u8..3, 0u8..3, proptest::bool::ANY, 0u16..200, 40u32..100_000, 0u8..3, proptest::bool::weighted(0.2), 0u8..3),
            1..120,
        ),
        v5 in proptest::bool::ANY,
        nodata in proptest::bool::ANY,
        // How each record's columns are separated: mostly single spaces, some tabs,
        // some runs of spaces after a leading one.
        separators in proptest::collection::vec(0u8..6, 1..8),
    ) {
        let mut input = String::new();
        if v5 {
            input += "version interface-id srcaddr dstaddr srcport dstport protocol packets bytes start end action log-status flow-direction tcp-flags\n";
        }
        for (i, r) in records.iter().enumerate() {
            let line = small_record(r, v5);
            input += &match separators[i % separators.len()] {
                4 => line.replace(' ', "\t"),
                5 => format!(" {}", line.replace(' ', "  ")),
                _ => line,
            };
        }
        if nodata && !v5 {
            input += "2 123456789012 eni-1 - - - - - - - 1700000000 1700000060 - NODATA\n";
        }
        let limits = flowlog_forwarder::source::Limits::default();
        let (plain, _) = common::run_bytes(&common::settings(&[]), input.clone().into_bytes(), limits);
        for (mode, actions) in [("flows", "ACCEPT"), ("connections", "ACCEPT"), ("conversations", "ACCEPT,REJECT")] {
            let settings = common::settings(&[("AGGREGATE", mode), ("AGGREGATE_ACTIONS", actions)]);
            let (docs, counts) = common::run_bytes(&settings, input.clone().into_bytes(), limits);
            let represented: u64 = docs
                .iter()
                .map(|d| d["aws"]["vpcflow"]["aggregate"]["records"].as_u64().unwrap_or(1))
                .sum();
            proptest::prop_assert_eq!(represented, counts.read - counts.filtered, "{}", mode);
            proptest::prop_assert_eq!(counts.forwarded, counts.read - counts.filtered, "{}", mode);
            proptest::prop_assert_eq!(totals(&docs), totals(&plain), "{}", mode);
            let (again, _) = common::run_bytes(&settings, input.clone().into_bytes(), limits);
            proptest::prop_assert_eq!(again, docs, "{}", mode);
        }
    }
}
