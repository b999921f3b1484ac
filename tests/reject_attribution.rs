//! REJECT attribution (README, Output, `aws.vpcflow.reject_attribution`):
//! a REJECT whose accepted mirror flow (same interface, endpoints swapped, same
//! protocol, overlapping window) is in the same unit was rejected by a network ACL;
//! any other REJECT by a security group or a network ACL. Both orders, ICMP pairing,
//! other interfaces, windows, the cap, OCSF, Parquet, and REJECT_ATTRIBUTION=false.

mod common;

use common::{run, settings};
use flowlog_forwarder::attribution::RejectAttribution;
use serde_json::Value;

/// The AWS documentation's pair (tests/data/aws-doc-examples.txt): an accepted ping and its denied
/// response.
const SG_NACL_1: &str = "2 123456789010 eni-1235b8ca123456789 203.0.113.12 172.31.16.139 0 0 1 4 336 1432917027 1432917142 ACCEPT OK";
const SG_NACL_2: &str = "2 123456789010 eni-1235b8ca123456789 172.31.16.139 203.0.113.12 0 0 1 4 336 1432917094 1432917142 REJECT OK";
/// The documentation's lone rejected RDP connection.
const REJECTED_1: &str = "2 123456789010 eni-1235b8ca123456789 172.31.9.69 172.31.9.12 49761 3389 6 20 4249 1418530010 1418530070 REJECT OK";

fn docs(lines: &[&str], vars: &[(&str, &str)]) -> Vec<Value> {
    run(&settings(vars), &lines.join("\n")).0
}

fn rejects(docs: &[Value]) -> Vec<&Value> {
    docs.iter()
        .filter(|d| d["aws"]["vpcflow"]["action"] == "REJECT")
        .collect()
}

fn attribution(doc: &Value) -> &str {
    doc["aws"]["vpcflow"]["reject_attribution"]
        .as_str()
        .unwrap_or("none")
}

#[test]
fn the_documentation_pair_is_a_network_acl_in_either_order() {
    for lines in [[SG_NACL_1, SG_NACL_2], [SG_NACL_2, SG_NACL_1]] {
        let all = docs(&lines, &[]);
        assert_eq!(all.len(), 2);
        let reject = rejects(&all)[0];
        assert_eq!(attribution(reject), "network_acl", "{lines:?}");
        assert!(reject["event"]["reason"]
            .as_str()
            .unwrap()
            .contains("network ACL"));
        let accept = all
            .iter()
            .find(|d| d["event"]["action"] == "accept")
            .unwrap();
        assert!(accept["aws"]["vpcflow"].get("reject_attribution").is_none());
    }
}

#[test]
fn a_lone_reject_is_a_security_group_or_a_network_acl() {
    let all = docs(&[REJECTED_1], &[]);
    assert_eq!(attribution(&all[0]), "security_group_or_network_acl");
    assert!(all[0]["event"].get("reason").is_none());
    // Its own reject-reason (v8) stays the reason.
    let v8 = "version account-id interface-id srcaddr dstaddr srcport dstport protocol packets bytes start end action log-status reject-reason";
    let all = docs(
        &[
            "8 1 eni-1 10.0.0.2 10.0.0.1 80 1000 6 1 1 100 160 ACCEPT OK -",
            "8 1 eni-1 10.0.0.1 10.0.0.2 1000 80 6 1 1 100 160 REJECT OK BPA",
        ],
        &[("LOG_FORMAT", v8)],
    );
    let reject = rejects(&all)[0];
    assert_eq!(attribution(reject), "block_public_access");
    assert_eq!(reject["event"]["reason"], "BPA");
}

