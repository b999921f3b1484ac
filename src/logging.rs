//! Structured logs with `tracing`: JSON lines inside Lambda (always, so CloudWatch
//! Logs Insights can query them), compact text on the command line. Log level from
//! LOG_LEVEL (error, warn, info, debug; default info in Lambda, warn on the CLI).
//! Nothing logged carries a secret: URLs are redacted and headers never logged.

use tracing::Level;

fn level(default: Level) -> Level {
    match std::env::var("LOG_LEVEL")
        .unwrap_or_default()
        .to_ascii_lowercase()
        .as_str()
    {
        "error" => Level::ERROR,
        "warn" => Level::WARN,
        "info" => Level::INFO,
        "debug" | "trace" => Level::DEBUG,
        _ => default,
    }
}

/// Text logs to standard error for the command line.
pub fn init_cli() {
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(level(Level::WARN))
        .with_target(false)
        .try_init();
}

/// JSON logs to standard output for Lambda (CloudWatch Logs).
pub fn init_lambda() {
    let _ = tracing_subscriber::fmt()
        .json()
        .with_max_level(level(Level::INFO))
        .with_current_span(false)
        .with_target(false)
        .without_time()
        .try_init();
}
