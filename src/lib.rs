//! flowlog-forwarder: AWS VPC and Transit Gateway Flow Logs to ECS, OCSF or raw
//! documents, forwarded over HTTP.
//!
//! The data flow, one module per stage (README, Layout):
//! `source` (bytes to lines; `objects` fetches S3 objects) -> `flowlog` (lines to
//! records) -> `filter` -> `aggregate` (records of one flow folded, AGGREGATE) -> the
//! document writers: `ecs`, `ocsf` or `raw` (records to documents, `trim` leaving
//! members out), with `context` (what a document is written from besides its record),
//! `enrich` (the EC2 details of a record's interface, ENRICH_ENI), `attribution` (REJECT
//! attribution), `threat_intel` (threat-list matches) and `geoip` (where addresses are;
//! the list and the databases loaded and read again by `reload`) -> `sink` (batches to
//! the destination), driven per work unit by `pipeline`, with `ids` deriving every event
//! id. `trigger` decodes Lambda payloads into units and `handler` runs one invocation
//! (with `secret`, `aws` and `metrics`); `lambda` runs the runtime loop and `cli` the
//! command line, with `config` holding the validated environment and `logging` the
//! logs. `community_id`, `json` and `timestamp` write document values; `text` shortens
//! values for messages after `redact` has scrubbed secrets from them.
//!
//! Modules the binary and the tests use are public; the others are the crate's own.

pub mod aggregate;
pub mod attribution;
pub mod aws;
pub mod cli;
pub(crate) mod community_id;
pub mod config;
pub mod context;
pub(crate) mod ecs;
pub(crate) mod enrich;
pub mod filter;
pub mod flowlog;
pub mod geoip;
pub(crate) mod handler;
pub mod ids;
pub mod json;
pub mod lambda;
pub(crate) mod logging;
pub(crate) mod metrics;
pub(crate) mod objects;
pub(crate) mod ocsf;
pub mod pipeline;
pub(crate) mod raw;
pub(crate) mod redact;
pub mod reload;
pub(crate) mod secret;
pub mod sink;
pub mod source;
pub(crate) mod text;
pub mod threat_intel;
pub mod timestamp;
pub mod trigger;
pub(crate) mod trim;
