//! The destination secret (DESTINATION_SECRET_ARN): read from Secrets Manager or SSM
//! Parameter Store, and applied to the configuration. Its value is a JSON object of
//! request headers (auth tokens), where the keys DESTINATION_URL and
//! DESTINATION_CA_BUNDLE set those instead, or the destination URL itself (Sumo Logic
//! HTTP source URLs embed their token). Errors never include the secret's content.
//! `Rotation` decides when it is read again: after SECRET_TTL_SECONDS, and when the
//! receiver refuses the credentials (the sink installs what it gives).

use std::time::{Duration, Instant};

use crate::config::{check_url, parse_headers, read_ca_bundle, Config};

/// Where the secret is read from.
#[derive(Clone)]
pub struct DestinationSecret {
    arn: String,
    store: Store,
}

#[derive(Clone)]
enum Store {
    SecretsManager(aws_sdk_secretsmanager::Client),
    Parameter(aws_sdk_ssm::Client),
}

impl DestinationSecret {
    /// The secret or parameter `arn` (`arn:...:ssm:...:parameter/...` is a parameter).
    pub fn new(aws: &aws_config::SdkConfig, arn: &str) -> DestinationSecret {
        let store = if arn.split(':').nth(2) == Some("ssm") {
            Store::Parameter(aws_sdk_ssm::Client::new(aws))
        } else {
            Store::SecretsManager(aws_sdk_secretsmanager::Client::new(aws))
        };
        DestinationSecret {
            arn: arn.to_string(),
            store,
        }
    }

    /// Reads the secret's current value.
    pub async fn read(&self) -> Result<String, String> {
        let fail = |code: Option<&str>| {
            format!(
                "DESTINATION_SECRET_ARN: cannot read the secret: {}",
                code.unwrap_or("error")
            )
        };
        match &self.store {
            Store::Parameter(client) => {
                use aws_sdk_ssm::error::ProvideErrorMetadata;
                let out = client
                    .get_parameter()
                    .name(&self.arn)
                    .with_decryption(true)
                    .send()
                    .await
                    .map_err(|e| fail(e.code()))?;
                out.parameter()
                    .and_then(|p| p.value())
                    .map(str::to_string)
                    .ok_or_else(|| "DESTINATION_SECRET_ARN: the parameter has no value".to_string())
            }
            Store::SecretsManager(client) => {
                use aws_sdk_secretsmanager::error::ProvideErrorMetadata;
                let out = client
                    .get_secret_value()
                    .secret_id(&self.arn)
                    .send()
                    .await
                    .map_err(|e| fail(e.code()))?;
                out.secret_string().map(str::to_string).ok_or_else(|| {
                    "DESTINATION_SECRET_ARN: the secret has no SecretString".to_string()
                })
            }
        }
    }
}

/// Reading the destination secret again: after SECRET_TTL_SECONDS, and when the
/// receiver refuses the credentials (401/403), at most once a minute for refusals.
pub struct Rotation {
    secret: DestinationSecret,
    /// The configuration before the secret was applied.
    base: Config,
    state: tokio::sync::Mutex<RotationState>,
}

struct RotationState {
    read_at: Instant,
    reread_on_refusal_at: Option<Instant>,
}

/// Least time between two readings of the secret caused by refusals.
const REREAD_ON_REFUSAL_EVERY: Duration = Duration::from_secs(60);

impl Rotation {
    /// `secret`, just read and applied over `base`.
    pub fn new(secret: DestinationSecret, base: Config) -> Rotation {
        Rotation {
            secret,
            base,
            state: tokio::sync::Mutex::new(RotationState {
                read_at: Instant::now(),
                reread_on_refusal_at: None,
            }),
        }
    }

    /// Reads the secret again when it was read SECRET_TTL_SECONDS ago or more, and hands
    /// the configuration it gives to `install`. A failed reading keeps the current one.
    pub async fn refresh_if_stale(&self, install: impl FnOnce(&Config) -> Result<bool, String>) {
        let mut state = self.state.lock().await;
        if state.read_at.elapsed() < self.base.secret_ttl {
            return;
        }
        state.read_at = Instant::now();
        if let Err(e) = self.read_into(install).await {
            tracing::warn!(error = %e, "destination secret not read again; the current one is kept");
        }
    }

