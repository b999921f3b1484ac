//! Normalization: a `FlowRecord` plus where it came from becomes one ECS JSON document
//! (shared/DESIGN.md section 4), written straight into a byte buffer with no
//! intermediate value tree. Also the parse-failure document, RFC 3339 timestamps and
//! the Community ID v1 flow hash.

use std::net::IpAddr;

use base64::Engine as _;
use sha1::{Digest, Sha1};

use crate::enrich::Interface;
use crate::flowlog::{Field, FlowRecord};

/// A JSON key literal with its leading separator: `k!("ip")` is `,"ip":`.
macro_rules! k {
    ($key:literal) => {
        concat!(",\"", $key, "\":")
    };
}

/// Where a unit's records came from, pre-rendered once per unit.
#[derive(Debug, Clone, Default)]
pub struct Origin {
    /// Members written inside the `aws` object (`,"s3":{...}` or `,"cloudwatch":{...}`).
    aws_members: String,
    /// Top-level members (`,"log":{"file":{"path":...}}`).
    top_members: String,
}

impl Origin {
    /// Length of the members it adds to a document.
    fn len(&self) -> usize {
        self.aws_members.len() + self.top_members.len()
    }

    pub fn s3(bucket: &str, key: &str) -> Origin {
        let mut aws = Vec::new();
        aws.extend_from_slice(b",\"s3\":{\"bucket\":{\"name\":");
        write_str(&mut aws, bucket);
        aws.extend_from_slice(b"},\"object\":{\"key\":");
        write_str(&mut aws, key);
        aws.extend_from_slice(b"}}");
        Origin {
            aws_members: into_string(aws),
            top_members: String::new(),
        }
    }

    pub fn cloudwatch(log_group: &str, log_stream: &str) -> Origin {
        let mut aws = Vec::new();
        aws.extend_from_slice(b",\"cloudwatch\":{\"log_group\":");
        write_str(&mut aws, log_group);
        aws.extend_from_slice(b",\"log_stream\":");
        write_str(&mut aws, log_stream);
        aws.push(b'}');
        Origin {
            aws_members: into_string(aws),
            top_members: String::new(),
        }
    }

    pub fn file(path: &str) -> Origin {
        let mut top = Vec::new();
        top.extend_from_slice(b",\"log\":{\"file\":{\"path\":");
        write_str(&mut top, path);
        top.extend_from_slice(b"}}");
        Origin {
            aws_members: String::new(),
            top_members: into_string(top),
        }
    }
}

fn into_string(bytes: Vec<u8>) -> String {
    // Only ever built from `write_str` output and ASCII literals.
    String::from_utf8(bytes).unwrap_or_default()
}

/// Per-record context of a document.
#[derive(Debug, Clone, Copy)]
pub struct DocContext<'a> {
    /// Deterministic `event.id`.
    pub event_id: &'a str,
    pub origin: &'a Origin,
    /// `event.original` when INCLUDE_ORIGINAL is set.
    pub original: Option<&'a str>,
    /// Unix seconds used for `@timestamp` when the record has neither end nor start.
    pub now: u64,
    /// The record's network interface as EC2 describes it (ENRICH_ENI).
    pub interface: Option<&'a Interface>,
}

/// The buffer documents are written into, one at a time, reused from one to the next.
/// It keeps the bytes beyond the current document, so that the room made ready for the
/// next one is written over rather than zero-filled again.
#[derive(Debug, Default)]
pub struct Document {
    buf: Vec<u8>,
    len: usize,
}

impl Document {
    pub fn new() -> Document {
        Document::default()
    }

