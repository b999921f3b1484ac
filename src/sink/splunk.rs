//! Splunk HTTP Event Collector: each document as the `event` of a HEC event with its
//! `time` and the configured index, sourcetype, source and host
//! (`Config::hec_members`); an answer's `code` other than 0 refuses the batch; with
//! indexer acknowledgement (SPLUNK_HEC_ACK), every request names a channel and a batch
//! counts as delivered only once its `ackId` is acknowledged.

use std::time::{Duration, Instant};

use reqwest::header::{HeaderName, HeaderValue};

use super::answer::{read_capped, Answer, Exchange};
use super::Batch;
use crate::config::{Config, ConfigError};
use crate::text::shorten;

/// Most bytes of a Splunk HEC answer read (`{"text":"Success","code":0}`).
const HEC_BODY_BYTES: usize = 64 * 1024;

/// The HEC framing of a destination.
pub(super) struct Hec {
    /// What every event carries besides its time and document.
    members: String,
    /// Indexer acknowledgement (SPLUNK_HEC_ACK).
    ack: Option<HecAck>,
}

/// Splunk HEC indexer acknowledgement: the channel every request names, and where its
/// acknowledgements are asked for.
struct HecAck {
    /// A random UUID, one per settings (so per process, and per secret reading).
    channel: String,
    /// `/services/collector/ack` on the destination's host.
    url: reqwest::Url,
    /// How long a batch's acknowledgement is waited for (SPLUNK_HEC_ACK_TIMEOUT_SECONDS).
    timeout: Duration,
}

impl Hec {
    pub(super) fn new(config: &Config, url: &reqwest::Url) -> Hec {
        Hec {
            members: config.hec_members(),
            ack: config
                .splunk_hec_ack
                .map(|timeout| HecAck::new(url, timeout)),
        }
    }

    /// Bytes the HEC envelope adds to a document.
    pub(super) fn overhead(config: &Config) -> usize {
        40 + config.hec_members().len()
    }

    /// The header naming the request's channel, with acknowledgement.
    pub(super) fn channel_header(&self) -> Result<Option<(HeaderName, HeaderValue)>, ConfigError> {
        let Some(ack) = &self.ack else {
            return Ok(None);
        };
        let channel = HeaderValue::from_str(&ack.channel)
            .map_err(|e| ConfigError::new("SPLUNK_HEC_ACK", e.to_string()))?;
        Ok(Some((
            HeaderName::from_static("x-splunk-request-channel"),
            channel,
        )))
    }

    /// The body of a request for the documents `which` of `batch`.
    pub(super) fn frame(&self, batch: &Batch, which: &[usize]) -> Vec<u8> {
        let mut body = Vec::with_capacity(batch.framed_bytes() + 64);
        for &i in which {
            body.extend_from_slice(b"{\"time\":");
            crate::json::write_u64(&mut body, batch.time(i));
            body.extend_from_slice(self.members.as_bytes());
            body.extend_from_slice(b",\"event\":");
            body.extend_from_slice(batch.doc(i));
            body.extend_from_slice(b"}\n");
        }
        body
    }

    /// Reads a 2xx answer: a `code` other than 0 refuses the batch; with
    /// acknowledgement, the batch is delivered once its `ackId` is acknowledged.
    pub(super) async fn read_answer(
        &self,
        x: &Exchange<'_>,
        resp: &mut reqwest::Response,
    ) -> Result<Answer, reqwest::Error> {
        let s = x.settings;
        let (body, _) = read_capped(resp, HEC_BODY_BYTES).await?;
        if let Some(why) = hec_refusal(&body) {
            return Ok(Answer::Failed(format!(
                "Splunk HEC at {} refused the batch: {}",
                s.shown_url,
                shorten(&s.secrets.scrub(&why))
            )));
        }
        let Some(ack) = &self.ack else {
            return Ok(Answer::Delivered);
        };
        let Some(id) = hec_ack_id(&body) else {
            return Ok(Answer::Failed(format!(
                "Splunk HEC at {} answered without an ackId: is indexer acknowledgement enabled on the token? (SPLUNK_HEC_ACK)",
                s.shown_url
            )));
        };
        Ok(match ack.wait(x, id).await {
            Ok(()) => Answer::Delivered,
            Err(why) => Answer::Failed(why),
        })
    }
}

