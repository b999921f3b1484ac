//! Where a unit's documents go: the batch it shares with the other units of a run,
//! handed on when full, and the stop time a unit is read until.

use std::time::Instant;

use super::unit::{Outcome, UnitProcessor};
use super::ReadError;
use crate::json::Document;
use crate::sink::{Batch, BatchLimits, DocMeta};
use crate::source::SourceLine;

/// Where a unit's documents go: the shared batch, handed to `emit` when full.
pub struct Output<'a> {
    unit_index: u32,
    limits: &'a BatchLimits,
    batch: &'a mut Batch,
    emit: &'a mut dyn FnMut(Batch) -> bool,
    /// When to stop reading (the invocation deadline less its margin).
    stop_at: Option<Instant>,
    /// Records since the stop time was last looked at.
    since_check: u32,
    /// The document being built.
    pub(super) doc: Document,
}

impl<'a> Output<'a> {
    /// Documents of unit `unit_index` go into `batch`; `emit` takes each full batch
    /// (and answers false when nobody takes batches any more). The last, partial batch
    /// stays in `batch` for the caller, so units of one run share batches.
    pub fn new(
        unit_index: u32,
        limits: &'a BatchLimits,
        batch: &'a mut Batch,
        emit: &'a mut dyn FnMut(Batch) -> bool,
    ) -> Output<'a> {
        Output {
            unit_index,
            limits,
            batch,
            emit,
            stop_at: None,
            since_check: 0,
            doc: Document::new(),
        }
    }

    /// Reading stops with an error at `stop_at`: the unit is then reported failed (its
    /// retry is idempotent through event.id) instead of overrunning the deadline.
    pub fn stop_at(mut self, stop_at: Option<Instant>) -> Output<'a> {
        self.stop_at = stop_at;
        self
    }

    /// An error once the stop time has come (looked at every few records).
    pub(super) fn check_stop(&mut self, what: &'static str, number: u64) -> Result<(), ReadError> {
        let Some(stop_at) = self.stop_at else {
            return Ok(());
        };
        self.since_check += 1;
        if self.since_check < STOP_CHECK_EVERY {
            return Ok(());
        }
        self.since_check = 0;
        if Instant::now() >= stop_at {
            return Err(ReadError::Deadline { what, number });
        }
        Ok(())
    }

    pub(super) fn add_line(
        &mut self,
        unit: &mut UnitProcessor<'_>,
        line: &SourceLine<'_>,
    ) -> Result<(), ReadError> {
        self.check_stop("line", line.number)?;
        let outcome = unit.process_line(line, &mut self.doc);
        self.take(unit, outcome)
    }

    /// Takes what `unit` made of a record: the document in `doc` when it wrote one;
    /// the held REJECT records when they reached their cap.
    pub(super) fn take(
        &mut self,
        unit: &mut UnitProcessor<'_>,
        outcome: Outcome,
    ) -> Result<(), ReadError> {
        if let Outcome::Document { time, .. } = outcome {
            let meta = DocMeta {
                unit: self.unit_index,
                time,
                id: unit.event_id(),
                records: 1,
            };
            add_document(
                self.batch,
                self.limits,
                self.emit,
                self.doc.as_bytes(),
                meta,
            )?;
        }
        if outcome == Outcome::Held && unit.must_release() {
            self.release_held(unit, false)?;
        }
        if outcome == Outcome::Folded && unit.must_flush_aggregates() {
            self.flush_aggregates(unit)?;
        }
        Ok(())
    }

    /// Adds the documents of `unit`'s aggregates (AGGREGATE), each standing for the
    /// records folded into it: when the unit has ended, or the table is full.
    pub(super) fn flush_aggregates(
        &mut self,
        unit: &mut UnitProcessor<'_>,
    ) -> Result<(), ReadError> {
        let unit_index = self.unit_index;
        unit.flush_aggregates(&mut self.doc, |doc, id, time, records| {
            let meta = DocMeta {
                unit: unit_index,
                time,
                id,
                records,
            };
            add_document(self.batch, self.limits, self.emit, doc, meta)
        })
    }

    /// Adds the documents of `unit`'s held REJECT records: all of them when the unit has
    /// ended, else the older half (the held records reached their cap).
    pub(super) fn release_held(
        &mut self,
        unit: &mut UnitProcessor<'_>,
        unit_ended: bool,
    ) -> Result<(), ReadError> {
        let unit_index = self.unit_index;
        unit.release_held(&mut self.doc, unit_ended, |doc, id, time| {
            let meta = DocMeta {
                unit: unit_index,
                time,
                id,
                records: 1,
            };
            add_document(self.batch, self.limits, self.emit, doc.as_bytes(), meta)
        })
    }
}

/// How many records are read between two looks at the clock for the stop time.
const STOP_CHECK_EVERY: u32 = 64;

/// Adds a document to `batch`, first handing the batch to `emit` when the document
/// would push it past a limit.
fn add_document(
    batch: &mut Batch,
    limits: &BatchLimits,
    emit: &mut dyn FnMut(Batch) -> bool,
    doc: &[u8],
    meta: DocMeta<'_>,
) -> Result<(), ReadError> {
    if batch.would_overflow(limits, doc.len()) && !emit(std::mem::take(batch)) {
        return Err(ReadError::DeliveryStopped);
    }
    batch.push(doc, meta, limits);
    Ok(())
}
