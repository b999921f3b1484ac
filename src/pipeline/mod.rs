//! The record path of one work unit (an S3 object, a file, a CloudWatch batch):
//! line -> parse -> filter -> normalize into a document buffer, with the unit's
//! counts and deterministic event ids. Used alike by the CLI and the Lambda handler.
//!
//! `unit` turns records into documents (counts, filters, REJECT attribution, threat
//! matches, with event ids from `crate::ids`), `input` reads a unit's text, Parquet or
//! CloudWatch events through it, and `output` batches the documents.

mod input;
mod output;
mod unit;

pub use input::{run_input, UnitInput};
pub use output::Output;
pub use unit::{Counts, Lookups, Outcome, Row, UnitProcessor};

/// Why a unit was not read to its end. The unit is failed and retried; the documents
/// read before may have been delivered (their ids make the retry idempotent).
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// Its input could not be read: decompression, a limit, a Parquet file, S3.
    #[error("{0}")]
    Input(String),
    /// The stop time came (the invocation deadline less DEADLINE_MARGIN_MS).
    #[error("stopped reading at {what} {number}: the invocation deadline is near (DEADLINE_MARGIN_MS); the unit will be retried")]
    Deadline { what: &'static str, number: u64 },
    /// Nobody takes batches any more (the delivery task ended).
    #[error("delivery stopped")]
    DeliveryStopped,
    /// A decoder panicked (the input is likely corrupt).
    #[error("internal error while decoding (the input is likely corrupt): {0}")]
    Panicked(String),
}

impl From<String> for ReadError {
    fn from(message: String) -> ReadError {
        ReadError::Input(message)
    }
}
