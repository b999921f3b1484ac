//! One flow log record: the columns of a text line split on runs of ASCII whitespace,
//! validated against the schema's field types. Values borrow the line; only the fields
//! the ECS document needs as numbers or addresses are converted.

use std::net::IpAddr;

use super::fields::{Field, Kind};
use super::schema::Schema;

/// Byte range of one column's value inside the record text.
pub type Span = (u32, u32);

/// Latest timestamp accepted (year 9999), so that every accepted value formats.
pub const MAX_TIMESTAMP: u64 = 253_402_300_799;

/// A validated record. `-` (absent) values read as `None`.
#[derive(Debug)]
pub struct FlowRecord<'a> {
    schema: &'a Schema,
    text: &'a str,
    spans: &'a [Span],
    pub srcaddr: Option<IpAddr>,
    pub dstaddr: Option<IpAddr>,
    pub pkt_srcaddr: Option<IpAddr>,
    pub pkt_dstaddr: Option<IpAddr>,
    pub srcport: Option<u16>,
    pub dstport: Option<u16>,
    pub protocol: Option<u8>,
    pub packets: Option<u64>,
    pub bytes: Option<u64>,
    pub start: Option<u64>,
    pub end: Option<u64>,
    pub tcp_flags: Option<u64>,
}

/// The values a record converts from its text (addresses, ports, numbers, times): what
/// a record held for later keeps, so that its text is never parsed twice.
#[derive(Debug, Clone, Copy)]
pub struct RecordValues {
    srcaddr: Option<IpAddr>,
    dstaddr: Option<IpAddr>,
    pkt_srcaddr: Option<IpAddr>,
    pkt_dstaddr: Option<IpAddr>,
    srcport: Option<u16>,
    dstport: Option<u16>,
    protocol: Option<u8>,
    packets: Option<u64>,
    bytes: Option<u64>,
    start: Option<u64>,
    end: Option<u64>,
    tcp_flags: Option<u64>,
}

impl RecordValues {
    /// These values with the counters and window of an aggregate of records.
    pub fn with_counters(self, packets: u64, bytes: u64, start: u64, end: u64) -> RecordValues {
        RecordValues {
            packets: Some(packets),
            bytes: Some(bytes),
            start: Some(start),
            end: Some(end),
            ..self
        }
    }

    /// The values of the mirror record: addresses, ports and packet addresses swapped.
    pub fn mirrored(self) -> RecordValues {
        RecordValues {
            srcaddr: self.dstaddr,
            dstaddr: self.srcaddr,
            pkt_srcaddr: self.pkt_dstaddr,
            pkt_dstaddr: self.pkt_srcaddr,
            srcport: self.dstport,
            dstport: self.srcport,
            ..self
        }
    }

    /// These values without the source's port (`source`) or the destination's.
    pub fn without_port(self, source: bool) -> RecordValues {
        match source {
            true => RecordValues {
                srcport: None,
                ..self
            },
            false => RecordValues {
                dstport: None,
                ..self
            },
        }
    }
}

/// Why a line is not a valid record. The message names the field and column.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ParseError(pub(super) String);

/// A JSON record whose members name no format.
impl From<super::FormatError> for ParseError {
    fn from(e: super::FormatError) -> ParseError {
        ParseError(e.to_string())
    }
}

