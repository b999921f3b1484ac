//! Every environment variable the forwarder reads, once: its name, its group, what it
//! means, and its default (and, for numbers, its range). `--help` is written from this table; `Config::from_lookup`
//! reads only these names (a test holds it to that), and tests hold README's tables and
//! the template's environment (tests/template.rs) to it.

/// What a variable is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Group {
    /// What is read and how documents are written.
    Input,
    /// What is dropped, folded and trimmed (README, Reducing volume).
    Volume,
    /// What documents are enriched with.
    Enrichment,
    /// Where documents go and how requests are made.
    Destination,
    /// Batches, retries and time.
    Delivery,
    /// What hostile input cannot exceed.
    Limits,
    /// Logging.
    Logging,
}

impl Group {
    /// Its heading in `--help`.
    pub fn heading(self) -> &'static str {
        match self {
            Group::Input => "input: what is read and how documents are written",
            Group::Volume => {
                "volume: what is dropped, folded and trimmed (README, Reducing volume)"
            }
            Group::Enrichment => "enrichment: what documents are enriched with",
            Group::Destination => "destination: where documents go and how requests are made",
            Group::Delivery => "delivery: batches, retries and time",
            Group::Limits => "limits: what hostile input cannot exceed",
            Group::Logging => "logging",
        }
    }
}

/// One environment variable.
#[derive(Debug, Clone, Copy)]
pub struct Variable {
    pub name: &'static str,
    pub group: Group,
    pub meaning: &'static str,
    pub kind: Kind,
}

/// What a variable holds, and its value when it is not set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Text (a URL, a list, an expression, a choice), read where the configuration
    /// reads it; `default` says what unset means (empty: nothing).
    Text { default: &'static str },
    /// `true`/`1`/`yes` or `false`/`0`/`no`.
    Flag { default: bool },
    /// A whole number from `min` to `max`.
    Number { default: u64, min: u64, max: u64 },
}

impl Variable {
    /// The variable called `name`, if the table has it.
    pub fn named(name: &str) -> Option<&'static Variable> {
        VARIABLES.iter().find(|v| v.name == name)
    }

    /// Its default as `--help` shows it (empty: none to show).
    pub fn default_text(&self) -> String {
        match self.kind {
            Kind::Text { default } => default.to_string(),
            Kind::Flag { default } => default.to_string(),
            Kind::Number { default, .. } => default.to_string(),
        }
    }
}

