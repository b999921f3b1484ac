//! REJECT attribution (REJECT_ATTRIBUTION): was a rejected flow stopped by a network
//! ACL, or by a security group or a network ACL? Security groups are stateful, network
//! ACLs are not: when a flow is accepted on an interface and its mirror (addresses and
//! ports swapped, same protocol, overlapping capture window) is rejected on the same
//! interface, the rejecting rule is a network ACL. A lone REJECT may be either.
//!
//! Per unit, this module remembers the accepted flows seen (a bounded map of flow keys)
//! and holds the REJECT records whose mirror has not been seen yet (their text, bounded
//! in bytes), since the two halves may come in either order. Held records leave when
//! the unit ends; when the held text reaches its cap, the older half leaves at once
//! (each decided on what was seen so far, counted in `held_released_early`): records of
//! one interface and capture window come together, so the older a held record, the
//! less likely its mirror is still to come.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::net::IpAddr;

use crate::community_id::{icmp6_reply_type, icmp_reply_type};
use crate::flowlog::{Field, FlowRecord, Schema};

/// The attribution written on a REJECT document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejectAttribution {
    /// The mirror flow was accepted on the same interface: a network ACL rejected it.
    NetworkAcl,
    /// No accepted mirror in the unit: a security group or a network ACL.
    SecurityGroupOrNetworkAcl,
}

impl RejectAttribution {
    /// `aws.vpcflow.reject_attribution`.
    pub fn as_str(self) -> &'static str {
        match self {
            RejectAttribution::NetworkAcl => "network_acl",
            RejectAttribution::SecurityGroupOrNetworkAcl => "security_group_or_network_acl",
        }
    }

    /// `event.reason` of a network ACL rejection (when the record gives none).
    pub const NETWORK_ACL_REASON: &'static str = "Rejected by a network ACL: the mirror flow was accepted on the same interface, and security groups (stateful) would have allowed this reply";
}

/// Most accepted flows remembered per unit: 7/8 of 2^18, the most a map of 2^18 slots
/// (16 bytes each: 4 MiB) holds before it would grow to twice that.
pub const MAX_ACCEPTED_FLOWS: usize = 229_376;
/// Most bytes held per unit for REJECT records (text, id and bookkeeping) before the
/// older half is released early.
pub const MAX_HELD_BYTES: usize = 4 * 1024 * 1024;

/// A REJECT record waiting for its mirror, or for the end of its unit.
#[derive(Debug)]
pub struct HeldReject {
    /// Its line (or row, or event) number.
    pub number: u64,
    /// Its `event.id` followed by its text (one allocation).
    id_and_text: String,
    id_len: u32,
    /// Index of its schema in the list `RejectAttributor::release` returns.
    pub schema: u32,
    /// Whether its text is `event.original` (INCLUDE_ORIGINAL).
    pub original: bool,
    /// Decided when it is released.
    pub attribution: RejectAttribution,
    mirror: u64,
    window: Window,
}

impl HeldReject {
    /// Its `event.id`.
    pub fn id(&self) -> &str {
        &self.id_and_text[..self.id_len as usize]
    }

    /// Its text, to be parsed again with its schema.
    pub fn text(&self) -> &str {
        &self.id_and_text[self.id_len as usize..]
    }

    /// The bytes it takes while held: its text and id, itself, and the allocator's
    /// header of its text.
    fn size(&self) -> usize {
        self.id_and_text.len() + std::mem::size_of::<HeldReject>() + 16
    }
}

/// A capture window, Unix seconds (start, end); (0, u32::MAX) when the record has none.
type Window = (u32, u32);

/// Per-unit state of REJECT attribution.
#[derive(Debug, Default)]
pub struct RejectAttributor {
    accepted: HashMap<u64, Window, BuildHasherDefault<KeyHasher>>,
    held: Vec<HeldReject>,
    held_bytes: usize,
    /// The schemas of held records (one per header line seen, usually one).
    schemas: Vec<Schema>,
    /// Accepted flows not remembered because the map was full.
    pub accepted_dropped: u64,
    /// Held records released before the unit's end because the held text was full.
    pub held_released_early: u64,
}

impl RejectAttributor {
    pub fn new() -> RejectAttributor {
        RejectAttributor::default()
    }

    /// Remembers an accepted flow.
    pub fn note_accept(&mut self, rec: &FlowRecord<'_>) {
        let (key, window) = (flow_key(rec, false), window(rec));
        if self.accepted.len() >= MAX_ACCEPTED_FLOWS && !self.accepted.contains_key(&key) {
            self.accepted_dropped += 1;
            return;
        }
        self.accepted
            .entry(key)
            .and_modify(|w| *w = (w.0.min(window.0), w.1.max(window.1)))
            .or_insert(window);
    }

    /// The attribution of a REJECT record when its accepted mirror was already seen.
    pub fn decide_now(&self, rec: &FlowRecord<'_>) -> Option<RejectAttribution> {
        self.mirror_accepted(flow_key(rec, true), window(rec))
            .then_some(RejectAttribution::NetworkAcl)
    }

    /// Holds a REJECT record (`text`, read with `schema`) until the unit ends.
    pub fn hold(
        &mut self,
        rec: &FlowRecord<'_>,
        schema: &Schema,
        number: u64,
        id: &str,
        text: &str,
        original: bool,
    ) {
        if self.schemas.last() != Some(schema) {
            // A header line changed the schema: the held records need both. Its size
            // counts, so that headers alternating with lone REJECTs fill the cap.
            self.schemas.push(schema.clone());
            self.held_bytes += schema_size(schema);
        }
        let mut id_and_text = String::with_capacity(id.len() + text.len());
        id_and_text.push_str(id);
        id_and_text.push_str(text);
        let held = HeldReject {
            number,
            id_and_text,
            id_len: id.len() as u32,
            schema: (self.schemas.len() - 1) as u32,
            original,
            attribution: RejectAttribution::SecurityGroupOrNetworkAcl,
            mirror: flow_key(rec, true),
            window: window(rec),
        };
        self.held_bytes += held.size();
        self.held.push(held);
    }

