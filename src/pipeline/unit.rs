//! One unit's records to documents: parse, filter (INTERNAL_CIDRS, ACTIONS,
//! THREAT_INTEL_ONLY), REJECT attribution (held REJECT records), threat matches, ENI
//! enrichment, and the ECS or OCSF writer; with the unit's counts.

use std::borrow::Cow;
use std::collections::HashSet;
use std::sync::Arc;

use serde::Serialize;

use super::ReadError;
use crate::aggregate::{AggregateInfo, Aggregator, Fold};
use crate::attribution::{AcceptedFlow, Claim, RejectAttribution, RejectAttributor};
use crate::config::{OutputSchema, RecordSettings};
use crate::context::{DocContext, Origin, ThreatMatch};
use crate::ecs;
use crate::enrich::{EniCache, Interface, Lookup};
use crate::flowlog::{Field, FlowRecord, Line, LineParser, Schema, Span};
use crate::geoip::{GeoIp, GeoLookup};
use crate::ids::IdSeed;
use crate::json::Document;
use crate::ocsf;
use crate::raw;
use crate::source::SourceLine;
use crate::threat_intel::ThreatList;

/// Counters of a unit or an invocation. Every record read is forwarded, filtered or
/// failed: `read == forwarded + filtered + failed`. `malformed` records are forwarded
/// as parse-failure documents and so are counted in `forwarded` too. With ENRICH_ENI,
/// `enriched` documents carry their interface's details and `unenriched` ones went out
/// without them because the EC2 lookup failed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub read: u64,
    pub forwarded: u64,
    pub filtered: u64,
    pub malformed: u64,
    pub failed: u64,
    pub enriched: u64,
    pub unenriched: u64,
    /// REJECT_ATTRIBUTION past its caps: accepted flows not remembered, and REJECT
    /// records released before their unit's end (decided on what was seen so far).
    pub attribution_overflow: u64,
    /// Documents with an address on THREAT_INTEL_URI's list.
    pub threat_matches: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
}

impl Counts {
    pub fn add(&mut self, other: &Counts) {
        self.read += other.read;
        self.forwarded += other.forwarded;
        self.filtered += other.filtered;
        self.malformed += other.malformed;
        self.failed += other.failed;
        self.enriched += other.enriched;
        self.unenriched += other.unenriched;
        self.attribution_overflow += other.attribution_overflow;
        self.threat_matches += other.threat_matches;
        self.bytes_in += other.bytes_in;
        self.bytes_out += other.bytes_out;
    }

    /// Settles a unit's counts once its documents' delivery is known: `delivered`
    /// records were forwarded, and whatever was read, not filtered and not delivered
    /// failed (read = forwarded + filtered + failed).
    pub fn settle(&mut self, delivered: u64) {
        self.forwarded = delivered;
        self.failed = (self.read - self.filtered).saturating_sub(delivered);
    }
}

/// What became of one line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Blank or header line: not a record.
    Skipped,
    /// Dropped by a configured filter (counted).
    Filtered,
    /// A document was written into the document buffer (left empty by the other
    /// outcomes); `malformed` when it is the parse-failure document; `time` is its
    /// `@timestamp` in Unix seconds. Its `event.id` is `UnitProcessor::event_id`.
    Document { malformed: bool, time: u64 },
    /// A REJECT record held for its attribution (REJECT_ATTRIBUTION): its document is
    /// written when the unit ends (`UnitProcessor::release_held`).
    Held,
    /// Folded into an aggregate (AGGREGATE), whose document is written when the unit
    /// ends or the table is full (`UnitProcessor::flush_aggregates`).
    Folded,
}

/// Processes the lines of one unit.
pub struct UnitProcessor<'s> {
    parser: LineParser,
    pub(super) seed: IdSeed,
    id: String,
    pub(super) docs: DocumentWriter<'s>,
}