/// Splits `text` on runs of ASCII whitespace into `spans` (cleared first), as
/// `str::split_ascii_whitespace` does. Eight bytes at a time: only the bytes up to
/// 0x20 of a word are looked at one by one.
pub fn split_columns(text: &str, spans: &mut Vec<Span>) {
    spans.clear();
    let bytes = text.as_bytes();
    // Space, \t, \n, \x0c, \r: the ASCII whitespace of `u8::is_ascii_whitespace`.
    #[inline(always)]
    fn is_space(b: u8) -> bool {
        b <= b' ' && (b == b' ' || (b'\t'..=b'\r').contains(&b) && b != 0x0b)
    }
    // Where the current column began: just after the last whitespace byte.
    let mut column_start = 0usize;
    let mut at_space = |i: usize, spans: &mut Vec<Span>| {
        if i > column_start {
            spans.push((column_start as u32, i as u32));
        }
        column_start = i + 1;
    };
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let mut chunks = bytes.chunks_exact(8);
    let mut base = 0;
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let w = u64::from_le_bytes(word);
        // A high bit for every byte below 0x21 (and maybe for some bytes just above
        // one: each candidate is checked exactly).
        let mut candidates = w.wrapping_sub(ONES * 0x21) & !w & HIGH;
        while candidates != 0 {
            let lane = (candidates.trailing_zeros() / 8) as usize;
            candidates &= candidates - 1;
            if is_space(chunk[lane]) {
                at_space(base + lane, spans);
            }
        }
        base += 8;
    }
    for (lane, &b) in chunks.remainder().iter().enumerate() {
        if is_space(b) {
            at_space(base + lane, spans);
        }
    }
    if bytes.len() > column_start {
        spans.push((column_start as u32, bytes.len() as u32));
    }
}

/// Parses one text record with `schema`. `spans` is scratch space reused across lines.
pub fn parse_line<'a>(
    text: &'a str,
    schema: &'a Schema,
    spans: &'a mut Vec<Span>,
) -> Result<FlowRecord<'a>, ParseError> {
    if text.len() > u32::MAX as usize {
        return Err(ParseError("record longer than 4 GiB".to_string()));
    }
    split_columns(text, spans);
    if spans.len() != schema.len() {
        // The AWS documentation prints some records with a trailing `#comment`;
        // tolerate exactly that, nothing else.
        let comment_at_end =
            spans.len() > schema.len() && text.as_bytes()[spans[schema.len()].0 as usize] == b'#';
        if !comment_at_end {
            return Err(field_count_error(text, schema, spans));
        }
        spans.truncate(schema.len());
    }
    FlowRecord::from_spans(text, schema, spans)
}

impl<'a> FlowRecord<'a> {
    /// A Transit Gateway flow log record (cloud.service.name `transitgateway`): its
    /// format has any `tgw-*` field, or its `resource-type` names a transit gateway or
    /// one of its attachments.
    pub fn is_transit_gateway(&self) -> bool {
        self.schema().has_transit_gateway_field()
            || matches!(
                self.get(Field::ResourceType),
                Some("TransitGateway" | "TransitGatewayAttachment")
            )
    }

