//! REJECT attribution (REJECT_ATTRIBUTION): was a rejected flow stopped by a network
//! ACL, or by a security group or a network ACL? Security groups are stateful, network
//! ACLs are not: when a flow is accepted on an interface and its mirror (addresses and
//! ports swapped, same protocol, a capture window overlapping that accepted record's
//! own) is rejected on the same interface, the rejecting rule is a network ACL. A lone
//! REJECT may be either. A record that names no interface, a Transit Gateway record
//! (no security groups or network ACLs there), a record whose log-status is not OK and
//! a record with its own `reject-reason` get no such claim (`BPA`, VPC Block Public
//! Access, gets its own value).
//!
//! Per unit, this module remembers the accepted records seen (a fixed table of flow
//! keys and capture windows) and holds the REJECT records whose mirror has not been seen yet (their text, bounded
//! in bytes), since the two halves may come in either order. Held records leave when
//! the unit ends; when the held text reaches its cap, the older half leaves at once
//! (each decided on what was seen so far, counted in `held_released_early`): records of
//! one interface and capture window come together, so the older a held record, the
//! less likely its mirror is still to come.

use std::net::IpAddr;

use crate::community_id::{icmp6_reply_type, icmp_reply_type};
use crate::flowlog::{Field, FlowRecord, Schema, Span};

/// The attribution written on a REJECT document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejectAttribution {
    /// The mirror flow was accepted on the same interface: a network ACL rejected it.
    NetworkAcl,
    /// No accepted mirror in the unit: a security group or a network ACL.
    SecurityGroupOrNetworkAcl,
    /// The record's `reject-reason` is `BPA`: VPC Block Public Access rejected it.
    BlockPublicAccess,
}

impl RejectAttribution {
    /// `aws.vpcflow.reject_attribution`.
    pub fn as_str(self) -> &'static str {
        match self {
            RejectAttribution::NetworkAcl => "network_acl",
            RejectAttribution::SecurityGroupOrNetworkAcl => "security_group_or_network_acl",
            RejectAttribution::BlockPublicAccess => "block_public_access",
        }
    }

    /// `event.reason` of a network ACL rejection (when the record gives none).
    pub const NETWORK_ACL_REASON: &'static str = "Rejected by a network ACL: the mirror flow was accepted on the same interface, and security groups (stateful) would have allowed this reply";
}

/// Slots of the accepted-record table: 2^18 of 16 bytes (a flow key and a window),
/// 4 MiB allocated once per unit at its first accepted record, never grown.
const TABLE_SLOTS: usize = 1 << 18;
/// Most accepted records (windows) remembered per unit: 3/4 of the table, so that a
/// lookup scans a few slots at most.
pub const MAX_ACCEPTED_FLOWS: usize = TABLE_SLOTS / 4 * 3;

/// What attribution says of a REJECT record before its mirror is looked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// No claim can be made (no interface, Transit Gateway, log-status not OK, a
    /// reject-reason other than BPA): the document gets no attribution.
    NoClaim,
    /// Decided now.
    Now(RejectAttribution),
    /// Its mirror has not been seen yet: hold it.
    Hold,
}
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
    /// A Parquet row's values in its text (joined by spaces): the row is read back
    /// from them exactly as it was read, never split again.
    spans: Option<Box<[Span]>>,
    /// Index of its schema in the list `RejectAttributor::release` returns.
    pub schema: u32,
    /// Whether its text is `event.original` (INCLUDE_ORIGINAL).
    pub original: bool,
    /// Decided when it is released.
    pub attribution: RejectAttribution,
    mirrors: MirrorKeys,
    window: Window,
}

impl HeldReject {
    /// Its `event.id`.
    pub fn id(&self) -> &str {
        &self.id_and_text[..self.id_len as usize]
    }

    /// Its text: a line, or a Parquet row's values joined by spaces.
    pub fn text(&self) -> &str {
        &self.id_and_text[self.id_len as usize..]
    }

