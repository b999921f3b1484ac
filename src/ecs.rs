//! Normalization to ECS: a `FlowRecord` plus where it came from becomes one ECS JSON
//! document (README, Output), written straight into a byte buffer with no
//! intermediate value tree; and the parse-failure document of a line that is no record.

use std::net::IpAddr;

use crate::community_id::community_id;
use crate::context::DocContext;
use crate::flowlog::{transport_name, Field, FlowRecord};
use crate::json::{k, Document, Writer};
use crate::timestamp::{Dates, TIMESTAMP_LEN};

/// Writes the ECS document for `rec` into `doc`, replacing the one it held.
pub fn write_document(doc: &mut Document, rec: &FlowRecord<'_>, ctx: &DocContext<'_>) {
    let room = DOCUMENT_ROOM
        + ctx.origin.ecs_len()
        + ctx.data_stream.len()
        + ctx.original.map_or(0, str::len);
    let mut dates = Dates::default();
    let mut w = Writer::new(&mut doc.buf, room);
    w.key(k!("@timestamp"));
    let timestamp = w.out.pos();
    dates.write(&mut w.out, rec.end.or(rec.start).unwrap_or(ctx.now));

    w.begin_object(k!("event"));
    w.json(r#","kind":"event","category":["network"]"#);
    match rec.get(Field::Action) {
        Some("ACCEPT") => {
            w.json(r#","type":["connection","allowed"],"action":"accept","outcome":"success""#)
        }
        Some("REJECT") => {
            w.json(r#","type":["connection","denied"],"action":"reject","outcome":"failure""#)
        }
        Some(other) => {
            w.json(r#","type":["connection"]"#);
            w.string(k!("action"), &other.to_ascii_lowercase());
        }
        None => w.json(r#","type":["connection"]"#),
    }
    w.json(r#","module":"aws","dataset":"aws.vpcflow""#);
    w.string(k!("id"), ctx.event_id);
    if let Some(t) = rec.start {
        w.key(k!("start"));
        dates.write(&mut w.out, t);
    }
    if rec.end.is_some() {
        // The end is the `@timestamp` just written.
        w.key(k!("end"));
        w.out.repeat::<TIMESTAMP_LEN>(timestamp);
    }
    w.opt_string(k!("reason"), ctx.reject_reason(rec));
    w.opt_string(k!("original"), ctx.original);
    w.end_object();

    w.begin_object(k!("source"));
    write_endpoint(&mut w, rec, Field::SrcAddr, rec.srcport, Field::SrcPort);
    write_geo(&mut w, ctx, 0);
    // Bytes and packets appear under source and under network.
    let (bytes, packets) = (rec.digits(Field::Bytes), rec.digits(Field::Packets));
    w.number(k!("bytes"), rec.bytes, bytes);
    w.number(k!("packets"), rec.packets, packets);
    w.end_object();

    // An aggregate of a connection's two directions (AGGREGATE): what the destination
    // sent back is its own, the network's is both.
    let replies = ctx.aggregate.and_then(|a| a.replies);
    w.begin_object(k!("destination"));
    write_endpoint(&mut w, rec, Field::DstAddr, rec.dstport, Field::DstPort);
    write_geo(&mut w, ctx, 1);
    if let Some(r) = replies {
        w.number(k!("bytes"), Some(r.bytes), None);
        w.number(k!("packets"), Some(r.packets), None);
    }
    w.end_object();

    w.begin_object(k!("network"));
    match replies {
        Some(r) => {
            crate::context::write_two_way_totals(&mut w, rec, r);
        }
        None => {
            w.number(k!("bytes"), rec.bytes, bytes);
            w.number(k!("packets"), rec.packets, packets);
        }
    }
    if let Some(p) = rec.protocol {
        w.key(r#","iana_number":""#);
        match rec.digits(Field::Protocol) {
            Some(digits) => w.out.bytes(digits.as_bytes()),
            None => w.out.u64(p.into()),
        }
        w.out.byte(b'"');
        if let Some(name) = transport_name(p) {
            w.plain(k!("transport"), name);
        }
    }
    match rec.srcaddr.or(rec.dstaddr) {
        Some(IpAddr::V4(_)) => w.json(r#","type":"ipv4""#),
        Some(IpAddr::V6(_)) => w.json(r#","type":"ipv6""#),
        None => {}
    }
    if let Some(id) = community_id(rec) {
        w.key(k!("community_id"));
        id.write_json(&mut w.out);
    }
    let direction = rec.get(Field::FlowDirection).or_else(|| {
        ctx.interface
            .and_then(|i| i.direction(rec.srcaddr, rec.dstaddr))
    });
    w.opt_string(k!("direction"), direction);
    w.end_object();

    write_related_ip(&mut w, rec);

    w.begin_object(k!("cloud"));
    if rec.is_transit_gateway() {
        w.json(r#","provider":"aws","service":{"name":"transitgateway"}"#);
    } else {
        w.json(r#","provider":"aws","service":{"name":"vpc"}"#);
    }
    if let Some(id) = rec.get(Field::AccountId) {
        w.string(r#","account":{"id":"#, id);
        w.json("}");
    }
    let instance_id = rec
        .get(Field::InstanceId)
        .or_else(|| ctx.interface.and_then(|i| i.instance_id.as_deref()));
    if let Some(id) = instance_id {
        w.string(r#","instance":{"id":"#, id);
        w.json("}");
    }
    w.opt_string(k!("region"), rec.get(Field::Region));
    w.opt_string(k!("availability_zone"), rec.get(Field::AzId));
    w.end_object();

    write_ecs_task_fields(&mut w, rec);

    w.begin_object(k!("aws"));
    write_vpcflow(&mut w, rec, ctx);
    w.json(&ctx.origin.ecs_aws_members);
    w.end_object();

    if !ctx.threat_matches.is_empty() {
        write_threat(&mut w, ctx);
    }
    w.json(ECS_VERSION);
    w.json(&ctx.origin.ecs_top_members);
    w.json(ctx.data_stream);
    doc.len = w.finish();
}

/// `threat.enrichments` (one per address on the THREAT_INTEL_URI list) and the
/// `threat_intel_match` tag.
fn write_threat(w: &mut Writer<'_>, ctx: &DocContext<'_>) {
    w.key(r#","threat":{"enrichments":["#);
    for (n, m) in ctx.threat_matches.iter().flatten().enumerate() {
        if n > 0 {
            w.out.byte(b',');
        }
        w.json(if m.indicator.network.is_ipv6() {
            r#"{"indicator":{"type":"ipv6-addr""#
        } else {
            r#"{"indicator":{"type":"ipv4-addr""#
        });
        w.plain(k!("ip"), m.ip);
        if let Some(label) = m.indicator.label {
            w.string(k!("description"), label);
        }
        w.json(r#"},"matched":{"field":"#);
        w.out.plain_string(match m.field {
            Field::SrcAddr => "source.ip",
            Field::DstAddr => "destination.ip",
            Field::PktSrcAddr => "aws.vpcflow.pkt_srcaddr",
            _ => "aws.vpcflow.pkt_dstaddr",
        });
        w.plain(k!("atomic"), m.ip);
        w.string(k!("id"), &m.indicator.entry());
        w.json(r#","type":"indicator_match_rule"}}"#);
    }
    w.json(r#"]},"tags":["threat_intel_match"]"#);
}

/// Bytes made ready for a document before writing it, besides its origin's members and
/// `event.original` (a default-format document is about 900 bytes, a v5 one 1,400);
/// more is made ready when a record's values need it. Not sized from the record's text:
/// a Parquet row's text is its whole batch.
const DOCUMENT_ROOM: usize = 2048;

/// The `ecs` member of every document.
const ECS_VERSION: &str = r#","ecs":{"version":"8.11.0"}"#;

/// Writes into `doc` the document for a line that is not a valid record: the raw line,
/// the reason, and the `_flowlog_parse_failure` tag, so that nothing is silently lost.
pub fn write_failure_document(doc: &mut Document, raw: &str, error: &str, ctx: &DocContext<'_>) {
    let error = crate::context::cap_message(error);
    let room =
        DOCUMENT_ROOM + ctx.origin.ecs_len() + ctx.data_stream.len() + raw.len() + error.len();
    let mut w = Writer::new(&mut doc.buf, room);
    w.key(k!("@timestamp"));
    Dates::default().write(&mut w.out, ctx.now);
    w.begin_object(k!("event"));
    w.json(
        r#","kind":"pipeline_error","category":["network"],"module":"aws","dataset":"aws.vpcflow""#,
    );
    w.string(k!("id"), ctx.event_id);
    w.string(k!("original"), raw);
    w.end_object();
    w.begin_object(k!("error"));
    w.string(k!("message"), &error);
    w.end_object();
    w.json(r#","tags":["_flowlog_parse_failure"],"cloud":{"provider":"aws"}"#);
    w.begin_object(k!("aws"));
    w.json(&ctx.origin.ecs_aws_members);
    w.end_object();
    w.json(ECS_VERSION);
    w.json(&ctx.origin.ecs_top_members);
    w.json(ctx.data_stream);
    doc.len = w.finish();
}

/// The address (as `address` and `ip`) and port members of `source` or `destination`.
#[inline(always)]
fn write_endpoint(
    w: &mut Writer<'_>,
    rec: &FlowRecord<'_>,
    addr: Field,
    port: Option<u16>,
    port_field: Field,
) {
    if let Some(a) = rec.get(addr) {
        w.plain(k!("address"), a);
        w.plain(k!("ip"), a);
    }
    w.number(k!("port"), port.map(u64::from), rec.digits(port_field));
}

/// `geo` and `as` of the source (`side` 0) or the destination (1), when known.
#[inline]
fn write_geo(w: &mut Writer<'_>, ctx: &DocContext<'_>, side: usize) {
    if let Some(located) = ctx.geo.map(|g| &g[side]) {
        for members in [&located.place, &located.asn].into_iter().flatten() {
            w.json(&members.ecs);
        }
    }
}

fn write_related_ip(w: &mut Writer<'_>, rec: &FlowRecord<'_>) {
    let candidates = [
        (rec.srcaddr, Field::SrcAddr),
        (rec.dstaddr, Field::DstAddr),
        (rec.pkt_srcaddr, Field::PktSrcAddr),
        (rec.pkt_dstaddr, Field::PktDstAddr),
    ];
    let mut seen: [Option<IpAddr>; 4] = [None; 4];
    let mut n = 0;
    for (ip, field) in candidates {
        let Some(ip) = ip else { continue };
        if seen[..n].contains(&Some(ip)) {
            continue;
        }
        if n == 0 {
            w.begin_object(k!("related"));
            w.key(k!("ip"));
            w.out.byte(b'[');
        } else {
            w.out.byte(b',');
        }
        seen[n] = Some(ip);
        n += 1;
        w.out.plain_string(rec.get(field).unwrap_or_default());
    }
    if n > 0 {
        w.out.byte(b']');
        w.end_object();
    }
}

fn write_ecs_task_fields(w: &mut Writer<'_>, rec: &FlowRecord<'_>) {
    let cluster_arn = rec.get(Field::EcsClusterArn);
    let cluster_name = rec.get(Field::EcsClusterName);
    let instance_id = rec.get(Field::EcsContainerInstanceId);
    let instance_arn = rec.get(Field::EcsContainerInstanceArn);
    if cluster_arn.is_some()
        || cluster_name.is_some()
        || instance_id.is_some()
        || instance_arn.is_some()
    {
        w.begin_object(k!("orchestrator"));
        w.begin_object(k!("cluster"));
        w.opt_string(k!("id"), cluster_arn);
        w.opt_string(k!("name"), cluster_name);
        w.end_object();
        w.begin_object(k!("resource"));
        w.opt_string(k!("id"), instance_id);
        w.opt_string(k!("name"), instance_arn);
        if instance_id.is_some() || instance_arn.is_some() {
            w.json(r#","type":"container""#);
        }
        w.end_object();
        w.json(r#","type":"ecs""#);
        w.end_object();
    }
    if let Some(name) = rec.get(Field::EcsServiceName) {
        w.begin_object(k!("service"));
        w.string(k!("name"), name);
        w.end_object();
    }
    if let Some(id) = rec.get(Field::EcsContainerId) {
        w.begin_object(k!("container"));
        w.string(k!("id"), id);
        w.end_object();
    }
}

fn write_vpcflow(w: &mut Writer<'_>, rec: &FlowRecord<'_>, ctx: &DocContext<'_>) {
    w.begin_object(k!("vpcflow"));
    for (key, value) in rec.vpcflow_members() {
        w.key(key);
        w.out.string(value);
    }
    if let Some(attribution) = ctx.reject_attribution {
        w.plain(k!("reject_attribution"), attribution.as_str());
    }
    if let Some(i) = ctx.interface {
        if rec.get(Field::VpcId).is_none() {
            w.opt_string(k!("vpc_id"), i.vpc_id.as_deref());
        }
        if rec.get(Field::SubnetId).is_none() {
            w.opt_string(k!("subnet_id"), i.subnet_id.as_deref());
        }
        w.string_array(k!("security_group_ids"), &i.security_group_ids);
    }
    // Left out when both are absent (an object with no member is removed).
    w.begin_object(k!("sublocation"));
    w.opt_string(k!("type"), rec.get(Field::SublocationType));
    w.opt_string(k!("id"), rec.get(Field::SublocationId));
    w.end_object();
    if let Some(aggregate) = ctx.aggregate {
        w.begin_object(k!("aggregate"));
        w.number(k!("records"), Some(aggregate.records), None);
        w.number(k!("client_ports"), aggregate.client_ports, None);
        w.end_object();
    }
    if let Some(flags) = rec.tcp_flags {
        const NAMES: [(u64, &str); 6] = [
            (0x01, "fin"),
            (0x02, "syn"),
            (0x04, "rst"),
            (0x08, "psh"),
            (0x10, "ack"),
            (0x20, "urg"),
        ];
        let mut first = true;
        for (bit, name) in NAMES {
            if flags & bit == 0 {
                continue;
            }
            if first {
                w.key(k!("tcp_flags_array"));
                w.out.byte(b'[');
                first = false;
            } else {
                w.out.byte(b',');
            }
            w.out.byte(b'"');
            w.out.bytes(name.as_bytes());
            w.out.byte(b'"');
        }
        if !first {
            w.out.byte(b']');
        }
    }
    w.end_object();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::Origin;

    #[test]
    fn a_reused_document_holds_only_the_last_document_written() {
        let origin = Origin::file("flows.log");
        let ctx = DocContext {
            event_id: "id",
            origin: &origin,
            original: None,
            now: 1_700_000_000,
            interface: None,
            reject_attribution: None,
            threat_matches: &[],
            data_stream: "",
            hec_line: false,
            geo: None,
            aggregate: None,
        };
        let fresh = |raw: &str| {
            let mut doc = Document::new();
            write_failure_document(&mut doc, raw, "bad", &ctx);
            doc.as_bytes().to_vec()
        };
        let long = "x".repeat(10_000);
        let mut doc = Document::new();
        for raw in [long.as_str(), "short", "", long.as_str(), "a"] {
            write_failure_document(&mut doc, raw, "bad", &ctx);
            assert_eq!(doc.as_bytes(), fresh(raw));
            assert_eq!(doc.len(), doc.as_bytes().len());
            let parsed: serde_json::Value = serde_json::from_slice(doc.as_bytes()).unwrap();
            assert_eq!(parsed["event"]["original"], raw);
        }
    }
}