/// What documents are enriched from in one run or invocation.
#[derive(Clone, Default)]
pub struct Lookups {
    /// EC2 interface details (ENRICH_ENI).
    pub interfaces: Option<Arc<EniCache>>,
    /// THREAT_INTEL_URI's list.
    pub threats: Option<Arc<ThreatList>>,
    /// GEOIP_DATABASE and GEOIP_ASN_DATABASE.
    pub geo: Option<GeoIp>,
}

/// Writes a unit's documents and keeps its counts.
pub(super) struct DocumentWriter<'s> {
    settings: &'s RecordSettings,
    origin: Origin,
    now: u64,
    pub(super) enrich: Option<Arc<EniCache>>,
    /// REJECT attribution state, unless REJECT_ATTRIBUTION=false.
    attributor: Option<RejectAttributor>,
    /// THREAT_INTEL_URI's list, when set.
    threats: Option<Arc<ThreatList>>,
    /// GeoIP answers (GEOIP_DATABASE, GEOIP_ASN_DATABASE), when a database is set.
    geo: Option<GeoLookup>,
    /// The aggregates held (AGGREGATE), when on.
    aggregator: Option<Aggregator>,
    /// A document trimmed (FIELDS_EXCLUDE) is written here, then swapped in.
    trimmed: Vec<u8>,
    counts: Counts,
}

impl<'s> UnitProcessor<'s> {
    pub fn new(settings: &'s RecordSettings, origin: Origin, seed: IdSeed) -> UnitProcessor<'s> {
        UnitProcessor {
            parser: LineParser::new(settings.schema.clone()),
            seed,
            id: String::with_capacity(40),
            docs: DocumentWriter {
                settings,
                origin,
                now: crate::timestamp::unix_now(),
                enrich: None,
                // A raw document carries its line only: no attribution to hold for.
                attributor: (settings.reject_attribution
                    && settings.output_schema != OutputSchema::Raw)
                    .then(RejectAttributor::new),
                threats: None,
                geo: None,
                aggregator: settings.aggregate.clone().map(Aggregator::new),
                trimmed: Vec::new(),
                counts: Counts::default(),
            },
        }
    }

    /// Enriches documents from `lookups`: the interface's details (ENRICH_ENI; looked
    /// up ahead of the records that need them: `run_lines` and `run_parquet` do it for
    /// a few thousand records at a time, other callers use `interface_ids` and
    /// `prefetch`), threat-list matches (THREAT_INTEL_URI) and where the source and
    /// destination are (GEOIP_DATABASE, GEOIP_ASN_DATABASE).
    pub fn with_lookups(mut self, lookups: &Lookups) -> UnitProcessor<'s> {
        self.docs.enrich = lookups.interfaces.clone();
        self.docs.threats = lookups.threats.clone();
        self.docs.geo = lookups.geo.clone().map(GeoLookup::new);
        self
    }

    /// The unit's counts so far.
    pub fn counts(&self) -> Counts {
        let mut counts = self.docs.counts;
        if let Some(a) = &self.docs.attributor {
            counts.attribution_overflow = a.accepted_dropped + a.held_released_early;
        }
        counts
    }

    /// Counts `n` records that were read and dropped by a filter outside the record
    /// path (LOG_STREAM_PREFIX).
    pub fn count_filtered(&mut self, n: u64) {
        self.docs.counts.read += n;
        self.docs.counts.filtered += n;
    }

