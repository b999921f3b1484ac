//! Structured logs with `tracing`: JSON lines inside Lambda (always, so CloudWatch
//! Logs Insights can query them), compact text on the command line. Log level from
//! the configuration (LOG_LEVEL, else Lambda's AWS_LAMBDA_LOG_LEVEL; default info in
//! Lambda, warn on the CLI).
//! Nothing logged carries a secret: URLs are redacted and headers never logged.

use tracing::Level;

/// Text logs to standard error for the command line.
pub fn init_cli(level: Option<Level>) {
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(level.unwrap_or(Level::WARN))
        .with_target(false)
        .try_init();
}

/// JSON logs to standard output for Lambda (CloudWatch Logs), each with its `level`
/// and an RFC 3339 `timestamp`: Lambda's log-level filtering reads a line without
/// either as INFO, and would drop a warning or an error with the INFO lines.
pub fn init_lambda(level: Option<Level>) {
    let _ = tracing_subscriber::fmt()
        .json()
        .with_max_level(level.unwrap_or(Level::INFO))
        .with_current_span(false)
        .with_target(false)
        .try_init();
}
