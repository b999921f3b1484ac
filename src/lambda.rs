//! The Lambda side of the binary: the cold start (configuration validated once, the
//! handler built), the runtime loop that hands each invocation to the handler with its
//! deadline, and how that deadline is read.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::config::Config;
use crate::handler::Handler;

/// Inside Lambda: validate the configuration once (a bad one fails the cold start with
/// a message naming the variable), then run the runtime loop.
pub fn run() -> ExitCode {
    let config = match Config::from_env() {
        Ok(c) if c.destination_url.is_some() || c.destination_secret_arn.is_some() => {
            crate::logging::init_lambda(c.log_level);
            c
        }
        Ok(c) => {
            crate::logging::init_lambda(c.log_level);
            tracing::error!("DESTINATION_URL: required in Lambda (an http(s) URL)");
            return ExitCode::from(2);
        }
        Err(e) => {
            crate::logging::init_lambda(None);
            tracing::error!(error = %e, "invalid configuration");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, "cannot start the async runtime");
            return ExitCode::from(1);
        }
    };
    runtime.block_on(async move {
        let handler = match Handler::new(config, None).await {
            Ok(h) if h.delivers_to_stdout() => {
                tracing::error!(
                    "DESTINATION_URL: required in Lambda (an http(s) URL, or in the secret)"
                );
                return ExitCode::from(2);
            }
            Ok(h) => h,
            Err(e) => {
                tracing::error!(error = %e, "cold start failed");
                return ExitCode::from(2);
            }
        };
        handler.warm_up().await;
        match serve(handler).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                tracing::error!(error = %e, "runtime loop ended");
                ExitCode::from(1)
            }
        }
    })
}

/// Runs the Lambda runtime loop with `handler`.
async fn serve(handler: Handler) -> Result<(), lambda_runtime::Error> {
    let handler = Arc::new(handler);
    lambda_runtime::run(lambda_runtime::service_fn(
        move |event: lambda_runtime::LambdaEvent<Value>| {
            let handler = handler.clone();
            async move {
                let deadline =
                    deadline_instant(event.context.deadline, crate::timestamp::unix_now_ms());
                tracing::debug!(
                    deadline_ms = event.context.deadline,
                    remaining_ms = deadline
                        .saturating_duration_since(Instant::now())
                        .as_millis() as u64,
                    "invocation received"
                );
                let (response, summary) = handler.handle(&event.payload, Some(deadline)).await;
                println!("{summary}");
                response
            }
        },
    ))
    .await
}

/// Longest a Lambda invocation may run.
const MAX_INVOCATION: Duration = Duration::from_secs(900);

/// The invocation deadline (Lambda-Runtime-Deadline-Ms, milliseconds since the epoch)
/// as an `Instant`, `now_ms` being the time now. A value that is no plausible deadline
/// (already past, or further than the longest invocation) is treated as unknown, with
/// a warning: taken as a duration when it is at most 15 minutes (cargo-lambda's
/// emulator sends its timeout, `600000`), else as 15 minutes.
fn deadline_instant(deadline_ms: u64, now_ms: u64) -> Instant {
    let max_ms = MAX_INVOCATION.as_millis() as u64;
    let plausible = deadline_ms > now_ms && deadline_ms - now_ms <= max_ms + 60_000;
    if plausible {
        return Instant::now() + Duration::from_millis(deadline_ms - now_ms);
    }
    let budget = if deadline_ms > 0 && deadline_ms <= max_ms {
        Duration::from_millis(deadline_ms)
    } else {
        MAX_INVOCATION
    };
    tracing::warn!(
        deadline_ms,
        budget_ms = budget.as_millis() as u64,
        "Lambda-Runtime-Deadline-Ms is not a plausible deadline (a local emulator?): using a budget from now"
    );
    Instant::now() + budget
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn implausible_deadlines_are_treated_as_unknown() {
        let now = 1_800_000_000_000;
        let left = |deadline_ms| {
            deadline_instant(deadline_ms, now)
                .saturating_duration_since(Instant::now())
                .as_secs_f64()
        };
        // A real deadline: 30 s from now.
        assert!((29.0..=30.0).contains(&left(now + 30_000)));
        // cargo-lambda's emulator: a duration, not an epoch time.
        assert!((599.0..=600.0).contains(&left(600_000)));
        // Already past, or absurdly far: the longest invocation.
        assert!((899.0..=900.0).contains(&left(now - 5_000)));
        assert!((899.0..=900.0).contains(&left(now + 86_400_000)));
        assert!((899.0..=900.0).contains(&left(0)));
    }
}
