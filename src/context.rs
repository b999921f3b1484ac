//! What a document is written from besides its record: where the unit came from
//! (`Origin`, rendered once per unit for each output schema) and the per-record
//! context (`DocContext`: id, original text, interface, attribution, threat matches).

use crate::aggregate::AggregateInfo;
use crate::attribution::RejectAttribution;
use crate::enrich::Interface;
use crate::flowlog::{Field, FlowRecord};
use crate::geoip::Located;
use crate::json::write_str;
use crate::threat_intel::Indicator;

/// Where a unit's records came from, pre-rendered once per unit.
#[derive(Debug, Clone, Default)]
pub struct Origin {
    /// ECS members written inside the `aws` object (`,"s3":{...}` or
    /// `,"cloudwatch":{...}`).
    pub(crate) ecs_aws_members: String,
    /// ECS top-level members (`,"log":{"file":{"path":...}}`).
    pub(crate) ecs_top_members: String,
    /// OCSF members written inside `metadata` (`,"log_provider":...,"log_name":...`).
    pub(crate) ocsf_metadata_members: String,
}

impl Origin {
    /// Length of the members it adds to an ECS document.
    pub(crate) fn ecs_len(&self) -> usize {
        self.ecs_aws_members.len() + self.ecs_top_members.len()
    }

    pub fn s3(bucket: &str, key: &str) -> Origin {
        let mut aws = Vec::new();
        aws.extend_from_slice(b",\"s3\":{\"bucket\":{\"name\":");
        write_str(&mut aws, bucket);
        aws.extend_from_slice(b"},\"object\":{\"key\":");
        write_str(&mut aws, key);
        aws.extend_from_slice(b"}}");
        Origin {
            ecs_aws_members: into_string(aws),
            ecs_top_members: String::new(),
            ocsf_metadata_members: ocsf_log("Amazon S3", &format!("s3://{bucket}/{key}")),
        }
    }

    pub fn cloudwatch(log_group: &str, log_stream: &str) -> Origin {
        let mut aws = Vec::new();
        aws.extend_from_slice(b",\"cloudwatch\":{\"log_group\":");
        write_str(&mut aws, log_group);
        aws.extend_from_slice(b",\"log_stream\":");
        write_str(&mut aws, log_stream);
        aws.push(b'}');
        Origin {
            ecs_aws_members: into_string(aws),
            ecs_top_members: String::new(),
            ocsf_metadata_members: ocsf_log(
                "Amazon CloudWatch Logs",
                &format!("{log_group}/{log_stream}"),
            ),
        }
    }

    pub fn file(path: &str) -> Origin {
        let mut top = Vec::new();
        top.extend_from_slice(b",\"log\":{\"file\":{\"path\":");
        write_str(&mut top, path);
        top.extend_from_slice(b"}}");
        Origin {
            ecs_aws_members: String::new(),
            ecs_top_members: into_string(top),
            ocsf_metadata_members: ocsf_log("File", path),
        }
    }
}

/// OCSF `metadata.log_provider` and `metadata.log_name`.
fn ocsf_log(provider: &str, name: &str) -> String {
    let mut members = Vec::new();
    members.extend_from_slice(b",\"log_provider\":");
    write_str(&mut members, provider);
    members.extend_from_slice(b",\"log_name\":");
    write_str(&mut members, name);
    into_string(members)
}

fn into_string(bytes: Vec<u8>) -> String {
    // Only ever built from `write_str` output and ASCII literals.
    String::from_utf8(bytes).unwrap_or_default()
}

/// Per-record context of a document.
#[derive(Debug, Clone, Copy)]
pub struct DocContext<'a> {
    /// Deterministic `event.id`.
    pub event_id: &'a str,
    pub origin: &'a Origin,
    /// `event.original` when INCLUDE_ORIGINAL is set.
    pub original: Option<&'a str>,
    /// Unix seconds used for `@timestamp` when the record has neither end nor start.
    pub now: u64,
    /// The record's network interface as EC2 describes it (ENRICH_ENI).
    pub interface: Option<&'a Interface>,
    /// A REJECT record's attribution (REJECT_ATTRIBUTION).
    pub reject_attribution: Option<RejectAttribution>,
    /// The record's addresses found in THREAT_INTEL_URI's list (`None`s are unused
    /// slots).
    pub threat_matches: &'a [Option<ThreatMatch<'a>>],
    /// `,"data_stream":{...}` (RecordSettings::data_stream), or empty.
    pub data_stream: &'a str,
    /// A raw document is the line alone (RecordSettings::hec_line).
    pub hec_line: bool,
    /// Where the source and destination addresses are (GEOIP_DATABASE,
    /// GEOIP_ASN_DATABASE), when looked up.
    pub geo: Option<&'a [Located; 2]>,
    /// The records an aggregate's document stands for (AGGREGATE).
    pub aggregate: Option<AggregateInfo>,
}

impl DocContext<'_> {
    /// Why a record was rejected, in words: its own `reject-reason`, else the network
    /// ACL attribution's explanation.
    pub fn reject_reason<'r>(&self, rec: &FlowRecord<'r>) -> Option<&'r str> {
        rec.get(Field::RejectReason).or_else(|| {
            (self.reject_attribution == Some(RejectAttribution::NetworkAcl))
                .then_some(RejectAttribution::NETWORK_ACL_REASON)
        })
    }
}

/// One of a record's addresses found in the threat list.
#[derive(Debug, Clone, Copy)]
pub struct ThreatMatch<'a> {
    /// The address as the record has it.
    pub ip: &'a str,
    /// The flow log field it is in.
    pub field: Field,
    pub indicator: Indicator<'a>,
}

/// Longest error message of a failure document (ECS `error.message`, OCSF
/// `status_detail`), in bytes.
pub const MAX_ERROR_MESSAGE: usize = 1024;

/// `message` cut to MAX_ERROR_MESSAGE bytes (at a character boundary), saying so.
pub(crate) fn cap_message(message: &str) -> std::borrow::Cow<'_, str> {
    if message.len() <= MAX_ERROR_MESSAGE {
        return message.into();
    }
    let mut end = MAX_ERROR_MESSAGE - 32;
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}... ({} bytes)", &message[..end], message.len()).into()
}

/// `bytes` and `packets` of both directions of an aggregated connection (AGGREGATE): the
/// record's (what its source sent) and its replies' (`replies`), summed.
pub(crate) fn write_two_way_totals(
    w: &mut crate::json::Writer<'_>,
    rec: &FlowRecord<'_>,
    replies: crate::aggregate::Counters,
) {
    let bytes = rec.bytes.map(|b| b.saturating_add(replies.bytes));
    let packets = rec.packets.map(|p| p.saturating_add(replies.packets));
    w.number(crate::json::k!("bytes"), bytes, None);
    w.number(crate::json::k!("packets"), packets, None);
}
