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
use crate::flowlog::{Field, FlowRecord, RecordValues, Schema, Span};

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

/// Most bytes held per unit for REJECT records (text, id and bookkeeping) before the
/// older half is released early.
pub const MAX_HELD_BYTES: usize = 4 * 1024 * 1024;

/// A REJECT record waiting for its mirror, or for the end of its unit. Its id and text
/// are in the held text of its unit (`Released::id`, `Released::text`).
#[derive(Debug)]
pub struct HeldReject {
    /// Its line (or row, or event) number.
    pub number: u64,
    /// Where its `event.id` then its text start in the held text, and their lengths.
    start: u32,
    id_len: u32,
    text_len: u32,
    /// Where its columns' spans start in the held spans (as many as its schema has).
    spans_start: u32,
    /// Its converted values: it is rebuilt from them, its text never parsed again (a
    /// Parquet row: its values joined by spaces, each read exactly as it was).
    values: RecordValues,
    /// Index of its schema in `Released::schemas`.
    pub schema: u32,
    /// The length of its `event.original` (INCLUDE_ORIGINAL), held after its text.
    original_len: Option<u32>,
}

impl HeldReject {
    /// The bytes it takes while held: its text and id, itself and its flow (its spans
    /// are counted where they are added).
    fn size(&self) -> usize {
        (self.id_len + self.text_len + self.original_len.unwrap_or(0)) as usize
            + std::mem::size_of::<HeldReject>()
            + std::mem::size_of::<(RejectedFlow, RejectAttribution)>()
    }
}

/// A generation of held records: their ids and texts, spans and schemas, one after
/// another in buffers that are filled, released whole, and filled again. Released, its
/// records have their attribution decided; hand it back (`RejectAttributor::recycle`)
/// so that its buffers serve the next generation.
#[derive(Debug, Default)]
pub struct Released {
    pub records: Vec<HeldReject>,
    /// Each record's flow, then (released) its attribution: apart from the records, so
    /// that deciding them reads 32 bytes a record, not a record's 200.
    flows: Vec<(RejectedFlow, RejectAttribution)>,
    text: String,
    spans: Vec<Span>,
    /// `HeldReject::schema` indexes these (one per header line seen, usually one).
    schemas: Vec<Schema>,
    /// What the generation takes: texts, spans, records and schemas.
    bytes: usize,
}

impl Released {
    fn clear(&mut self) {
        self.records.clear();
        self.flows.clear();
        self.text.clear();
        self.spans.clear();
        self.schemas.clear();
        self.bytes = 0;
    }

    /// A released record, as it was read.
    pub fn record<'r>(&'r self, h: &HeldReject) -> FlowRecord<'r> {
        let schema = &self.schemas[h.schema as usize];
        let start = h.spans_start as usize;
        let spans = &self.spans[start..start + schema.len()];
        FlowRecord::from_values(self.text(h), schema, spans, h.values)
    }

    /// The attribution of the `index`th released record.
    pub fn attribution(&self, index: usize) -> RejectAttribution {
        self.flows[index].1
    }

    /// A released record's `event.id`.
    pub fn id(&self, h: &HeldReject) -> &str {
        let start = h.start as usize;
        &self.text[start..start + h.id_len as usize]
    }

    /// A released record's text: a line, or what a JSON record or Parquet row was
    /// read as.
    fn text(&self, h: &HeldReject) -> &str {
        let start = (h.start + h.id_len) as usize;
        &self.text[start..start + h.text_len as usize]
    }

    /// A released record's `event.original`, when INCLUDE_ORIGINAL held it.
    pub fn original(&self, h: &HeldReject) -> Option<&str> {
        let start = (h.start + h.id_len + h.text_len) as usize;
        h.original_len
            .map(|len| &self.text[start..start + len as usize])
    }
}

/// A capture window, Unix seconds (start, end); (0, u32::MAX) when the record has none.
type Window = (u32, u32);

/// The accepted records of a unit: an open-addressing table (linear probing) of slots
/// `[flow key, window]` (key 0: empty; the window packed as start << 32 | end), each
/// accepted record a slot of its own. Windows of a key that overlap are merged (an
/// interval overlaps their union exactly when it overlaps one of them); others are
/// kept apart, so that a REJECT between two accepted windows overlaps neither. Zeroed
/// memory is an empty table. A slot is prefetched when its record is parsed and used
/// once its document is written, so that the table's size costs no wait on memory.
#[derive(Debug, Default)]
struct AcceptedTable {
    slots: Slots,
    len: usize,
    /// Once the table is full (it never changes again): a Bloom filter of its keys,
    /// 512 KiB that stay in cache where the table's 4 MiB do not, so that a REJECT
    /// whose mirror is not in the table is told at once (see `RejectAttributor::claim`).
    summary: Vec<u64>,
}