    /// The last document written (no trailing newline); empty after `clear`.
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    /// Forgets the last document (its bytes stay, to be written over).
    pub fn clear(&mut self) {
        self.len = 0;
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// Writes the ECS document for `rec` into `doc`, replacing the one it held.
pub fn write_document(doc: &mut Document, rec: &FlowRecord<'_>, ctx: &DocContext<'_>) {
    let room = DOCUMENT_ROOM + ctx.origin.len() + ctx.original.map_or(0, str::len);
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
    w.opt_string(k!("reason"), rec.get(Field::RejectReason));
    w.opt_string(k!("original"), ctx.original);
    w.end_object();

    w.begin_object(k!("source"));
    write_endpoint(&mut w, rec, Field::SrcAddr, rec.srcport, Field::SrcPort);
    // Bytes and packets appear under source and under network.
    let (bytes, packets) = (rec.digits(Field::Bytes), rec.digits(Field::Packets));
    w.number(k!("bytes"), rec.bytes, bytes);
    w.number(k!("packets"), rec.packets, packets);
    w.end_object();

    w.begin_object(k!("destination"));
    write_endpoint(&mut w, rec, Field::DstAddr, rec.dstport, Field::DstPort);
    w.end_object();

    w.begin_object(k!("network"));
    w.number(k!("bytes"), rec.bytes, bytes);
    w.number(k!("packets"), rec.packets, packets);
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
    if is_transit_gateway(rec) {
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
    write_vpcflow(&mut w, rec, ctx.interface);
    w.json(&ctx.origin.aws_members);
    w.end_object();

    w.json(ECS_VERSION);
    w.json(&ctx.origin.top_members);
    doc.len = w.finish();
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
    let error = cap_message(error);
    let room = DOCUMENT_ROOM + ctx.origin.len() + raw.len() + error.len();
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
    w.json(&ctx.origin.aws_members);
    w.end_object();
    w.json(ECS_VERSION);
    w.json(&ctx.origin.top_members);
    doc.len = w.finish();
}

/// Longest `error.message` of a failure document, in bytes.
pub const MAX_ERROR_MESSAGE: usize = 1024;

/// `message` cut to MAX_ERROR_MESSAGE bytes (at a character boundary), saying so.
fn cap_message(message: &str) -> std::borrow::Cow<'_, str> {
    if message.len() <= MAX_ERROR_MESSAGE {
        return message.into();
    }
    let mut end = MAX_ERROR_MESSAGE - 32;
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}... ({} bytes)", &message[..end], message.len()).into()
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

fn write_vpcflow(w: &mut Writer<'_>, rec: &FlowRecord<'_>, interface: Option<&Interface>) {
    w.begin_object(k!("vpcflow"));
    for (key, value) in rec.vpcflow_members() {
        w.key(key);
        w.out.string(value);
    }
    if let Some(i) = interface {
        if rec.get(Field::VpcId).is_none() {
            w.opt_string(k!("vpc_id"), i.vpc_id.as_deref());
        }
        if rec.get(Field::SubnetId).is_none() {
            w.opt_string(k!("subnet_id"), i.subnet_id.as_deref());
        }
        w.key(k!("security_group_ids"));
        w.out.byte(b'[');
        for (n, group) in i.security_group_ids.iter().enumerate() {
            if n > 0 {
                w.out.byte(b',');
            }
            w.out.string(group);
        }
        w.out.byte(b']');
    }
    let sub_type = rec.get(Field::SublocationType);
    let sub_id = rec.get(Field::SublocationId);
    if sub_type.is_some() || sub_id.is_some() {
        w.begin_object(k!("sublocation"));
        w.opt_string(k!("type"), sub_type);
        w.opt_string(k!("id"), sub_id);
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

/// A Transit Gateway flow log record (cloud.service.name `transitgateway`): its format
/// has any `tgw-*` field, or its `resource-type` names a transit gateway or one of its
/// attachments.
pub fn is_transit_gateway(rec: &FlowRecord<'_>) -> bool {
    rec.schema().has_transit_gateway_field()
        || matches!(
            rec.get(Field::ResourceType),
            Some("TransitGateway" | "TransitGatewayAttachment")
        )
}

/// The ECS `network.transport` name of an IANA protocol number.
pub fn transport_name(protocol: u8) -> Option<&'static str> {
    Some(match protocol {
        0 => "hopopt",
        1 => "icmp",
        2 => "igmp",
        6 => "tcp",
        8 => "egp",
        17 => "udp",
        47 => "gre",
        50 => "esp",
        58 => "ipv6-icmp",
        112 => "vrrp",
        132 => "sctp",
        _ => return None,
    })
}

/// Community ID v1 (seed 0) of the record's flow, when addresses and protocol exist
/// (and ports, for the protocols that have them).
pub fn community_id(rec: &FlowRecord<'_>) -> Option<CommunityId> {
    let (src, dst, proto) = (rec.srcaddr?, rec.dstaddr?, rec.protocol?);
    let ports = match proto {
        6 | 17 | 132 | 1 | 58 => Some((rec.srcport?, rec.dstport?)),
        _ => None,
    };
    Some(community_id_v1(src, dst, proto, ports))
}

/// Community ID v1 with seed 0, per the Community ID specification: ICMP and ICMPv6
/// type/code take the place of ports (with request/reply pairing); the endpoints are
/// ordered so that both directions of a flow hash alike.
pub fn community_id_v1(
    src: IpAddr,
    dst: IpAddr,
    proto: u8,
    ports: Option<(u16, u16)>,
) -> CommunityId {
    let (mut sa, mut da) = (src, dst);
    let mut ports = ports;
    let mut one_way = false;
    if let Some((sp, dp)) = ports {
        let pair = match proto {
            1 => icmp_reply_type(sp),
            58 => icmp6_reply_type(sp),
            _ => Some(dp),
        };
        match pair {
            Some(mapped) => ports = Some((sp, mapped)),
            None => one_way = true,
        }
    }
    let (sp, dp) = ports.unwrap_or((0, 0));
    // IPv4 before IPv6, then by address bytes: `IpAddr`'s own order.
    let ordered = sa < da || (sa == da && sp < dp);
    let (sp, dp) = if one_way || ordered {
        (sp, dp)
    } else {
        std::mem::swap(&mut sa, &mut da);
        (dp, sp)
    };
    // seed (0), source and destination addresses, protocol, padding, ports: at most
    // 2 + 16 + 16 + 2 + 4 bytes, hashed in one call.
    let mut message = [0u8; 40];
    let mut n = 2;
    for addr in [sa, da] {
        match addr {
            IpAddr::V4(v4) => {
                message[n..n + 4].copy_from_slice(&v4.octets());
                n += 4;
            }
            IpAddr::V6(v6) => {
                message[n..n + 16].copy_from_slice(&v6.octets());
                n += 16;
            }
        }
    }
    message[n] = proto;
    n += 2;
    if ports.is_some() {
        message[n..n + 2].copy_from_slice(&sp.to_be_bytes());
        message[n + 2..n + 4].copy_from_slice(&dp.to_be_bytes());
        n += 4;
    }
    CommunityId(Sha1::digest(&message[..n]).into())
}

/// A Community ID v1: the flow's SHA-1 digest, written as `1:` and its 28 base64
/// characters.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct CommunityId([u8; 20]);

impl CommunityId {
    /// Appends the ID as a JSON string, encoded straight into `out`.
    fn write_json(&self, out: &mut Out<'_>) {
        let buf = out.slot(32);
        buf[..3].copy_from_slice(b"\"1:");
        buf[31] = b'"';
        // 20 bytes encode to exactly 28 base64 characters.
        let _ = base64::engine::general_purpose::STANDARD.encode_slice(self.0, &mut buf[3..31]);
    }
}

impl std::fmt::Display for CommunityId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("1:")?;
        f.write_str(&base64::engine::general_purpose::STANDARD.encode(self.0))
    }
}

impl std::fmt::Debug for CommunityId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

impl PartialEq<&str> for CommunityId {
    fn eq(&self, other: &&str) -> bool {
        let digest = other
            .strip_prefix("1:")
            .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok());
        digest.as_deref() == Some(&self.0[..])
    }
}

