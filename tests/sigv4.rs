//! DESTINATION_AUTH=aws-sigv4: every request to Amazon OpenSearch Service (`es`) or
//! OpenSearch Serverless (`aoss`) is signed with the credentials of the AWS SDK's
//! default chain. A local receiver recomputes each signature with botocore (static and
//! session credentials, the body hash as sent, gzip included) and refuses a mismatch
//! with 403 and the service's message, which the forwarder reports.

mod common;

use std::process::{Child, Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_flowlog-forwarder");
const ACCESS: &str = "AKIDEXAMPLE00000001";
const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
const TOKEN: &str = "IQoJb3JpZ2luX2VjEXAMPLE-session-token-0123456789abcdef";

/// The receiver, checking signatures made with `secret` for `region` / `service`.
struct SigV4Receiver {
    child: Child,
    url: String,
}

impl SigV4Receiver {
    fn start(secret: &str, token: Option<&str>, region: &str, service: &str) -> SigV4Receiver {
        let has_botocore = Command::new("python3")
            .args(["-c", "import botocore"])
            .status()
            .is_ok_and(|s| s.success());
        if !has_botocore {
            common::pip_install("botocore");
        }
        let (child, port) = common::python_server(
            "sigv4_receiver.py",
            &[ACCESS, secret, token.unwrap_or("-"), region, service],
        );
        SigV4Receiver {
            url: format!("http://127.0.0.1:{port}/_bulk"),
            child,
        }
    }

    /// The receiver's verdicts so far (`ok`, or `refused: why`).
    fn verdicts(self) -> Vec<String> {
        common::python_server_log(self.child)
    }
}

fn run(url: &str, env: &[(&str, &str)]) -> Output {
    let file = common::distinct_flows_file("sigv4.log", 5);
    let mut cmd = Command::new(BIN);
    cmd.args(["process", "--destination", url, &file]);
    common::delivery_env(
        &mut cmd,
        &[
            ("DESTINATION_FORMAT", "elasticsearch"),
            ("MAX_RETRIES", "0"),
        ],
    );
    for var in [
        "AWS_PROFILE",
        "AWS_SESSION_TOKEN",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
    ] {
        cmd.env_remove(var);
    }
    cmd.env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_CONFIG_FILE", "/nonexistent")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
        .env("DESTINATION_AUTH", "aws-sigv4")
        .envs(env.iter().copied());
    cmd.output().unwrap()
}

#[test]
fn static_credentials_sign_for_opensearch_service() {
    let rx = SigV4Receiver::start(SECRET, None, "eu-west-1", "es");
    let out = run(
        &rx.url.clone(),
        &[
            ("AWS_ACCESS_KEY_ID", ACCESS),
            ("AWS_SECRET_ACCESS_KEY", SECRET),
            ("AWS_REGION", "eu-west-1"),
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let verdicts = rx.verdicts();
    assert!(out.status.success(), "{stderr}\n{verdicts:?}");
    assert!(
        !verdicts.is_empty() && verdicts.iter().all(|v| v == "ok"),
        "{verdicts:?}"
    );
    assert!(stderr.contains("forwarded=5"), "{stderr}");
}

#[test]
fn session_credentials_sign_for_serverless_in_the_region_named() {
    let rx = SigV4Receiver::start(SECRET, Some(TOKEN), "us-west-2", "aoss");
    let out = run(
        &rx.url.clone(),
        &[
            ("AWS_ACCESS_KEY_ID", ACCESS),
            ("AWS_SECRET_ACCESS_KEY", SECRET),
            ("AWS_SESSION_TOKEN", TOKEN),
            ("AWS_REGION", "eu-west-1"),
            ("DESTINATION_AWS_SERVICE", "aoss"),
            ("DESTINATION_AWS_REGION", "us-west-2"),
            ("COMPRESSION", "none"),
        ],
    );
    let verdicts = rx.verdicts();
    assert!(
        out.status.success(),
        "{}\n{verdicts:?}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(verdicts.iter().all(|v| v == "ok"), "{verdicts:?}");
}

/// A signature the service refuses fails the documents (not retried: 403) with the
/// service's message, and no credential reaches the output.
#[test]
fn a_refused_signature_is_reported_with_the_services_message() {
    let rx = SigV4Receiver::start("another-secret-key-entirely", None, "eu-west-1", "es");
    let out = run(
        &rx.url.clone(),
        &[
            ("AWS_ACCESS_KEY_ID", ACCESS),
            ("AWS_SECRET_ACCESS_KEY", SECRET),
            ("AWS_SESSION_TOKEN", TOKEN),
            ("AWS_REGION", "eu-west-1"),
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let verdicts = rx.verdicts();
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        verdicts.iter().all(|v| v.starts_with("refused")),
        "{verdicts:?}"
    );
    assert!(stderr.contains("HTTP 403"), "{stderr}");
    assert!(
        stderr.contains("signature we calculated does not match"),
        "{stderr}"
    );
    assert!(
        !stderr.contains(SECRET) && !stderr.contains(TOKEN),
        "{stderr}"
    );
}

/// Misconfiguration stops at start: an unknown service, or an Authorization header
/// that the signature would have to overwrite.
#[test]
fn signing_settings_are_checked_at_start() {
    for (env, name) in [
        (
            vec![("DESTINATION_AWS_SERVICE", "s3")],
            "DESTINATION_AWS_SERVICE",
        ),
        (
            vec![("DESTINATION_HEADERS", r#"{"Authorization":"ApiKey x"}"#)],
            "DESTINATION_HEADERS",
        ),
        (vec![("DESTINATION_AUTH", "kerberos")], "DESTINATION_AUTH"),
    ] {
        let mut all = vec![
            ("AWS_REGION", "eu-west-1"),
            ("AWS_ACCESS_KEY_ID", ACCESS),
            ("AWS_SECRET_ACCESS_KEY", SECRET),
        ];
        all.extend(env);
        let out = run("https://search.example/_bulk", &all);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains(name), "{stderr}");
    }
}