    /// Whether the held records reached their cap: `release` must be called now.
    pub fn is_full(&self) -> bool {
        self.held_bytes >= MAX_HELD_BYTES
    }

    pub fn is_holding(&self) -> bool {
        !self.held.is_empty()
    }

    /// Takes held records, each with its attribution decided, and the schemas they are
    /// read with (`HeldReject::schema` indexes them): all of them when the unit has
    /// ended, else (`is_full`) the older half, or all of them when they were read with
    /// more than one schema; released early, they are counted in `held_released_early`.
    pub fn release(&mut self, unit_ended: bool) -> (Vec<HeldReject>, Vec<Schema>) {
        let all = unit_ended || self.schemas.len() > 1;
        let mut released = if all {
            self.held_bytes = 0;
            std::mem::take(&mut self.held)
        } else {
            let rest = self
                .held
                .split_off((self.held.len() / 2).max(1).min(self.held.len()));
            self.held_bytes = rest.iter().map(HeldReject::size).sum();
            std::mem::replace(&mut self.held, rest)
        };
        if !unit_ended {
            self.held_released_early += released.len() as u64;
        }
        for h in &mut released {
            if self.mirror_accepted(h.mirror, h.window) {
                h.attribution = RejectAttribution::NetworkAcl;
            }
        }
        let schemas = if all {
            // Records held from now on are read with the last schema (index 0 again).
            let schemas = std::mem::take(&mut self.schemas);
            if let Some(last) = schemas.last() {
                self.schemas.push(last.clone());
            }
            schemas
        } else {
            self.schemas.clone()
        };
        (released, schemas)
    }

    fn mirror_accepted(&self, mirror: u64, window: Window) -> bool {
        self.accepted
            .get(&mirror)
            .is_some_and(|w| w.0 <= window.1 && window.0 <= w.1)
    }
}

/// About the bytes a copy of `schema` takes (its columns, their names and indexes).
fn schema_size(schema: &Schema) -> usize {
    std::mem::size_of::<Schema>() + schema.len() * 128
}

fn window(rec: &FlowRecord<'_>) -> Window {
    let secs = |t: Option<u64>, default: u32| t.map_or(default, |t| t.min(u32::MAX as u64) as u32);
    (
        secs(rec.start.or(rec.end), 0),
        secs(rec.end.or(rec.start), u32::MAX),
    )
}

/// The key of a flow on its interface: the interface (a Transit Gateway record's
/// attachment), the addresses and ports, and the protocol; `mirrored` swaps the
/// endpoints, giving the key the mirror flow has. ICMP and ICMPv6 use the
/// request/reply pair of the type instead of ports (echo request and echo reply, or a
/// type and itself when AWS logs 0 for both), so a reply mirrors its request.
fn flow_key(rec: &FlowRecord<'_>, mirrored: bool) -> u64 {
    let interface = rec
        .get(Field::InterfaceId)
        .or_else(|| rec.get(Field::TgwAttachmentId))
        .unwrap_or("");
    let protocol = rec.protocol.unwrap_or(0);
    let (sp, dp) = match protocol {
        6 | 17 | 132 => (rec.srcport.unwrap_or(0), rec.dstport.unwrap_or(0)),
        1 => (icmp_pair(rec.srcport.unwrap_or(0), false), 0),
        58 => (icmp_pair(rec.srcport.unwrap_or(0), true), 0),
        _ => (0, 0),
    };
    let (mut src, mut dst) = ((rec.srcaddr, sp), (rec.dstaddr, dp));
    if mirrored {
        std::mem::swap(&mut src, &mut dst);
        if matches!(protocol, 1 | 58) {
            // The pair id is the same in both directions: only the addresses swap.
            std::mem::swap(&mut src.1, &mut dst.1);
        }
    }
    let mut bytes = [0u8; 96];
    let mut n = 0;
    let mut put = |b: &[u8]| {
        let end = (n + b.len()).min(bytes.len());
        bytes[n..end].copy_from_slice(&b[..end - n]);
        n = end;
    };
    for (addr, port) in [src, dst] {
        match addr {
            Some(IpAddr::V4(a)) => put(&a.to_ipv6_mapped().octets()),
            Some(IpAddr::V6(a)) => put(&a.octets()),
            None => put(&[0xff; 16]),
        }
        put(&port.to_le_bytes());
    }
    put(&[protocol]);
    let interface = interface.as_bytes();
    let head = &interface[..interface.len().min(48)];
    put(head);
    let mut h = xxhash_rust::xxh3::xxh3_64(&bytes[..n]);
    if interface.len() > 48 {
        h ^= xxhash_rust::xxh3::xxh3_64(interface);
    }
    h
}

/// The request/reply pair an ICMP (or ICMPv6) type belongs to: the lower type of the
/// pair (echo request 8 and echo reply 0 are both 0), or the type itself.
fn icmp_pair(t: u16, v6: bool) -> u16 {
    let reply = if v6 {
        icmp6_reply_type(t)
    } else {
        icmp_reply_type(t)
    };
    t.min(reply.unwrap_or(t))
}

/// Keys are already hashes: the map uses them as they are.
#[derive(Default)]
struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}