fn icmp_reply_type(t: u16) -> Option<u16> {
    Some(match t {
        8 => 0,
        0 => 8,
        13 => 14,
        14 => 13,
        15 => 16,
        16 => 15,
        10 => 9,
        9 => 10,
        17 => 18,
        18 => 17,
        _ => return None,
    })
}

fn icmp6_reply_type(t: u16) -> Option<u16> {
    Some(match t {
        128 => 129,
        129 => 128,
        130 => 131,
        131 => 130,
        133 => 134,
        134 => 133,
        135 => 136,
        136 => 135,
        139 => 140,
        140 => 139,
        144 => 145,
        145 => 144,
        _ => return None,
    })
}

/// Length of a written timestamp, quotes included.
const TIMESTAMP_LEN: usize = 22;

/// Writes `"YYYY-MM-DDTHH:MM:SSZ"` for Unix seconds `t` (UTC, RFC 3339).
pub fn write_timestamp(out: &mut Vec<u8>, t: u64) {
    let mut out = Out::new(out, TIMESTAMP_LEN);
    Dates::default().write(&mut out, t);
    out.finish();
}

/// Writes RFC 3339 timestamps straight into the output. A record's timestamps nearly
/// always fall on one day, whose date is rendered once.
struct Dates {
    day: u64,
    /// `YYYY-MM-DD` of `day`.
    date: [u8; 10],
}