/// Every variable, by group.
pub const VARIABLES: &[Variable] = &[
    Variable {
        name: "LOG_FORMAT",
        group: Group::Input,
        meaning: "format for inputs without a header line",
        kind: Kind::Text { default: "AWS v2 format" },
    },
    Variable {
        name: "OUTPUT_SCHEMA",
        group: Group::Input,
        meaning: "ecs | ocsf | raw: ECS documents, OCSF 1.1.0 Network Activity events (class 4001, activity Traffic) as Amazon Security Lake writes them, or each record's line in `message` for Elastic's AWS integration to parse (its formats in its field order)",
        kind: Kind::Text { default: "ecs" },
    },
    Variable {
        name: "INCLUDE_ORIGINAL",
        group: Group::Input,
        meaning: "true adds event.original (OCSF raw_data), the raw line",
        kind: Kind::Flag {
            default: false,
        },
    },
    Variable {
        name: "INTERNAL_CIDRS",
        group: Group::Volume,
        meaning: "comma list; records whose source AND destination are both inside are dropped (counted). 'a.b.c.d/n' and IPv6 CIDRs match by value; entries without '/' are text prefixes",
        kind: Kind::Text { default: "" },
    },
    Variable {
        name: "VPC_CIDR_PREFIX",
        group: Group::Volume,
        meaning: "read as INTERNAL_CIDRS when that is not set (Sumo Logic's name)",
        kind: Kind::Text { default: "" },
    },
    Variable {
        name: "ACTIONS",
        group: Group::Volume,
        meaning: "comma list of actions to keep: ACCEPT, REJECT (NODATA/SKIPDATA always kept)",
        kind: Kind::Text { default: "" },
    },
    Variable {
        name: "FILTER",
        group: Group::Volume,
        meaning: "keep only records this expression is true for (the rest counted filtered), e.g. action == \"REJECT\" || !(srcaddr in \"10.0.0.0/8\" && dstaddr in \"10.0.0.0/8\") (==, !=, <, <=, >, >=, in, &&, ||, !, parentheses; README: Reducing volume)",
        kind: Kind::Text { default: "" },
    },
    Variable {
        name: "LOG_STREAM_PREFIX",
        group: Group::Volume,
        meaning: "comma list: CloudWatch Logs events of other streams are skipped (counted filtered)",
        kind: Kind::Text { default: "" },
    },
    Variable {
        name: "THREAT_INTEL_ONLY",
        group: Group::Volume,
        meaning: "true forwards only matching records (the rest counted filtered)",
        kind: Kind::Flag {
            default: false,
        },
    },
    Variable {
        name: "PROFILE",
        group: Group::Volume,
        meaning: "security: drop NODATA/SKIPDATA, fold accepted internal traffic by conversation, other accepted traffic by connection, keep every REJECT and threat match alone; explicit settings win",
        kind: Kind::Text { default: "" },
    },
    Variable {
        name: "AGGREGATE",
        group: Group::Volume,
        meaning: "off | flows | connections | conversations: records of one flow in a unit become one document, counters summed; connections: with its replies (their counters as destination.*); conversations: also of every client port, the lower port being the service's",
        kind: Kind::Text { default: "off" },
    },
    Variable {
        name: "AGGREGATE_ACTIONS",
        group: Group::Volume,
        meaning: "comma list of actions whose records are folded",
        kind: Kind::Text { default: "ACCEPT" },
    },
    Variable {
        name: "AGGREGATE_WHERE",
        group: Group::Volume,
        meaning: "a FILTER expression: only records it is true for are folded",
        kind: Kind::Text { default: "all" },
    },
    Variable {
        name: "AGGREGATE_CONVERSATIONS_WHERE",
        group: Group::Volume,
        meaning: "conversations: only records it is true for fold the client port, the others fold as connections",
        kind: Kind::Text { default: "all" },
    },
    Variable {
        name: "FIELDS_EXCLUDE",
        group: Group::Volume,
        meaning: "comma list of dotted paths or prefixes (related.*) left out of every document (not @timestamp, event.id, nor OCSF time and metadata.uid)",
        kind: Kind::Text { default: "" },
    },
    Variable {
        name: "ENRICH_ENI",
        group: Group::Enrichment,
        meaning: "true adds the interface's security groups, VPC, subnet and instance, and network.direction (inbound/outbound/internal) when the record has no flow-direction, from ec2:DescribeNetworkInterfaces/DescribeVpcs; a failed lookup forwards records unenriched (counted)",
        kind: Kind::Flag {
            default: false,
        },
    },
    Variable {
        name: "ENRICH_ENI_TTL_SECONDS",
        group: Group::Enrichment,
        meaning: "how long EC2 answers are cached, not-found too",
        kind: Kind::Number {
            default: 300,
            min: 1,
            max: 86_400,
        },
    },
    Variable {
        name: "REJECT_ATTRIBUTION",
        group: Group::Enrichment,
        meaning: "false turns off aws.vpcflow.reject_attribution on REJECT documents: network_acl when an accepted mirror record (same interface, endpoints swapped, its window overlapping) is in the same unit, else security_group_or_network_acl; block_public_access for reject-reason BPA; no claim without an interface, for Transit Gateway records, log-status other than OK or another reject-reason",
        kind: Kind::Flag {
            default: true,
        },
    },
    Variable {
        name: "THREAT_INTEL_URI",
        group: Group::Enrichment,
        meaning: "IP/CIDR list (s3://bucket/key, or a path for process): one address or CIDR per line, optionally ',label'; '#' comments. Records with a listed srcaddr, dstaddr, pkt-srcaddr or pkt-dstaddr get threat.enrichments and tags threat_intel_match (OCSF: enrichments); counted as ThreatIntelMatches (threat_matches= in the summary). At most 64 MiB and 4,194,304 entries; a list with no valid entry is refused (exit 2)",
        kind: Kind::Text { default: "" },
    },
    Variable {
        name: "THREAT_INTEL_TTL_SECONDS",
        group: Group::Enrichment,
        meaning: "how long the list is used before it is read again (unchanged ETag: not downloaded again; failed reload: previous list kept)",
        kind: Kind::Number {
            default: 900,
            min: 1,
            max: 86_400,
        },
    },
    Variable {
        name: "THREAT_INTEL_TIMEOUT_SECONDS",
        group: Group::Enrichment,
        meaning: "longest one reading of the list may take",
        kind: Kind::Number {
            default: 10,
            min: 1,
            max: 900,
        },
    },
    Variable {
        name: "GEOIP_DATABASE",
        group: Group::Enrichment,
        meaning: "MaxMind DB City or Country database (s3://bucket/key or a path): source.geo, destination.geo (OCSF location) of public addresses; held in memory",
        kind: Kind::Text { default: "" },
    },
    Variable {
        name: "GEOIP_ASN_DATABASE",
        group: Group::Enrichment,
        meaning: "MaxMind DB ASN database: source.as, destination.as (OCSF enrichments)",
        kind: Kind::Text { default: "" },
    },
    Variable {
        name: "GEOIP_TTL_SECONDS",
        group: Group::Enrichment,
        meaning: "how long a database is used before it is read again",
        kind: Kind::Number {
            default: 3600,
            min: 1,
            max: 604_800,
        },
    },
    Variable {
        name: "GEOIP_TIMEOUT_SECONDS",
        group: Group::Enrichment,
        meaning: "longest one reading of a database may take",
        kind: Kind::Number {
            default: 10,
            min: 1,
            max: 900,
        },
    },
    Variable {
        name: "DESTINATION_URL",
        group: Group::Destination,
        meaning: "http(s) URL of the receiver; 'stdout' (or '-') is standard output, outside Lambda only",
        kind: Kind::Text { default: "standard output outside Lambda" },
    },
    Variable {
        name: "DESTINATION_FORMAT",
        group: Group::Destination,
        meaning: "ndjson | elasticsearch | splunk-hec | otlp",
        kind: Kind::Text { default: "ndjson" },
    },
    Variable {
        name: "DESTINATION_OTLP_ENCODING",
        group: Group::Destination,
        meaning: "protobuf | json: the body of otlp requests (OTLP/HTTP logs; a URL with no path gets /v1/logs)",
        kind: Kind::Text { default: "protobuf" },
    },
    Variable {
        name: "DESTINATION_HEADERS",
        group: Group::Destination,
        meaning: "JSON object of extra request headers (auth tokens; never logged; no Content-Length, Transfer-Encoding, Host, Connection, Content-Encoding)",
        kind: Kind::Text { default: "" },
    },
    Variable {
        name: "DESTINATION_SECRET_ARN",
        group: Group::Destination,
        meaning: "Secrets Manager secret or SSM SecureString parameter holding that JSON object (its keys DESTINATION_URL and DESTINATION_CA_BUNDLE, when present, set those instead of headers), or the destination URL itself. Read at cold start, again after SECRET_TTL_SECONDS, and on a 401/403 (once a minute)",
        kind: Kind::Text { default: "" },
    },
    Variable {
        name: "SECRET_TTL_SECONDS",
        group: Group::Destination,
        meaning: "how long the secret is used before it is read again",
        kind: Kind::Number {
            default: 300,
            min: 1,
            max: 86_400,
        },
    },
    Variable {
        name: "DESTINATION_CA_BUNDLE",
        group: Group::Destination,
        meaning: "PEM of extra CAs trusted for the destination (a private CA), on top of the public roots: the PEM text or a file path. Verification stays on.",
        kind: Kind::Text { default: "" },
    },
    Variable {
        name: "DESTINATION_AUTH",
        group: Group::Destination,
        meaning: "none | aws-sigv4: sign requests with the AWS SDK's default credentials (Amazon OpenSearch Service, OpenSearch Serverless)",
        kind: Kind::Text { default: "none" },
    },
    Variable {
        name: "DESTINATION_AWS_SERVICE",
        group: Group::Destination,
        meaning: "es | aoss: the service signed for",
        kind: Kind::Text { default: "es" },
    },
    Variable {
        name: "DESTINATION_AWS_REGION",
        group: Group::Destination,
        meaning: "the region signed for",
        kind: Kind::Text { default: "AWS_REGION" },
    },
    Variable {
        name: "DESTINATION_INDEX",
        group: Group::Destination,
        meaning: "Elasticsearch index or data stream (documents to a data stream carry its parts as data_stream.*), Splunk index",
        kind: Kind::Text { default: "logs-aws.vpcflow-default for elasticsearch" },
    },
    Variable {
        name: "DESTINATION_PIPELINE",
        group: Group::Destination,
        meaning: "`pipeline` of elasticsearch bulk requests; set and empty sends none",
        kind: Kind::Text { default: "_none; none with OUTPUT_SCHEMA=raw (the data stream's own pipeline runs)" },
    },
    Variable {
        name: "SPLUNK_SOURCETYPE",
        group: Group::Destination,
        meaning: "sourcetype of splunk-hec events",
        kind: Kind::Text { default: "per OUTPUT_SCHEMA: ecs _json, ocsf ocsf:aws:cloudwatchlogs:vpcflow, raw aws:cloudwatchlogs:vpcflow" },
    },
    Variable {
        name: "SPLUNK_SOURCE",
        group: Group::Destination,
        meaning: "source of splunk-hec events",
        kind: Kind::Text { default: "HEC's" },
    },
    Variable {
        name: "SPLUNK_HOST",
        group: Group::Destination,
        meaning: "host of splunk-hec events",
        kind: Kind::Text { default: "HEC's" },
    },
    Variable {
        name: "SPLUNK_HEC_ACK",
        group: Group::Destination,
        meaning: "true: a splunk-hec batch is delivered once Splunk acknowledges it (indexer acknowledgement; a channel is sent)",
        kind: Kind::Flag {
            default: false,
        },
    },
    Variable {
        name: "SPLUNK_HEC_ACK_TIMEOUT_SECONDS",
        group: Group::Destination,
        meaning: "longest wait for an acknowledgement",
        kind: Kind::Number {
            default: 120,
            min: 1,
            max: 900,
        },
    },
    Variable {
        name: "COMPRESSION",
        group: Group::Delivery,
        meaning: "gzip | none, for request bodies",
        kind: Kind::Text { default: "gzip" },
    },
    Variable {
        name: "BATCH_MAX_BYTES",
        group: Group::Delivery,
        meaning: "uncompressed bytes per request",
        kind: Kind::Number {
            default: 1024 * 1024,
            min: 1024,
            max: 256 * 1024 * 1024,
        },
    },
    Variable {
        name: "BATCH_MAX_EVENTS",
        group: Group::Delivery,
        meaning: "documents per request",
        kind: Kind::Number {
            default: 10_000,
            min: 1,
            max: 10_000_000,
        },
    },
    Variable {
        name: "MAX_RETRIES",
        group: Group::Delivery,
        meaning: "retries of one request (408, 429, 5xx, timeouts)",
        kind: Kind::Number {
            default: 5,
            min: 0,
            max: 100,
        },
    },
    Variable {
        name: "REQUEST_TIMEOUT_MS",
        group: Group::Delivery,
        meaning: "timeout of one request",
        kind: Kind::Number {
            default: 30_000,
            min: 10,
            max: 900_000,
        },
    },
    Variable {
        name: "RETRY_BASE_DELAY_MS",
        group: Group::Delivery,
        meaning: "backoff base: retry n waits up to base*2^(n-1)",
        kind: Kind::Number {
            default: 200,
            min: 1,
            max: 60_000,
        },
    },
    Variable {
        name: "RETRY_MAX_DELAY_MS",
        group: Group::Delivery,
        meaning: "backoff cap, Retry-After included",
        kind: Kind::Number {
            default: 20_000,
            min: 1,
            max: 600_000,
        },
    },
    Variable {
        name: "MAX_IN_FLIGHT",
        group: Group::Delivery,
        meaning: "requests in flight at once",
        kind: Kind::Number {
            default: 4,
            min: 1,
            max: 64,
        },
    },
    Variable {
        name: "ALLOW_PLAIN_HTTP",
        group: Group::Delivery,
        meaning: "true allows http:// to a non-loopback host",
        kind: Kind::Flag {
            default: false,
        },
    },
    Variable {
        name: "DEADLINE_MARGIN_MS",
        group: Group::Delivery,
        meaning: "Lambda: stop reading a unit (reported failed, retried) when this little time remains before the invocation deadline",
        kind: Kind::Number {
            default: 3000,
            min: 0,
            max: 600_000,
        },
    },
    Variable {
        name: "MAX_LINE_BYTES",
        group: Group::Limits,
        meaning: "longest accepted line",
        kind: Kind::Number {
            default: crate::source::DEFAULT_MAX_LINE_BYTES,
            min: 64,
            max: 64 * 1024 * 1024,
        },
    },
    Variable {
        name: "MAX_OBJECT_BYTES",
        group: Group::Limits,
        meaning: "most bytes one input may decompress to",
        kind: Kind::Number {
            default: crate::source::DEFAULT_MAX_OBJECT_BYTES,
            min: 1024,
            max: u64::MAX / 2,
        },
    },
    Variable {
        name: "MAX_DECOMPRESSION_RATIO",
        group: Group::Limits,
        meaning: "most decompressed bytes per compressed byte",
        kind: Kind::Number {
            default: crate::source::DEFAULT_MAX_RATIO,
            min: 2,
            max: 100_000,
        },
    },
    Variable {
        name: "LOG_LEVEL",
        group: Group::Logging,
        meaning: "error | warn | info | debug | trace; else Lambda's AWS_LAMBDA_LOG_LEVEL",
        kind: Kind::Text { default: "info in Lambda, warn on the command line" },
    },
];