#[test]
fn mirrors_need_the_same_interface_swapped_ports_and_overlapping_windows() {
    let accept = "2 1 eni-a 10.0.0.2 10.0.0.1 443 50000 6 1 1 1000 1060 ACCEPT OK";
    let cases = [
        (
            "mirror on the same interface",
            "2 1 eni-a 10.0.0.1 10.0.0.2 50000 443 6 1 1 1000 1060 REJECT OK",
            "network_acl",
        ),
        (
            "another interface",
            "2 1 eni-b 10.0.0.1 10.0.0.2 50000 443 6 1 1 1000 1060 REJECT OK",
            "security_group_or_network_acl",
        ),
        (
            "another port",
            "2 1 eni-a 10.0.0.1 10.0.0.2 50001 443 6 1 1 1000 1060 REJECT OK",
            "security_group_or_network_acl",
        ),
        (
            "the same direction",
            "2 1 eni-a 10.0.0.2 10.0.0.1 443 50000 6 1 1 1000 1060 REJECT OK",
            "security_group_or_network_acl",
        ),
        (
            "another protocol",
            "2 1 eni-a 10.0.0.1 10.0.0.2 50000 443 17 1 1 1000 1060 REJECT OK",
            "security_group_or_network_acl",
        ),
        (
            "a later window",
            "2 1 eni-a 10.0.0.1 10.0.0.2 50000 443 6 1 1 1061 1120 REJECT OK",
            "security_group_or_network_acl",
        ),
        (
            "an overlapping window",
            "2 1 eni-a 10.0.0.1 10.0.0.2 50000 443 6 1 1 1060 1120 REJECT OK",
            "network_acl",
        ),
    ];
    for (what, reject, expected) in cases {
        for lines in [[accept, reject], [reject, accept]] {
            let all = docs(&lines, &[]);
            assert_eq!(attribution(rejects(&all)[0]), expected, "{what}: {lines:?}");
        }
    }
    // Mixed interfaces in one unit: each REJECT is decided on its own interface.
    let all = docs(
        &[
            "2 1 eni-b 10.0.0.1 10.0.0.2 50000 443 6 1 1 1000 1060 REJECT OK",
            accept,
            "2 1 eni-a 10.0.0.1 10.0.0.2 50000 443 6 1 1 1000 1060 REJECT OK",
        ],
        &[],
    );
    let by_eni: Vec<(&str, &str)> = rejects(&all)
        .iter()
        .map(|d| {
            (
                d["aws"]["vpcflow"]["interface_id"].as_str().unwrap(),
                attribution(d),
            )
        })
        .collect();
    assert!(
        by_eni.contains(&("eni-b", "security_group_or_network_acl")),
        "{by_eni:?}"
    );
    assert!(by_eni.contains(&("eni-a", "network_acl")), "{by_eni:?}");
}

#[test]
fn icmp_pairs_echo_request_with_echo_reply() {
    let request = "2 1 eni-a 10.0.0.9 10.0.0.1 8 0 1 1 84 1000 1060 ACCEPT OK";
    let reply = "2 1 eni-a 10.0.0.1 10.0.0.9 0 0 1 1 84 1000 1060 REJECT OK";
    let unreachable = "2 1 eni-a 10.0.0.1 10.0.0.9 3 1 1 1 84 1000 1060 REJECT OK";
    for lines in [[request, reply], [reply, request]] {
        assert_eq!(attribution(rejects(&docs(&lines, &[]))[0]), "network_acl");
    }
    let all = docs(&[request, unreachable], &[]);
    assert_eq!(
        attribution(rejects(&all)[0]),
        "security_group_or_network_acl"
    );
    let v6_request = "2 1 eni-a 2001:db8::9 2001:db8::1 128 0 58 1 84 1000 1060 ACCEPT OK";
    let v6_reply = "2 1 eni-a 2001:db8::1 2001:db8::9 129 0 58 1 84 1000 1060 REJECT OK";
    assert_eq!(
        attribution(rejects(&docs(&[v6_reply, v6_request], &[]))[0]),
        "network_acl"
    );
}

#[test]
fn off_with_reject_attribution_false_and_nothing_held() {
    let all = docs(&[SG_NACL_2, SG_NACL_1], &[("REJECT_ATTRIBUTION", "false")]);
    assert_eq!(
        all[0]["aws"]["vpcflow"]["action"], "REJECT",
        "in input order"
    );
    assert!(all
        .iter()
        .all(|d| d["aws"]["vpcflow"].get("reject_attribution").is_none()));
    assert!(all.iter().all(|d| d["event"].get("reason").is_none()));
}

#[test]
fn ids_counts_and_filters_are_unchanged_by_holding() {
    let lines = [SG_NACL_2, REJECTED_1, SG_NACL_1];
    let (on, counts) = run(&settings(&[]), &lines.join("\n"));
    let (off, _) = run(
        &settings(&[("REJECT_ATTRIBUTION", "false")]),
        &lines.join("\n"),
    );
    let ids = |docs: &[Value]| {
        let mut ids: Vec<String> = docs.iter().map(|d| d["event"]["id"].to_string()).collect();
        ids.sort();
        ids
    };
    assert_eq!(ids(&on), ids(&off));
    assert_eq!((counts.read, counts.forwarded, counts.filtered), (3, 3, 0));
}

