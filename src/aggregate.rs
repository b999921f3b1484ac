//! AGGREGATE: records of one unit that describe the same flow become one document.
//! `flows` folds records equal in every column but the counters and the capture window
//! (packets and bytes are summed, the earliest start and the latest end kept);
//! `conversations` also folds the client's port (README, Reducing volume: the service
//! side is the lower port). Only records whose action AGGREGATE_ACTIONS names are folded
//! (ACCEPT by default), never one with a threat match, and the REJECT attribution is part
//! of what must be equal. An aggregate's document is the first record's, its counters,
//! window and client port replaced, with the number of records folded
//! (`aws.vpcflow.aggregate.records`, OCSF `count`) and, for conversations, of distinct
//! client ports; a flow of one record leaves as that record's own document. The table
//! is capped (`MAX_AGGREGATES`, `MAX_AGGREGATE_BYTES`): when full, its aggregates leave
//! and a new table starts.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasher, BuildHasherDefault};

use foldhash::fast::RandomState;

use crate::attribution::RejectAttribution;
use crate::filter::Expression;
use crate::flowlog::{Field, FlowRecord, Schema, Span};

/// AGGREGATE's modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Flows,
    Conversations,
}

/// What AGGREGATE and AGGREGATE_ACTIONS ask for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AggregateSettings {
    pub mode: Mode,
    /// Actions whose records are folded (upper case).
    pub actions: Vec<String>,
    /// AGGREGATE_WHERE: only records it is true for are folded.
    pub scope: Option<Expression>,
}

impl AggregateSettings {
    /// AGGREGATE (`off`, `flows`, `conversations`), AGGREGATE_ACTIONS (a comma list of
    /// ACCEPT and REJECT; ACCEPT by default) and AGGREGATE_WHERE (a FILTER expression);
    /// none when off. An error names the variable.
    pub fn parse(
        mode: Option<&str>,
        actions: Option<&str>,
        scope: Option<&str>,
    ) -> Result<Option<AggregateSettings>, (&'static str, String)> {
        let mode = match mode.map(|m| m.trim().to_ascii_lowercase()).as_deref() {
            None | Some("") | Some("off") => return Ok(None),
            Some("flows") => Mode::Flows,
            Some("conversations") => Mode::Conversations,
            Some(other) => {
                return Err((
                    "AGGREGATE",
                    format!("'{other}' is not off, flows or conversations"),
                ))
            }
        };
        let mut list = Vec::new();
        for action in actions.unwrap_or("ACCEPT").split(',').map(str::trim) {
            let action = action.to_ascii_uppercase();
            if action != "ACCEPT" && action != "REJECT" {
                return Err((
                    "AGGREGATE_ACTIONS",
                    format!("'{action}' is not ACCEPT or REJECT"),
                ));
            }
            list.push(action);
        }
        let scope = match scope.filter(|s| !s.trim().is_empty()) {
            None => None,
            Some(text) => Some(Expression::parse(text).map_err(|e| ("AGGREGATE_WHERE", e))?),
        };
        Ok(Some(AggregateSettings {
            mode,
            actions: list,
            scope,
        }))
    }
}

/// Most aggregates a unit holds at once; past them, they leave and a new table starts.
pub const MAX_AGGREGATES: usize = 65_536;
/// Most bytes the held aggregates take (their keys, lines, first documents and client
/// ports).
pub const MAX_AGGREGATE_BYTES: usize = 16 << 20;

/// An aggregate held until it leaves. Its bytes (key, line, first id, first document)
/// are in the table's arena.
struct Held {
    key: Range,
    /// The first record's values joined by spaces; `spans` (in the table's spans, as
    /// many as its schema has columns) says where each column is in it.
    line: Range,
    spans: u32,
    /// Index in `Aggregator::schemas`.
    schema: u32,
    /// The first record's `event.id`.
    first_id: Range,
    /// The first record's own document and time: what leaves when no other record
    /// folds into it.
    doc: Range,
    time: u64,
    records: u64,
    packets: u64,
    bytes: u64,
    start: u64,
    end: u64,
    /// The column of the client's port (conversations), and the ports seen.
    client: Option<u32>,
    client_ports: Option<HashSet<u16, RandomState>>,
    attribution: Option<RejectAttribution>,
    /// The next aggregate whose key has the same hash, if any.
    next: Option<u32>,
    /// What writing the first record's document counted.
    enrichment: Enrichment,
}

/// Whether writing a document counted it enriched or unenriched (ENRICH_ENI): taken back
/// when that document is not sent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Enrichment {
    pub enriched: u64,
    pub unenriched: u64,
}