    /// The interface ids of the records among `lines`, read with the current schema (a
    /// header line among them switches it, as it will when they are processed).
    pub fn interface_ids<'t>(&self, lines: impl Iterator<Item = &'t [u8]>) -> Vec<String> {
        let mut parser = LineParser::new(self.parser.schema().clone());
        let mut ids = HashSet::new();
        for bytes in lines {
            let Ok(text) = std::str::from_utf8(bytes) else {
                continue;
            };
            if let Line::Record(rec) = parser.parse(text) {
                if let Some(id) = rec.get(Field::InterfaceId) {
                    if !ids.contains(id) {
                        ids.insert(id.to_string());
                    }
                }
            }
        }
        ids.into_iter().collect()
    }

    /// Looks up the interfaces `ids` when enriching (see `EniCache::prefetch`).
    pub async fn prefetch(&self, ids: &[String]) {
        if let Some(cache) = &self.docs.enrich {
            cache.prefetch(ids.iter().map(String::as_str)).await;
        }
    }

    /// Processes a line of a file or object; its id derives from the line number.
    pub fn process_line(&mut self, line: &SourceLine<'_>, out: &mut Document) -> Outcome {
        self.seed.id(line.number, line.bytes, &mut self.id);
        let id = std::mem::take(&mut self.id);
        let outcome = self.process(line.number, line.bytes, line.too_long, &id, out);
        self.id = id;
        outcome
    }

    /// Processes one record with a given id (a CloudWatch Logs event id).
    pub fn process_event(
        &mut self,
        number: u64,
        message: &str,
        id: &str,
        out: &mut Document,
    ) -> Outcome {
        self.id.clear();
        self.id.push_str(id);
        let id = std::mem::take(&mut self.id);
        let outcome = self.process(number, message.as_bytes(), None, &id, out);
        self.id = id;
        outcome
    }

    /// The `event.id` of the last document written.
    pub fn event_id(&self) -> &str {
        &self.id
    }

    /// Whether held REJECT records reached their cap and must be released now.
    pub fn must_release(&self) -> bool {
        self.docs
            .attributor
            .as_ref()
            .is_some_and(RejectAttributor::is_full)
    }

    /// Whether the aggregates (AGGREGATE) reached their cap and must leave now.
    pub fn must_flush_aggregates(&self) -> bool {
        self.docs
            .aggregator
            .as_ref()
            .is_some_and(Aggregator::is_full)
    }

    /// Writes the documents of the aggregates held (AGGREGATE) into `doc`, one at a time,
    /// each handed to `emit` with its id, time and the number of records it stands for.
    /// A record alone is its line and the values read from it; an aggregate's record is
    /// its first record's, the counters, window and client port replaced (and turned to
    /// face from the client). Nothing is parsed again.
    pub fn flush_aggregates(
        &mut self,
        doc: &mut Document,
        mut emit: impl FnMut(&[u8], &str, u64, u32) -> Result<(), ReadError>,
    ) -> Result<(), ReadError> {
        let taken = match self.docs.aggregator.as_mut() {
            Some(aggregator) if !aggregator.is_empty() => aggregator.take(),
            _ => return Ok(()),
        };
        let include_original = self.docs.settings.include_original;
        let result = taken.for_each(|rec, leaving| {
            doc.clear();
            let with = WrittenWith {
                id: leaving.id,
                original: include_original.then(|| leaving.original.unwrap_or(rec.text())),
                attribution: leaving.attribution,
                threat_matches: &[],
                aggregate: leaving.info,
            };
            match self.docs.write_document(rec, &with, doc) {
                Outcome::Document { time, .. } => emit(
                    doc.as_bytes(),
                    leaving.id,
                    time,
                    u32::try_from(leaving.records()).unwrap_or(u32::MAX),
                ),
                _ => Ok(()),
            }
        });
        if let Some(aggregator) = self.docs.aggregator.as_mut() {
            aggregator.recycle(taken);
        }
        result
    }

    /// Writes the documents of held REJECT records (REJECT_ATTRIBUTION) into `doc`, one
    /// at a time, each handed to `emit` with its id and time: all of them when the
    /// unit's records are all read (`unit_ended`), else the older half (`must_release`).
    pub fn release_held(
        &mut self,
        doc: &mut Document,
        unit_ended: bool,
        mut emit: impl FnMut(&Document, &str, u64) -> Result<(), ReadError>,
    ) -> Result<(), ReadError> {
        let threats = self.docs.threats.clone();
        loop {
            let released = match self.docs.attributor.as_mut() {
                Some(attributor) if attributor.is_holding() => attributor.release(unit_ended),
                _ => return Ok(()),
            };
            for (i, held) in released.records.iter().enumerate() {
                doc.clear();
                let (id, original) = (released.id(held), released.original(held));
                let rec = released.record(held);
                let attribution = Some(released.attribution(i));
                let (matches, count) = find_threats(threats.as_deref(), &rec);
                let matches = &matches[..count];
                let with = WrittenWith {
                    id,
                    original,
                    attribution,
                    threat_matches: matches,
                    aggregate: None,
                };
                let outcome = self.docs.write(&rec, &with, doc);
                if let Outcome::Document { time, .. } = outcome {
                    emit(doc, id, time)?;
                }
            }
            if let Some(attributor) = self.docs.attributor.as_mut() {
                attributor.recycle(released);
            }
            if !unit_ended {
                return Ok(());
            }
        }
    }

    fn process(
        &mut self,
        number: u64,
        bytes: &[u8],
        too_long: Option<u64>,
        id: &str,
        out: &mut Document,
    ) -> Outcome {
        out.clear();
        self.docs.counts.bytes_in += bytes.len() as u64;
        if let Some(len) = too_long {
            let raw = String::from_utf8_lossy(bytes);
            let error = format!(
                "line {number}: {len} bytes, longer than the maximum of {} (MAX_LINE_BYTES); event.original holds its start",
                bytes.len()
            );
            return self.docs.failure(&raw, &error, id, out);
        }
        let text = match std::str::from_utf8(bytes) {
            Ok(t) => t,
            Err(e) => {
                let raw = String::from_utf8_lossy(bytes);
                let error = format!("line {number}: not valid UTF-8 ({e})");
                return self.docs.failure(&raw, &error, id, out);
            }
        };
        match self.parser.parse(text) {
            Line::Blank | Line::Header => Outcome::Skipped,
            Line::Record(rec) => {
                let original = self.docs.settings.include_original.then_some(text);
                let held = Hold {
                    number,
                    text: HoldText::Record,
                };
                self.docs.accept(&rec, original, id, out, held)
            }
            Line::Invalid(e) => {
                let error = format!("line {number}: {e}");
                self.docs.failure(text, &error, id, out)
            }
        }
    }

    /// Processes one record whose values are already split (a Parquet row). Its id
    /// derives from the row number as a line's from its line number; where the row is
    /// shown as a line (`event.original`, a failure), its values are joined by spaces.
    /// A row longer than `max_line_bytes` as a line is a failure, as such a line is.
    pub fn process_columns(
        &mut self,
        row: &Row<'_>,
        max_line_bytes: usize,
        out: &mut Document,
    ) -> Outcome {
        let &Row {
            number,
            schema,
            text,
            spans,
            bytes,
        } = row;
        out.clear();
        // A row's id is bound to the object's digest (`run_parquet` binds the seed of
        // inputs whose records are hashed), not to its own values.
        self.seed.id(number, b"", &mut self.id);
        let id = std::mem::take(&mut self.id);
        self.docs.counts.bytes_in += bytes;
        if bytes > max_line_bytes as u64 {
            // As a text line over MAX_LINE_BYTES: a failure document holding its start.
            let start = row_line(text, spans, max_line_bytes);
            let error = format!(
                "row {number}: {bytes} bytes as a line, longer than the maximum of {max_line_bytes} (MAX_LINE_BYTES); event.original holds its start"
            );
            let outcome = self.docs.failure(&start, &error, &id, out);
            self.id = id;
            return outcome;
        }
        let outcome = match FlowRecord::from_spans(text, schema, spans) {
            Ok(rec) => {
                let line = self
                    .docs
                    .settings
                    .include_original
                    .then(|| row_line(text, spans, max_line_bytes));
                // A row is held as its values joined, only when it is held.
                let text = HoldText::Row {
                    text,
                    spans,
                    max: max_line_bytes,
                };
                let held = Hold { number, text };
                self.docs.accept(&rec, line.as_deref(), &id, out, held)
            }
            Err(e) => {
                let error = format!("row {number}: {e}");
                self.docs
                    .failure(&row_line(text, spans, max_line_bytes), &error, &id, out)
            }
        };
        self.id = id;
        outcome
    }
}

