//! AGGREGATE: records of one unit that describe the same flow become one document.
//! `flows` folds records equal in every column but the counters and the capture window
//! (packets and bytes are summed, the earliest start and the latest end kept);
//! `connections` also folds each flow's reply (its mirror on the same interface: the
//! addresses, ports and packet addresses swapped, the flow direction the other) into it,
//! the replies' counters kept apart; `conversations` also folds the client's port
//! (README, Reducing volume: the service side is the lower port), where
//! AGGREGATE_CONVERSATIONS_WHERE allows. Only records whose action AGGREGATE_ACTIONS
//! names are folded (ACCEPT by default), never one with a threat match, and the REJECT
//! attribution is part of what must be equal. An aggregate's document is written from
//! the first record's line, turned to face from the client when it holds both directions,
//! its counters, window and client port replaced, with the number of records folded
//! (`aws.vpcflow.aggregate.records`, OCSF `count`), the replies' counters and, for
//! conversations, the number of distinct client ports; a flow of one record leaves as
//! that record's own document. The table is capped (`MAX_AGGREGATES`,
//! `MAX_AGGREGATE_BYTES`): when full, its aggregates leave and a new table starts.

use std::collections::HashSet;
use std::hash::{BuildHasher, Hasher};

use foldhash::fast::RandomState;

use crate::attribution::RejectAttribution;
use crate::filter::Expression;
use crate::flowlog::{Field, FlowRecord, RecordValues, Schema, Span};

/// AGGREGATE's modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Flows,
    Connections,
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
    /// AGGREGATE_CONVERSATIONS_WHERE (conversations): only records it is true for fold
    /// their client's port; the others fold as connections.
    pub conversations_scope: Option<Expression>,
}