/// The variables by group, as `--help` lists them: the name, then the meaning wrapped at
/// `width` columns and the default.
pub fn help_text(width: usize) -> String {
    const INDENT: usize = 4;
    const MEANING_AT: usize = 27;
    let mut out = String::new();
    let mut group = None;
    for v in VARIABLES {
        if group != Some(v.group) {
            group = Some(v.group);
            out.push_str(&format!("\n  {}\n", v.group.heading()));
        }
        let mut text = v.meaning.to_string();
        let default = v.default_text();
        if !default.is_empty() {
            text.push_str(&format!(" (default {default})"));
        }
        let mut line = format!("{:INDENT$}{}", "", v.name);
        let mut column = MEANING_AT;
        if line.len() + 1 > MEANING_AT {
            // A long name: its meaning starts on the next line.
            out.push_str(&line);
            out.push('\n');
            line = String::new();
        }
        for word in text.split(' ') {
            if line.len() < column {
                line.push_str(&" ".repeat(column - line.len()));
            } else if line.len() + 1 + word.len() > width {
                out.push_str(&line);
                out.push('\n');
                line = " ".repeat(MEANING_AT);
            } else {
                line.push(' ');
            }
            line.push_str(word);
            column = 0;
        }
        out.push_str(&line);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::collections::BTreeSet;

    use super::VARIABLES;
    use crate::config::Config;

    /// Variables AWS sets, which the forwarder reads too.
    const AWS_SET: &[&str] = &["AWS_LAMBDA_LOG_LEVEL"];

    fn names() -> BTreeSet<&'static str> {
        VARIABLES.iter().map(|v| v.name).collect()
    }

    /// `Config::from_lookup` asks for no variable outside the table, and for every
    /// variable of it (some only when another makes them matter).
    #[test]
    fn the_configuration_reads_the_table_and_nothing_else() {
        let asked = RefCell::new(BTreeSet::new());
        let environments: &[&[(&str, &str)]] = &[
            &[],
            &[
                ("DESTINATION_URL", "https://splunk.example:8088"),
                ("DESTINATION_FORMAT", "splunk-hec"),
                ("SPLUNK_HEC_ACK", "true"),
            ],
            &[("DESTINATION_AUTH", "aws-sigv4")],
        ];
        for env in environments {
            let config = Config::from_lookup(|name| {
                asked.borrow_mut().insert(name.to_string());
                env.iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, v)| v.to_string())
            });
            assert!(config.is_ok(), "{env:?}: {config:?}");
        }
        let asked = asked.into_inner();
        let table = names();
        for name in &asked {
            assert!(
                table.contains(name.as_str()) || AWS_SET.contains(&name.as_str()),
                "{name} is read but not in config::variables"
            );
        }
        for name in table {
            assert!(
                asked.contains(name),
                "{name} is in the table but never read"
            );
        }
    }

    /// Each number's default is in its range; each name is there once.
    #[test]
    fn defaults_are_in_range_and_names_unique() {
        for v in VARIABLES {
            if let super::Kind::Number { default, min, max } = v.kind {
                assert!((min..=max).contains(&default), "{}", v.name);
            }
        }
        assert_eq!(names().len(), VARIABLES.len());
    }

    /// README's table of variables names every variable.
    #[test]
    fn readme_lists_every_variable() {
        let readme = include_str!("../../README.md");
        let rows: Vec<&str> = readme.lines().filter(|l| l.starts_with("| `")).collect();
        for name in names() {
            let named = format!("`{name}`");
            assert!(
                rows.iter().any(|row| row.contains(&named)),
                "README's tables do not name {name}"
            );
        }
    }

    /// `--help` lists every variable.
    #[test]
    fn help_lists_every_variable() {
        let help = crate::cli::help();
        for name in names() {
            assert!(
                help.contains(&format!("    {name} ")) || help.contains(&format!("    {name}\n")),
                "--help does not list {name}"
            );
        }
    }
}