/// The record's distinct addresses (source, destination, packet source and
/// destination) that are on `list` (THREAT_INTEL_URI), and how many: looked up once a
/// record, before THREAT_INTEL_ONLY filters and for the document.
#[inline]
fn find_threats<'a>(
    list: Option<&'a ThreatList>,
    rec: &FlowRecord<'a>,
) -> ([Option<ThreatMatch<'a>>; 4], usize) {
    let mut found = [None; 4];
    let Some(list) = list else {
        return (found, 0);
    };
    let candidates = [
        (Field::SrcAddr, rec.srcaddr),
        (Field::DstAddr, rec.dstaddr),
        (Field::PktSrcAddr, rec.pkt_srcaddr),
        (Field::PktDstAddr, rec.pkt_dstaddr),
    ];
    let mut n = 0;
    for (i, (field, ip)) in candidates.into_iter().enumerate() {
        let Some(ip) = ip else { continue };
        if candidates[..i].iter().any(|(_, seen)| *seen == Some(ip)) {
            continue;
        }
        if let Some(indicator) = list.lookup(ip) {
            found[n] = Some(ThreatMatch {
                ip: rec.get(field).unwrap_or_default(),
                field,
                indicator,
            });
            n += 1;
        }
    }
    (found, n)
}

/// What a REJECT record is held as, when it is: its number and its text (a line, or a
/// row's values joined).
#[derive(Clone, Copy)]
struct Hold<'a> {
    number: u64,
    text: HoldText<'a>,
}

