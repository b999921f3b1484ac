//! Configuration from environment variables (README, Configuration), validated
//! once at cold start. A bad value fails with a message naming the variable.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::aggregate::AggregateSettings;
use crate::filter::Filter;
use crate::flowlog::Schema;
use crate::geoip::GeoIpSettings;
use crate::redact::redact_url;
use crate::source::Limits;
use crate::trim::Trim;

pub mod variables;

use variables::{Kind, Variable};

/// Request body framing at the destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DestinationFormat {
    Ndjson,
    Elasticsearch,
    SplunkHec,
    /// OpenTelemetry OTLP/HTTP logs.
    Otlp,
}

/// The schema documents are written in (OUTPUT_SCHEMA).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OutputSchema {
    /// Elastic Common Schema, as the Elastic `aws.vpcflow` integration (the default).
    #[default]
    Ecs,
    /// OCSF 1.1.0 Network Activity (class 4001), as Amazon Security Lake writes.
    Ocsf,
    /// Each record as its flow log line in `message`, for Elastic's AWS integration to
    /// parse with its own ingest pipeline (as Elastic Serverless Forwarder sends it).
    Raw,
}

impl OutputSchema {
    /// `ecs`, `ocsf` or `raw`, as OUTPUT_SCHEMA and `--output-schema` take it.
    pub fn parse(value: &str) -> Result<OutputSchema, String> {
        match value.to_ascii_lowercase().as_str() {
            "ecs" => Ok(OutputSchema::Ecs),
            "ocsf" => Ok(OutputSchema::Ocsf),
            "raw" => Ok(OutputSchema::Raw),
            _ => Err(format!("'{value}' is not ecs, ocsf or raw")),
        }
    }
}

/// How records become documents: settings shared by every unit of a run.
#[derive(Debug, Clone)]
pub struct RecordSettings {
    /// Schema for inputs without a header line (LOG_FORMAT or the default).
    pub schema: Schema,
    pub filter: Filter,
    pub include_original: bool,
    pub output_schema: OutputSchema,
    /// `aws.vpcflow.reject_attribution` on REJECT documents (REJECT_ATTRIBUTION).
    pub reject_attribution: bool,
    /// Raw documents to Splunk HEC are the line itself (a JSON string), which HEC
    /// makes the event's `_raw` for the Splunk Add-on for AWS to extract.
    pub hec_line: bool,
    /// `,"data_stream":{...}`: the parts of DESTINATION_INDEX when Elasticsearch
    /// documents go to a data stream (`logs-aws.vpcflow-default`); empty otherwise.
    pub data_stream: String,
    /// AGGREGATE and AGGREGATE_ACTIONS, when on.
    pub aggregate: Option<AggregateSettings>,
    /// FIELDS_EXCLUDE: members left out of every document.
    pub trim: Option<Trim>,
}

/// A set of defaults for one use (PROFILE).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Profile {
    /// What the vendors' security packs do to cut volume: drop NODATA and SKIPDATA,
    /// fold accepted traffic between internal addresses by conversation and other
    /// accepted traffic by connection, keep every REJECT and every threat match as a
    /// document of its own.
    Security,
}

/// What PROFILE=security leaves out of ECS documents: members that repeat others.
const SECURITY_TRIM: &str =
    "source.address, destination.address, related.*, aws.vpcflow.account_id, aws.vpcflow.action";

/// Internal addresses for PROFILE=security: RFC 1918, shared (RFC 6598), link-local
/// (the instance metadata and Time Sync services) and unique-local IPv6.
const PRIVATE_RANGES: &str = r#""10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "169.254.0.0/16", "fc00::/7", "fe80::/10""#;

impl Profile {
    /// The profile's value of variable `name` (`set`: the variables set explicitly).
    fn default(self, name: &str, set: &dyn Fn(&str) -> Option<String>) -> Option<String> {
        match (self, name) {
            (Profile::Security, "FILTER") => {
                Some(r#"!(log-status in ["NODATA", "SKIPDATA"])"#.to_string())
            }
            (Profile::Security, "AGGREGATE") => Some("conversations".to_string()),
            (Profile::Security, "AGGREGATE_ACTIONS") => Some("ACCEPT".to_string()),
            // Only where conversations are what AGGREGATE asks for.
            (Profile::Security, "AGGREGATE_CONVERSATIONS_WHERE") => set("AGGREGATE")
                .is_none_or(|a| a.trim().eq_ignore_ascii_case("conversations"))
                .then(|| format!("srcaddr in [{PRIVATE_RANGES}] && dstaddr in [{PRIVATE_RANGES}]")),
            // Copies of other members of an ECS document (`source.ip`, `cloud.account.id`,
            // `event.action`); OCSF events have none to trim.
            (Profile::Security, "FIELDS_EXCLUDE") => {
                let ecs = set("OUTPUT_SCHEMA").is_none_or(|s| s.eq_ignore_ascii_case("ecs"));
                ecs.then(|| SECURITY_TRIM.to_string())
            }
            _ => None,
        }
    }
}

/// The Splunk sourcetype of HEC events when SPLUNK_SOURCETYPE is not set, per schema:
/// the raw line under the Splunk Add-on for AWS's VPC flow log sourcetype, which it maps
/// to CIM Network_Traffic; OCSF events under that sourcetype with the `ocsf:` prefix,
/// which the OCSF-CIM Add-On maps to CIM (Splunk: "select the source types that are
/// prefixed by ocsf: and correspond to your incoming data"); ECS documents as JSON
/// (`_json`, Splunk's own), never claiming a sourcetype whose extractions expect
/// another shape.
pub fn default_sourcetype(schema: OutputSchema) -> &'static str {
    match schema {
        OutputSchema::Ecs => "_json",
        OutputSchema::Ocsf => "ocsf:aws:cloudwatchlogs:vpcflow",
        OutputSchema::Raw => "aws:cloudwatchlogs:vpcflow",
    }
}