    /// Validates the columns `spans` of `text` (one span per schema column).
    pub fn from_spans(
        text: &'a str,
        schema: &'a Schema,
        spans: &'a [Span],
    ) -> Result<FlowRecord<'a>, ParseError> {
        debug_assert_eq!(spans.len(), schema.len());
        let mut record = FlowRecord {
            schema,
            text,
            spans,
            srcaddr: None,
            dstaddr: None,
            pkt_srcaddr: None,
            pkt_dstaddr: None,
            srcport: None,
            dstport: None,
            protocol: None,
            packets: None,
            bytes: None,
            start: None,
            end: None,
            tcp_flags: None,
        };
        for &(i, field, kind) in schema.typed_columns() {
            let (s, e) = spans[i];
            let value = &text[s as usize..e as usize];
            if value == "-" {
                continue;
            }
            let invalid = |what: &str| {
                ParseError(format!(
                    "field '{}' (column {}): {} '{}'",
                    field.name(),
                    i + 1,
                    what,
                    crate::text::shorten(value)
                ))
            };
            match kind {
                // Not among the typed columns.
                Kind::Text => {}
                Kind::Ip => {
                    let ip = parse_ip(value).ok_or_else(|| invalid("invalid IP address"))?;
                    match field {
                        Field::SrcAddr => record.srcaddr = Some(ip),
                        Field::DstAddr => record.dstaddr = Some(ip),
                        Field::PktSrcAddr => record.pkt_srcaddr = Some(ip),
                        Field::PktDstAddr => record.pkt_dstaddr = Some(ip),
                        _ => {}
                    }
                }
                Kind::Port => {
                    let port = parse_u64(value)
                        .filter(|p| *p <= u16::MAX as u64)
                        .ok_or_else(|| invalid("invalid port (0-65535)"))?
                        as u16;
                    match field {
                        Field::SrcPort => record.srcport = Some(port),
                        Field::DstPort => record.dstport = Some(port),
                        _ => {}
                    }
                }
                Kind::Protocol => {
                    let p = parse_u64(value)
                        .filter(|p| *p <= u8::MAX as u64)
                        .ok_or_else(|| invalid("invalid protocol number (0-255)"))?;
                    record.protocol = Some(p as u8);
                }
                Kind::Integer => {
                    let n = parse_u64(value).ok_or_else(|| invalid("invalid integer"))?;
                    // Written into signed fields (ECS long, OCSF long_t / integer_t),
                    // which a receiver refuses beyond their range.
                    let max = field.max_integer();
                    if n > max {
                        return Err(invalid(&format!("out of range (0 to {max})")));
                    }
                    match field {
                        Field::Packets => record.packets = Some(n),
                        Field::Bytes => record.bytes = Some(n),
                        Field::TcpFlags => record.tcp_flags = Some(n),
                        _ => {}
                    }
                }
                Kind::Timestamp => {
                    let t = parse_u64(value)
                        .filter(|t| *t <= MAX_TIMESTAMP)
                        .ok_or_else(|| invalid("invalid timestamp (Unix seconds)"))?;
                    match field {
                        Field::Start => record.start = Some(t),
                        Field::End => record.end = Some(t),
                        _ => {}
                    }
                }
            }
        }
        Ok(record)
    }

    /// The raw value of `field`, or `None` when the format lacks it or it is `-`.
    #[inline]
    pub fn get(&self, field: Field) -> Option<&'a str> {
        let i = self.schema.position(field)?;
        let v = self.value_at(i);
        (v != "-").then_some(v)
    }

    /// The text of a validated numeric field as a JSON number writes it: the record's
    /// own digits, or `None` when the field is absent or zero-padded (`007`, which JSON
    /// does not allow: write the parsed value then).
    #[inline]
    pub fn digits(&self, field: Field) -> Option<&'a str> {
        self.get(field)
            .filter(|v| v.len() == 1 || !v.starts_with('0'))
    }

    /// Every present value with its pre-rendered `aws.vpcflow` key (`,"key":`), in
    /// format order; values not kept under `aws.vpcflow` are skipped.
    pub fn vpcflow_members(&self) -> impl Iterator<Item = (&'a str, &'a str)> + '_ {
        self.schema
            .vpcflow_columns()
            .iter()
            .filter_map(move |(i, key)| {
                let v = self.value_at(*i);
                (v != "-").then_some((&**key, v))
            })
    }

    /// `vpcflow_members` with each value's column index.
    pub fn vpcflow_entries(&self) -> impl Iterator<Item = (usize, &'a str, &'a str)> + '_ {
        self.schema
            .vpcflow_columns()
            .iter()
            .filter_map(move |(i, key)| {
                let v = self.value_at(*i);
                (v != "-").then_some((*i, &**key, v))
            })
    }

    #[inline]
    fn value_at(&self, i: usize) -> &'a str {
        let (s, e) = self.spans[i];
        &self.text[s as usize..e as usize]
    }

    /// The text of its `i`th column as read (`-` included).
    pub fn column(&self, i: usize) -> &'a str {
        self.value_at(i)
    }

    /// Its text: the line, or what a JSON record or Parquet row was read as.
    pub fn text(&self) -> &'a str {
        self.text
    }

    /// The byte ranges of its columns in its text.
    pub fn spans(&self) -> &'a [Span] {
        self.spans
    }

    /// Its converted values, to rebuild it later with `from_values`.
    pub fn values(&self) -> RecordValues {
        RecordValues {
            srcaddr: self.srcaddr,
            dstaddr: self.dstaddr,
            pkt_srcaddr: self.pkt_srcaddr,
            pkt_dstaddr: self.pkt_dstaddr,
            srcport: self.srcport,
            dstport: self.dstport,
            protocol: self.protocol,
            packets: self.packets,
            bytes: self.bytes,
            start: self.start,
            end: self.end,
            tcp_flags: self.tcp_flags,
        }
    }

    /// The record that `values` were taken from (`values()`), its columns `spans` in
    /// `text` as they were: nothing is parsed or checked again.
    pub fn from_values(
        text: &'a str,
        schema: &'a Schema,
        spans: &'a [Span],
        values: RecordValues,
    ) -> FlowRecord<'a> {
        let RecordValues {
            srcaddr,
            dstaddr,
            pkt_srcaddr,
            pkt_dstaddr,
            srcport,
            dstport,
            protocol,
            packets,
            bytes,
            start,
            end,
            tcp_flags,
        } = values;
        FlowRecord {
            schema,
            text,
            spans,
            srcaddr,
            dstaddr,
            pkt_srcaddr,
            pkt_dstaddr,
            srcport,
            dstport,
            protocol,
            packets,
            bytes,
            start,
            end,
            tcp_flags,
        }
    }

    pub fn schema(&self) -> &'a Schema {
        self.schema
    }
}