/// The text a held record is kept as: a line's record as read (a JSON record: the line
/// it was read as), or a Parquet row's values (joined by spaces, as `row_line` does,
/// only when the row is held: the row's own text is its whole batch).
#[derive(Clone, Copy)]
enum HoldText<'a> {
    Record,
    Row {
        text: &'a str,
        spans: &'a [Span],
        max: usize,
    },
}

impl<'a> HoldText<'a> {
    /// The text to hold, and the spans of `rec`'s columns in that text: a line's record
    /// as read (a JSON record: the line it was read as), a row's values joined.
    fn held(self, rec: &FlowRecord<'a>) -> (Cow<'a, str>, Cow<'a, [Span]>) {
        match self {
            HoldText::Record => (rec.text().into(), rec.spans().into()),
            HoldText::Row { text, spans, max } => {
                let (line, spans) = row_line_spans(text, spans, max);
                (line.into(), spans.into())
            }
        }
    }
}

/// A Parquet row: its values `spans` in `text`, one per `schema` column, and its size
/// as a text line (values and the spaces between them).
pub struct Row<'a> {
    /// 1-based over the whole object.
    pub number: u64,
    pub schema: &'a Schema,
    pub text: &'a str,
    pub spans: &'a [Span],
    pub bytes: u64,
}

