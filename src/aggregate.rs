//! AGGREGATE: records of one unit that describe the same flow become one document.
//! `flows` folds records equal in every column but the counters and the capture window
//! (packets and bytes are summed, the earliest start and the latest end kept);
//! `conversations` also folds the client's port (README, Reducing volume: the service
//! side is the lower port). Only records whose action AGGREGATE_ACTIONS names are folded
//! (ACCEPT by default), never one with a threat match, and the REJECT attribution is part
//! of what must be equal. An aggregate's document is the first record's, its counters,
//! window and client port replaced, with the number of records folded
//! (`aws.vpcflow.aggregate.records`, OCSF `count`) and, for conversations, of distinct
//! client ports. The table is capped (`MAX_AGGREGATES`, `MAX_AGGREGATE_BYTES`): when
//! full, its aggregates leave and a new table starts.

use std::collections::{HashMap, HashSet};

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
/// Most bytes the held aggregates take (their keys, lines and client ports).
pub const MAX_AGGREGATE_BYTES: usize = 16 << 20;

/// An aggregate held until it leaves.
struct Held {
    /// The first record's values joined by spaces, and where each column is in it.
    line: String,
    spans: Vec<Span>,
    /// Index in `Aggregator::schemas`.
    schema: usize,
    /// The first record's `event.id`.
    first_id: String,
    records: u64,
    packets: u64,
    bytes: u64,
    start: u64,
    end: u64,
    /// The column of the client's port (conversations), and the ports seen.
    client: Option<usize>,
    client_ports: HashSet<u16, RandomState>,
    attribution: Option<RejectAttribution>,
}

/// An aggregate leaving: its record as a line of `schema`, and what its document says
/// of it.
pub struct Aggregate {
    pub line: String,
    pub schema: Schema,
    pub id: String,
    pub records: u64,
    /// Distinct client ports (conversations).
    pub client_ports: Option<u64>,
    pub attribution: Option<RejectAttribution>,
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
    index: HashMap<Box<[u8]>, usize, RandomState>,
    held: Vec<Held>,
    schemas: Vec<Schema>,
    bytes: usize,
    key: Vec<u8>,
}

impl Aggregator {
    pub fn new(settings: AggregateSettings) -> Aggregator {
        Aggregator {
            settings,
            index: HashMap::default(),
            held: Vec::new(),
            schemas: Vec::new(),
            bytes: 0,
            key: Vec::new(),
        }
    }