/// Words of the full table's summary: 2^16 of 64 bits, two bits a key (about 1 % of
/// absent keys pass for present, and are then looked up in the table).
const SUMMARY_WORDS: usize = 1 << 16;

/// A key's word and bits in the summary: from the key's low bits (its top bits pick
/// its slot in the table).
fn summary_bits(key: u64) -> (usize, u64) {
    let word = key as usize & (SUMMARY_WORDS - 1);
    (word, (1 << ((key >> 16) & 63)) | (1 << ((key >> 22) & 63)))
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

    fn is_full(&self) -> bool {
        self.len >= MAX_ACCEPTED_FLOWS
    }

    /// Asks the processor to bring `key`'s first slot into the cache.
    #[inline]
    fn prefetch(&mut self, key: u64) {
        if self.slots.is_empty() {
            self.slots = take_table();
        }
        prefetch(&self.slots[Self::start(key)]);
    }

    /// Adds a window of `key` (merged into one of its windows it overlaps); false when
    /// the table is full.
    fn insert(&mut self, key: u64, window: Window) -> bool {
        if self.is_full() {
            // Full: not even a merge is looked for (a probe of a full table is the
            // longest there is).
            return false;
        }
        if self.slots.is_empty() {
            self.slots = take_table();
        }
        match self.probe(key, window) {
            Ok(i) => {
                let w = unpack(self.slots[i][1]);
                self.slots[i][1] = pack((w.0.min(window.0), w.1.max(window.1)));
            }
            Err(empty) => {
                self.slots[empty] = [key, pack(window)];
                self.len += 1;
                if self.is_full() {
                    self.summarize();
                }
            }
        }
        true
    }

    /// Builds the summary of the keys of the (full) table.
    fn summarize(&mut self) {
        self.summary = vec![0; SUMMARY_WORDS];
        for &[key, _] in self.slots.iter().filter(|[key, _]| *key != 0) {
            let (word, bits) = summary_bits(key);
            self.summary[word] |= bits;
        }
    }

    /// Asks the processor to bring `key`'s summary word into the cache.
    #[inline]
    fn prefetch_summary(&self, key: u64) {
        if let Some(word) = self.summary.get(summary_bits(key).0) {
            prefetch(word);
        }
    }

    /// Whether `key` may be in the full table (false: it is not).
    #[inline]
    fn may_hold(&self, key: u64) -> bool {
        let (word, bits) = summary_bits(key);
        self.summary.get(word).is_none_or(|w| w & bits == bits)
    }

    /// Whether a window of `key` overlaps `window`.
    fn overlaps(&self, key: u64, window: Window) -> bool {
        !self.slots.is_empty() && self.probe(key, window).is_ok()
    }

    /// The slot of `key` whose window overlaps `window`, or the empty slot that ends
    /// `key`'s run (the table is never full: at most 3/4 of its slots are taken).
    fn probe(&self, key: u64, window: Window) -> Result<usize, usize> {
        let mask = TABLE_SLOTS - 1;
        let mut i = Self::start(key);
        loop {
            let [k, w] = self.slots[i];
            if k == 0 {
                return Err(i);
            }
            if k == key && overlap(unpack(w), window) {
                return Ok(i);
            }
            i = (i + 1) & mask;
        }
    }
}

impl Drop for AcceptedTable {
    /// The table is emptied and kept for the next unit: a fresh one costs the mapping
    /// of its memory, for every S3 object.
    fn drop(&mut self) {
        if self.slots.len() != TABLE_SLOTS {
            return;
        }
        if self.len > 0 {
            self.slots.fill([0, 0]);
        }
        if let Ok(mut spare) = SPARE_TABLES.lock() {
            if spare.len() < MAX_SPARE_TABLES {
                spare.push(std::mem::take(&mut self.slots));
            }
        }
    }
}

/// Emptied tables of units that ended, for the next ones (one per unit read at once).
static SPARE_TABLES: std::sync::Mutex<Vec<Slots>> = std::sync::Mutex::new(Vec::new());
const MAX_SPARE_TABLES: usize = 2;

