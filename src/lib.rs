//! flowlog-forwarder: AWS VPC and Transit Gateway Flow Logs to ECS documents.
//!
//! The data flow, one module per stage (shared/DESIGN.md):
//! `source` (bytes to lines) -> `flowlog` (lines to records) -> `filter` ->
//! `ecs` (records to documents, with `enrich` adding the EC2 details of the record's
//! network interface when ENRICH_ENI is on) -> `sink`, driven per work unit by
//! `pipeline`. `trigger` decodes Lambda payloads into units and `handler` runs one
//! invocation (with `secret`, `aws` and `metrics`); `lambda` runs the runtime loop and
//! `cli` the command line, with `config` holding the validated environment. `text`
//! shortens values for messages (after `redact` has scrubbed them).

pub mod attribution;
pub mod aws;
pub mod cli;
pub mod community_id;
pub mod config;
pub mod context;
pub mod ecs;
pub mod enrich;
pub mod filter;
pub mod flowlog;
pub mod handler;
pub mod json;
pub mod lambda;
pub mod logging;
pub mod metrics;
pub mod objects;
pub mod ocsf;
pub mod pipeline;
pub mod raw;
pub mod redact;
pub mod secret;
pub mod sink;
pub mod source;
pub mod text;
pub mod threat_intel;
pub mod timestamp;
pub mod trigger;