impl Default for Dates {
    fn default() -> Dates {
        Dates {
            day: u64::MAX,
            date: *b"0000-00-00",
        }
    }
}

impl Dates {
    /// Appends `"YYYY-MM-DDTHH:MM:SSZ"` (quoted) for Unix seconds `t`.
    fn write(&mut self, out: &mut Out<'_>, t: u64) {
        let day = t / 86_400;
        if day != self.day {
            let (y, m, d) = civil_from_days(day as i64);
            self.day = day;
            let y = y as u32;
            self.date[0..2].copy_from_slice(&digit_pair(y / 100));
            self.date[2..4].copy_from_slice(&digit_pair(y % 100));
            self.date[5..7].copy_from_slice(&digit_pair(m));
            self.date[8..10].copy_from_slice(&digit_pair(d));
        }
        let secs = (t % 86_400) as u32;
        let buf = out.slot(TIMESTAMP_LEN);
        buf.copy_from_slice(b"\"0000-00-00T00:00:00Z\"");
        buf[1..11].copy_from_slice(&self.date);
        buf[12..14].copy_from_slice(&digit_pair(secs / 3600));
        buf[15..17].copy_from_slice(&digit_pair(secs / 60 % 60));
        buf[18..20].copy_from_slice(&digit_pair(secs % 60));
    }
}

/// RFC 3339 text of Unix seconds, for callers outside document writing.
pub fn format_timestamp(t: u64) -> String {
    let mut v = Vec::with_capacity(TIMESTAMP_LEN);
    write_timestamp(&mut v, t);
    into_string(v[1..v.len() - 1].to_vec())
}

/// The two decimal digits of `v` (below 100).
#[inline(always)]
fn digit_pair(v: u32) -> [u8; 2] {
    const PAIRS: &[u8; 200] = b"0001020304050607080910111213141516171819\
        2021222324252627282930313233343536373839\
        4041424344454647484950515253545556575859\
        6061626364656667686970717273747576777879\
        8081828384858687888990919293949596979899";
    let i = (v % 100) as usize * 2;
    [PAIRS[i], PAIRS[i + 1]]
}