/// What the first record's document of a merged aggregate added to the unit's counts,
/// written and not sent.
#[derive(Debug, Clone, Copy)]
pub struct Discarded {
    pub bytes: u64,
    pub enrichment: Enrichment,
}

/// Where bytes are in the arena.
#[derive(Debug, Clone, Copy, Default)]
struct Range {
    start: u32,
    len: u32,
}

impl Range {
    fn of(arena: &[u8], range: Range) -> &[u8] {
        &arena[range.start as usize..(range.start + range.len) as usize]
    }
}

/// Appends `bytes` to the arena; where they are.
fn store(arena: &mut Vec<u8>, bytes: &[u8]) -> Range {
    let start = arena.len() as u32;
    arena.extend_from_slice(bytes);
    Range {
        start,
        len: bytes.len() as u32,
    }
}

/// What `Aggregator::fold` did with a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fold {
    /// Not folded: its document is written as usual.
    No,
    /// Folded into an aggregate held.
    Into,
    /// The first of a new aggregate: write its document as usual and hand it to
    /// `Aggregator::keep` (it leaves as it is if no record folds into it).
    First,
}

/// An aggregate leaving.
pub enum Aggregate<'t> {
    /// One record: its own document, id and time, unchanged.
    Single {
        doc: &'t [u8],
        id: &'t str,
        time: u64,
    },
    /// Several: their record as a line of `schema`, and what its document says of it;
    /// `discarded`, what the first record's document (written, not sent) counted.
    Merged {
        line: String,
        schema: &'t Schema,
        id: String,
        records: u64,
        /// Distinct client ports (conversations).
        client_ports: Option<u64>,
        attribution: Option<RejectAttribution>,
        discarded: Discarded,
    },
}

/// The aggregates that leave (`Aggregator::take`): read them with `aggregates`, then
/// hand them back (`Aggregator::recycle`) so that their buffers serve the next table.
pub struct Taken {
    held: Vec<Held>,
    arena: Vec<u8>,
    spans: Vec<Span>,
    schemas: Vec<Schema>,
    conversations: bool,
}

impl Taken {
    /// The aggregates, in the order their first records came.
    pub fn aggregates(&self) -> impl Iterator<Item = Aggregate<'_>> + '_ {
        self.held.iter().map(move |held| self.aggregate(held))
    }

    fn aggregate(&self, held: &Held) -> Aggregate<'_> {
        use std::fmt::Write;
        let first_id = std::str::from_utf8(Range::of(&self.arena, held.first_id)).unwrap_or("");
        if held.records == 1 {
            return Aggregate::Single {
                doc: Range::of(&self.arena, held.doc),
                id: first_id,
                time: held.time,
            };
        }
        let schema = &self.schemas[held.schema as usize];
        let counters = [
            (schema.position(Field::Packets), held.packets),
            (schema.position(Field::Bytes), held.bytes),
            (schema.position(Field::Start), held.start),
            (schema.position(Field::End), held.end),
        ];
        let text = std::str::from_utf8(Range::of(&self.arena, held.line)).unwrap_or("");
        let spans = &self.spans[held.spans as usize..held.spans as usize + schema.len()];
        let mut line = String::with_capacity(text.len() + 16);
        for (i, &(s, e)) in spans.iter().enumerate() {
            if i > 0 {
                line.push(' ');
            }
            if let Some((_, v)) = counters.iter().find(|(c, _)| *c == Some(i)) {
                let _ = write!(line, "{v}");
            } else if held.client == Some(i as u32) {
                line.push('-');
            } else {
                line.push_str(text.get(s as usize..e as usize).unwrap_or("-"));
            }
        }
        Aggregate::Merged {
            line,
            schema,
            id: crate::pipeline::aggregate_id(first_id, held.records),
            records: held.records,
            client_ports: self
                .conversations
                .then(|| held.client_ports.as_ref().map_or(0, |p| p.len() as u64)),
            attribution: held.attribution,
            discarded: Discarded {
                bytes: u64::from(held.doc.len),
                enrichment: held.enrichment,
            },
        }
    }
}

/// What a document of an aggregate says of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AggregateInfo {
    pub records: u64,
    pub client_ports: Option<u64>,
}

/// Per unit: the aggregates held.
pub struct Aggregator {
    settings: AggregateSettings,
    /// From a key's hash to the first aggregate with that hash (the others follow
    /// `Held::next`).
    index: HashMap<u64, u32, BuildHasherDefault<KeyHash>>,
    hasher: RandomState,
    held: Vec<Held>,
    arena: Vec<u8>,
    spans: Vec<Span>,
    schemas: Vec<Schema>,
    /// The columns of packets, bytes, start and end in each schema.
    counters: Vec<[usize; 4]>,
    key: Vec<u8>,
    /// Client ports held in all (conversations).
    client_ports: usize,
}