/// Shipping only REJECTs (ACTIONS=REJECT) still sees their accepted mirrors: an
/// accepted record is noted before any filter drops it.
#[test]
fn actions_reject_still_sees_the_accepted_mirrors() {
    let lines = [SG_NACL_2, REJECTED_1, SG_NACL_1];
    for order in [lines, [SG_NACL_1, SG_NACL_2, REJECTED_1]] {
        let (only, counts) = run(&settings(&[("ACTIONS", "REJECT")]), &order.join("\n"));
        assert_eq!((counts.read, counts.filtered, only.len()), (3, 1, 2));
        let got: Vec<(&str, &str)> = only
            .iter()
            .map(|d| (d["source"]["ip"].as_str().unwrap(), attribution(d)))
            .collect();
        assert!(got.contains(&("172.31.16.139", "network_acl")), "{got:?}");
        assert!(
            got.contains(&("172.31.9.69", "security_group_or_network_acl")),
            "{got:?}"
        );
    }
}

/// An accepted flow counts only for a REJECT whose window overlaps that accepted
/// record's own window: a REJECT between two accepted windows of the flow has no
/// mirror.
#[test]
fn only_an_accepted_window_that_overlaps_counts() {
    let first = "2 1 eni-a 10.0.0.2 10.0.0.1 443 50000 6 1 1 1000 1060 ACCEPT OK";
    let second = "2 1 eni-a 10.0.0.2 10.0.0.1 443 50000 6 1 1 1200 1260 ACCEPT OK";
    let between = "2 1 eni-a 10.0.0.1 10.0.0.2 50000 443 6 1 1 1100 1160 REJECT OK";
    let across = "2 1 eni-a 10.0.0.1 10.0.0.2 50000 443 6 1 1 1050 1110 REJECT OK";
    let touching = "2 1 eni-a 10.0.0.1 10.0.0.2 50000 443 6 1 1 1260 1320 REJECT OK";
    for (reject, want) in [
        (between, "security_group_or_network_acl"),
        (across, "network_acl"),
        (touching, "network_acl"),
    ] {
        for lines in [
            [first, second, reject],
            [reject, first, second],
            [first, reject, second],
        ] {
            let all = docs(&lines, &[]);
            assert_eq!(attribution(rejects(&all)[0]), want, "{lines:?}");
        }
    }
}

/// Two ICMP echo requests in opposite directions are two flows; only a reply pairs
/// with a request in the other direction (and AWS's `0 0`, no type recorded, with its
/// like).
#[test]
fn icmp_requests_in_opposite_directions_do_not_pair() {
    let request = "2 1 eni-a 10.0.0.9 10.0.0.1 8 0 1 1 84 1000 1060 ACCEPT OK";
    let other_request = "2 1 eni-a 10.0.0.1 10.0.0.9 8 0 1 1 84 1000 1060 REJECT OK";
    let reply_accepted = "2 1 eni-a 10.0.0.9 10.0.0.1 0 0 1 1 84 1000 1060 ACCEPT OK";
    for lines in [[request, other_request], [other_request, request]] {
        assert_eq!(
            attribution(rejects(&docs(&lines, &[]))[0]),
            "security_group_or_network_acl",
            "{lines:?}"
        );
    }
    // A REJECTed request whose reply was accepted the other way is a NACL's work.
    assert_eq!(
        attribution(rejects(&docs(&[reply_accepted, other_request], &[]))[0]),
        "network_acl"
    );
    let v6_request = "2 1 eni-a 2001:db8::9 2001:db8::1 128 0 58 1 84 1000 1060 ACCEPT OK";
    let v6_other = "2 1 eni-a 2001:db8::1 2001:db8::9 128 0 58 1 84 1000 1060 REJECT OK";
    assert_eq!(
        attribution(rejects(&docs(&[v6_request, v6_other], &[]))[0]),
        "security_group_or_network_acl"
    );
}