impl AggregateSettings {
    /// AGGREGATE (`off`, `flows`, `connections`, `conversations`), AGGREGATE_ACTIONS (a
    /// comma list of ACCEPT and REJECT; ACCEPT by default), AGGREGATE_WHERE and
    /// AGGREGATE_CONVERSATIONS_WHERE (FILTER expressions); none when off. An error names
    /// the variable.
    pub fn parse(
        mode: Option<&str>,
        actions: Option<&str>,
        scope: Option<&str>,
        conversations_scope: Option<&str>,
    ) -> Result<Option<AggregateSettings>, (&'static str, String)> {
        let mode = match mode.map(|m| m.trim().to_ascii_lowercase()).as_deref() {
            None | Some("") | Some("off") => return Ok(None),
            Some("flows") => Mode::Flows,
            Some("connections") => Mode::Connections,
            Some("conversations") => Mode::Conversations,
            Some(other) => {
                return Err((
                    "AGGREGATE",
                    format!("'{other}' is not off, flows, connections or conversations"),
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
        let expression =
            |name: &'static str, text: Option<&str>| match text.filter(|s| !s.trim().is_empty()) {
                None => Ok(None),
                Some(text) => Expression::parse(text).map(Some).map_err(|e| (name, e)),
            };
        let scope = expression("AGGREGATE_WHERE", scope)?;
        let conversations_scope = expression("AGGREGATE_CONVERSATIONS_WHERE", conversations_scope)?;
        if conversations_scope.is_some() && mode != Mode::Conversations {
            return Err((
                "AGGREGATE_CONVERSATIONS_WHERE",
                "is for AGGREGATE=conversations".to_string(),
            ));
        }
        Ok(Some(AggregateSettings {
            mode,
            actions: list,
            scope,
            conversations_scope,
        }))
    }
}

/// Most aggregates a unit holds at once; past them, they leave and a new table starts.
pub const MAX_AGGREGATES: usize = 65_536;
/// Most bytes the held aggregates take (their lines, ids and client ports).
pub const MAX_AGGREGATE_BYTES: usize = 16 << 20;

/// The starting size of the table's buffers: the allocator's mmap threshold.
const BUFFER_BYTES: usize = 4 << 20;

/// An aggregate held until it leaves. Its bytes (line, first id, original) are in the
/// table's arena.
struct Held {
    /// The first record's values joined by spaces; `spans` (in the table's spans, as
    /// many as its schema has columns) says where each column is in it.
    line: Range,
    spans: u32,
    /// Index in `Aggregator::schemas`.
    schema: u32,
    /// The first record's `event.id`.
    first_id: Range,
    /// The first record's input, where INCLUDE_ORIGINAL asks for it and it is not `line`.
    original: Option<Range>,
    /// The first record's converted values: alone, it is not parsed again.
    values: RecordValues,
    /// The records facing as the first one does, and their sums.
    forward: Counters,
    /// Their replies (connections, conversations): the records facing the other way.
    reverse: Counters,
    start: u64,
    end: u64,
    /// Whether the first record faces from the service (a reply): its document, when
    /// the aggregate holds both directions, is turned to face from the client.
    reply: bool,
    /// Whether its records fold as a conversation (their client's port, where they have
    /// one).
    conversation: bool,
    /// The column of the client's port in the first record (conversations), and the
    /// ports seen.
    client: Option<u32>,
    client_ports: Option<HashSet<u16, RandomState>>,
    attribution: Option<RejectAttribution>,
    /// Its key's hash, and the next aggregate in its slot of the index (`Slot`).
    hash: u64,
    next: Slot,
}

/// The records of one direction of an aggregate, and their summed counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    pub records: u64,
    pub packets: u64,
    pub bytes: u64,
}

impl Counters {
    /// These counters with one more record's; none when a sum would pass its field's
    /// largest value.
    fn plus(self, packets: u64, bytes: u64) -> Option<Counters> {
        let packets = self.packets.checked_add(packets)?;
        let bytes = self.bytes.checked_add(bytes)?;
        (packets <= Field::Packets.max_integer() && bytes <= Field::Bytes.max_integer()).then_some(
            Counters {
                records: self.records + 1,
                packets,
                bytes,
            },
        )
    }
}

/// Where bytes are in the arena.
#[derive(Debug, Clone, Copy, Default)]
struct Range {
    start: u32,
    len: u32,
}

impl Range {
    fn of(arena: &str, range: Range) -> &str {
        arena
            .get(range.start as usize..(range.start + range.len) as usize)
            .unwrap_or_default()
    }
}

/// Appends `text` to the arena; where it is.
fn store(arena: &mut String, text: &str) -> Range {
    let start = arena.len() as u32;
    arena.push_str(text);
    Range {
        start,
        len: text.len() as u32,
    }
}

/// What `Aggregator::fold` did with a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fold {
    /// Not folded: its document is written as usual.
    No,
    /// Held: folded into an aggregate, or the first of a new one. Its document is
    /// written when the aggregate leaves.
    Held,
}

/// What the document of an aggregate leaving says besides its record.
pub struct Leaving<'t> {
    /// A record alone keeps its own id; an aggregate's derives from its first record's.
    pub id: &'t str,
    /// A record alone's input when INCLUDE_ORIGINAL asked for it and it is not the
    /// record's text.
    pub original: Option<&'t str>,
    pub attribution: Option<RejectAttribution>,
    /// What its document says of the records it stands for; none for a record alone.
    pub info: Option<AggregateInfo>,
}

impl Leaving<'_> {
    /// The records it stands for.
    pub fn records(&self) -> u64 {
        self.info.map_or(1, |i| i.records)
    }
}

/// The aggregates that leave (`Aggregator::take`): write them with `for_each`, then
/// hand them back (`Aggregator::recycle`) so that their buffers serve the next table.
pub struct Taken {
    held: Vec<Held>,
    arena: String,
    spans: Vec<Span>,
    schemas: Vec<Schema>,
    layouts: Vec<Layout>,
}

