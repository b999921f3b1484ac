//! A destination's protocol (DESTINATION_FORMAT): which module frames a batch and reads
//! the answer to it. The HTTP loop (`http`) sees only this.

use reqwest::header::{HeaderName, HeaderValue};

use super::answer::{Answer, Exchange};
use super::elasticsearch::Bulk;
use super::otlp::Otlp;
use super::splunk::Hec;
use super::{ndjson, Batch};
use crate::config::{Config, ConfigError, DestinationFormat};

pub(super) enum Protocol {
    Ndjson,
    Elasticsearch(Bulk),
    SplunkHec(Hec),
    Otlp(Otlp),
}

impl Protocol {
    /// The protocol `config` names, for requests to `url` (which it may complete: the
    /// bulk `pipeline` parameter, OTLP's `/v1/logs` path).
    pub(super) fn new(config: &Config, url: &mut reqwest::Url) -> Protocol {
        match config.destination_format {
            DestinationFormat::Ndjson => Protocol::Ndjson,
            DestinationFormat::Elasticsearch => Protocol::Elasticsearch(Bulk::new(config, url)),
            DestinationFormat::SplunkHec => Protocol::SplunkHec(Hec::new(config, url)),
            DestinationFormat::Otlp => Protocol::Otlp(Otlp::new(config, url)),
        }
    }

    /// About the bytes framing adds to each document (for BATCH_MAX_BYTES).
    pub(super) fn overhead(config: &Config) -> usize {
        match config.destination_format {
            DestinationFormat::Ndjson => 1,
            DestinationFormat::Elasticsearch => Bulk::overhead(config),
            DestinationFormat::SplunkHec => Hec::overhead(config),
            DestinationFormat::Otlp => Otlp::overhead(),
        }
    }

    pub(super) fn content_type(&self) -> &'static str {
        match self {
            Protocol::Ndjson | Protocol::Elasticsearch(_) => "application/x-ndjson",
            Protocol::SplunkHec(_) => "application/json",
            Protocol::Otlp(otlp) => otlp.content_type(),
        }
    }

    /// A header every request carries (Splunk's acknowledgement channel).
    pub(super) fn header(&self) -> Result<Option<(HeaderName, HeaderValue)>, ConfigError> {
        match self {
            Protocol::SplunkHec(hec) => hec.channel_header(),
            _ => Ok(None),
        }
    }

    /// The body of a request for the documents `which` of `batch`.
    pub(super) fn frame(&self, batch: &Batch, which: &[usize]) -> Vec<u8> {
        match self {
            Protocol::Ndjson => ndjson::frame(batch, which),
            Protocol::Elasticsearch(bulk) => bulk.frame(batch, which),
            Protocol::SplunkHec(hec) => hec.frame(batch, which),
            Protocol::Otlp(otlp) => otlp.frame(batch, which),
        }
    }

    /// What a 2xx answer says of the documents sent, read no further than the
    /// protocol needs.
    pub(super) async fn read_answer(
        &self,
        x: &Exchange<'_>,
        resp: &mut reqwest::Response,
    ) -> Result<Answer, reqwest::Error> {
        match self {
            Protocol::Ndjson => ndjson::read_answer(resp).await,
            Protocol::Elasticsearch(_) => Bulk::read_answer(x, resp).await,
            Protocol::SplunkHec(hec) => hec.read_answer(x, resp).await,
            Protocol::Otlp(otlp) => otlp.read_answer(x, resp).await,
        }
    }
}
