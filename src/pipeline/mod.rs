//! The record path of one work unit (an S3 object, a file, a CloudWatch batch):
//! line -> parse -> filter -> normalize into a document buffer, with the unit's
//! counts and deterministic event ids. Used alike by the CLI and the Lambda handler.
//!
//! `unit` turns records into documents (counts, filters, REJECT attribution, threat
//! matches), `ids` derives their event ids, `input` reads a unit's text, Parquet or
//! CloudWatch events through it, and `output` batches the documents.

mod ids;
mod input;
mod output;
mod unit;

pub use ids::{aggregate_id, IdSeed};
pub use input::{run_input, UnitInput};
pub use output::Output;
pub use unit::{Counts, Lookups, Outcome, Row, UnitProcessor};