impl Taken {
    /// Hands each aggregate to `write`, in the order their first records came: its
    /// record, as a line of its schema with its converted values (nothing is parsed
    /// again), and what its document says of it. A record alone is as it came; several
    /// folded into one are the first one's line and values, turned to face from the
    /// client when they hold both directions, with their sums, window and client port
    /// replaced. Stops at the first error `write` returns.
    pub fn for_each<E>(
        &self,
        mut write: impl FnMut(&FlowRecord<'_>, &Leaving<'_>) -> Result<(), E>,
    ) -> Result<(), E> {
        let (mut line, mut line_spans) = (String::new(), Vec::new());
        for held in &self.held {
            let text = |range: Range| Range::of(&self.arena, range);
            let first_id = text(held.first_id);
            let records = held.forward.records + held.reverse.records;
            let schema = &self.schemas[held.schema as usize];
            let spans = &self.spans[held.spans as usize..held.spans as usize + schema.len()];
            if records == 1 {
                let rec = FlowRecord::from_values(text(held.line), schema, spans, held.values);
                let leaving = Leaving {
                    id: first_id,
                    original: held.original.map(text),
                    attribution: held.attribution,
                    info: None,
                };
                write(&rec, &leaving)?;
                continue;
            }
            let layout = &self.layouts[held.schema as usize];
            // Holding both directions, the document faces from the client.
            let turn = held.reply && held.reverse.records > 0;
            let (forward, reverse) = if turn {
                (held.reverse, held.forward)
            } else {
                (held.forward, held.reverse)
            };
            let counters = [forward.packets, forward.bytes, held.start, held.end];
            let text = text(held.line);
            let client = held.client.map(|c| layout.view(c as usize, turn));
            line.clear();
            line_spans.clear();
            for i in 0..schema.len() {
                if i > 0 {
                    line.push(' ');
                }
                let at = line.len() as u32;
                if let Some(at) = layout.counters.iter().position(|&c| c == i) {
                    line.push_str(itoa::Buffer::new().format(counters[at]));
                } else if client == Some(i) {
                    line.push('-');
                } else {
                    let value = layout.value(i, turn, |c| {
                        let (s, e) = spans[c];
                        text.get(s as usize..e as usize).unwrap_or("-")
                    });
                    line.push_str(value);
                }
                line_spans.push((at, line.len() as u32));
            }
            let mut values = match turn {
                true => held.values.mirrored(),
                false => held.values,
            }
            .with_counters(forward.packets, forward.bytes, held.start, held.end);
            if let Some(column) = client {
                values = values.without_port(schema.position(Field::SrcPort) == Some(column));
            }
            let rec = FlowRecord::from_values(&line, schema, &line_spans, values);
            let id = crate::ids::aggregate_id(first_id, records);
            let leaving = Leaving {
                id: &id,
                original: None,
                attribution: held.attribution,
                info: Some(AggregateInfo {
                    records,
                    replies: (reverse.records > 0).then_some(reverse),
                    client_ports: held
                        .conversation
                        .then(|| held.client_ports.as_ref().map_or(0, |p| p.len() as u64)),
                }),
            };
            write(&rec, &leaving)?;
        }
        Ok(())
    }
}

/// What a document of an aggregate says of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AggregateInfo {
    pub records: u64,
    /// What the destination sent back (connections, conversations): the document's
    /// packets and bytes are the source's.
    pub replies: Option<Counters>,
    pub client_ports: Option<u64>,
}

/// Per unit: the aggregates held.
pub struct Aggregator {
    settings: AggregateSettings,
    /// Whether AGGREGATE_ACTIONS names ACCEPT, and REJECT.
    folds_accept: bool,
    folds_reject: bool,
    /// The index: for each slot (a key's hash modulo `SLOTS`), the last aggregate
    /// started there; the others in the slot follow `Held::next`.
    slots: Vec<Slot>,
    hasher: RandomState,
    /// Where a key's values are joined when they are not one run of a line already.
    key_text: Vec<u8>,
    held: Vec<Held>,
    arena: String,
    spans: Vec<Span>,
    schemas: Vec<Schema>,
    /// Where each schema's columns are.
    layouts: Vec<Layout>,
    /// Client ports held in all (conversations).
    client_ports: usize,
}