/// Appends `v` in decimal.
pub fn write_u64(out: &mut Vec<u8>, v: u64) {
    let mut out = Out::new(out, 20);
    out.u64(v);
    out.finish();
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (H. Hinnant).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Appends `s` as a JSON string literal, escaped.
pub fn write_str(out: &mut Vec<u8>, s: &str) {
    let mut out = Out::new(out, s.len() + 2);
    out.string(s);
    out.finish();
}

/// Copies `src` into `dst` (of the same length). Most values and keys are 4 to 32 bytes
/// long: those are copied as their first and last N bytes, which overlap (a call to
/// `memcpy` for every short value took 12 % of the writer's time).
#[inline(always)]
fn copy_short(dst: &mut [u8], src: &[u8]) {
    let n = src.len();
    if dst.len() != n {
        return;
    }
    match n {
        17..=32 => {
            dst[..16].copy_from_slice(&src[..16]);
            dst[n - 16..].copy_from_slice(&src[n - 16..]);
        }
        8..=16 => {
            dst[..8].copy_from_slice(&src[..8]);
            dst[n - 8..].copy_from_slice(&src[n - 8..]);
        }
        4..=7 => {
            dst[..4].copy_from_slice(&src[..4]);
            dst[n - 4..].copy_from_slice(&src[n - 4..]);
        }
        _ => dst.copy_from_slice(src),
    }
}

/// Whether `bytes` holds a `"`, `\\` or control character, eight bytes at a time.
/// May answer `true` for a clean string (then the escaping loop copies it unchanged),
/// never `false` for one that needs escaping.
#[inline]
fn needs_escape(bytes: &[u8]) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let special = |x: u64| {
        let control = x.wrapping_sub(ONES * 0x20) & !x;
        let q = x ^ (ONES * b'"' as u64);
        let quote = q.wrapping_sub(ONES) & !q;
        let b = x ^ (ONES * b'\\' as u64);
        let backslash = b.wrapping_sub(ONES) & !b;
        (control | quote | backslash) & HIGH != 0
    };
    let word = |b: &[u8]| u64::from_le_bytes(b.try_into().unwrap_or([0; 8]));
    let half = |b: &[u8]| u32::from_le_bytes(b.try_into().unwrap_or([0; 4])) as u64;
    let len = bytes.len();
    match len {
        // The last eight bytes (overlapping the last whole word) cover the rest.
        8.. => bytes.chunks_exact(8).any(|c| special(word(c))) || special(word(&bytes[len - 8..])),
        // Two overlapping four-byte halves make one word.
        4..=7 => special(half(&bytes[..4]) | half(&bytes[len - 4..]) << 32),
        _ => bytes.iter().any(|&b| b < 0x20 || b == b'"' || b == b'\\'),
    }
}

/// The output of one document (or of a Parquet batch's text): a cursor into a buffer
/// kept longer than what is written (room made ready ahead), so that appending is a
/// bounds check and a copy, with the length in a register rather than a `Vec`'s length
/// and capacity in memory, checked and stored for every piece (which took as many
/// instructions as the writing itself). The room grows when the output needs more;
/// `finish` cuts the buffer to what was written.
pub(crate) struct Out<'b> {
    buf: &'b mut Vec<u8>,
    pos: usize,
}