/// No claim without the same interface: records without interface-id (absent or
/// `-`), Transit Gateway records, records whose log-status is not OK and records with
/// a reject-reason get no network ACL / security group label; BPA gets its own.
#[test]
fn no_claim_without_an_interface_or_with_a_reason_of_its_own() {
    let absent = "version account-id srcaddr dstaddr srcport dstport protocol packets bytes start end action log-status";
    let all = docs(
        &[
            "2 1 10.0.0.2 10.0.0.1 443 50000 6 1 1 1000 1060 ACCEPT OK",
            "2 1 10.0.0.1 10.0.0.2 50000 443 6 1 1 1000 1060 REJECT OK",
        ],
        &[("LOG_FORMAT", absent)],
    );
    assert_eq!(attribution(rejects(&all)[0]), "none");
    let dash = docs(
        &[
            "2 1 - 10.0.0.2 10.0.0.1 443 50000 6 1 1 1000 1060 ACCEPT OK",
            "2 1 - 10.0.0.1 10.0.0.2 50000 443 6 1 1 1000 1060 REJECT OK",
        ],
        &[],
    );
    assert_eq!(attribution(rejects(&dash)[0]), "none");
    assert!(rejects(&dash)[0]["event"].get("reason").is_none());
    let skipdata = docs(
        &["2 1 eni-a 10.0.0.1 10.0.0.2 50000 443 6 1 1 1000 1060 REJECT SKIPDATA"],
        &[],
    );
    assert_eq!(attribution(rejects(&skipdata)[0]), "none");
    let tgw = "version resource-type account-id tgw-id tgw-attachment-id srcaddr dstaddr srcport dstport protocol packets bytes start end log-status action";
    let all = docs(
        &[
            "6 TransitGateway 1 tgw-1 tgw-attach-1 10.0.0.2 10.0.0.1 443 50000 6 1 1 1000 1060 OK ACCEPT",
            "6 TransitGateway 1 tgw-1 tgw-attach-1 10.0.0.1 10.0.0.2 50000 443 6 1 1 1000 1060 OK REJECT",
        ],
        &[("LOG_FORMAT", tgw)],
    );
    assert_eq!(attribution(rejects(&all)[0]), "none");
    let v8 = "version account-id interface-id srcaddr dstaddr srcport dstport protocol packets bytes start end action log-status reject-reason";
    let accept = "8 1 eni-1 10.0.0.2 10.0.0.1 80 1000 6 1 1 100 160 ACCEPT OK -";
    for (reason, want) in [("BPA", "block_public_access"), ("XYZ", "none")] {
        let reject =
            format!("8 1 eni-1 10.0.0.1 10.0.0.2 1000 80 6 1 1 100 160 REJECT OK {reason}");
        let all = docs(&[accept, &reject], &[("LOG_FORMAT", v8)]);
        let reject = rejects(&all)[0];
        assert_eq!(attribution(reject), want);
        assert_eq!(reject["event"]["reason"], reason);
    }
}

#[test]
fn past_the_cap_every_reject_still_leaves_and_the_overflow_is_counted() {
    // About 80,000 held REJECT records are over the 8 MiB of held text.
    let n = 80_000;
    let mut text = String::new();
    for i in 0..n {
        text.push_str(&format!(
            "2 123456789010 eni-1235b8ca123456789 10.1.{}.{} 10.2.0.1 {} 443 6 1 40 1000 1060 REJECT OK\n",
            i / 250 % 250,
            i % 250,
            1024 + i % 60000
        ));
    }
    // The mirror of the first REJECT comes last: it was released before it came.
    text.push_str("2 123456789010 eni-1235b8ca123456789 10.2.0.1 10.1.0.0 443 1024 6 1 40 1000 1060 ACCEPT OK\n");
    let (all, counts) = run(&settings(&[]), &text);
    assert_eq!(all.len(), n + 1);
    assert_eq!(counts.read, n as u64 + 1);
    assert!(counts.attribution_overflow > 0, "{counts:?}");
    assert!(rejects(&all)
        .iter()
        .all(|d| d["aws"]["vpcflow"]["reject_attribution"].is_string()));
}