    /// A Parquet row's values in `text`; none for a line (parsed again).
    pub fn spans(&self) -> Option<&[Span]> {
        self.spans.as_deref()
    }

    /// The bytes it takes while held: its text, id and spans, itself, and the
    /// allocator's headers.
    fn size(&self) -> usize {
        self.id_and_text.len()
            + self.spans.as_ref().map_or(0, |s| s.len() * 8 + 16)
            + std::mem::size_of::<HeldReject>()
            + 16
    }
}

/// A capture window, Unix seconds (start, end); (0, u32::MAX) when the record has none.
type Window = (u32, u32);

/// The accepted records of a unit: an open-addressing table (linear probing) of slots
/// `[flow key, window]` (key 0: empty; the window packed as start << 32 | end), each
/// accepted record a slot of its own. Windows of a key that overlap are merged (an
/// interval overlaps their union exactly when it overlaps one of them); others are
/// kept apart, so that a REJECT between two accepted windows overlaps neither. Zeroed
/// memory is an empty table: its pages are touched only as slots fill.
#[derive(Debug, Default)]
struct AcceptedTable {
    slots: Vec<[u64; 2]>,
    len: usize,
}

fn pack(w: Window) -> u64 {
    (u64::from(w.0) << 32) | u64::from(w.1)
}

fn unpack(w: u64) -> Window {
    ((w >> 32) as u32, w as u32)
}

fn overlap(a: Window, b: Window) -> bool {
    a.0 <= b.1 && b.0 <= a.1
}

impl AcceptedTable {
    fn start(key: u64) -> usize {
        // The key is a hash already: its top bits pick the slot.
        (key >> (64 - TABLE_SLOTS.trailing_zeros())) as usize
    }

    /// Adds a window of `key` (merged into one of its windows it overlaps); false when
    /// the table is full.
    fn insert(&mut self, key: u64, window: Window) -> bool {
        if self.slots.is_empty() {
            self.slots = vec![[0u64; 2]; TABLE_SLOTS];
        }
        let mask = TABLE_SLOTS - 1;
        let mut i = Self::start(key);
        loop {
            let [k, w] = self.slots[i];
            if k == 0 {
                break;
            }
            if k == key && overlap(unpack(w), window) {
                let w = unpack(w);
                self.slots[i][1] = pack((w.0.min(window.0), w.1.max(window.1)));
                return true;
            }
            i = (i + 1) & mask;
        }
        if self.len >= MAX_ACCEPTED_FLOWS {
            return false;
        }
        self.slots[i] = [key, pack(window)];
        self.len += 1;
        true
    }

    /// Whether a window of `key` overlaps `window`.
    fn overlaps(&self, key: u64, window: Window) -> bool {
        if self.slots.is_empty() {
            return false;
        }
        let mask = TABLE_SLOTS - 1;
        let mut i = Self::start(key);
        loop {
            let [k, w] = self.slots[i];
            if k == 0 {
                return false;
            }
            if k == key && overlap(unpack(w), window) {
                return true;
            }
            i = (i + 1) & mask;
        }
    }
}

/// Per-unit state of REJECT attribution.
#[derive(Debug, Default)]
pub struct RejectAttributor {
    accepted: AcceptedTable,
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

    /// Remembers an accepted record (one that can make a claim: see `eligible`).
    pub fn note_accept(&mut self, rec: &FlowRecord<'_>) {
        if !eligible(rec) {
            return;
        }
        if !self.accepted.insert(flow_key(rec, None), window(rec)) {
            self.accepted_dropped += 1;
        }
    }

    /// What can be said of a REJECT record now: no claim, a decision (its accepted
    /// mirror was already seen, or its reject-reason is BPA), or hold it.
    pub fn decide(&self, rec: &FlowRecord<'_>) -> Decision {
        if let Some(reason) = rec.get(Field::RejectReason) {
            return if reason == "BPA" {
                Decision::Now(RejectAttribution::BlockPublicAccess)
            } else {
                Decision::NoClaim
            };
        }
        if !eligible(rec) {
            return Decision::NoClaim;
        }
        if self.mirror_accepted(&mirror_keys(rec), window(rec)) {
            Decision::Now(RejectAttribution::NetworkAcl)
        } else {
            Decision::Hold
        }
    }

