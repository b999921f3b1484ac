//! NDJSON: one document per line, to any HTTP receiver (a 2xx answer delivers the
//! whole batch) or to standard output (`NdjsonWriter`).

use std::io::Write;

use super::answer::{read_capped, Answer, ERROR_BODY_BYTES};
use super::{Batch, DeliveryReport};

/// The body of a request for the documents `which` of `batch`.
pub(super) fn frame(batch: &Batch, which: &[usize]) -> Vec<u8> {
    let mut body = Vec::with_capacity(batch.framed_bytes() + 64);
    for &i in which {
        body.extend_from_slice(batch.doc(i));
        body.push(b'\n');
    }
    body
}

/// Reads a 2xx answer (only so that the connection can be used again).
pub(super) async fn read_answer(resp: &mut reqwest::Response) -> Result<Answer, reqwest::Error> {
    read_capped(resp, ERROR_BODY_BYTES).await?;
    Ok(Answer::Delivered)
}

/// Writes NDJSON to standard output (the destination outside Lambda by default).
pub struct NdjsonWriter<W: Write> {
    out: W,
}

impl<W: Write> NdjsonWriter<W> {
    pub fn new(out: W) -> NdjsonWriter<W> {
        NdjsonWriter { out }
    }

    /// Writes every document of the batch, one per line, and flushes: the batch counts
    /// as delivered once it is all written.
    pub fn write_batch(
        &mut self,
        batch: &Batch,
        report: &mut DeliveryReport,
    ) -> std::io::Result<()> {
        for i in 0..batch.len() {
            self.out.write_all(batch.doc(i))?;
            self.out.write_all(b"\n")?;
        }
        self.out.flush()?;
        for (unit, n) in batch.units() {
            report.delivered(unit, n);
        }
        Ok(())
    }

    pub fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}