#[test]
fn ocsf_events_carry_the_attribution() {
    let all = docs(&[SG_NACL_2, SG_NACL_1], &[("OUTPUT_SCHEMA", "ocsf")]);
    let reject = all.iter().find(|e| e["action_id"] == 2).unwrap();
    assert_eq!(reject["firewall_rule"]["type"], "Network ACL");
    assert_eq!(reject["unmapped"]["reject_attribution"], "network_acl");
    assert!(reject["status_detail"]
        .as_str()
        .unwrap()
        .contains("network ACL"));
    let lone = docs(&[REJECTED_1], &[("OUTPUT_SCHEMA", "ocsf")]).remove(0);
    assert_eq!(
        lone["firewall_rule"]["type"],
        "Security Group or Network ACL"
    );
}

/// A Parquet object's rows are held as their values joined, and read again.
#[test]
fn parquet_rows_are_attributed_too() {
    use common::parquet_file::{parquet_file, V5};
    let default = &V5[..14];
    let rows = vec![
        SG_NACL_2.split(' ').collect::<Vec<_>>(),
        REJECTED_1.split(' ').collect(),
        SG_NACL_1.split(' ').collect(),
    ];
    let bytes = parquet_file(default, &rows, 2);
    let path = common::scratch_dir().join("attribution.parquet");
    std::fs::write(&path, bytes).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_flowlog-forwarder"))
        .args(["process", path.to_str().unwrap()])
        .env_remove("DESTINATION_URL")
        .env_remove("REJECT_ATTRIBUTION")
        .output()
        .unwrap();
    std::fs::remove_file(&path).ok();
    let all: Vec<Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(all.len(), 3, "{}", String::from_utf8_lossy(&out.stderr));
    let got: Vec<(&str, &str)> = rejects(&all)
        .iter()
        .map(|d| (d["source"]["ip"].as_str().unwrap(), attribution(d)))
        .collect();
    assert!(got.contains(&("172.31.16.139", "network_acl")), "{got:?}");
    assert!(
        got.contains(&("172.31.9.69", "security_group_or_network_acl")),
        "{got:?}"
    );
}

/// The documents of `process` on a Parquet object of `rows`, with REJECT_ATTRIBUTION
/// set to `attribution`.
fn parquet_docs(name: &str, rows: &[Vec<&str>], attribution: &str) -> Vec<Value> {
    use common::parquet_file::{parquet_file, V5};
    let path = common::scratch_dir().join(name);
    std::fs::write(&path, parquet_file(&V5[..14], rows, 2)).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_flowlog-forwarder"))
        .args(["process", path.to_str().unwrap()])
        .env_remove("DESTINATION_URL")
        .env("REJECT_ATTRIBUTION", attribution)
        .output()
        .unwrap();
    common::stdout_docs(&out)
}

/// A held Parquet row is released exactly as it was read: a string cell holding a
/// space neither fails nor shifts the fields after it, and the documents with and
/// without attribution differ only in the attribution fields.
#[test]
fn held_parquet_rows_are_released_as_they_were_read() {
    let reject = vec![
        "2",
        "123456789010",
        "eni-1 with space",
        "172.31.9.69",
        "172.31.9.12",
        "49761",
        "3389",
        "6",
        "20",
        "4249",
        "1418530010",
        "1418530070",
        "REJECT",
        "OK",
    ];
    let accept = SG_NACL_1.split(' ').collect::<Vec<_>>();
    let rows = vec![reject, accept];
    let on = parquet_docs("space.parquet", &rows, "true");
    let off = parquet_docs("space.parquet", &rows, "false");
    assert_eq!(on.len(), 2);
    let find = |docs: &[Value]| {
        docs.iter()
            .find(|d| d["event"]["action"] == "reject")
            .cloned()
            .expect("the REJECT document")
    };
    let (mut with, without) = (find(&on), find(&off));
    assert!(!common::is_failure(&with), "{with}");
    assert_eq!(with["aws"]["vpcflow"]["interface_id"], "eni-1 with space");
    assert_eq!(with["destination"]["port"], 3389);
    assert_eq!(attribution(&with), "security_group_or_network_acl");
    with["aws"]["vpcflow"]
        .as_object_mut()
        .unwrap()
        .remove("reject_attribution");
    assert_eq!(with, without);
}