impl DocumentWriter<'_> {
    /// A valid record (`original` is its input when INCLUDE_ORIGINAL is set): counted,
    /// then filtered (counted) or written as a document, enriched with its interface's
    /// details when known.
    fn accept(
        &mut self,
        rec: &FlowRecord<'_>,
        original: Option<&str>,
        id: &str,
        out: &mut Document,
        held: Hold<'_>,
    ) -> Outcome {
        self.counts.read += 1;
        // An accepted record is noted whatever the filters decide: shipping only REJECTs
        // (ACTIONS) still attributes them. Its table slot is fetched while its document
        // is written, and used after.
        let (mut accepted, mut claim) = (None, None);
        if let Some(attributor) = &mut self.attributor {
            match rec.get(Field::Action) {
                Some("ACCEPT") => accepted = attributor.accepted(rec),
                Some("REJECT") => claim = Some(attributor.claim(rec)),
                _ => {}
            }
        }
        if self.settings.filter.check(rec).is_some() {
            self.note_accept(accepted);
            self.counts.filtered += 1;
            return Outcome::Filtered;
        }
        let threats = self.threats.clone();
        let (matches, count) = find_threats(threats.as_deref(), rec);
        if self.settings.filter.check_threat_matches(count).is_some() {
            self.note_accept(accepted);
            self.counts.filtered += 1;
            return Outcome::Filtered;
        }
        let (mut attribution, mut full) = (None, None);
        match (claim, &mut self.attributor) {
            (Some(Claim::Now(decided)), _) => attribution = Some(decided),
            // Written as most such records are (no mirror in the full table), and
            // written again in the rare case its mirror is there: the table's summary is
            // read once the document is written, not waited for.
            // Folded REJECTs (AGGREGATE_ACTIONS) are folded by their attribution: it is
            // decided first.
            (Some(Claim::Full(flow)), Some(attributor)) if self.aggregator.is_some() => {
                attribution = Some(attributor.decide(&flow));
            }
            (Some(Claim::Full(flow)), Some(_)) => {
                attribution = Some(RejectAttribution::SecurityGroupOrNetworkAcl);
                full = Some((flow, self.counts));
            }
            // Held, and decided when released: its mirror's slot is looked up then, a
            // few records ahead of its arrival from memory (looked up now, the wait for
            // it cost more than the holding).
            (Some(Claim::Mirror(flow)), Some(attributor)) => {
                let (text, spans) = held.text.held(rec);
                attributor.hold(flow, rec, held.number, id, &text, &spans, original);
                return Outcome::Held;
            }
            _ => {}
        }
        let mut with = WrittenWith {
            id,
            original,
            attribution,
            threat_matches: &matches[..count],
            aggregate: None,
        };
        let mut outcome = self.write(rec, &with, out);
        if let (Some((flow, counts)), Some(attributor)) = (full, &self.attributor) {
            let decided = attributor.decide(&flow);
            if attribution != Some(decided) {
                self.counts = counts;
                with.attribution = Some(decided);
                outcome = self.write(rec, &with, out);
            }
        }
        self.note_accept(accepted);
        outcome
    }

    /// Remembers an accepted record for REJECT attribution.
    #[inline]
    fn note_accept(&mut self, flow: Option<AcceptedFlow>) {
        if let (Some(flow), Some(attributor)) = (flow, &mut self.attributor) {
            attributor.note_accept(flow);
        }
    }

    /// Writes the document of an accepted (not filtered) record, enriched with its
    /// interface's details when known.
    fn write(
        &mut self,
        rec: &FlowRecord<'_>,
        with: &WrittenWith<'_, '_>,
        out: &mut Document,
    ) -> Outcome {
        // A record with a threat match is never folded: it stays a document of its own.
        let fold = match (&mut self.aggregator, with.threat_matches.is_empty()) {
            (Some(aggregator), true) => {
                aggregator.fold(rec, with.id, with.original, with.attribution)
            }
            _ => Fold::No,
        };
        if fold == Fold::Held {
            return Outcome::Folded;
        }
        self.write_document(rec, with, out)
    }

    /// Writes the document of `rec` (an aggregate's: `with.aggregate` says of what).
    fn write_document(
        &mut self,
        rec: &FlowRecord<'_>,
        with: &WrittenWith<'_, '_>,
        out: &mut Document,
    ) -> Outcome {
        let interface: Option<Arc<Interface>> = match &self.enrich {
            None => None,
            Some(cache) => match rec.get(Field::InterfaceId).map(|id| cache.get(id)) {
                Some(Lookup::Found(interface)) => {
                    self.counts.enriched += 1;
                    Some(interface)
                }
                Some(Lookup::Failed) => {
                    self.counts.unenriched += 1;
                    None
                }
                Some(Lookup::NotFound) | None => None,
            },
        };
        if !with.threat_matches.is_empty() {
            self.counts.threat_matches += 1;
        }
        let geo = self.geo.as_mut().map(|g| {
            [rec.srcaddr, rec.dstaddr].map(|a| a.map(|a| g.locate(a)).unwrap_or_default())
        });
        let ctx = DocContext {
            event_id: with.id,
            origin: &self.origin,
            original: with.original,
            now: self.now,
            interface: interface.as_deref(),
            reject_attribution: with.attribution,
            threat_matches: with.threat_matches,
            data_stream: &self.settings.data_stream,
            hec_line: self.settings.hec_line,
            geo: geo.as_ref(),
            aggregate: with.aggregate,
        };
        match self.settings.output_schema {
            OutputSchema::Ecs => ecs::write_document(out, rec, &ctx),
            OutputSchema::Ocsf => ocsf::write_event(out, rec, &ctx),
            OutputSchema::Raw => raw::write_raw(out, rec, &ctx),
        }
        if let Some(trim) = &self.settings.trim {
            if trim.apply(out.as_bytes(), &mut self.trimmed) {
                out.replace(&mut self.trimmed);
            }
        }
        self.counts.bytes_out += out.len() as u64;
        Outcome::Document {
            malformed: false,
            time: rec.end.or(rec.start).unwrap_or(self.now),
        }
    }

    /// A line or row that is not a valid record: its parse-failure document.
    fn failure(&mut self, raw: &str, error: &str, id: &str, out: &mut Document) -> Outcome {
        self.counts.read += 1;
        self.counts.malformed += 1;
        let ctx = DocContext {
            event_id: id,
            origin: &self.origin,
            original: None,
            now: self.now,
            interface: None,
            reject_attribution: None,
            threat_matches: &[],
            data_stream: &self.settings.data_stream,
            hec_line: self.settings.hec_line,
            geo: None,
            aggregate: None,
        };
        match self.settings.output_schema {
            OutputSchema::Ecs => ecs::write_failure_document(out, raw, error, &ctx),
            OutputSchema::Ocsf => ocsf::write_failure_event(out, raw, error, &ctx),
            OutputSchema::Raw => crate::raw::write_raw_failure(out, raw, error, &ctx),
        }
        self.counts.bytes_out += out.len() as u64;
        Outcome::Document {
            malformed: true,
            time: self.now,
        }
    }
}