/// The ingest pipeline of bulk requests when DESTINATION_PIPELINE is not set. ECS and
/// OCSF documents are already parsed: the integration's default pipeline, which parses
/// the raw line, would break them, and `_none` skips it. Raw documents are for that
/// pipeline: no parameter.
fn default_pipeline(schema: OutputSchema) -> Option<String> {
    (schema != OutputSchema::Raw).then(|| "_none".to_string())
}

/// `RecordSettings::data_stream` for a destination: ECS and raw documents sent to an
/// Elasticsearch data stream carry its parts.
pub fn data_stream_for(
    format: DestinationFormat,
    index: Option<&str>,
    schema: OutputSchema,
) -> String {
    match (format, index, schema) {
        (DestinationFormat::Elasticsearch, Some(index), OutputSchema::Ecs | OutputSchema::Raw) => {
            data_stream_members(index).unwrap_or_default()
        }
        _ => String::new(),
    }
}

/// The `data_stream` members of documents sent to `index`, when it names a data
/// stream: `{type}-{dataset}-{namespace}`, the type one of Elastic's, neither dataset
/// nor namespace holding a `-` (`logs-aws.vpcflow-default` -> logs / aws.vpcflow /
/// default).
pub fn data_stream_members(index: &str) -> Option<String> {
    let mut parts = index.split('-');
    let (kind, dataset, namespace) = (parts.next()?, parts.next()?, parts.next()?);
    let valid = parts.next().is_none()
        && matches!(
            kind,
            "logs" | "metrics" | "traces" | "synthetics" | "profiling"
        )
        && !dataset.is_empty()
        && !namespace.is_empty();
    valid.then(|| {
        let mut out = Vec::new();
        out.extend_from_slice(b",\"data_stream\":{\"type\":");
        crate::json::write_str(&mut out, kind);
        out.extend_from_slice(b",\"dataset\":");
        crate::json::write_str(&mut out, dataset);
        out.extend_from_slice(b",\"namespace\":");
        crate::json::write_str(&mut out, namespace);
        out.push(b'}');
        String::from_utf8_lossy(&out).into_owned()
    })
}

/// Where signed requests go (DESTINATION_AUTH=aws-sigv4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SigV4Target {
    /// `es` (Amazon OpenSearch Service) or `aoss` (OpenSearch Serverless).
    pub service: String,
    pub region: Option<String>,
}