/// Peak RSS of `process FILE > /dev/null` as GNU time reports it, in bytes.
fn peak_rss(path: &std::path::Path, attribution: &str) -> u64 {
    let out = std::process::Command::new("/usr/bin/time")
        .args([
            "-f",
            "peak_rss_kb=%M",
            env!("CARGO_BIN_EXE_flowlog-forwarder"),
        ])
        .arg("process")
        .arg(path)
        .env_remove("DESTINATION_URL")
        .env_remove("AWS_LAMBDA_RUNTIME_API")
        .env("REJECT_ATTRIBUTION", attribution)
        .stdout(std::process::Stdio::null())
        .output()
        .expect("GNU time measures the peak RSS: apt-get install time");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let kb: u64 = stderr
        .lines()
        .find_map(|l| l.strip_prefix("peak_rss_kb="))
        .and_then(|v| v.trim().parse().ok())
        .expect("GNU time's peak RSS");
    kb * 1024
}

/// What attribution adds to the peak RSS of `process` on `path` stays under 16 MiB.
fn assert_within_budget(path: &std::path::Path) {
    let off = peak_rss(path, "false");
    let on = peak_rss(path, "true");
    let budget = 16 << 20;
    eprintln!(
        "{}: attribution adds {} KiB ({} KiB without)",
        path.display(),
        (on - off.min(on)) >> 10,
        off >> 10
    );
    assert!(
        on < off + budget,
        "attribution adds {} KiB to the peak RSS ({} KiB without), over its {} KiB",
        (on - off.min(on)) >> 10,
        off >> 10,
        budget >> 10
    );
}

/// Once the table of accepted records is full, nothing more is remembered: a REJECT
/// whose mirror came before (its window overlapping) is still a network ACL's, one whose
/// mirror comes after is not (the overflow is counted).
#[test]
fn past_a_full_table_rejects_are_decided_as_they_come() {
    use flowlog_forwarder::attribution::MAX_ACCEPTED_FLOWS;
    let eni = "eni-0a1b2c3d4e5f60718";
    let accept = |i: usize| {
        format!(
            "2 123456789010 {eni} 10.{}.{}.{} 203.0.113.9 {} 443 6 1 40 1000 1060 ACCEPT OK",
            i >> 16,
            (i >> 8) & 255,
            i & 255,
            1024 + i % 60000
        )
    };
    let reject_of = |i: usize| {
        format!(
            "2 123456789010 {eni} 203.0.113.9 10.{}.{}.{} 443 {} 6 1 40 1000 1060 REJECT OK",
            i >> 16,
            (i >> 8) & 255,
            i & 255,
            1024 + i % 60000
        )
    };
    let mut lines = vec![reject_of(0)]; // held: its mirror comes later, before the table fills
    lines.extend((0..MAX_ACCEPTED_FLOWS).map(accept));
    lines.push(reject_of(7)); // after the fill, its mirror seen
                              // After the fill, its mirror seen but in another capture window.
    lines.push(reject_of(9).replace(" 1000 1060 ", " 5000 5060 "));
    lines.push(reject_of(MAX_ACCEPTED_FLOWS + 1)); // its mirror comes after the fill
    lines.push(accept(MAX_ACCEPTED_FLOWS + 1));
    let text = lines.join("\n");
    // Only the REJECTs are shipped (the accepted records are noted all the same).
    let (all, counts) = run(&settings(&[("ACTIONS", "REJECT")]), &text);
    assert_eq!(all.len(), 4);
    assert_eq!(counts.read, lines.len() as u64);
    assert_eq!(counts.filtered, lines.len() as u64 - 4);
    assert_eq!(counts.attribution_overflow, 1, "{counts:?}");
    let by_port = |port: usize| {
        let port = (1024 + port % 60000) as u64;
        rejects(&all)
            .into_iter()
            .find(|d| d["destination"]["port"] == port)
            .map(attribution)
            .unwrap_or("missing")
    };
    assert_eq!(by_port(0), "network_acl");
    assert_eq!(by_port(7), "network_acl");
    assert_eq!(by_port(9), "security_group_or_network_acl");
    // Decided after its document was written, the network ACL's is written again whole.
    let seven = rejects(&all)
        .into_iter()
        .find(|d| d["destination"]["port"] == 1031)
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        seven["event"]["reason"],
        RejectAttribution::NETWORK_ACL_REASON
    );
    assert_eq!(
        by_port(MAX_ACCEPTED_FLOWS + 1),
        "security_group_or_network_acl"
    );
}