impl HecAck {
    fn new(url: &reqwest::Url, timeout: Duration) -> HecAck {
        let r = fastrand::u128(..);
        // A version 4 UUID: its version and variant bits set.
        let r = (r & !(0xf << 76) | (0x4 << 76)) & !(0x3 << 62) | (0x2 << 62);
        let hex = format!("{r:032x}");
        let channel = format!(
            "{}-{}-{}-{}-{}",
            &hex[..8],
            &hex[8..12],
            &hex[12..16],
            &hex[16..20],
            &hex[20..]
        );
        let mut ack_url = url.clone();
        let base = url
            .path()
            .find("/services/collector")
            .map_or("", |at| &url.path()[..at]);
        ack_url.set_path(&format!("{base}/services/collector/ack"));
        ack_url.set_query(None);
        ack_url.query_pairs_mut().append_pair("channel", &channel);
        HecAck {
            channel,
            url: ack_url,
            timeout,
        }
    }

    /// Waits for Splunk to acknowledge `id`: polled at growing intervals, until
    /// SPLUNK_HEC_ACK_TIMEOUT_SECONDS or the deadline. Not acknowledged, the batch is
    /// not delivered (its unit is retried: Splunk may then hold those events twice, as
    /// its own Firehose integration may).
    async fn wait(&self, x: &Exchange<'_>, id: u64) -> Result<(), String> {
        let s = x.settings;
        let mut give_up = Instant::now() + self.timeout;
        if let Some(deadline) = x.deadline {
            give_up = give_up.min(deadline);
        }
        let mut headers = s.headers.clone();
        headers.remove(reqwest::header::CONTENT_ENCODING);
        let mut wait = Duration::from_millis(100);
        let mut last = String::from("no answer yet");
        loop {
            if Instant::now() + wait >= give_up {
                return Err(format!(
                    "Splunk HEC did not acknowledge ackId {id} in time (SPLUNK_HEC_ACK): not delivered; last: {last}"
                ));
            }
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(Duration::from_secs(2));
            let timeout = give_up
                .saturating_duration_since(Instant::now())
                .min(s.retry.request_timeout);
            let answer = x
                .client
                .post(self.url.clone())
                .headers(headers.clone())
                .timeout(timeout)
                .body(format!("{{\"acks\":[{id}]}}"))
                .send()
                .await;
            match answer {
                Ok(mut resp) => {
                    let status = resp.status();
                    let body = read_capped(&mut resp, HEC_BODY_BYTES)
                        .await
                        .map(|(b, _)| b)
                        .unwrap_or_default();
                    if status.is_success() && hec_acknowledged(&body, id) {
                        return Ok(());
                    }
                    let text = s.secrets.scrub(String::from_utf8_lossy(&body).trim());
                    last = format!("HTTP {}: {}", status.as_u16(), shorten(&text));
                    if status.is_client_error() && status.as_u16() != 429 {
                        return Err(format!(
                            "Splunk HEC refused the acknowledgement request for ackId {id}: {last}"
                        ));
                    }
                }
                Err(e) => last = e.without_url().to_string(),
            }
        }
    }
}

/// The `ackId` of a Splunk HEC answer (`{"text":"Success","code":0,"ackId":7}`).
fn hec_ack_id(body: &[u8]) -> Option<u64> {
    #[derive(serde::Deserialize)]
    struct Answer {
        #[serde(rename = "ackId")]
        ack_id: Option<u64>,
    }
    serde_json::from_slice::<Answer>(body).ok()?.ack_id
}

/// Whether a Splunk ack answer (`{"acks":{"7":true}}`) acknowledges `id`.
fn hec_acknowledged(body: &[u8], id: u64) -> bool {
    #[derive(serde::Deserialize)]
    struct Answer {
        acks: std::collections::HashMap<String, bool>,
    }
    serde_json::from_slice::<Answer>(body)
        .ok()
        .and_then(|a| a.acks.get(&id.to_string()).copied())
        .unwrap_or(false)
}

/// A Splunk HEC answer's refusal: a `code` other than 0 (`{"text":"Invalid data
/// format","code":6}`), with its text.
fn hec_refusal(body: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Answer {
        code: Option<i64>,
        text: Option<String>,
    }
    let answer: Answer = serde_json::from_slice(body).ok()?;
    match answer.code {
        Some(code) if code != 0 => Some(format!(
            "code {code}: {}",
            answer.text.as_deref().unwrap_or("")
        )),
        _ => None,
    }
}