/// Everything the forwarder is configured with.
#[derive(Clone)]
pub struct Config {
    /// `None` means standard output (allowed only outside Lambda).
    pub destination_url: Option<String>,
    pub destination_format: DestinationFormat,
    /// Extra request headers (DESTINATION_HEADERS); secret, never logged.
    pub destination_headers: BTreeMap<String, String>,
    pub destination_secret_arn: Option<String>,
    pub destination_index: Option<String>,
    /// The ingest pipeline of Elasticsearch bulk requests (DESTINATION_PIPELINE): sent
    /// as the `pipeline` parameter; `None` sends none.
    pub destination_pipeline: Option<String>,
    /// Requests signed with AWS Signature Version 4 (DESTINATION_AUTH=aws-sigv4) for
    /// this service (DESTINATION_AWS_SERVICE: `es`, or `aoss` for OpenSearch
    /// Serverless) in this region (DESTINATION_AWS_REGION; `None`: AWS_REGION).
    pub destination_sigv4: Option<SigV4Target>,
    /// Splunk HEC event metadata (SPLUNK_SOURCETYPE, SPLUNK_SOURCE, SPLUNK_HOST);
    /// `None`: the schema's default sourcetype, no source or host (HEC's own).
    pub splunk_sourcetype: Option<String>,
    pub splunk_source: Option<String>,
    pub splunk_host: Option<String>,
    /// Splunk HEC indexer acknowledgement (SPLUNK_HEC_ACK): a batch counts as delivered
    /// once Splunk acknowledges it, polled for at most SPLUNK_HEC_ACK_TIMEOUT_SECONDS.
    pub splunk_hec_ack: Option<Duration>,
    /// OTLP requests in OTLP/JSON instead of protobuf (DESTINATION_OTLP_ENCODING=json).
    pub otlp_json: bool,
    pub gzip: bool,
    pub batch_max_bytes: usize,
    pub batch_max_events: usize,
    pub max_retries: u32,
    /// One HTTP request's timeout (REQUEST_TIMEOUT_MS).
    pub request_timeout: Duration,
    /// Backoff base and cap (RETRY_BASE_DELAY_MS, RETRY_MAX_DELAY_MS).
    pub retry_base_delay: Duration,
    pub retry_max_delay: Duration,
    /// Requests in flight at once (MAX_IN_FLIGHT).
    pub max_in_flight: usize,
    /// Plain http to a non-loopback host (ALLOW_PLAIN_HTTP); https otherwise.
    pub allow_plain_http: bool,
    /// Security groups, VPC, subnet, instance and direction from EC2 (ENRICH_ENI).
    pub enrich_eni: bool,
    /// How long EC2 answers are cached (ENRICH_ENI_TTL_SECONDS).
    pub enrich_eni_ttl: Duration,
    pub records: RecordSettings,
    pub limits: Limits,
    /// Stop reading a unit when this little remains before the invocation deadline
    /// (DEADLINE_MARGIN_MS).
    pub deadline_margin: Duration,
    /// Log level (LOG_LEVEL, else Lambda's AWS_LAMBDA_LOG_LEVEL); `None` is the
    /// default of where it runs.
    pub log_level: Option<tracing::Level>,
    /// Extra CAs trusted for the destination, PEM (DESTINATION_CA_BUNDLE: the text, or
    /// read from the path given).
    pub destination_ca_bundle: Option<String>,
    /// How long the destination secret is used before it is read again
    /// (SECRET_TTL_SECONDS).
    pub secret_ttl: Duration,
    /// The IP/CIDR list matched against every address (THREAT_INTEL_URI): an S3 URI
    /// or a path.
    pub threat_intel_uri: Option<String>,
    /// How long the list is used before it is read again (THREAT_INTEL_TTL_SECONDS).
    pub threat_intel_ttl: Duration,
    /// Longest one reading of the list may take (THREAT_INTEL_TIMEOUT_SECONDS).
    pub threat_intel_timeout: Duration,
    /// GeoIP databases (GEOIP_DATABASE: City or Country; GEOIP_ASN_DATABASE), how
    /// long each is used and may take to read.
    pub geoip: GeoIpSettings,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field(
                "destination_url",
                &self.destination_url.as_deref().map(redact_url),
            )
            .field("destination_format", &self.destination_format)
            .field(
                "destination_headers",
                &self.destination_headers.keys().collect::<Vec<_>>(),
            )
            .field("destination_secret_arn", &self.destination_secret_arn)
            .field("destination_index", &self.destination_index)
            .field("destination_pipeline", &self.destination_pipeline)
            .field("otlp_json", &self.otlp_json)
            .field("gzip", &self.gzip)
            .field("batch_max_bytes", &self.batch_max_bytes)
            .field("batch_max_events", &self.batch_max_events)
            .field("max_retries", &self.max_retries)
            .field("request_timeout", &self.request_timeout)
            .field("retry_base_delay", &self.retry_base_delay)
            .field("retry_max_delay", &self.retry_max_delay)
            .field("max_in_flight", &self.max_in_flight)
            .field("allow_plain_http", &self.allow_plain_http)
            .field("enrich_eni", &self.enrich_eni)
            .field("enrich_eni_ttl", &self.enrich_eni_ttl)
            .field("log_format", &self.records.schema.to_format_string())
            .field("filter", &self.records.filter)
            .field("include_original", &self.records.include_original)
            .field("output_schema", &self.records.output_schema)
            .field("reject_attribution", &self.records.reject_attribution)
            .field("limits", &self.limits)
            .field("deadline_margin", &self.deadline_margin)
            .field("log_level", &self.log_level)
            .field(
                "destination_ca_bundle",
                &self.destination_ca_bundle.as_ref().map(|_| "<PEM>"),
            )
            .field("secret_ttl", &self.secret_ttl)
            .field("threat_intel_uri", &self.threat_intel_uri)
            .field("threat_intel_ttl", &self.threat_intel_ttl)
            .field("threat_intel_timeout", &self.threat_intel_timeout)
            .field("geoip", &self.geoip)
            .finish()
    }
}

/// A configuration error: the variable, and what is wrong with its value (never the
/// value's secret parts).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{variable}: {message}")]
pub struct ConfigError {
    pub variable: String,
    pub message: String,
}

impl ConfigError {
    pub fn new(variable: impl Into<String>, message: impl Into<String>) -> ConfigError {
        ConfigError {
            variable: variable.into(),
            message: message.into(),
        }
    }
}