impl<'b> Out<'b> {
    /// Appends to `buf`, with `room` bytes made ready ahead.
    pub(crate) fn new(buf: &'b mut Vec<u8>, room: usize) -> Out<'b> {
        let pos = buf.len();
        buf.resize(pos + room, 0);
        Out { buf, pos }
    }

    /// Writes `buf` anew from its start, with `room` bytes ready: what it held is
    /// written over, not zero-filled again (a buffer reused for every batch).
    pub(crate) fn reuse(buf: &'b mut Vec<u8>, room: usize) -> Out<'b> {
        if buf.len() < room {
            buf.resize(room, 0);
        }
        Out { buf, pos: 0 }
    }

    /// Where the next byte goes.
    #[inline(always)]
    pub(crate) fn pos(&self) -> usize {
        self.pos
    }

    /// The next `n` bytes, to be written by the caller.
    #[inline(always)]
    fn slot(&mut self, n: usize) -> &mut [u8] {
        if self.buf.len() - self.pos < n {
            self.grow(n);
        }
        let start = self.pos;
        self.pos += n;
        &mut self.buf[start..start + n]
    }

    #[cold]
    #[inline(never)]
    fn grow(&mut self, n: usize) {
        let len = (self.pos + n).max(self.buf.len() * 2);
        self.buf.resize(len, 0);
    }

    #[inline(always)]
    pub(crate) fn bytes(&mut self, bytes: &[u8]) {
        copy_short(self.slot(bytes.len()), bytes);
    }

    #[inline(always)]
    pub(crate) fn byte(&mut self, b: u8) {
        self.slot(1)[0] = b;
    }

    /// Appends again the `N` bytes written at `at`.
    #[inline(always)]
    fn repeat<const N: usize>(&mut self, at: usize) {
        let written: [u8; N] = self.buf[at..at + N].try_into().unwrap_or([0; N]);
        self.slot(N).copy_from_slice(&written);
    }

    /// Overwrites the byte written at `at`.
    #[inline(always)]
    fn set(&mut self, at: usize, b: u8) {
        self.buf[at] = b;
    }

    /// Forgets what was written from `at` on.
    #[inline(always)]
    fn truncate(&mut self, at: usize) {
        self.pos = self.pos.min(at);
    }

    /// Appends `v` in decimal.
    #[inline(always)]
    pub(crate) fn u64(&mut self, v: u64) {
        self.bytes(itoa::Buffer::new().format(v).as_bytes());
    }

    /// `s` as a JSON string literal, escaped.
    #[inline]
    fn string(&mut self, s: &str) {
        if needs_escape(s.as_bytes()) {
            self.escaped_string(s.as_bytes());
        } else {
            self.plain_string(s);
        }
    }

    /// `s`, which has nothing to escape, as a JSON string literal.
    #[inline(always)]
    fn plain_string(&mut self, s: &str) {
        debug_assert!(!needs_escape(s.as_bytes()), "{s:?}");
        let n = s.len();
        let buf = self.slot(n + 2);
        buf[0] = b'"';
        copy_short(&mut buf[1..n + 1], s.as_bytes());
        buf[n + 1] = b'"';
    }

    /// `string` for a string that holds a character to escape.
    #[cold]
    fn escaped_string(&mut self, bytes: &[u8]) {
        self.byte(b'"');
        let mut start = 0;
        for (i, &b) in bytes.iter().enumerate() {
            let escape: &[u8] = match b {
                b'"' => b"\\\"",
                b'\\' => b"\\\\",
                b'\n' => b"\\n",
                b'\r' => b"\\r",
                b'\t' => b"\\t",
                0..=0x1f => b"",
                _ => continue,
            };
            self.bytes(&bytes[start..i]);
            if escape.is_empty() {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                self.bytes(&[
                    b'\\',
                    b'u',
                    b'0',
                    b'0',
                    HEX[(b >> 4) as usize],
                    HEX[(b & 0xf) as usize],
                ]);
            } else {
                self.bytes(escape);
            }
            start = i + 1;
        }
        self.bytes(&bytes[start..]);
        self.byte(b'"');
    }

    /// Ends the output: the buffer keeps what was written, nothing more.
    pub(crate) fn finish(self) {
        self.buf.truncate(self.pos);
    }

    /// Ends the output, leaving the buffer as long as it is (what lies past the output
    /// is written over next time): the length written.
    pub(crate) fn end(self) -> usize {
        self.pos
    }
}

/// Minimal streaming JSON object writer. Every member is written with a leading comma
/// (`,"key":value`), so writing one is a plain copy with no "first member?" branch: when
/// an object ends, the comma of its first member is overwritten with its `{`, and an
/// object that got no member is removed with its key, so absent values leave no `{}`.
struct Writer<'b> {
    out: Out<'b>,
    depth: usize,
    /// Per open object: where its key began (to remove it if it stays empty) and where
    /// its members begin (the first member's comma).
    open: [(usize, usize); 8],
}

impl<'b> Writer<'b> {
    /// Writes a document from the start of `buf` (over what it held), with `room`
    /// bytes made ready for it.
    fn new(buf: &'b mut Vec<u8>, room: usize) -> Writer<'b> {
        Writer {
            out: Out::reuse(buf, room),
            depth: 0,
            open: [(0, 0); 8],
        }
    }

    /// Writes a `k!` key literal (`,"key":`), or any run of whole members.
    #[inline(always)]
    fn key(&mut self, key: &str) {
        self.out.bytes(key.as_bytes());
    }

    #[inline(always)]
    fn begin_object(&mut self, key: &'static str) {
        let mark = self.out.pos();
        self.key(key);
        self.depth += 1;
        self.open[self.depth] = (mark, self.out.pos());
    }

    #[inline(always)]
    fn end_object(&mut self) {
        let (mark, members) = self.open[self.depth];
        self.depth -= 1;
        self.close(mark, members);
    }

    /// Closes the object whose members began at `members`, or removes it from `mark`
    /// when it has none.
    #[inline(always)]
    fn close(&mut self, mark: usize, members: usize) {
        if self.out.pos() == members {
            self.out.truncate(mark);
        } else {
            self.out.set(members, b'{');
            self.out.byte(b'}');
        }
    }

    #[inline(always)]
    fn string(&mut self, key: &'static str, value: &str) {
        self.key(key);
        self.out.string(value);
    }

    /// A string with nothing to escape: an IP address the parser validated (hex
    /// digits, dots and colons), or a constant.
    #[inline(always)]
    fn plain(&mut self, key: &'static str, value: &str) {
        self.key(key);
        self.out.plain_string(value);
    }

    fn opt_string(&mut self, key: &'static str, value: Option<&str>) {
        if let Some(v) = value {
            self.string(key, v);
        }
    }

    /// A number, when present: its digits as the record has them (see
    /// `FlowRecord::digits`), or else `value` formatted.
    #[inline(always)]
    fn number(&mut self, key: &'static str, value: Option<u64>, digits: Option<&str>) {
        if let Some(v) = value {
            self.key(key);
            match digits {
                Some(digits) => self.out.bytes(digits.as_bytes()),
                None => self.out.u64(v),
            }
        }
    }

    /// Appends JSON already rendered: whole members with their leading commas
    /// (`,"a":1,"b":"x"`: constants, or the origin's, which may be empty), or the `}`
    /// that closes an object written inline.
    #[inline(always)]
    fn json(&mut self, rendered: &str) {
        self.out.bytes(rendered.as_bytes());
    }

    /// Ends the document (it always has a member, `@timestamp`): its length.
    fn finish(mut self) -> usize {
        debug_assert_eq!(self.depth, 0);
        let (mark, members) = self.open[0];
        if self.out.pos() == members {
            self.out.byte(b',');
        }
        self.close(mark, members);
        self.out.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_u64_matches_display() {
        let mut values: Vec<u64> = (0..=1000).collect();
        for p in 1..20 {
            let ten = 10u64.pow(p);
            values.extend([ten - 1, ten, ten + 1, ten.saturating_mul(7) - 3]);
        }
        values.extend([u64::MAX, u64::MAX - 1, 1_700_000_060]);
        for v in values {
            let mut out = b"x".to_vec();
            write_u64(&mut out, v);
            assert_eq!(String::from_utf8(out).unwrap(), format!("x{v}"));
        }
    }

    #[test]
    fn reused_out_writes_over_what_the_buffer_held() {
        for (held, room, written) in [
            ("an old batch of text", 3, "new"),
            ("old", 0, "longer than what was held"),
            ("", 4, ""),
        ] {
            let mut buf = held.as_bytes().to_vec();
            let mut out = Out::reuse(&mut buf, room);
            out.bytes(written.as_bytes());
            out.finish();
            assert_eq!(buf, written.as_bytes());
        }
    }

    #[test]
    fn a_reused_document_holds_only_the_last_document_written() {
        let origin = Origin::file("flows.log");
        let ctx = DocContext {
            event_id: "id",
            origin: &origin,
            original: None,
            now: 1_700_000_000,
            interface: None,
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

    #[test]
    fn out_grows_past_its_room_and_keeps_only_what_was_written() {
        let source: Vec<u8> = (0u8..=255).cycle().take(5000).collect();
        for room in [0, 1, 7, 100, 4096, 20_000] {
            let mut buf = b"prefix".to_vec();
            let mut expected = buf.clone();
            let mut out = Out::new(&mut buf, room);
            let mut at = 0;
            for len in (0..100).chain([300, 1000]) {
                out.bytes(&source[at..at + len]);
                expected.extend_from_slice(&source[at..at + len]);
                at = (at + len) % 3000;
                out.byte(b'|');
                expected.push(b'|');
            }
            out.u64(u64::MAX);
            expected.extend_from_slice(u64::MAX.to_string().as_bytes());
            out.repeat::<10>(6);
            expected.extend_from_within(6..16);
            let end = out.pos();
            out.bytes(b"dropped");
            out.truncate(end);
            out.set(6, b'{');
            expected[6] = b'{';
            out.finish();
            assert!(buf == expected, "room {room}");
        }
    }

    #[test]
    fn timestamps() {
        assert_eq!(format_timestamp(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_timestamp(1418530070), "2014-12-14T04:07:50Z");
        assert_eq!(format_timestamp(164000066), "1975-03-14T03:34:26Z");
        assert_eq!(format_timestamp(951782400), "2000-02-29T00:00:00Z");
        assert_eq!(
            format_timestamp(crate::flowlog::record::MAX_TIMESTAMP),
            "9999-12-31T23:59:59Z"
        );
        // One day's date is reused, the next day's computed.
        let mut dates = Dates::default();
        let mut buf = Vec::new();
        let mut out = Out::new(&mut buf, 0);
        for t in [1418530010, 1418530070, 86_399, 86_400, 1418530070] {
            dates.write(&mut out, t);
        }
        out.finish();
        assert_eq!(
            String::from_utf8(buf).unwrap(),
            r#""2014-12-14T04:06:50Z""2014-12-14T04:07:50Z""1970-01-01T23:59:59Z""1970-01-02T00:00:00Z""2014-12-14T04:07:50Z""#
        );
    }

    #[test]
    fn community_id_matches_published_vectors() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        // Elastic aws.vpcflow integration pipeline test expectations.
        assert_eq!(
            community_id_v1(
                ip("89.160.20.156"),
                ip("89.160.20.156"),
                6,
                Some((20641, 22))
            ),
            "1:CEGBlG6oEeW2Y5LLdr9GONITz00="
        );
        assert_eq!(
            community_id_v1(
                ip("89.160.20.156"),
                ip("10.200.0.0"),
                17,
                Some((50041, 33004))
            ),
            "1:+zLdyx7gcy2L5ERP4Je5AZMgl3A="
        );
        assert_eq!(
            community_id_v1(ip("1.128.0.0"), ip("2a02:cf40::"), 6, Some((39464, 22))),
            "1:yMxrbWtpAzdDF0dFnvIBRb/Ys5c="
        );
        assert_eq!(
            community_id_v1(ip("175.16.199.0"), ip("67.43.156.0"), 17, Some((56846, 80))),
            "1:KuA+xnOVKgXK3R+gM5tXdyjdQLc="
        );
        // Both directions hash alike.
        assert_eq!(
            community_id_v1(ip("10.0.0.1"), ip("10.0.0.2"), 6, Some((1000, 80))),
            community_id_v1(ip("10.0.0.2"), ip("10.0.0.1"), 6, Some((80, 1000)))
        );
        assert_eq!(
            community_id_v1(ip("10.0.0.1"), ip("10.0.0.2"), 1, Some((8, 0))),
            community_id_v1(ip("10.0.0.2"), ip("10.0.0.1"), 1, Some((0, 0)))
        );
    }

    #[test]
    fn needs_escape_finds_every_special_byte_at_every_position() {
        for len in 0..24 {
            assert!(!needs_escape(&vec![b'a'; len]), "{len}");
            for at in 0..len {
                for special in [b'"', b'\\', b'\n', 0, 0x1f] {
                    let mut bytes = vec![b'a'; len];
                    bytes[at] = special;
                    assert!(needs_escape(&bytes), "{len} {at} {special}");
                }
            }
        }
    }

    #[test]
    fn escapes() {
        let mut v = Vec::new();
        write_str(&mut v, "a\"b\\c\n\u{1}é");
        assert_eq!(String::from_utf8(v).unwrap(), "\"a\\\"b\\\\c\\n\\u0001é\"");
    }
}