/// The hasher of `Aggregator::index`, whose keys are hashes already.
#[derive(Default)]
struct KeyHash(u64);

impl std::hash::Hasher for KeyHash {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u64(&mut self, v: u64) {
        self.0 = v;
    }
}

impl Aggregator {
    pub fn new(settings: AggregateSettings) -> Aggregator {
        Aggregator {
            settings,
            index: HashMap::default(),
            hasher: RandomState::default(),
            // Room for a few thousand aggregates from the start: the arena is not moved
            // again and again while it grows (recycled tables keep theirs).
            held: Vec::with_capacity(4096),
            arena: Vec::with_capacity(4 << 20),
            spans: Vec::with_capacity(4096 * 16),
            schemas: Vec::new(),
            counters: Vec::new(),
            key: Vec::new(),
            client_ports: 0,
        }
    }

    /// Folds `rec` (its `event.id` is `id`) into its aggregate, or starts one with it
    /// (`Fold::First`). `Fold::No` when it is not folded (its action is not aggregated,
    /// AGGREGATE_WHERE is false for it, it lacks a counter or its window, a sum would pass
    /// its field's largest value, or a value holds a space).
    pub fn fold(
        &mut self,
        rec: &FlowRecord<'_>,
        id: &str,
        attribution: Option<RejectAttribution>,
    ) -> Fold {
        let Some(action) = rec.get(Field::Action) else {
            return Fold::No;
        };
        if !self.settings.actions.iter().any(|a| a == action) {
            return Fold::No;
        }
        if let Some(scope) = &self.settings.scope {
            if !scope.matches(rec) {
                return Fold::No;
            }
        }
        let (Some(packets), Some(bytes), Some(start), Some(end)) =
            (rec.packets, rec.bytes, rec.start, rec.end)
        else {
            return Fold::No;
        };
        let schema = rec.schema();
        let schema_index = match self.schemas.iter().rposition(|s| s == schema) {
            Some(i) => i,
            None => {
                self.schemas.push(schema.clone());
                self.counters.push(
                    [Field::Packets, Field::Bytes, Field::Start, Field::End]
                        .map(|f| schema.position(f).unwrap_or(usize::MAX)),
                );
                self.schemas.len() - 1
            }
        };
        let client = match self.settings.mode {
            Mode::Flows => None,
            Mode::Conversations => client_port(rec),
        };
        let client_column = client.map(|(column, _)| column);
        let counters = self.counters[schema_index];
        self.key.clear();
        self.key
            .extend_from_slice(&(schema_index as u32).to_le_bytes());
        self.key.push(attribution.map_or(0, |a| a as u8 + 1));
        let client_marker = client_column.map_or(0, |c| c as u32 + 1);
        self.key.extend_from_slice(&client_marker.to_le_bytes());
        for i in 0..schema.len() {
            if counters.contains(&i) || client_column == Some(i) {
                continue;
            }
            self.key.extend_from_slice(rec.column(i).as_bytes());
            self.key.push(0x1f);
        }
        let hash = self.hasher.hash_one(self.key.as_slice());
        let first = self.index.get(&hash).copied();
        let mut at = first;
        while let Some(i) = at {
            let held = &self.held[i as usize];
            if Range::of(&self.arena, held.key) == self.key.as_slice() {
                break;
            }
            at = held.next;
        }
        if let Some(at) = at {
            let held = &mut self.held[at as usize];
            let sums = (
                held.packets.checked_add(packets),
                held.bytes.checked_add(bytes),
            );
            let (Some(p), Some(b)) = sums else {
                return Fold::No;
            };
            if p > Field::Packets.max_integer() || b > Field::Bytes.max_integer() {
                return Fold::No;
            }
            held.packets = p;
            held.bytes = b;
            held.start = held.start.min(start);
            held.end = held.end.max(end);
            held.records += 1;
            if let Some((_, port)) = client {
                if held
                    .client_ports
                    .get_or_insert_with(HashSet::default)
                    .insert(port)
                {
                    self.client_ports += 1;
                }
            }
            return Fold::Into;
        }
        // The first record of its aggregate: kept as a line, to be read again.
        let key = store(&mut self.arena, &self.key);
        let line_start = self.arena.len() as u32;
        let spans = self.spans.len() as u32;
        let (text, text_spans) = (rec.text(), rec.spans());
        // A line's columns are the whole text, one space apart (a JSON record's values
        // are one after another, a Parquet row's are in its batch's text).
        let whole_line = text_spans.first().is_some_and(|&(s, _)| s == 0)
            && text_spans
                .last()
                .is_some_and(|&(_, e)| e as usize == text.len())
            && text_spans.windows(2).all(|w| w[1].0 == w[0].1 + 1);
        if whole_line {
            // A line: kept as it is, with its spans.
            self.arena.extend_from_slice(text.as_bytes());
            self.spans.extend_from_slice(text_spans);
        } else {
            // A Parquet row or JSON record: its values joined by spaces.
            for i in 0..schema.len() {
                if i > 0 {
                    self.arena.push(b' ');
                }
                let at = self.arena.len() as u32 - line_start;
                self.arena.extend_from_slice(rec.column(i).as_bytes());
                self.spans.push((at, self.arena.len() as u32 - line_start));
            }
        }
        let line = Range {
            start: line_start,
            len: self.arena.len() as u32 - line_start,
        };
        // Read again, the line must give the same columns: no value may hold a space, and
        // a line must hold nothing but its columns and single spaces.
        let spaces = memchr::memchr_iter(b' ', Range::of(&self.arena, line)).count();
        let columns: usize = self.spans[spans as usize..]
            .iter()
            .map(|&(s, e)| (e - s) as usize)
            .sum();
        if spaces + 1 != schema.len() || columns + spaces != line.len as usize {
            self.arena.truncate(key.start as usize);
            self.spans.truncate(spans as usize);
            return Fold::No;
        }
        let first_id = store(&mut self.arena, id.as_bytes());
        let client_ports = client.map(|(_, port)| {
            let mut ports = HashSet::default();
            ports.insert(port);
            self.client_ports += 1;
            ports
        });
        self.index.insert(hash, self.held.len() as u32);
        self.held.push(Held {
            key,
            line,
            spans,
            schema: schema_index as u32,
            first_id,
            doc: Range::default(),
            time: end,
            records: 1,
            packets,
            bytes,
            start,
            end,
            client: client_column.map(|c| c as u32),
            client_ports,
            attribution,
            next: first,
            enrichment: Enrichment::default(),
        });
        Fold::First
    }