impl Config {
    /// The metadata members of every Splunk HEC event: `,"sourcetype":...`, then source,
    /// host and index when set.
    pub fn hec_members(&self) -> String {
        let mut out = Vec::new();
        let sourcetype = self
            .splunk_sourcetype
            .as_deref()
            .unwrap_or(default_sourcetype(self.records.output_schema));
        for (key, value) in [
            ("sourcetype", Some(sourcetype)),
            ("source", self.splunk_source.as_deref()),
            ("host", self.splunk_host.as_deref()),
            ("index", self.destination_index.as_deref()),
        ] {
            if let Some(value) = value {
                out.extend_from_slice(format!(",\"{key}\":").as_bytes());
                crate::json::write_str(&mut out, value);
            }
        }
        String::from_utf8_lossy(&out).into_owned()
    }

    /// Reads the process environment.
    pub fn from_env() -> Result<Config, ConfigError> {
        Config::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads variables through `get` (tests pass a map), concern by concern
    /// (`variables` lists them).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let v = Vars::new(&get)?;
        let destination_url = match v.get("DESTINATION_URL") {
            None => None,
            Some(u) if u == "stdout" || u == "-" => None,
            Some(u) => Some(check_url(&u).map_err(|m| v.err("DESTINATION_URL", m))?),
        };
        let destination_format = match v.get("DESTINATION_FORMAT").as_deref() {
            None | Some("ndjson") => DestinationFormat::Ndjson,
            Some("elasticsearch") => DestinationFormat::Elasticsearch,
            Some("splunk-hec") => DestinationFormat::SplunkHec,
            Some("otlp") => DestinationFormat::Otlp,
            Some(other) => {
                return Err(v.err(
                    "DESTINATION_FORMAT",
                    format!("'{other}' is not one of ndjson, elasticsearch, splunk-hec, otlp"),
                ))
            }
        };
        let otlp_json = match v.get("DESTINATION_OTLP_ENCODING").as_deref() {
            None | Some("protobuf") => false,
            Some("json") => true,
            Some(other) => {
                return Err(v.err(
                    "DESTINATION_OTLP_ENCODING",
                    format!("'{other}' is not protobuf or json"),
                ))
            }
        };
        let destination_headers = match v.get("DESTINATION_HEADERS") {
            None => BTreeMap::new(),
            Some(json) => parse_headers(&json).map_err(|m| v.err("DESTINATION_HEADERS", m))?,
        };
        let destination_index = v.get("DESTINATION_INDEX").or_else(|| {
            (destination_format == DestinationFormat::Elasticsearch)
                .then(|| "logs-aws.vpcflow-default".to_string())
        });
        let records = read_records(&v, destination_format, destination_index.as_deref())?;
        // Set but empty is a value of its own for DESTINATION_PIPELINE (no pipeline).
        let destination_pipeline = match get("DESTINATION_PIPELINE").map(|p| p.trim().to_string()) {
            None => default_pipeline(records.output_schema),
            Some(p) if p.is_empty() => None,
            Some(p) => Some(p),
        };
        let destination_ca_bundle = match v.get("DESTINATION_CA_BUNDLE") {
            None => None,
            Some(b) => Some(read_ca_bundle(&b).map_err(|m| v.err("DESTINATION_CA_BUNDLE", m))?),
        };
        let lookups = read_lookups(&v)?;
        if records.filter.threat_matches_only && lookups.threat_intel_uri.is_none() {
            return Err(v.err(
                "THREAT_INTEL_ONLY",
                "true needs THREAT_INTEL_URI (a list to match)".to_string(),
            ));
        }
        Ok(Config {
            destination_url,
            destination_format,
            destination_headers,
            destination_secret_arn: v.get("DESTINATION_SECRET_ARN"),
            destination_index,
            destination_pipeline,
            destination_sigv4: read_sigv4(&v)?,
            splunk_sourcetype: v.splunk("SPLUNK_SOURCETYPE")?,
            splunk_source: v.splunk("SPLUNK_SOURCE")?,
            splunk_host: v.splunk("SPLUNK_HOST")?,
            splunk_hec_ack: match v.flag("SPLUNK_HEC_ACK")? {
                false => None,
                true => Some(v.seconds("SPLUNK_HEC_ACK_TIMEOUT_SECONDS")?),
            },
            otlp_json,
            gzip: match v.get("COMPRESSION").as_deref() {
                None | Some("gzip") => true,
                Some("none") => false,
                Some(other) => {
                    return Err(v.err("COMPRESSION", format!("'{other}' is not gzip or none")))
                }
            },
            batch_max_bytes: v.number("BATCH_MAX_BYTES")? as usize,
            batch_max_events: v.number("BATCH_MAX_EVENTS")? as usize,
            max_retries: v.number("MAX_RETRIES")? as u32,
            request_timeout: v.millis("REQUEST_TIMEOUT_MS")?,
            retry_base_delay: v.millis("RETRY_BASE_DELAY_MS")?,
            retry_max_delay: v.millis("RETRY_MAX_DELAY_MS")?,
            max_in_flight: v.number("MAX_IN_FLIGHT")? as usize,
            allow_plain_http: v.flag("ALLOW_PLAIN_HTTP")?,
            enrich_eni: v.flag("ENRICH_ENI")?,
            enrich_eni_ttl: v.seconds("ENRICH_ENI_TTL_SECONDS")?,
            records,
            limits: read_limits(&v)?,
            deadline_margin: v.millis("DEADLINE_MARGIN_MS")?,
            log_level: read_log_level(&v)?,
            destination_ca_bundle,
            secret_ttl: v.seconds("SECRET_TTL_SECONDS")?,
            threat_intel_uri: lookups.threat_intel_uri,
            threat_intel_ttl: v.seconds("THREAT_INTEL_TTL_SECONDS")?,
            threat_intel_timeout: v.seconds("THREAT_INTEL_TIMEOUT_SECONDS")?,
            geoip: GeoIpSettings {
                database: lookups.geoip_database,
                asn_database: lookups.geoip_asn_database,
                ttl: v.seconds("GEOIP_TTL_SECONDS")?,
                timeout: v.seconds("GEOIP_TIMEOUT_SECONDS")?,
            },
        })
    }
}