/// An empty table: a spare one, or a new one.
fn take_table() -> Slots {
    let spare = SPARE_TABLES.lock().ok().and_then(|mut s| s.pop());
    spare.unwrap_or_else(Slots::allocate)
}

/// The table's memory: `TABLE_SLOTS` zeroed slots from a 2 MiB boundary inside an
/// allocation 2 MiB larger (whose extra pages are never touched), so that two huge
/// pages can hold it all. Its lookups land anywhere in 4 MiB: on 4 KiB pages nearly
/// each one also misses the address translation cache, which on a virtual machine
/// (nested page tables) cost more than the rest of attribution together.
#[derive(Debug, Default)]
struct Slots {
    memory: Vec<[u64; 2]>,
    start: usize,
}

impl Slots {
    fn allocate() -> Slots {
        const HUGE_PAGE: usize = 2 << 20;
        const SLOT: usize = std::mem::size_of::<[u64; 2]>();
        let memory = vec![[0u64; 2]; TABLE_SLOTS + HUGE_PAGE / SLOT];
        let addr = memory.as_ptr() as usize;
        let start = (addr.next_multiple_of(HUGE_PAGE) - addr).div_ceil(SLOT);
        let mut slots = Slots { memory, start };
        map_now(&mut slots);
        slots
    }
}

impl std::ops::Deref for Slots {
    type Target = [[u64; 2]];

    fn deref(&self) -> &[[u64; 2]] {
        self.memory
            .get(self.start..self.start + TABLE_SLOTS)
            .unwrap_or_default()
    }
}

impl std::ops::DerefMut for Slots {
    fn deref_mut(&mut self) -> &mut [[u64; 2]] {
        self.memory
            .get_mut(self.start..self.start + TABLE_SLOTS)
            .unwrap_or_default()
    }
}