    /// Holds a REJECT record (`text`, read with `schema`) until the unit ends.
    #[allow(clippy::too_many_arguments)]
    pub fn hold(
        &mut self,
        rec: &FlowRecord<'_>,
        schema: &Schema,
        number: u64,
        id: &str,
        text: &str,
        spans: Option<Vec<Span>>,
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
            spans: spans.map(Vec::into_boxed_slice),
            schema: (self.schemas.len() - 1) as u32,
            original,
            attribution: RejectAttribution::SecurityGroupOrNetworkAcl,
            mirrors: mirror_keys(rec),
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
            if self.mirror_accepted(&h.mirrors, h.window) {
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

    /// Whether an accepted record of one of the keys `mirrors` has a window that
    /// overlaps `window`.
    fn mirror_accepted(&self, mirrors: &MirrorKeys, window: Window) -> bool {
        mirrors
            .iter()
            .flatten()
            .any(|&key| self.accepted.overlaps(key, window))
    }
}

/// Whether a record can take part in a claim: it names its interface, is not a Transit
/// Gateway record, and its log-status (when present) is OK.
fn eligible(rec: &FlowRecord<'_>) -> bool {
    rec.get(Field::InterfaceId).is_some()
        && !rec.is_transit_gateway()
        && rec.get(Field::LogStatus).is_none_or(|s| s == "OK")
}

/// The keys an accepted mirror of a REJECT record may have (at most two: an ICMP
/// `0 0` record's mirror may be an echo request or another `0 0` record).
type MirrorKeys = [Option<u64>; 2];

fn mirror_keys(rec: &FlowRecord<'_>) -> MirrorKeys {
    let protocol = rec.protocol.unwrap_or(0);
    if !matches!(protocol, 1 | 58) {
        return [Some(flow_key(rec, Some(0))), None];
    }
    // ICMP: only a request and its reply pair, in opposite directions (echo request 8
    // with echo reply 0, 128 with 129, ...). AWS records ICMP with srcport and dstport
    // 0 (no type): such a record also pairs with its like in the other direction.
    let (t, code) = (rec.srcport.unwrap_or(0), rec.dstport.unwrap_or(0));
    let partner = if protocol == 1 {
        icmp_reply_type(t)
    } else {
        icmp6_reply_type(t)
    };
    let unknown = (t, code) == (0, 0);
    [
        partner.map(|p| flow_key(rec, Some(p))),
        unknown.then(|| flow_key(rec, Some(0))),
    ]
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

/// The key of a flow on its interface: the interface, the addresses and ports, and the
/// protocol (ICMP and ICMPv6: the type in place of the ports). `mirror` gives the key
/// the record's mirror has instead: endpoints swapped, and for ICMP the mirror's type.
fn flow_key(rec: &FlowRecord<'_>, mirror: Option<u16>) -> u64 {
    let interface = rec.get(Field::InterfaceId).unwrap_or("");
    let protocol = rec.protocol.unwrap_or(0);
    let (sp, dp) = match protocol {
        6 | 17 | 132 => (rec.srcport.unwrap_or(0), rec.dstport.unwrap_or(0)),
        1 | 58 => (mirror.unwrap_or(rec.srcport.unwrap_or(0)), 0),
        _ => (0, 0),
    };
    let (mut src, mut dst) = ((rec.srcaddr, sp), (rec.dstaddr, dp));
    if mirror.is_some() {
        std::mem::swap(&mut src.0, &mut dst.0);
        if !matches!(protocol, 1 | 58) {
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
    // 0 marks an empty slot of the table.
    h.max(1)
}