    /// Keeps the document of the record that started the last aggregate (`Fold::First`),
    /// its time, and whether writing it counted an enriched or unenriched document.
    pub fn keep(&mut self, doc: &[u8], time: u64, enrichment: Enrichment) {
        let range = store(&mut self.arena, doc);
        if let Some(held) = self.held.last_mut() {
            held.doc = range;
            held.time = time;
            held.enrichment = enrichment;
        }
    }

    /// Whether the table reached its cap: its aggregates must leave now (`take`).
    pub fn is_full(&self) -> bool {
        self.held.len() >= MAX_AGGREGATES || self.bytes() >= MAX_AGGREGATE_BYTES
    }

    /// What the table takes: its arena, spans and aggregates, and about 8 bytes a
    /// client port.
    fn bytes(&self) -> usize {
        self.arena.len()
            + self.spans.len() * 8
            + self.held.len() * std::mem::size_of::<Held>()
            + self.client_ports * 8
    }

    pub fn is_empty(&self) -> bool {
        self.held.is_empty()
    }

    /// The aggregates held; the table starts empty again (`recycle` gives it back its
    /// buffers).
    pub fn take(&mut self) -> Taken {
        self.index.clear();
        self.client_ports = 0;
        Taken {
            held: std::mem::take(&mut self.held),
            arena: std::mem::take(&mut self.arena),
            spans: std::mem::take(&mut self.spans),
            schemas: {
                self.counters.clear();
                std::mem::take(&mut self.schemas)
            },
            conversations: self.settings.mode == Mode::Conversations,
        }
    }

    /// Takes back the buffers of aggregates that left, emptied, for the next table.
    pub fn recycle(&mut self, mut taken: Taken) {
        if self.held.is_empty() {
            taken.held.clear();
            taken.arena.clear();
            taken.spans.clear();
            self.held = taken.held;
            self.arena = taken.arena;
            self.spans = taken.spans;
        }
    }
}

/// The column and value of the client's port of a TCP, UDP or SCTP record: the higher
/// of its two ports, the lower one being the service's. None when the ports are equal
/// or absent, or for other protocols (nothing is folded then but the counters).
fn client_port(rec: &FlowRecord<'_>) -> Option<(usize, u16)> {
    if !matches!(rec.protocol, Some(6 | 17 | 132)) {
        return None;
    }
    let (src, dst) = (rec.srcport?, rec.dstport?);
    let schema = rec.schema();
    match src.cmp(&dst) {
        std::cmp::Ordering::Greater => Some((schema.position(Field::SrcPort)?, src)),
        std::cmp::Ordering::Less => Some((schema.position(Field::DstPort)?, dst)),
        std::cmp::Ordering::Equal => None,
    }
}