/// Maps a fresh table's pages at once, as huge pages where the kernel offers them
/// (transparent huge pages, `always` or `madvise`). Left to first use, each of its
/// 1,024 small pages would fault twice (read as the shared zero page by a lookup, then
/// copied when a slot is written). Where the kernel has neither hint (huge pages off,
/// Linux before 5.14), pages are mapped as they are used.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn map_now(table: &mut [[u64; 2]]) {
    const PAGE: usize = 4096;
    let start = (table.as_mut_ptr() as usize).next_multiple_of(PAGE);
    let end = (table.as_mut_ptr() as usize + std::mem::size_of_val(table)) / PAGE * PAGE;
    if end <= start {
        return;
    }
    let (addr, len) = (start as *mut libc::c_void, end - start);
    // SAFETY: [start, end) lies inside `table`, which this function borrows mutably;
    // both hints only choose how its (zeroed) pages are backed, never their contents.
    unsafe {
        libc::madvise(addr, len, libc::MADV_HUGEPAGE);
        libc::madvise(addr, len, libc::MADV_POPULATE_WRITE);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn map_now(_table: &mut [[u64; 2]]) {}

/// A hint to load the cache line of `item`; it never faults, and does nothing where
/// the architecture has no such hint.
#[inline(always)]
fn prefetch<T>(item: &T) {
    let p = item as *const T;
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch reads nothing and cannot fault; `p` points at a live value.
    unsafe {
        core::arch::x86_64::_mm_prefetch(p.cast::<i8>(), core::arch::x86_64::_MM_HINT_T0)
    };
    #[cfg(target_arch = "aarch64")]
    // SAFETY: as above; PRFM only hints the cache.
    unsafe {
        core::arch::asm!("prfm pldl1keep, [{0}]", in(reg) p, options(nostack, readonly, preserves_flags))
    };
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    let _ = p;
}

/// An accepted record that can take part in a claim, to be noted once its document is
/// written (its slot is fetched meanwhile).
#[derive(Debug, Clone, Copy)]
pub struct AcceptedFlow {
    key: u64,
    window: Window,
}

/// A REJECT record that can be claimed by a network ACL: the keys its accepted mirror
/// may have (at most two: an ICMP `0 0` record's mirror may be an echo request or
/// another `0 0` record; 0 for none) and its window.
#[derive(Debug, Clone, Copy)]
pub struct RejectedFlow {
    mirrors: [u64; 2],
    window: Window,
}

/// What attribution can say of a REJECT record.
#[derive(Debug, Clone, Copy)]
pub enum Claim {
    /// No claim can be made (no interface, Transit Gateway, log-status not OK, a
    /// reject-reason other than BPA): the document gets no attribution.
    None,
    /// Decided now, by the record alone (BPA).
    Now(RejectAttribution),
    /// The table of accepted records is full (nothing more will be remembered): decided
    /// by what it holds (`decide`), once the record's document is written, while the
    /// summary of the table's keys comes from memory.
    Full(RejectedFlow),
    /// Decided by its accepted mirror, seen before or after it: the record is held
    /// until it is released (`hold`, `release`).
    Mirror(RejectedFlow),
}

/// Per-unit state of REJECT attribution.
#[derive(Debug, Default)]
pub struct RejectAttributor {
    accepted: AcceptedTable,
    /// Held records: the young generation fills up; at half the cap, the old one is
    /// released and the young one becomes old (nothing is copied or moved), and the
    /// released buffers, handed back, hold the next young generation.
    young: Released,
    old: Released,
    /// Accepted records (naming an interface) not remembered because the table was full.
    pub accepted_dropped: u64,
    /// Held records released before the unit's end because the held text was full.
    pub held_released_early: u64,
}

impl RejectAttributor {
    pub fn new() -> RejectAttributor {
        RejectAttributor::default()
    }

    /// An accepted record's flow, when it can take part in a claim (see `eligible`);
    /// its slot is fetched from memory while the caller goes on. `note_accept` it.
    #[inline]
    pub fn accepted(&mut self, rec: &FlowRecord<'_>) -> Option<AcceptedFlow> {
        if self.accepted.is_full() {
            // Nothing more is remembered: not even its slot is fetched, nor the rest of
            // its eligibility checked (counted when it names an interface).
            if rec.get(Field::InterfaceId).is_some() {
                self.accepted_dropped += 1;
            }
            return None;
        }
        let interface = eligible(rec)?;
        let iface = interface_hash(interface);
        let protocol = rec.protocol.unwrap_or(0);
        let (sp, dp) = ports(rec, protocol);
        let key = flow_key(iface, (rec.srcaddr, sp), (rec.dstaddr, dp), protocol);
        self.accepted.prefetch(key);
        Some(AcceptedFlow {
            key,
            window: window(rec),
        })
    }

    /// Remembers an accepted record.
    #[inline]
    pub fn note_accept(&mut self, flow: AcceptedFlow) {
        if !self.accepted.insert(flow.key, flow.window) {
            self.accepted_dropped += 1;
        }
    }

    /// What can be said of a REJECT record: no claim, a decision of its own (BPA), or
    /// one its accepted mirror decides.
    pub fn claim(&mut self, rec: &FlowRecord<'_>) -> Claim {
        if let Some(reason) = rec.get(Field::RejectReason) {
            return if reason == "BPA" {
                Claim::Now(RejectAttribution::BlockPublicAccess)
            } else {
                Claim::None
            };
        }
        let Some(interface) = eligible(rec) else {
            return Claim::None;
        };
        let iface = interface_hash(interface);
        let flow = RejectedFlow {
            mirrors: mirror_keys(rec, iface),
            window: window(rec),
        };
        if self.accepted.is_full() {
            for key in flow.mirrors.into_iter().filter(|&k| k != 0) {
                self.accepted.prefetch_summary(key);
            }
            return Claim::Full(flow);
        }
        Claim::Mirror(flow)
    }

    /// The attribution of a REJECT claimed once the table was full (`Claim::Full`):
    /// network ACL when an accepted mirror is there, its window overlapping. Most such
    /// records have no mirror, which the table's summary tells without a lookup.
    pub fn decide(&self, flow: &RejectedFlow) -> RejectAttribution {
        let maybe = flow
            .mirrors
            .iter()
            .any(|&k| k != 0 && self.accepted.may_hold(k));
        if maybe && self.mirror_seen(flow) {
            RejectAttribution::NetworkAcl
        } else {
            RejectAttribution::SecurityGroupOrNetworkAcl
        }
    }

    /// Whether an accepted mirror of `flow` was seen, its window overlapping.
    fn mirror_seen(&self, flow: &RejectedFlow) -> bool {
        flow.mirrors
            .iter()
            .filter(|&&k| k != 0)
            .any(|&key| self.accepted.overlaps(key, flow.window))
    }

    /// Holds a REJECT record `rec` until the unit ends: its `text` (its line, what a
    /// JSON record was read as, or a Parquet row's values joined by spaces) and `spans`,
    /// its columns in that text, and its `original` (INCLUDE_ORIGINAL).
    #[allow(clippy::too_many_arguments)]
    pub fn hold(
        &mut self,
        flow: RejectedFlow,
        rec: &FlowRecord<'_>,
        number: u64,
        id: &str,
        text: &str,
        spans: &[Span],
        original: Option<&str>,
    ) {
        let schema = rec.schema();
        let young = &mut self.young;
        if young.schemas.last() != Some(schema) {
            // A header line changed the schema: the held records need both. Its size
            // counts, so that headers alternating with lone REJECTs fill the cap.
            young.schemas.push(schema.clone());
            young.bytes += schema_size(schema);
        }
        let start = young.text.len() as u32;
        young.text.push_str(id);
        young.text.push_str(text);
        if let Some(original) = original {
            young.text.push_str(original);
        }
        let spans_start = young.spans.len() as u32;
        young.spans.extend_from_slice(spans);
        let held = HeldReject {
            number,
            start,
            id_len: id.len() as u32,
            text_len: text.len() as u32,
            spans_start,
            values: rec.values(),
            schema: (young.schemas.len() - 1) as u32,
            original_len: original.map(|o| o.len() as u32),
        };
        young.bytes += held.size() + std::mem::size_of_val(spans);
        young.records.push(held);
        young
            .flows
            .push((flow, RejectAttribution::SecurityGroupOrNetworkAcl));
    }

    /// Whether the held records reached their cap: `release` must be called now.
    pub fn is_full(&self) -> bool {
        self.young.bytes >= MAX_HELD_BYTES / 2
    }

    pub fn is_holding(&self) -> bool {
        !self.young.records.is_empty() || !self.old.records.is_empty()
    }

    /// Lets a generation of held records go, each with its attribution decided: when
    /// the unit has ended, the old generation, then (called again) the young one; else
    /// (`is_full`) the old generation, the young one becoming old. Released early,
    /// records are counted in `held_released_early`.
    pub fn release(&mut self, unit_ended: bool) -> Released {
        let out = if unit_ended && self.old.records.is_empty() {
            std::mem::take(&mut self.young)
        } else {
            let out = std::mem::take(&mut self.old);
            if !unit_ended {
                // The young generation becomes old; the next young one takes the
                // released buffers when they are handed back.
                self.old = std::mem::take(&mut self.young);
            }
            out
        };
        let mut out = out;
        if !unit_ended {
            self.held_released_early += out.records.len() as u64;
        }
        // Decided a few records ahead of their slots' arrival from memory.
        const AHEAD: usize = 32;
        for i in 0..out.flows.len() {
            if let Some((next, _)) = out.flows.get(i + AHEAD) {
                for key in next.mirrors.into_iter().filter(|&k| k != 0) {
                    self.accepted.prefetch(key);
                }
            }
            let (flow, attribution) = &mut out.flows[i];
            if self.mirror_seen(flow) {
                *attribution = RejectAttribution::NetworkAcl;
            }
        }
        out
    }

    /// Takes back the buffers of a release once its records are written: the next
    /// young generation fills them (no allocation, and no page given back and taken
    /// again, per release).
    pub fn recycle(&mut self, mut released: Released) {
        if self.young.records.is_empty() && self.young.text.capacity() < released.text.capacity() {
            released.clear();
            self.young = released;
        }
    }
}

/// A hash of an interface id (21 bytes, `eni-` and 17 hex digits) in a few loads and
/// multiplications; xxh3 for a longer one.
#[inline]
fn interface_hash(s: &str) -> u64 {
    let b = s.as_bytes();
    let word = |i: usize| u64::from_le_bytes(b[i..i + 8].try_into().unwrap_or_default());
    let (x, y) = match b.len() {
        // Two or four words covering every byte (they may overlap).
        16..=32 => (
            word(0) ^ word(b.len() - 16).rotate_left(29),
            word(8) ^ word(b.len() - 8).rotate_left(29),
        ),
        8..=15 => (word(0), word(b.len() - 8)),
        0..=7 => {
            let mut w = [0u8; 8];
            w[..b.len()].copy_from_slice(b);
            (u64::from_le_bytes(w), 0)
        }
        _ => return xxhash_rust::xxh3::xxh3_64(b),
    };
    fold(
        x ^ 0x9e37_79b9_7f4a_7c15,
        y ^ 0xc2b2_ae3d_27d4_eb4f ^ b.len() as u64,
    )
}

#[inline(always)]
fn fold(a: u64, b: u64) -> u64 {
    let m = u128::from(a) * u128::from(b);
    (m as u64) ^ ((m >> 64) as u64)
}

/// A record's interface, when it can take part in a claim: it names one, is not a
/// Transit Gateway record, and its log-status (when present) is OK.
#[inline]
fn eligible<'r>(rec: &FlowRecord<'r>) -> Option<&'r str> {
    let interface = rec.get(Field::InterfaceId)?;
    (!rec.is_transit_gateway() && rec.get(Field::LogStatus).is_none_or(|s| s == "OK"))
        .then_some(interface)
}