/// An aggregate's index in `Aggregator::held` plus one; 0 for none (the end of a
/// chain), so that an empty index is memory the allocator gives zeroed.
type Slot = u32;
/// Slots of the index: twice the most aggregates, so that chains stay short.
const SLOTS: usize = 2 * MAX_AGGREGATES;

impl Aggregator {
    pub fn new(settings: AggregateSettings) -> Aggregator {
        let buffers = SPARE_BUFFERS
            .lock()
            .ok()
            .and_then(|mut spare| spare.pop())
            .unwrap_or_else(Buffers::new);
        Aggregator {
            folds_accept: settings.actions.iter().any(|a| a == "ACCEPT"),
            folds_reject: settings.actions.iter().any(|a| a == "REJECT"),
            settings,
            slots: buffers.slots,
            hasher: RandomState::default(),
            key_text: Vec::new(),
            held: buffers.held,
            arena: buffers.arena,
            spans: buffers.spans,
            schemas: Vec::new(),
            layouts: Vec::new(),
            client_ports: 0,
        }
    }

    /// Folds `rec` (its `event.id` is `id`, its input `original` when INCLUDE_ORIGINAL
    /// is set) into its aggregate, or starts one with it (`Fold::Held`). `Fold::No` when
    /// it is not folded (its action is not aggregated, AGGREGATE_WHERE is false for it,
    /// it lacks a counter or its window, a sum would pass its field's largest value, or
    /// a value is empty or holds a space).
    pub fn fold(
        &mut self,
        rec: &FlowRecord<'_>,
        id: &str,
        original: Option<&str>,
        attribution: Option<RejectAttribution>,
    ) -> Fold {
        let folds = match rec.get(Field::Action) {
            Some("ACCEPT") => self.folds_accept,
            Some("REJECT") => self.folds_reject,
            _ => false,
        };
        if !folds {
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
        let key = self.key(rec, attribution);
        let hash = self.hash(rec, &key);
        let Some(at) = self.find(rec, &key, hash) else {
            return self.keep(rec, id, original, key, hash, [packets, bytes, start, end]);
        };
        let held = &mut self.held[at as usize];
        let side = if key.reply == held.reply {
            &mut held.forward
        } else {
            &mut held.reverse
        };
        let Some(sums) = side.plus(packets, bytes) else {
            return Fold::No;
        };
        *side = sums;
        held.start = held.start.min(start);
        held.end = held.end.max(end);
        if let Some((_, port)) = key.client {
            if held
                .client_ports
                .get_or_insert_with(HashSet::default)
                .insert(port)
            {
                self.client_ports += 1;
            }
        }
        Fold::Held
    }

    /// What `rec`'s aggregate is known by besides its columns.
    fn key(&mut self, rec: &FlowRecord<'_>, attribution: Option<RejectAttribution>) -> Key {
        let schema = rec.schema();
        let schema_index = match self.schemas.iter().rposition(|s| s == schema) {
            Some(i) => i,
            None => {
                self.schemas.push(schema.clone());
                self.layouts.push(Layout::of(schema));
                self.schemas.len() - 1
            }
        };
        let layout = &self.layouts[schema_index];
        // A reply is keyed as its request: seen from the client (the mirror's columns).
        let reply = self.settings.mode != Mode::Flows
            && layout.mirror.is_some()
            && faces_from_service(rec, layout);
        // Whether its client's port folds (conversations), where it has one.
        let conversation = self.settings.mode == Mode::Conversations
            && self
                .settings
                .conversations_scope
                .as_ref()
                .is_none_or(|scope| scope.matches(rec));
        let client = if conversation { client_port(rec) } else { None };
        Key {
            schema: schema_index,
            attribution,
            reply,
            conversation,
            client,
            client_column: client.map(|(column, _)| layout.view(column, reply)),
            separator: line_separator(rec),
        }
    }

    /// The hash of `rec`'s aggregate: its key, and every column but the counters and
    /// the client's port, as the client sees them. The columns are hashed in runs of
    /// neighbours, each run as its values joined by the line's separator (a space for
    /// a record that is not a line of one-byte separators): a line's run is a slice of
    /// it, read in place; the runs of a reply or of a record that is not such a line
    /// are joined first, so that a record and its mirror hash alike. (Records of one
    /// input that mix separators hash apart: they fold less, their sums stay exact.)
    fn hash(&mut self, rec: &FlowRecord<'_>, key: &Key) -> u64 {
        let layout = &self.layouts[key.schema];
        let key_text = &mut self.key_text;
        let mut hasher = self.hasher.build_hasher();
        let attribution = key.attribution.map_or(0, |a| a as u64 + 1);
        let kind = u64::from(key.conversation) << 1 | u64::from(key.client.is_some());
        hasher.write_u64((key.schema as u64) << 16 | attribution << 8 | kind);
        // Runs that split differently are told apart when compared (`find`).
        let in_place = key.separator.is_some() && !key.reply;
        let separator = key.separator.unwrap_or(b' ');
        let (text, spans) = (rec.text().as_bytes(), rec.spans());
        for &(first, end) in &layout.runs {
            // The client's port (conversations) splits its run in two.
            let parts = match key.client_column {
                Some(c) if (first..end).contains(&c) => [(first, c), (c + 1, end)],
                _ => [(first, end), (end, end)],
            };
            for (first, end) in parts.into_iter().filter(|(a, b)| a < b) {
                if in_place {
                    let (start, end) = (spans[first].0, spans[end - 1].1);
                    hasher.write(text.get(start as usize..end as usize).unwrap_or_default());
                } else {
                    key_text.clear();
                    for i in first..end {
                        if i > first {
                            key_text.push(separator);
                        }
                        let value = layout.value(i, key.reply, |c| rec.column(c));
                        key_text.extend_from_slice(value.as_bytes());
                    }
                    hasher.write(key_text);
                }
            }
        }
        hasher.finish()
    }

    /// The aggregate `rec` belongs to, among those in the slot of its key's `hash`:
    /// the same key and the same columns.
    fn find(&self, rec: &FlowRecord<'_>, key: &Key, hash: u64) -> Option<u32> {
        let layout = &self.layouts[key.schema];
        let columns = rec.schema().len();
        let mut slot = self.slots[hash as usize % SLOTS];
        while slot != 0 {
            let at = slot - 1;
            let held = &self.held[at as usize];
            let same = held.hash == hash
                && held.schema == key.schema as u32
                && held.attribution == key.attribution
                && held.conversation == key.conversation
                && held.client.is_some() == key.client.is_some()
                && {
                    let text = Range::of(&self.arena, held.line);
                    let spans = &self.spans[held.spans as usize..held.spans as usize + columns];
                    let held_column = |c: usize| {
                        let (s, e) = spans[c];
                        text.get(s as usize..e as usize).unwrap_or_default()
                    };
                    (0..columns).filter(|&i| !key.folds(layout, i)).all(|i| {
                        layout.value(i, held.reply, held_column)
                            == layout.value(i, key.reply, |c| rec.column(c))
                    })
                };
            if same {
                return Some(at);
            }
            slot = held.next;
        }
        None
    }

    /// Starts an aggregate with `rec`, kept as a line to be read again when it leaves;
    /// `Fold::No` when its line would not read again as it is.
    fn keep(
        &mut self,
        rec: &FlowRecord<'_>,
        id: &str,
        original: Option<&str>,
        key: Key,
        hash: u64,
        [packets, bytes, start, end]: [u64; 4],
    ) -> Fold {
        let Some((line, spans)) = self.store_line(rec, key.separator.is_some()) else {
            return Fold::No;
        };
        let first_id = store(&mut self.arena, id);
        let original = original
            .filter(|&o| o != Range::of(&self.arena, line))
            .map(|o| store(&mut self.arena, o));
        let client_ports = key.client.map(|(_, port)| {
            let mut ports = HashSet::default();
            ports.insert(port);
            self.client_ports += 1;
            ports
        });
        let slot = &mut self.slots[hash as usize % SLOTS];
        let next = std::mem::replace(slot, self.held.len() as Slot + 1);
        self.held.push(Held {
            line,
            spans,
            schema: key.schema as u32,
            first_id,
            original,
            values: rec.values(),
            forward: Counters {
                records: 1,
                packets,
                bytes,
            },
            reverse: Counters::default(),
            start,
            end,
            reply: key.reply,
            conversation: key.conversation,
            client: key.client.map(|(c, _)| c as u32),
            client_ports,
            attribution: key.attribution,
            hash,
            next,
        });
        Fold::Held
    }

    /// Stores `rec` as a line in the arena, with its spans: where they are; none when a
    /// value is empty or holds a space (the line would not read again as it is).
    /// `is_line`: its text is a line of one-byte separators (`line_separator`), kept as
    /// it is.
    fn store_line(&mut self, rec: &FlowRecord<'_>, is_line: bool) -> Option<(Range, u32)> {
        let line_start = self.arena.len() as u32;
        let spans = self.spans.len() as u32;
        let columns = rec.schema().len();
        let (text, text_spans) = (rec.text(), rec.spans());
        if is_line {
            // A line: kept as it is, with its spans (a column of a line holds no
            // separator, so it reads again as it was).
            self.arena.push_str(text);
            self.spans.extend_from_slice(text_spans);
        } else {
            // A Parquet row or JSON record: its values joined by spaces (an empty one
            // would not read again).
            if (0..columns).any(|i| rec.column(i).is_empty()) {
                return None;
            }
            for i in 0..columns {
                if i > 0 {
                    self.arena.push(' ');
                }
                let at = self.arena.len() as u32 - line_start;
                self.arena.push_str(rec.column(i));
                self.spans.push((at, self.arena.len() as u32 - line_start));
            }
            // Read again, the line must give the same columns: no value may hold a
            // space.
            let line = &self.arena.as_bytes()[line_start as usize..];
            if memchr::memchr_iter(b' ', line).count() + 1 != columns {
                self.arena.truncate(line_start as usize);
                self.spans.truncate(spans as usize);
                return None;
            }
        }
        let line = Range {
            start: line_start,
            len: self.arena.len() as u32 - line_start,
        };
        Some((line, spans))
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
        self.empty_index();
        self.client_ports = 0;
        Taken {
            held: std::mem::take(&mut self.held),
            arena: std::mem::take(&mut self.arena),
            spans: std::mem::take(&mut self.spans),
            schemas: std::mem::take(&mut self.schemas),
            layouts: std::mem::take(&mut self.layouts),
        }
    }

    /// Zeroes the slots the held aggregates took: the index is empty again.
    fn empty_index(&mut self) {
        for held in &self.held {
            self.slots[held.hash as usize % SLOTS] = 0;
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

impl Drop for Aggregator {
    /// Its buffers, emptied, are kept for the next unit's aggregator: fresh ones cost
    /// the mapping of their memory (page faults) for every S3 object.
    fn drop(&mut self) {
        if self.arena.capacity() < BUFFER_BYTES || self.slots.len() != SLOTS {
            // Taken and not given back (their unit stopped while they left).
            return;
        }
        self.empty_index();
        self.held.clear();
        self.arena.clear();
        self.spans.clear();
        if let Ok(mut spare) = SPARE_BUFFERS.lock() {
            if spare.len() < MAX_SPARE_BUFFERS {
                spare.push(Buffers {
                    held: std::mem::take(&mut self.held),
                    arena: std::mem::take(&mut self.arena),
                    spans: std::mem::take(&mut self.spans),
                    slots: std::mem::take(&mut self.slots),
                });
            }
        }
    }
}

/// An aggregator's buffers, empty: its aggregates, their bytes and spans, and the
/// index (all zero).
struct Buffers {
    held: Vec<Held>,
    arena: String,
    spans: Vec<Span>,
    slots: Vec<Slot>,
}

impl Buffers {
    fn new() -> Buffers {
        Buffers {
            // Each buffer starts at 4 MiB, where the allocator maps blocks of their own
            // (main.rs): growing one then remaps its pages instead of copying them, and
            // pages not yet written take no memory.
            held: Vec::with_capacity(BUFFER_BYTES.div_ceil(std::mem::size_of::<Held>())),
            arena: String::with_capacity(BUFFER_BYTES),
            spans: Vec::with_capacity(BUFFER_BYTES / std::mem::size_of::<Span>()),
            slots: vec![0; SLOTS],
        }
    }
}

/// The buffers of aggregators whose units ended, for the next ones (one per unit read
/// at once).
static SPARE_BUFFERS: std::sync::Mutex<Vec<Buffers>> = std::sync::Mutex::new(Vec::new());
const MAX_SPARE_BUFFERS: usize = 2;

/// What a record's aggregate is known by besides its columns.
#[derive(Debug, Clone, Copy)]
struct Key {
    /// Index in `Aggregator::schemas`.
    schema: usize,
    attribution: Option<RejectAttribution>,
    /// Whether the record faces from the service (its columns are read as the mirror's).
    reply: bool,
    /// Whether it folds as a conversation, and its client's port (column and value).
    conversation: bool,
    client: Option<(usize, u16)>,
    /// The client's port's column as the client sees it (the one left out of the key).
    client_column: Option<usize>,
    /// The byte between the columns of a line that holds them one byte apart
    /// (`line_separator`).
    separator: Option<u8>,
}

impl Key {
    /// Whether column `i` (as the client sees it) is left out of the key: a counter, or
    /// the client's port.
    fn folds(&self, layout: &Layout, i: usize) -> bool {
        layout.counters.contains(&i) || self.client_column == Some(i)
    }
}

/// Where a schema's columns are, for folding: its counters and, when it can describe a
/// reply as its request, the mirror of each column.
struct Layout {
    /// The columns of packets, bytes, start and end (`usize::MAX` when absent).
    counters: [usize; 4],
    /// Each column's mirror: srcaddr and dstaddr, srcport and dstport, pkt-srcaddr and
    /// pkt-dstaddr, pkt-src-aws-service and pkt-dst-aws-service swap places, the others
    /// stay. None when the schema has one of a pair without the other, or lacks an
    /// address or a port: its replies are not joined.
    mirror: Option<Vec<u16>>,
    /// The flow-direction column: a reply's is the other direction.
    direction: Option<usize>,
    /// The runs of neighbouring columns that are not counters: (first, end).
    runs: Vec<(usize, usize)>,
    srcaddr: Option<usize>,
    dstaddr: Option<usize>,
}

impl Layout {
    fn of(schema: &Schema) -> Layout {
        let pairs = [
            (Field::SrcAddr, Field::DstAddr),
            (Field::SrcPort, Field::DstPort),
            (Field::PktSrcAddr, Field::PktDstAddr),
            (Field::PktSrcAwsService, Field::PktDstAwsService),
        ];
        let mut mirror: Option<Vec<u16>> = Some((0..schema.len() as u16).collect());
        for (i, (a, b)) in pairs.into_iter().enumerate() {
            match (schema.position(a), schema.position(b)) {
                (Some(a), Some(b)) => {
                    if let Some(m) = mirror.as_mut() {
                        m.swap(a, b);
                    }
                }
                // The addresses and ports are needed; the packet addresses and services
                // are needed in pairs.
                (None, None) if i >= 2 => {}
                _ => mirror = None,
            }
        }
        let counters = [Field::Packets, Field::Bytes, Field::Start, Field::End]
            .map(|f| schema.position(f).unwrap_or(usize::MAX));
        let mut runs: Vec<(usize, usize)> = Vec::new();
        for i in (0..schema.len()).filter(|i| !counters.contains(i)) {
            match runs.last_mut() {
                Some((_, end)) if *end == i => *end = i + 1,
                _ => runs.push((i, i + 1)),
            }
        }
        Layout {
            counters,
            runs,
            mirror,
            direction: schema.position(Field::FlowDirection),
            srcaddr: schema.position(Field::SrcAddr),
            dstaddr: schema.position(Field::DstAddr),
        }
    }

    /// The column that holds column `i`'s value as the request has it: the mirror's, for
    /// a reply.
    fn view(&self, i: usize, reply: bool) -> usize {
        match &self.mirror {
            Some(mirror) if reply => mirror.get(i).map_or(i, |&m| usize::from(m)),
            _ => i,
        }
    }

    /// Column `i`'s value as the request has it, for a record whose columns `column`
    /// reads (a reply's flow direction is the other).
    fn value<'v>(&self, i: usize, reply: bool, column: impl Fn(usize) -> &'v str) -> &'v str {
        let value = column(self.view(i, reply));
        if reply && self.direction == Some(i) {
            return match value {
                "ingress" => "egress",
                "egress" => "ingress",
                other => other,
            };
        }
        value
    }
}

/// The byte between the columns of a line whose columns are one byte apart with
/// nothing before or after them (a line as AWS writes them: a space), taken to be the
/// line's separator; none for a line with runs of whitespace, a JSON record (its values
/// are one after another) or a Parquet row (its values are in its batch's text). Its
/// columns cover the text but for one byte after each but the last: a line's columns
/// are one whitespace byte apart or more, so one each.
fn line_separator(rec: &FlowRecord<'_>) -> Option<u8> {
    let (text, spans) = (rec.text().as_bytes(), rec.spans());
    let (&(first, end), &(_, last)) = (spans.first()?, spans.last()?);
    let columns: usize = spans.iter().map(|&(s, e)| e.wrapping_sub(s) as usize).sum();
    let one_apart =
        first == 0 && last as usize == text.len() && columns + spans.len() - 1 == text.len();
    one_apart.then(|| text.get(end as usize).copied().unwrap_or(b' '))
}

/// Whether a record faces from the service, a reply: for TCP, UDP and SCTP, its source
/// port is the lower (the service's); with equal ports or another protocol, its source
/// address is the greater (as text: a mirror then faces the other way).
fn faces_from_service(rec: &FlowRecord<'_>, layout: &Layout) -> bool {
    if matches!(rec.protocol, Some(6 | 17 | 132)) {
        if let (Some(src), Some(dst)) = (rec.srcport, rec.dstport) {
            if src != dst {
                return src < dst;
            }
        }
    }
    match (layout.srcaddr, layout.dstaddr) {
        (Some(s), Some(d)) => rec.column(s) > rec.column(d),
        _ => false,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flowlog::record::parse_line;

    #[test]
    fn a_table_dropped_while_holding_leaves_its_buffers_empty_for_the_next() {
        let settings = AggregateSettings::parse(Some("flows"), None, None, None)
            .unwrap()
            .unwrap();
        let schema = Schema::default_v2();
        let lines: Vec<String> = (0..100)
            .map(|i| format!("2 123456789012 eni-1 10.0.0.1 10.1.0.9 {} 443 6 1 60 1700000000 1700000060 ACCEPT OK", 40000 + i))
            .collect();
        let mut spans = Vec::new();
        for _ in 0..2 {
            // Held and never taken: as when its unit stops.
            let mut aggregator = Aggregator::new(settings.clone());
            for line in &lines {
                let rec = parse_line(line, &schema, &mut spans).unwrap();
                assert_eq!(aggregator.fold(&rec, "id", None, None), Fold::Held);
            }
            assert_eq!(aggregator.held.len(), lines.len());
            drop(aggregator);
            let spare = SPARE_BUFFERS.lock().unwrap();
            assert!(spare.iter().all(|b| b.held.is_empty()
                && b.arena.is_empty()
                && b.spans.is_empty()
                && b.slots.iter().all(|&s| s == 0)));
        }
    }
}