/// The variables as `from_lookup` reads them: a value set and not empty, else PROFILE's
/// default for it (a variable set explicitly wins over the profile).
struct Vars<'a> {
    lookup: &'a dyn Fn(&str) -> Option<String>,
    profile: Option<Profile>,
}

impl<'a> Vars<'a> {
    fn new(lookup: &'a dyn Fn(&str) -> Option<String>) -> Result<Vars<'a>, ConfigError> {
        let mut v = Vars {
            lookup,
            profile: None,
        };
        v.profile = match v.set("PROFILE").map(|p| p.to_ascii_lowercase()).as_deref() {
            None => None,
            Some("security") => Some(Profile::Security),
            Some(other) => return Err(v.err("PROFILE", format!("'{other}' is not security"))),
        };
        Ok(v)
    }

    /// The value set explicitly (trimmed, not empty).
    fn set(&self, name: &str) -> Option<String> {
        (self.lookup)(name)
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    }

    /// The value set, else the profile's.
    fn get(&self, name: &str) -> Option<String> {
        self.set(name)
            .or_else(|| self.profile?.default(name, &|n| self.set(n)))
    }

    fn err(&self, name: &str, message: String) -> ConfigError {
        ConfigError::new(name, message)
    }

    /// The table's entry of `name` (`variables`): every variable is read through it.
    fn variable(&self, name: &str) -> Result<&'static Variable, ConfigError> {
        Variable::named(name)
            .ok_or_else(|| self.err(name, "is not a variable of config::variables".to_string()))
    }

    /// `true`/`1`/`yes` or `false`/`0`/`no` (unset: the table's default).
    fn flag(&self, name: &str) -> Result<bool, ConfigError> {
        let Kind::Flag { default } = self.variable(name)?.kind else {
            return Err(self.err(name, "is not a flag in config::variables".to_string()));
        };
        match self.get(name).map(|v| v.to_ascii_lowercase()).as_deref() {
            None => Ok(default),
            Some("false") | Some("0") | Some("no") => Ok(false),
            Some("true") | Some("1") | Some("yes") => Ok(true),
            Some(other) => Err(self.err(name, format!("'{other}' is not true or false"))),
        }
    }

    /// A whole number in the table's range (unset: the table's default).
    fn number(&self, name: &str) -> Result<u64, ConfigError> {
        let Kind::Number { default, min, max } = self.variable(name)?.kind else {
            return Err(self.err(name, "is not a number in config::variables".to_string()));
        };
        match self.get(name) {
            None => Ok(default),
            Some(v) => v
                .parse::<u64>()
                .ok()
                .filter(|n| (min..=max).contains(n))
                .ok_or_else(|| {
                    self.err(
                        name,
                        format!("'{v}' is not a whole number from {min} to {max}"),
                    )
                }),
        }
    }

    fn seconds(&self, name: &str) -> Result<Duration, ConfigError> {
        self.number(name).map(Duration::from_secs)
    }

    fn millis(&self, name: &str) -> Result<Duration, ConfigError> {
        self.number(name).map(Duration::from_millis)
    }

    /// A Splunk HEC event member: 1 to 1024 bytes.
    fn splunk(&self, name: &str) -> Result<Option<String>, ConfigError> {
        match self.get(name) {
            None => Ok(None),
            Some(v) if v.trim().is_empty() || v.len() > 1024 => {
                Err(self.err(name, "must be 1 to 1024 bytes, not empty".to_string()))
            }
            Some(v) => Ok(Some(v)),
        }
    }
}

