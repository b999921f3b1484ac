//! Normalization to OCSF (OUTPUT_SCHEMA=ocsf): a `FlowRecord` becomes one OCSF 1.1.0
//! Network Activity event (class 4001, activity Traffic), laid out as Amazon Security
//! Lake lays out VPC Flow Logs, written straight into a byte buffer like the ECS
//! document; and the event of a line that is no record. The README's field table
//! says where each flow log field goes.

use std::net::IpAddr;

use crate::attribution::RejectAttribution;
use crate::community_id::community_id;
use crate::context::DocContext;
use crate::flowlog::{transport_name, Column, Field, FlowRecord};
use crate::json::{k, Document, Writer};

/// Class, category, activity and type of every flow record event (Network Activity:
/// Traffic), with their names.
const TRAFFIC: &str = r#","activity_id":6,"activity_name":"Traffic","category_uid":4,"category_name":"Network Activity","class_uid":4001,"class_name":"Network Activity","type_uid":400106,"type_name":"Network Activity: Traffic","severity_id":1,"severity":"Informational""#;

/// Bytes made ready for an event besides its origin's members and `raw_data`.
const EVENT_ROOM: usize = 2048;

/// Writes the OCSF event for `rec` into `doc`, replacing the one it held.
pub fn write_event(doc: &mut Document, rec: &FlowRecord<'_>, ctx: &DocContext<'_>) {
    let room =
        EVENT_ROOM + ctx.origin.ocsf_metadata_members.len() + ctx.original.map_or(0, str::len);
    let mut w = Writer::new(&mut doc.buf, room);
    w.json(TRAFFIC);
    let time = rec.end.or(rec.start).unwrap_or(ctx.now);
    milliseconds(&mut w, k!("time"), time);
    if let Some(t) = rec.start {
        milliseconds(&mut w, k!("start_time"), t);
    }
    if let Some(t) = rec.end {
        milliseconds(&mut w, k!("end_time"), t);
    }
    if let Some(aggregate) = ctx.aggregate {
        // The records of one flow folded into this event (AGGREGATE).
        w.number(k!("count"), Some(aggregate.records), None);
    }
    match rec.get(Field::Action) {
        Some("ACCEPT") => w.json(
            r#","action_id":1,"action":"Allowed","disposition_id":1,"disposition":"Allowed""#,
        ),
        Some("REJECT") => {
            w.json(r#","action_id":2,"action":"Denied","disposition_id":2,"disposition":"Blocked""#)
        }
        Some(other) => {
            w.json(r#","action_id":99"#);
            w.string(k!("action"), other);
        }
        None => w.json(r#","action_id":0,"action":"Unknown""#),
    }
    w.opt_string(k!("status_code"), rec.get(Field::LogStatus));
    w.opt_string(k!("status_detail"), ctx.reject_reason(rec));
    match ctx.reject_attribution {
        Some(RejectAttribution::NetworkAcl) => w.json(r#","firewall_rule":{"type":"Network ACL"}"#),
        Some(RejectAttribution::SecurityGroupOrNetworkAcl) => {
            w.json(r#","firewall_rule":{"type":"Security Group or Network ACL"}"#)
        }
        Some(RejectAttribution::BlockPublicAccess) => {
            w.json(r#","firewall_rule":{"type":"VPC Block Public Access"}"#)
        }
        None => {}
    }

    let tgw = rec.is_transit_gateway();
    write_endpoint(&mut w, rec, ctx, Side::Source, tgw);
    write_endpoint(&mut w, rec, ctx, Side::Destination, tgw);
    write_connection_info(&mut w, rec, ctx);

    w.begin_object(k!("traffic"));
    match ctx.aggregate.and_then(|a| a.replies) {
        // An aggregate of a connection's two directions (AGGREGATE): out is what the
        // source sent, in what came back.
        Some(r) => {
            crate::context::write_two_way_totals(&mut w, rec, r);
            w.number(k!("bytes_out"), rec.bytes, rec.digits(Field::Bytes));
            w.number(k!("packets_out"), rec.packets, rec.digits(Field::Packets));
            w.number(k!("bytes_in"), Some(r.bytes), None);
            w.number(k!("packets_in"), Some(r.packets), None);
        }
        None => {
            w.number(k!("bytes"), rec.bytes, rec.digits(Field::Bytes));
            w.number(k!("packets"), rec.packets, rec.digits(Field::Packets));
        }
    }
    w.end_object();

    w.begin_object(k!("cloud"));
    w.json(r#","provider":"AWS""#);
    w.opt_string(k!("region"), rec.get(Field::Region));
    w.opt_string(k!("zone"), rec.get(Field::AzId));
    if let Some(id) = rec.get(Field::AccountId) {
        w.string(r#","account":{"uid":"#, id);
        w.json(r#","type_id":10,"type":"AWS Account"}"#);
    }
    w.end_object();

    w.begin_object(k!("metadata"));
    if tgw {
        w.json(r#","product":{"name":"AWS Transit Gateway","vendor_name":"AWS","feature":{"name":"Flowlogs"}"#);
    } else {
        w.json(
            r#","product":{"name":"Amazon VPC","vendor_name":"AWS","feature":{"name":"Flowlogs"}"#,
        );
    }
    w.opt_string(k!("version"), rec.get(Field::Version));
    w.json(r#"},"profiles":["cloud","security_control"],"version":"1.1.0""#);
    w.string(k!("uid"), ctx.event_id);
    w.json(&ctx.origin.ocsf_metadata_members);
    if !ctx.threat_matches.is_empty() {
        w.json(r#","labels":["threat_intel_match"]"#);
    }
    w.end_object();

    let asn_known = ctx.geo.is_some_and(|g| g.iter().any(|l| l.asn.is_some()));
    if !ctx.threat_matches.is_empty() || asn_known {
        write_enrichments(&mut w, rec, ctx);
    }
    w.opt_string(k!("raw_data"), ctx.original);
    write_unmapped(&mut w, rec, ctx);
    doc.len = w.finish();
}

/// Writes into `doc` the event of a line that is not a valid record: its raw text in
/// `raw_data`, the reason in `status_detail`, a raised severity and the
/// `_flowlog_parse_failure` label, so that nothing is silently lost.
pub fn write_failure_event(doc: &mut Document, raw: &str, error: &str, ctx: &DocContext<'_>) {
    let error = crate::context::cap_message(error);
    let room = EVENT_ROOM + ctx.origin.ocsf_metadata_members.len() + raw.len() + error.len();
    let mut w = Writer::new(&mut doc.buf, room);
    w.json(r#","activity_id":0,"activity_name":"Unknown","category_uid":4,"category_name":"Network Activity","class_uid":4001,"class_name":"Network Activity","type_uid":400100,"type_name":"Network Activity: Unknown","severity_id":3,"severity":"Medium""#);
    milliseconds(&mut w, k!("time"), ctx.now);
    w.json(r#","action_id":0,"action":"Unknown","status_id":2,"status":"Failure""#);
    w.string(k!("status_detail"), &error);
    w.json(r#","src_endpoint":{},"dst_endpoint":{},"cloud":{"provider":"AWS"}"#);
    w.begin_object(k!("metadata"));
    w.json(r#","product":{"name":"Amazon VPC","vendor_name":"AWS","feature":{"name":"Flowlogs"}},"profiles":["cloud","security_control"],"version":"1.1.0","labels":["_flowlog_parse_failure"]"#);
    w.string(k!("uid"), ctx.event_id);
    w.json(&ctx.origin.ocsf_metadata_members);
    w.end_object();
    w.string(k!("raw_data"), raw);
    doc.len = w.finish();
}

/// `enrichments`: one per address on the THREAT_INTEL_URI list, naming the
/// attribute, the address, the list entry and its label; and one per endpoint whose
/// autonomous system is known (GEOIP_ASN_DATABASE: OCSF 1.1.0 has no
/// `autonomous_system` object), its number and organization in `data`.
fn write_enrichments(w: &mut Writer<'_>, rec: &FlowRecord<'_>, ctx: &DocContext<'_>) {
    w.key(r#","enrichments":["#);
    let mut n = 0;
    for m in ctx.threat_matches.iter().flatten() {
        if n > 0 {
            w.out.byte(b',');
        }
        n += 1;
        w.key(r#"{"name":"#);
        w.out.plain_string(match m.field {
            Field::SrcAddr => "src_endpoint.ip",
            Field::DstAddr => "dst_endpoint.ip",
            Field::PktSrcAddr => "src_endpoint.intermediate_ips",
            _ => "dst_endpoint.intermediate_ips",
        });
        w.plain(k!("value"), m.ip);
        w.json(r#","type":"threat_intel","provider":"THREAT_INTEL_URI","data":{"indicator":"#);
        w.out.string(&m.indicator.entry());
        if let Some(label) = m.indicator.label {
            w.string(k!("description"), label);
        }
        w.json("}}");
    }
    let sides = [
        ("src_endpoint.ip", Field::SrcAddr),
        ("dst_endpoint.ip", Field::DstAddr),
    ];
    for (located, (name, field)) in ctx.geo.into_iter().flatten().zip(sides) {
        let (Some(asn), Some(ip)) = (&located.asn, rec.get(field)) else {
            continue;
        };
        if n > 0 {
            w.out.byte(b',');
        }
        n += 1;
        w.key(r#"{"name":"#);
        w.out.plain_string(name);
        w.plain(k!("value"), ip);
        w.json(r#","type":"asn","provider":"GEOIP_ASN_DATABASE","#);
        w.json(&asn.ocsf);
        w.out.byte(b'}');
    }
    w.out.byte(b']');
}

/// Unix seconds `t` as OCSF epoch milliseconds.
#[inline(always)]
fn milliseconds(w: &mut Writer<'_>, key: &'static str, t: u64) {
    w.key(key);
    w.out.u64(t.saturating_mul(1000));
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Side {
    Source,
    Destination,
}

/// `src_endpoint` or `dst_endpoint`: address and port, the AWS service behind the
/// packet address, the packet address when it differs (`intermediate_ips`), and the
/// capturing interface with its VPC, subnet and instance (on both endpoints, as
/// Security Lake writes them). Transit Gateway records name each side's VPC, subnet,
/// interface and zone.
fn write_endpoint(
    w: &mut Writer<'_>,
    rec: &FlowRecord<'_>,
    ctx: &DocContext<'_>,
    side: Side,
    tgw: bool,
) {
    let (key, addr, port, port_field, pkt, pkt_field, service) = match side {
        Side::Source => (
            k!("src_endpoint"),
            Field::SrcAddr,
            rec.srcport,
            Field::SrcPort,
            rec.pkt_srcaddr,
            Field::PktSrcAddr,
            Field::PktSrcAwsService,
        ),
        Side::Destination => (
            k!("dst_endpoint"),
            Field::DstAddr,
            rec.dstport,
            Field::DstPort,
            rec.pkt_dstaddr,
            Field::PktDstAddr,
            Field::PktDstAwsService,
        ),
    };
    let own = match side {
        Side::Source => rec.srcaddr,
        Side::Destination => rec.dstaddr,
    };
    // Required by the class: written even when the record has no address (NODATA).
    w.begin_object(key);
    if let Some(a) = rec.get(addr) {
        w.plain(k!("ip"), a);
    }
    w.number(k!("port"), port.map(u64::from), rec.digits(port_field));
    w.opt_string(k!("svc_name"), rec.get(service));
    if let (Some(p), Some(text)) = (pkt, rec.get(pkt_field)) {
        if Some(p) != own {
            w.key(k!("intermediate_ips"));
            w.out.byte(b'[');
            w.out.plain_string(text);
            w.out.byte(b']');
        }
    }
    if tgw {
        let (vpc, subnet, eni, zone) = match side {
            Side::Source => (
                Field::TgwSrcVpcId,
                Field::TgwSrcSubnetId,
                Field::TgwSrcEni,
                Field::TgwSrcAzId,
            ),
            Side::Destination => (
                Field::TgwDstVpcId,
                Field::TgwDstSubnetId,
                Field::TgwDstEni,
                Field::TgwDstAzId,
            ),
        };
        w.opt_string(k!("interface_uid"), rec.get(eni));
        w.opt_string(k!("vpc_uid"), rec.get(vpc));
        w.opt_string(k!("subnet_uid"), rec.get(subnet));
        w.opt_string(k!("zone"), rec.get(zone));
    } else {
        let interface = ctx.interface;
        w.opt_string(k!("interface_uid"), rec.get(Field::InterfaceId));
        let vpc = rec
            .get(Field::VpcId)
            .or_else(|| interface.and_then(|i| i.vpc_id.as_deref()));
        w.opt_string(k!("vpc_uid"), vpc);
        let subnet = rec
            .get(Field::SubnetId)
            .or_else(|| interface.and_then(|i| i.subnet_id.as_deref()));
        w.opt_string(k!("subnet_uid"), subnet);
        let instance = rec
            .get(Field::InstanceId)
            .or_else(|| interface.and_then(|i| i.instance_id.as_deref()));
        w.opt_string(k!("instance_uid"), instance);
    }
    let side = match side {
        Side::Source => 0,
        Side::Destination => 1,
    };
    if let Some(place) = ctx.geo.and_then(|g| g[side].place.as_ref()) {
        w.json(&place.ocsf);
    }
    w.end_object_keeping_empty();
}

/// `connection_info`: protocol number, name and IP version, direction (required: 0
/// Unknown when the record does not say), TCP flags, boundary (from traffic-path) and
/// the Community ID as the connection's `uid`.
fn write_connection_info(w: &mut Writer<'_>, rec: &FlowRecord<'_>, ctx: &DocContext<'_>) {
    w.begin_object(k!("connection_info"));
    if let Some(p) = rec.protocol {
        w.key(k!("protocol_num"));
        match rec.digits(Field::Protocol) {
            Some(digits) => w.out.bytes(digits.as_bytes()),
            None => w.out.u64(p.into()),
        }
        if let Some(name) = transport_name(p) {
            w.plain(k!("protocol_name"), name);
        }
    }
    match rec.srcaddr.or(rec.dstaddr) {
        Some(IpAddr::V4(_)) => {
            w.json(r#","protocol_ver_id":4,"protocol_ver":"Internet Protocol version 4 (IPv4)""#)
        }
        Some(IpAddr::V6(_)) => {
            w.json(r#","protocol_ver_id":6,"protocol_ver":"Internet Protocol version 6 (IPv6)""#)
        }
        None => {}
    }
    let direction = rec.get(Field::FlowDirection).or_else(|| {
        ctx.interface
            .and_then(|i| i.direction(rec.srcaddr, rec.dstaddr))
    });
    w.json(match direction {
        Some("ingress" | "inbound") => r#","direction_id":1,"direction":"Inbound""#,
        Some("egress" | "outbound") => r#","direction_id":2,"direction":"Outbound""#,
        Some("internal") => r#","direction_id":3,"direction":"Lateral""#,
        _ => r#","direction_id":0,"direction":"Unknown""#,
    });
    w.number(k!("tcp_flags"), rec.tcp_flags, rec.digits(Field::TcpFlags));
    if let Some(boundary) = rec.get(Field::TrafficPath).and_then(boundary) {
        w.json(boundary);
    }
    if let Some(id) = community_id(rec) {
        w.key(k!("uid"));
        id.write_json(&mut w.out);
    }
    w.end_object();
}

/// `boundary_id` and `boundary` of a traffic-path value (1 to 8 are OCSF's 4 to 11).
fn boundary(path: &str) -> Option<&'static str> {
    Some(match path {
        "1" => r#","boundary_id":4,"boundary":"Same VPC""#,
        "2" => r#","boundary_id":5,"boundary":"Internet/VPC Gateway""#,
        "3" => r#","boundary_id":6,"boundary":"Virtual Private Gateway""#,
        "4" => r#","boundary_id":7,"boundary":"Intra-region VPC""#,
        "5" => r#","boundary_id":8,"boundary":"Inter-region VPC""#,
        "6" => r#","boundary_id":9,"boundary":"Local Gateway""#,
        "7" => r#","boundary_id":10,"boundary":"Gateway VPC""#,
        "8" => r#","boundary_id":11,"boundary":"Internet Gateway""#,
        _ => return None,
    })
}

/// Whether a field has an OCSF place of its own (else it goes to `unmapped`).
fn has_place(field: Field, tgw: bool) -> bool {
    use Field::*;
    match field {
        Version | AccountId | Action | LogStatus | TcpFlags | Type | PktSrcAddr | PktDstAddr
        | PktSrcAwsService | PktDstAwsService => true,
        InterfaceId | VpcId | SubnetId | InstanceId => !tgw,
        TgwSrcVpcId | TgwDstVpcId | TgwSrcSubnetId | TgwDstSubnetId | TgwSrcEni | TgwDstEni
        | TgwSrcAzId | TgwDstAzId => tgw,
        // reject-reason is `status_detail`, and kept here by name too.
        _ => false,
    }
}

/// `unmapped`: every present value without an OCSF place, under its `aws.vpcflow` key
/// (the sublocation as `sublocation.type`/`.id`), and the security groups of an
/// enriched interface. Traffic-path is kept as its number beside `boundary_id`.
fn write_unmapped(w: &mut Writer<'_>, rec: &FlowRecord<'_>, ctx: &DocContext<'_>) {
    let tgw = rec.is_transit_gateway();
    let columns = rec.schema().columns();
    w.begin_object(k!("unmapped"));
    for (i, key, value) in rec.vpcflow_entries() {
        if let Some(Column::Known(f)) = columns.get(i) {
            if has_place(*f, tgw) {
                continue;
            }
        }
        w.key(key);
        w.out.string(value);
    }
    // Left out when both are absent (an object with no member is removed).
    w.begin_object(k!("sublocation"));
    w.opt_string(k!("type"), rec.get(Field::SublocationType));
    w.opt_string(k!("id"), rec.get(Field::SublocationId));
    w.end_object();
    if let Some(attribution) = ctx.reject_attribution {
        w.plain(k!("reject_attribution"), attribution.as_str());
    }
    if let Some(i) = ctx.interface {
        w.string_array(k!("security_group_ids"), &i.security_group_ids);
    }
    if let Some(ports) = ctx.aggregate.and_then(|a| a.client_ports) {
        w.number(k!("aggregate_client_ports"), Some(ports), None);
    }
    w.end_object();
}