/// Parses an unsigned decimal (digits only, no sign), refusing overflow.
#[inline]
pub fn parse_u64(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    if b.is_empty() || b.len() > 20 {
        return None;
    }
    let mut n: u64 = 0;
    if b.len() <= 19 {
        // Up to 19 digits cannot overflow.
        for &c in b {
            let d = c.wrapping_sub(b'0');
            if d > 9 {
                return None;
            }
            n = n * 10 + d as u64;
        }
        return Some(n);
    }
    for &c in b {
        let d = c.wrapping_sub(b'0');
        if d > 9 {
            return None;
        }
        n = n.checked_mul(10)?.checked_add(d as u64)?;
    }
    Some(n)
}

/// Parses an IP address as `IpAddr::from_str` does, with a fast path for the common
/// dotted-quad IPv4 form (four 1-3 digit octets up to 255, no leading zeros).
#[inline]
pub fn parse_ip(s: &str) -> Option<IpAddr> {
    let b = s.as_bytes();
    let mut octets = [0u8; 4];
    let mut i = 0;
    for (n, octet) in octets.iter_mut().enumerate() {
        if n > 0 {
            if b.get(i) != Some(&b'.') {
                return s.parse().ok();
            }
            i += 1;
        }
        let start = i;
        let mut v: u32 = 0;
        while let Some(d) = b.get(i).map(|c| c.wrapping_sub(b'0')).filter(|d| *d <= 9) {
            v = v * 10 + d as u32;
            i += 1;
            if i - start > 3 {
                return s.parse().ok();
            }
        }
        let len = i - start;
        if len == 0 || v > 255 || (len > 1 && b[start] == b'0') {
            return s.parse().ok();
        }
        *octet = v as u8;
    }
    if i != b.len() {
        return s.parse().ok();
    }
    Some(IpAddr::from(octets))
}

/// Why a record's column count does not match its format: the first column missing or
/// the first one too many, named and shortened (never the whole format: a wide header
/// would make every failure document as large).
fn field_count_error(text: &str, schema: &Schema, spans: &[Span]) -> ParseError {
    let (expected, found) = (schema.len(), spans.len());
    let detail = if found < expected {
        let name = match schema.columns().get(found) {
            Some(super::Column::Known(f)) => f.name(),
            Some(super::Column::Unknown { name, .. }) => name.as_str(),
            None => "?",
        };
        format!(
            "field '{}' (column {}) is missing",
            crate::text::shorten(name),
            found + 1
        )
    } else {
        let (s, e) = spans.get(expected).copied().unwrap_or_default();
        let value = text.get(s as usize..e as usize).unwrap_or_default();
        format!(
            "unexpected value '{}' in column {}",
            crate::text::shorten(value),
            expected + 1
        )
    };
    ParseError(format!(
        "expected {expected} fields, found {found}: {detail}"
    ))
}