/// How records become documents: the format of lines without a header, the filters,
/// the schema, aggregation and trimming.
fn read_records(
    v: &Vars<'_>,
    destination_format: DestinationFormat,
    destination_index: Option<&str>,
) -> Result<RecordSettings, ConfigError> {
    let schema = match v.get("LOG_FORMAT") {
        None => Schema::default_v2(),
        Some(f) => Schema::parse_format(&f).map_err(|e| v.err("LOG_FORMAT", e.to_string()))?,
    };
    let internal = v.get("INTERNAL_CIDRS").or_else(|| v.get("VPC_CIDR_PREFIX"));
    let mut filter = Filter::parse(
        internal.as_deref(),
        v.get("ACTIONS").as_deref(),
        v.get("FILTER").as_deref(),
    )
    .map_err(|(variable, message)| ConfigError::new(variable, message))?;
    filter.threat_matches_only = v.flag("THREAT_INTEL_ONLY")?;
    filter.log_streams = v
        .get("LOG_STREAM_PREFIX")
        .map(|list| {
            list.split(',')
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    let aggregate = AggregateSettings::parse(
        v.get("AGGREGATE").as_deref(),
        v.get("AGGREGATE_ACTIONS").as_deref(),
        v.get("AGGREGATE_WHERE").as_deref(),
        v.get("AGGREGATE_CONVERSATIONS_WHERE").as_deref(),
    )
    .map_err(|(variable, message)| ConfigError::new(variable, message))?;
    let trim = match v.get("FIELDS_EXCLUDE") {
        None => None,
        Some(list) => Trim::parse(&list).map_err(|m| v.err("FIELDS_EXCLUDE", m))?,
    };
    let output_schema = match v.get("OUTPUT_SCHEMA") {
        None => OutputSchema::Ecs,
        Some(s) => OutputSchema::parse(&s).map_err(|m| v.err("OUTPUT_SCHEMA", m))?,
    };
    if aggregate.is_some() && output_schema == OutputSchema::Raw {
        return Err(v.err(
            "AGGREGATE",
            "raw documents carry each line as it was read: aggregate ECS or OCSF documents (OUTPUT_SCHEMA)".to_string(),
        ));
    }
    Ok(RecordSettings {
        schema,
        filter,
        include_original: v.flag("INCLUDE_ORIGINAL")?,
        output_schema,
        reject_attribution: v.flag("REJECT_ATTRIBUTION")?,
        hec_line: output_schema == OutputSchema::Raw
            && destination_format == DestinationFormat::SplunkHec,
        // ECS documents written to a data stream carry its parts, as Elastic's
        // integration and dashboards expect (`data_stream.dataset : "aws.vpcflow"`).
        data_stream: data_stream_for(destination_format, destination_index, output_schema),
        aggregate,
        trim,
    })
}

/// LOG_LEVEL, else the level Lambda was configured with (AWS_LAMBDA_LOG_LEVEL); none:
/// the default of where it runs.
fn read_log_level(v: &Vars<'_>) -> Result<Option<tracing::Level>, ConfigError> {
    for name in ["LOG_LEVEL", "AWS_LAMBDA_LOG_LEVEL"] {
        if let Some(level) = v.get(name) {
            return parse_level(&level).map(Some).map_err(|m| v.err(name, m));
        }
    }
    Ok(None)
}

/// DESTINATION_AUTH=aws-sigv4: the service and region requests are signed for.
fn read_sigv4(v: &Vars<'_>) -> Result<Option<SigV4Target>, ConfigError> {
    match v.get("DESTINATION_AUTH").as_deref() {
        None | Some("none") => Ok(None),
        Some("aws-sigv4") => {
            let service = v
                .get("DESTINATION_AWS_SERVICE")
                .unwrap_or_else(|| "es".to_string());
            if !matches!(service.as_str(), "es" | "aoss") {
                return Err(v.err(
                    "DESTINATION_AWS_SERVICE",
                    format!("'{service}' is not es (OpenSearch Service) or aoss (OpenSearch Serverless)"),
                ));
            }
            let region = v.get("DESTINATION_AWS_REGION");
            if let Some(r) = &region {
                if r.is_empty()
                    || !r
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                {
                    return Err(v.err(
                        "DESTINATION_AWS_REGION",
                        format!("'{r}' is not a region name"),
                    ));
                }
            }
            Ok(Some(SigV4Target { service, region }))
        }
        Some(other) => Err(v.err(
            "DESTINATION_AUTH",
            format!("'{other}' is not none or aws-sigv4"),
        )),
    }
}

/// What hostile input cannot exceed.
fn read_limits(v: &Vars<'_>) -> Result<Limits, ConfigError> {
    Ok(Limits {
        max_line_bytes: v.number("MAX_LINE_BYTES")? as usize,
        max_decompressed_bytes: v.number("MAX_OBJECT_BYTES")?,
        max_ratio: v.number("MAX_DECOMPRESSION_RATIO")?,
    })
}

/// Where the threat list and the GeoIP databases are read from.
struct LookupLocations {
    threat_intel_uri: Option<String>,
    geoip_database: Option<String>,
    geoip_asn_database: Option<String>,
}

/// THREAT_INTEL_URI, GEOIP_DATABASE and GEOIP_ASN_DATABASE: a missing file or a
/// directory is a configuration error, not a list or database that failed to load.
fn read_lookups(v: &Vars<'_>) -> Result<LookupLocations, ConfigError> {
    use crate::geoip::PlaceDatabase;
    use crate::reload::{check_path, Location};
    use crate::threat_intel::ThreatList;
    let read = |name: &str, check: fn(&std::path::Path) -> Result<(), String>| {
        let uri = v.get(name);
        if let Some(uri) = &uri {
            if let Location::File(path) = Location::parse(uri).map_err(|m| v.err(name, m))? {
                check(&path).map_err(|m| v.err(name, m))?;
            }
        }
        Ok::<_, ConfigError>(uri)
    };
    Ok(LookupLocations {
        threat_intel_uri: read("THREAT_INTEL_URI", check_path::<ThreatList>)?,
        geoip_database: read("GEOIP_DATABASE", check_path::<PlaceDatabase>)?,
        geoip_asn_database: read("GEOIP_ASN_DATABASE", check_path::<PlaceDatabase>)?,
    })
}

/// Checks a destination URL as the HTTP client will read it: http or https, a host, a
/// valid port. The message never shows the URL's secret parts.
pub fn check_url(url: &str) -> Result<String, String> {
    let shown = redact_url(url);
    if !(url.starts_with("https://") || url.starts_with("http://")) {
        return Err(format!("'{shown}' is not an http(s) URL or 'stdout'"));
    }
    let parsed =
        reqwest::Url::parse(url).map_err(|e| format!("'{shown}' is not a valid URL: {e}"))?;
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(format!("'{shown}' has no host"));
    }
    Ok(url.to_string())
}

/// A log level: error, warn, info, debug or trace (any case); Lambda's FATAL is error.
fn parse_level(value: &str) -> Result<tracing::Level, String> {
    use tracing::Level;
    Ok(match value.to_ascii_lowercase().as_str() {
        "error" | "fatal" => Level::ERROR,
        "warn" | "warning" => Level::WARN,
        "info" => Level::INFO,
        "debug" => Level::DEBUG,
        "trace" => Level::TRACE,
        _ => {
            return Err(format!(
                "'{value}' is not one of error, warn, info, debug, trace"
            ))
        }
    })
}

/// DESTINATION_CA_BUNDLE: PEM text, or the path of a PEM file; holds one certificate
/// or more.
pub fn read_ca_bundle(value: &str) -> Result<String, String> {
    let pem = if value.contains("-----BEGIN") {
        value.to_string()
    } else {
        std::fs::read_to_string(value)
            .map_err(|e| format!("cannot read the PEM file '{value}': {e}"))?
    };
    let certificates = reqwest::Certificate::from_pem_bundle(pem.as_bytes())
        .map_err(|e| format!("not a PEM bundle of certificates: {e}"))?;
    if certificates.is_empty() {
        return Err("holds no certificate".to_string());
    }
    Ok(pem)
}

/// Parses a JSON object of header names to string values.
pub fn parse_headers(json: &str) -> Result<BTreeMap<String, String>, String> {
    let value: serde_json::Value = serde_json::from_str(json)
        .map_err(|_| "not a JSON object of header names to strings".to_string())?;
    let map = value
        .as_object()
        .ok_or_else(|| "not a JSON object".to_string())?;
    let mut headers = BTreeMap::new();
    for (k, v) in map {
        let v = v
            .as_str()
            .ok_or_else(|| format!("header '{k}' must have a string value"))?;
        if k.is_empty()
            || !k
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_!#$%&'*+.^`|~".contains(&b))
        {
            return Err(format!("'{k}' is not a valid header name"));
        }
        if v.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) {
            return Err(format!("header '{k}' has a line break in its value"));
        }
        headers.insert(k.clone(), v.to_string());
    }
    Ok(headers)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: BTreeMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn defaults() {
        let c = config(&[]).unwrap();
        assert_eq!(c.destination_url, None);
        assert_eq!(c.destination_format, DestinationFormat::Ndjson);
        assert!(c.gzip);
        assert_eq!(c.batch_max_bytes, 1024 * 1024);
        assert_eq!(c.batch_max_events, 10_000);
        assert_eq!(c.max_retries, 5);
        assert_eq!(c.records.schema, Schema::default_v2());
        assert!(!c.enrich_eni);
        assert_eq!(c.enrich_eni_ttl, Duration::from_secs(300));
        assert_eq!(
            config(&[("DESTINATION_FORMAT", "elasticsearch")])
                .unwrap()
                .destination_index
                .as_deref(),
            Some("logs-aws.vpcflow-default")
        );
    }

    #[test]
    fn errors_name_the_variable() {
        for (name, value) in [
            ("DESTINATION_URL", "ftp://x"),
            ("DESTINATION_FORMAT", "xml"),
            ("DESTINATION_HEADERS", "[1]"),
            ("COMPRESSION", "br"),
            ("BATCH_MAX_BYTES", "-1"),
            ("MAX_RETRIES", "many"),
            ("LOG_FORMAT", "${version"),
            ("INTERNAL_CIDRS", "10.0.0.0/99"),
            ("ACTIONS", "DROP"),
            ("INCLUDE_ORIGINAL", "maybe"),
            ("ENRICH_ENI", "maybe"),
            ("ENRICH_ENI_TTL_SECONDS", "0"),
            ("DESTINATION_URL", "https://host:99999/_bulk"),
            ("DESTINATION_URL", "https://ho st/"),
            ("DESTINATION_URL", "https://[::1/"),
            ("DEADLINE_MARGIN_MS", "soon"),
            ("LOG_LEVEL", "loud"),
            ("AWS_LAMBDA_LOG_LEVEL", "loud"),
            ("INCLUDE_ORIGINAL", "garbage"),
            ("ALLOW_PLAIN_HTTP", "garbage"),
            ("DESTINATION_CA_BUNDLE", "/nonexistent/ca.pem"),
            (
                "DESTINATION_CA_BUNDLE",
                "-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----",
            ),
            ("SECRET_TTL_SECONDS", "0"),
        ] {
            let e = config(&[(name, value)]).unwrap_err();
            assert_eq!(e.variable, name, "{e}");
        }
    }

    #[test]
    fn url_errors_never_show_secret_parts() {
        let e =
            config(&[("DESTINATION_URL", "https://user:pw-s3cr3t@ho st/tok-9f8e")]).unwrap_err();
        let shown = e.to_string();
        assert!(
            !shown.contains("s3cr3t") && !shown.contains("tok-9f8e"),
            "{e}"
        );
    }

    #[test]
    fn lambda_log_level_is_honoured_unless_log_level_is_set() {
        let c = config(&[("AWS_LAMBDA_LOG_LEVEL", "DEBUG")]).unwrap();
        assert_eq!(c.log_level, Some(tracing::Level::DEBUG));
        let c = config(&[("AWS_LAMBDA_LOG_LEVEL", "DEBUG"), ("LOG_LEVEL", "error")]).unwrap();
        assert_eq!(c.log_level, Some(tracing::Level::ERROR));
        assert_eq!(config(&[]).unwrap().log_level, None);
    }

    #[test]
    fn secrets_are_scrubbed_from_any_text() {
        let c = config(&[
            (
                "DESTINATION_URL",
                "https://elastic:pw-s3cr3t@es.example:9200/ingest/ZaVnC4dhaV2ZxLDQ==?api_key=k-12345678",
            ),
            (
                "DESTINATION_HEADERS",
                r#"{"Authorization":"Splunk tok-9f8e7d6c","X-Basic":"Basic dXNlcjpwYXNzd29yZDE="}"#,
            ),
        ])
        .unwrap();
        let secrets =
            crate::redact::Secrets::of(&c.destination_headers, c.destination_url.as_deref());
        let echo = "no handler found for uri [/ingest/ZaVnC4dhaV2ZxLDQ==?api_key=k-12345678] \
            Authorization: Splunk tok-9f8e7d6c; bad token tok-9f8e7d6c; user:password1 pw-s3cr3t";
        let scrubbed = secrets.scrub(echo);
        for secret in [
            "ZaVnC4dhaV2ZxLDQ",
            "k-12345678",
            "tok-9f8e7d6c",
            "password1",
            "s3cr3t",
        ] {
            assert!(!scrubbed.contains(secret), "{secret} in {scrubbed}");
        }
        assert!(scrubbed.contains("no handler found for uri"), "{scrubbed}");
        assert!(scrubbed.contains("Splunk <redacted>") || scrubbed.contains("<redacted>"));
    }

    #[test]
    fn sumo_variable_name_is_honoured() {
        let c = config(&[("VPC_CIDR_PREFIX", "10.0.")]).unwrap();
        assert_eq!(c.records.filter.internal.len(), 1);
    }

    #[test]
    fn urls_are_redacted() {
        assert_eq!(
            redact_url("https://user:pw@host:9200/_bulk?token=x"),
            "https://host:9200/<redacted>"
        );
        assert_eq!(
            redact_url("https://collectors.sumologic.com/receiver/v1/http/ZaVnC4dhaV2ZxLDQ=="),
            "https://collectors.sumologic.com/<redacted>"
        );
        assert_eq!(redact_url("http://h"), "http://h");
        let c = config(&[
            ("DESTINATION_URL", "https://u:pw-s3cr3t@h/"),
            (
                "DESTINATION_HEADERS",
                r#"{"Authorization":"Splunk tok-9f8e"}"#,
            ),
        ])
        .unwrap();
        let shown = format!("{c:?}");
        assert!(
            !shown.contains("s3cr3t") && !shown.contains("tok-9f8e"),
            "{shown}"
        );
    }
}