/// What a record's document is written with besides the record: its id, its input
/// (INCLUDE_ORIGINAL), its REJECT attribution, its threat matches and, for an
/// aggregate, what it stands for.
struct WrittenWith<'w, 't> {
    id: &'w str,
    original: Option<&'w str>,
    attribution: Option<RejectAttribution>,
    threat_matches: &'w [Option<ThreatMatch<'t>>],
    aggregate: Option<AggregateInfo>,
}

/// A Parquet row as a line (`row_line`), with the spans of its values in that line:
/// read back from them, the row is the row as read, spaces in values included.
fn row_line_spans(text: &str, spans: &[Span], max: usize) -> (String, Vec<Span>) {
    let line = row_line(text, spans, max);
    let mut at = 0u32;
    let mut in_line = Vec::with_capacity(spans.len());
    for &(s, e) in spans {
        let len = e.saturating_sub(s);
        let end = (at + len).min(line.len() as u32);
        in_line.push((at.min(end), end));
        at = end + 1;
    }
    (line, in_line)
}

/// A Parquet row as a line: its values (`spans` in `text`) joined by single spaces,
/// cut at `max` bytes (at a character boundary).
pub(super) fn row_line(text: &str, spans: &[Span], max: usize) -> String {
    let mut line = String::new();
    for (i, &(s, e)) in spans.iter().enumerate() {
        if i > 0 {
            line.push(' ');
        }
        line.push_str(text.get(s as usize..e as usize).unwrap_or_default());
        if line.len() >= max {
            let mut end = max;
            while !line.is_char_boundary(end) {
                end -= 1;
            }
            line.truncate(end);
            break;
        }
    }
    line
}