    /// After a refusal: whether to retry, because other settings are in use already
    /// (`changed_since`: another request read the secret since) or the secret, read
    /// again now (at most once a minute), gives other settings (`install` says whether
    /// they differ).
    pub async fn reread_after_refusal(
        &self,
        changed_since: impl Fn() -> bool,
        install: impl FnOnce(&Config) -> Result<bool, String>,
    ) -> bool {
        let mut state = self.state.lock().await;
        if changed_since() {
            return true;
        }
        if state
            .reread_on_refusal_at
            .is_some_and(|at| at.elapsed() < REREAD_ON_REFUSAL_EVERY)
        {
            return false;
        }
        state.reread_on_refusal_at = Some(Instant::now());
        state.read_at = Instant::now();
        match self.read_into(install).await {
            Ok(changed) => changed,
            Err(e) => {
                tracing::warn!(error = %e, "destination secret not read again after a refusal");
                false
            }
        }
    }

    /// Reads the secret, applies it over the base configuration and installs it.
    async fn read_into(
        &self,
        install: impl FnOnce(&Config) -> Result<bool, String>,
    ) -> Result<bool, String> {
        let value = self.secret.read().await?;
        install(&apply_secret(&self.base, &value)?)
    }
}

/// `config` with the secret's `value` applied: its headers added (over those of
/// DESTINATION_HEADERS), its URL and CA bundle set.
pub fn apply_secret(config: &Config, value: &str) -> Result<Config, String> {
    let mut config = config.clone();
    let value = value.trim();
    if value.starts_with('{') {
        let mut headers = parse_headers(value).map_err(|_| {
            "DESTINATION_SECRET_ARN: the secret is not a JSON object of header names to strings"
                .to_string()
        })?;
        if let Some(url) = headers.remove("DESTINATION_URL") {
            let url = check_url(&url)
                .map_err(|e| format!("DESTINATION_SECRET_ARN: its DESTINATION_URL: {e}"))?;
            config.destination_url = Some(url);
        }
        if let Some(pem) = headers.remove("DESTINATION_CA_BUNDLE") {
            let pem = read_ca_bundle(&pem)
                .map_err(|e| format!("DESTINATION_SECRET_ARN: its DESTINATION_CA_BUNDLE: {e}"))?;
            config.destination_ca_bundle = Some(pem);
        }
        config.destination_headers.extend(headers);
        return Ok(config);
    }
    if value.starts_with("https://") || value.starts_with("http://") {
        let url = check_url(value).map_err(|e| format!("DESTINATION_SECRET_ARN: {e}"))?;
        config.destination_url = Some(url);
        return Ok(config);
    }
    Err(
        "DESTINATION_SECRET_ARN: the secret is neither a JSON object of headers nor an http(s) URL"
            .to_string(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_url_and_ca_from_the_secret() {
        let base = Config::from_lookup(|k| {
            (k == "DESTINATION_HEADERS").then(|| r#"{"X-Env":"1","Authorization":"old"}"#.into())
        })
        .unwrap();
        let c = apply_secret(
            &base,
            r#"{"Authorization":"Bearer new","DESTINATION_URL":"https://es.internal:9200/_bulk"}"#,
        )
        .unwrap();
        assert_eq!(c.destination_headers["Authorization"], "Bearer new");
        assert_eq!(c.destination_headers["X-Env"], "1");
        assert!(!c.destination_headers.contains_key("DESTINATION_URL"));
        assert_eq!(
            c.destination_url.as_deref(),
            Some("https://es.internal:9200/_bulk")
        );
        let c = apply_secret(&base, " https://collectors.example/receiver/v1/http/TOKEN ").unwrap();
        assert!(c.destination_url.unwrap().ends_with("/TOKEN"));
        for bad in [
            "plain words",
            r#"{"a":1}"#,
            r#"{"DESTINATION_URL":"https://h:99999/"}"#,
            r#"{"DESTINATION_CA_BUNDLE":"no PEM here"}"#,
        ] {
            let e = apply_secret(&base, bad).unwrap_err();
            assert!(e.starts_with("DESTINATION_SECRET_ARN"), "{e}");
        }
    }
}