    /// Folds `rec` (its `event.id` is `id`) into its aggregate; false when it is not
    /// folded (its action is not aggregated, it lacks a counter or its window, a sum would
    /// pass its field's largest value, or a value holds a space): its document is
    /// written as usual.
    pub fn fold(
        &mut self,
        rec: &FlowRecord<'_>,
        id: &str,
        attribution: Option<RejectAttribution>,
    ) -> bool {
        let Some(action) = rec.get(Field::Action) else {
            return false;
        };
        if !self.settings.actions.iter().any(|a| a == action) {
            return false;
        }
        if let Some(scope) = &self.settings.scope {
            if !scope.matches(rec) {
                return false;
            }
        }
        let (Some(packets), Some(bytes), Some(start), Some(end)) =
            (rec.packets, rec.bytes, rec.start, rec.end)
        else {
            return false;
        };
        let schema = rec.schema();
        let schema_index = match self.schemas.iter().rposition(|s| s == schema) {
            Some(i) => i,
            None => {
                self.schemas.push(schema.clone());
                self.schemas.len() - 1
            }
        };
        let client = match self.settings.mode {
            Mode::Flows => None,
            Mode::Conversations => client_port(rec),
        };
        let counters =
            [Field::Packets, Field::Bytes, Field::Start, Field::End].map(|f| schema.position(f));
        let client_column = client.map(|(column, _)| column);
        self.key.clear();
        self.key
            .extend_from_slice(&(schema_index as u32).to_le_bytes());
        self.key.push(attribution.map_or(0, |a| a as u8 + 1));
        let client_marker = client_column.map_or(0, |c| c as u32 + 1);
        self.key.extend_from_slice(&client_marker.to_le_bytes());
        for i in 0..schema.len() {
            if counters.contains(&Some(i)) || client_column == Some(i) {
                continue;
            }
            self.key.extend_from_slice(rec.column(i).as_bytes());
            self.key.push(0x1f);
        }
        if let Some(&at) = self.index.get(self.key.as_slice()) {
            let held = &mut self.held[at];
            let sums = (
                held.packets.checked_add(packets),
                held.bytes.checked_add(bytes),
            );
            let (Some(p), Some(b)) = sums else {
                return false;
            };
            if p > Field::Packets.max_integer() || b > Field::Bytes.max_integer() {
                return false;
            }
            held.packets = p;
            held.bytes = b;
            held.start = held.start.min(start);
            held.end = held.end.max(end);
            held.records += 1;
            if let Some((_, port)) = client {
                if held.client_ports.insert(port) {
                    self.bytes += 4;
                }
            }
            return true;
        }
        // The first record of its aggregate: kept as a line, to be read again.
        let mut line = String::with_capacity(rec.text().len().min(4096));
        let mut spans = Vec::with_capacity(schema.len());
        for i in 0..schema.len() {
            let value = rec.column(i);
            if value.contains(' ') {
                return false;
            }
            if i > 0 {
                line.push(' ');
            }
            let at = line.len() as u32;
            line.push_str(value);
            spans.push((at, line.len() as u32));
        }
        let mut client_ports = HashSet::default();
        if let Some((_, port)) = client {
            client_ports.insert(port);
        }
        self.bytes += self.key.len() + line.len() + spans.len() * 8 + id.len() + 160;
        self.index
            .insert(self.key.clone().into_boxed_slice(), self.held.len());
        self.held.push(Held {
            line,
            spans,
            schema: schema_index,
            first_id: id.to_string(),
            records: 1,
            packets,
            bytes,
            start,
            end,
            client: client_column,
            client_ports,
            attribution,
        });
        true
    }

    /// Whether the table reached its cap: its aggregates must leave now (`take`).
    pub fn is_full(&self) -> bool {
        self.held.len() >= MAX_AGGREGATES || self.bytes >= MAX_AGGREGATE_BYTES
    }

    pub fn is_empty(&self) -> bool {
        self.held.is_empty()
    }

    /// The aggregates held, in the order their first records came, each as the line of
    /// its record; the table starts empty again.
    pub fn take(&mut self) -> Vec<Aggregate> {
        self.index.clear();
        self.bytes = 0;
        let conversations = self.settings.mode == Mode::Conversations;
        let schemas = std::mem::take(&mut self.schemas);
        let out = self
            .held
            .drain(..)
            .map(|held| {
                let schema = &schemas[held.schema];
                let counters = [
                    (schema.position(Field::Packets), held.packets),
                    (schema.position(Field::Bytes), held.bytes),
                    (schema.position(Field::Start), held.start),
                    (schema.position(Field::End), held.end),
                ];
                let mut line = String::with_capacity(held.line.len() + 16);
                for (i, &(s, e)) in held.spans.iter().enumerate() {
                    if i > 0 {
                        line.push(' ');
                    }
                    if let Some((_, v)) = counters.iter().find(|(c, _)| *c == Some(i)) {
                        line.push_str(&v.to_string());
                    } else if held.client == Some(i) {
                        line.push('-');
                    } else {
                        line.push_str(&held.line[s as usize..e as usize]);
                    }
                }
                Aggregate {
                    line,
                    schema: schema.clone(),
                    id: crate::pipeline::aggregate_id(&held.first_id, held.records),
                    records: held.records,
                    client_ports: conversations.then_some(held.client_ports.len() as u64),
                    attribution: held.attribution,
                }
            })
            .collect();
        out
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