/// The ports a flow key uses: TCP, UDP and SCTP ports; for ICMP and ICMPv6 the type
/// (srcport) alone; none for other protocols.
#[inline]
fn ports(rec: &FlowRecord<'_>, protocol: u8) -> (u16, u16) {
    match protocol {
        6 | 17 | 132 => (rec.srcport.unwrap_or(0), rec.dstport.unwrap_or(0)),
        1 | 58 => (rec.srcport.unwrap_or(0), 0),
        _ => (0, 0),
    }
}

/// The keys the accepted mirror of a REJECT record may have: its endpoints swapped
/// (ports too), and for ICMP the type its mirror has. ICMP pairs only a request with its
/// reply, in opposite directions (echo request 8 with echo reply 0, 128 with 129, ...).
/// AWS records ICMP with srcport and dstport 0 (no type): such a record also pairs with
/// its like in the other direction.
fn mirror_keys(rec: &FlowRecord<'_>, iface: u64) -> [u64; 2] {
    let protocol = rec.protocol.unwrap_or(0);
    let (src, dst) = (rec.srcaddr, rec.dstaddr);
    if !matches!(protocol, 1 | 58) {
        let (sp, dp) = ports(rec, protocol);
        return [flow_key(iface, (dst, dp), (src, sp), protocol), 0];
    }
    let (t, code) = (rec.srcport.unwrap_or(0), rec.dstport.unwrap_or(0));
    let partner = if protocol == 1 {
        icmp_reply_type(t)
    } else {
        icmp6_reply_type(t)
    };
    let unknown = (t, code) == (0, 0);
    [
        partner.map_or(0, |p| flow_key(iface, (dst, p), (src, 0), protocol)),
        if unknown {
            flow_key(iface, (dst, 0), (src, 0), protocol)
        } else {
            0
        },
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

/// The key of a flow on its interface (`iface`, the interface id's hash): its source and
/// destination (address, port) and protocol, mixed by folded multiplications (as
/// wyhash and foldhash do): one equal 64-bit key stands for one flow (two flows share a
/// key about once in 2^64 / 200,000^2 lookups). Never 0, which marks an empty slot.
#[inline]
fn flow_key(
    iface: u64,
    src: (Option<IpAddr>, u16),
    dst: (Option<IpAddr>, u16),
    protocol: u8,
) -> u64 {
    const K: [u64; 6] = [
        0x243f_6a88_85a3_08d3,
        0x1319_8a2e_0370_7344,
        0xa409_3822_299f_31d0,
        0x082e_fa98_ec4e_6c89,
        0x4528_21e6_38d0_1377,
        0xbe54_66cf_34e9_0c6c,
    ];
    #[inline(always)]
    fn bits(addr: Option<IpAddr>) -> u128 {
        match addr {
            Some(IpAddr::V4(a)) => u128::from(a.to_ipv6_mapped()),
            Some(IpAddr::V6(a)) => u128::from(a),
            None => u128::MAX,
        }
    }
    let (s, d) = (bits(src.0), bits(dst.0));
    let ports = (u64::from(src.1) << 32) | (u64::from(dst.1) << 16) | u64::from(protocol);
    let h = fold((s as u64) ^ K[0], ((s >> 64) as u64) ^ K[1]);
    let h = fold(h ^ (d as u64) ^ K[2], ((d >> 64) as u64) ^ K[3]);
    let h = fold(h ^ ports ^ K[4], iface ^ K[5]);
    h.max(1)
}