/// The worst case for the attribution's memory: more distinct accepted flows than the
/// map holds, and far more held REJECT text than its cap (every REJECT lone). What it
/// adds to the process's peak RSS stays within its budget: a map of 4 MiB (6 MiB while
/// it grows), 4 MiB of held records, their allocations' slack and, in this dev build,
/// its code. It added 26 MB before the caps were set to what a 75 MB object through the
/// handler to HTTP affords under 64 MB (BENCHMARKS.md: 8-9 MB in the release build).
#[test]
fn the_attribution_state_is_bounded_on_its_worst_case() {
    let mut text = String::new();
    for i in 0..400_000u32 {
        let action = if i % 4 == 0 { "REJECT" } else { "ACCEPT" };
        text.push_str(&format!(
            "2 123456789010 eni-0a1b2c3d4e5f60718 10.{}.{}.{} 203.0.113.{} {} 443 6 1 40 1000 1060 {action} OK\n",
            i >> 16,
            (i >> 8) & 255,
            i & 255,
            i % 251,
            1024 + i % 60000,
        ));
    }
    let path = common::scratch_dir().join("worst-case.log");
    std::fs::write(&path, text).unwrap();
    assert_within_budget(&path);
}

/// Header lines switch the schema mid-object (concatenated files). Each held REJECT
/// record needs its schema kept: an object alternating two wide headers with lone
/// REJECT records must not keep a schema per held record beyond the held budget.
#[test]
fn alternating_headers_do_not_grow_the_held_schemas() {
    let base = "version account-id interface-id srcaddr dstaddr srcport dstport protocol packets bytes start end action log-status";
    let mut text = String::new();
    for i in 0..10_000u32 {
        let prefix = if i % 2 == 0 { "a" } else { "b" };
        text.push_str(base);
        for c in 0..200 {
            text.push_str(&format!(" {prefix}{c}"));
        }
        text.push('\n');
        text.push_str(&format!(
            "2 123456789010 eni-1 10.0.{}.{} 203.0.113.9 {} 443 6 1 40 1000 1060 REJECT OK",
            i >> 8,
            i & 255,
            1024 + i
        ));
        text.push_str(&" -".repeat(200));
        text.push('\n');
    }
    let path = common::scratch_dir().join("alternating-headers.log");
    std::fs::write(&path, text).unwrap();
    assert_within_budget(&path);
}

/// A held record is released as it was read, whatever it was read from: a JSON record
/// (its values, and with INCLUDE_ORIGINAL its raw line as `event.original`) gives the
/// document it gives without attribution, but for the attribution fields.
#[test]
fn held_json_records_are_released_as_they_were_read() {
    let json_reject = r#"{"version":2,"account_id":"1","interface_id":"eni-1","srcaddr":"10.0.0.1","dstaddr":"10.0.0.2","srcport":1000,"dstport":80,"protocol":6,"packets":1,"bytes":40,"start":100,"end":160,"action":"REJECT","log_status":"OK"}"#;
    for vars in [vec![], vec![("INCLUDE_ORIGINAL", "true")]] {
        let mut on_vars = vars.clone();
        on_vars.push(("REJECT_ATTRIBUTION", "true"));
        let mut off_vars = vars.clone();
        off_vars.push(("REJECT_ATTRIBUTION", "false"));
        let mut on = docs(&[json_reject], &on_vars).remove(0);
        let off = docs(&[json_reject], &off_vars).remove(0);
        assert!(!common::is_failure(&on), "{on}");
        assert_eq!(on["source"]["port"], 1000);
        assert_eq!(attribution(&on), "security_group_or_network_acl");
        if !vars.is_empty() {
            assert_eq!(on["event"]["original"], json_reject);
        }
        on["aws"]["vpcflow"]
            .as_object_mut()
            .unwrap()
            .remove("reject_attribution");
        assert_eq!(on, off);
    }
}

/// The accepted-record table of a unit that ended is emptied before the next unit uses
/// it: an accepted flow of one object never attributes a REJECT of another.
#[test]
fn no_accepted_record_outlives_its_unit() {
    for _ in 0..3 {
        let accept_only = docs(&[SG_NACL_1], &[]);
        assert_eq!(accept_only.len(), 1);
        let reject_only = docs(&[SG_NACL_2], &[]);
        assert_eq!(
            attribution(&reject_only[0]),
            "security_group_or_network_acl"
        );
    }
}