/// The IANA name of a protocol number (ECS `network.transport`, OCSF
/// `connection_info.protocol_name`).
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_default_record() {
        let schema = Schema::default_v2();
        let mut spans = Vec::new();
        let line = "2 123456789010 eni-1235b8ca123456789 172.31.16.139 172.31.16.21 20641 22 6 20 4249 1418530010 1418530070 ACCEPT OK";
        let r = parse_line(line, &schema, &mut spans).unwrap();
        assert_eq!(r.srcport, Some(20641));
        assert_eq!(r.protocol, Some(6));
        assert_eq!(r.end, Some(1418530070));
        assert_eq!(r.get(Field::Action), Some("ACCEPT"));
        assert_eq!(r.get(Field::VpcId), None);
    }

    #[test]
    fn rejects_bad_values_naming_the_field() {
        let schema = Schema::parse_format("srcaddr srcport").unwrap();
        let mut spans = Vec::new();
        let e = parse_line("1.2.3.4 70000", &schema, &mut spans).unwrap_err();
        assert!(e.0.contains("'srcport' (column 2)"), "{e}");
        let e = parse_line("1.2.3.999 7", &schema, &mut spans).unwrap_err();
        assert!(e.0.contains("'srcaddr'"), "{e}");
        let e = parse_line("1.2.3.4", &schema, &mut spans).unwrap_err();
        assert!(e.0.contains("expected 2 fields"), "{e}");
    }

    #[test]
    fn numbers() {
        assert_eq!(parse_u64("0"), Some(0));
        assert_eq!(parse_u64("18446744073709551615"), Some(u64::MAX));
        assert_eq!(parse_u64("18446744073709551616"), None);
        assert_eq!(parse_u64("-1"), None);
        assert_eq!(parse_u64("+1"), None);
        assert_eq!(parse_u64(""), None);
    }

    #[test]
    fn split_matches_split_ascii_whitespace() {
        let mut spans = Vec::new();
        for text in [
            "",
            " ",
            "a",
            "  a  b\tc\r\nd\x0ce\x0bf  ",
            "2 123456789010 eni-1235b8ca123456789 172.31.16.139 172.31.16.21 20641 22 6 20 4249",
            "!!!!!!!! !!!!!!!!\x00\x1f \u{e9}\u{e9} x",
            "12345678 12345678",
            "1234567 12345678 ",
        ] {
            split_columns(text, &mut spans);
            let ours: Vec<&str> = spans
                .iter()
                .map(|&(s, e)| &text[s as usize..e as usize])
                .collect();
            let std: Vec<&str> = text.split_ascii_whitespace().collect();
            assert_eq!(ours, std, "{text:?}");
        }
    }

    #[test]
    fn ip_fast_path_accepts_exactly_what_the_standard_parser_accepts() {
        for s in [
            "0.0.0.0",
            "255.255.255.255",
            "10.0.1.5",
            "1.2.3.4",
            "256.1.1.1",
            "01.2.3.4",
            "1.2.3",
            "1.2.3.4.5",
            "1.2.3.4 ",
            "1..3.4",
            "1.2.3.",
            ".1.2.3",
            "1234.1.1.1",
            "1.2.3.0400",
            "::1",
            "2001:db8::1",
            "::ffff:1.2.3.4",
            "fe80::1%eth0",
            "",
            "-",
            "1.2.3.-4",
            "1.2.3.+4",
            "0.0.0.00",
        ] {
            assert_eq!(parse_ip(s), s.parse::<IpAddr>().ok(), "{s:?}");
        }
    }
}
