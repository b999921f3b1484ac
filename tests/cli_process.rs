//! The real binary's `process` command: files, stdin, gzip, summary, exit status.

mod common;

use std::io::Write;
use std::process::{Command, Output, Stdio};

use common::gzip;
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_flowlog-forwarder");
const LINE: &str =
    "2 123456789010 eni-1 10.0.0.1 10.0.0.2 443 51000 6 10 840 1600000000 1600000060 ACCEPT OK\n";

fn run(args: &[&str], env: &[(&str, &str)], stdin: &[u8]) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for var in [
        "LOG_FORMAT",
        "INTERNAL_CIDRS",
        "VPC_CIDR_PREFIX",
        "ACTIONS",
        "FILTER",
        "OUTPUT_SCHEMA",
        "DESTINATION_URL",
        "AWS_LAMBDA_RUNTIME_API",
    ] {
        cmd.env_remove(var);
    }
    cmd.envs(env.iter().copied());
    let mut child = cmd.spawn().expect("spawn");
    // A child that exits first (bad configuration) leaves its stdin unread.
    let _ = child.stdin.take().unwrap().write_all(stdin);
    let out = child.wait_with_output().unwrap();
    if out.status.code() != Some(2) && args.first() == Some(&"process") {
        assert_eq!(
            common::assert_accounting(&String::from_utf8_lossy(&out.stderr)),
            1
        );
    }
    out
}

fn docs(out: &Output) -> Vec<Value> {
    common::stdout_docs(out)
}

fn summary(out: &Output) -> String {
    let err = String::from_utf8_lossy(&out.stderr);
    err.lines()
        .rfind(|l| l.starts_with("summary "))
        .unwrap_or_default()
        .to_string()
}

fn temp_file(name: &str, bytes: &[u8]) -> std::path::PathBuf {
    let dir = common::scratch_dir().to_path_buf();
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, bytes).unwrap();
    path
}

#[test]
fn processes_the_shipped_sample() {
    let sample = concat!(env!("CARGO_MANIFEST_DIR"), "/events/flowlogs/sample.log.gz");
    let out = run(&["process", sample], &[], b"");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let d = docs(&out);
    assert_eq!(d.len(), 61);
    assert_eq!(
        summary(&out),
        "summary read=61 forwarded=61 filtered=0 malformed=0 failed=0 inputs=1 input_errors=0"
    );
    assert!(d.iter().all(|doc| doc["event"]["dataset"] == "aws.vpcflow"));
}

#[test]
fn stdin_gzip_and_filters_from_environment() {
    let input = gzip(format!("{LINE}{}", LINE.replace("10.0.0.2", "8.8.8.8")).as_bytes());
    let out = run(
        &["process", "-"],
        &[("INTERNAL_CIDRS", "10.0.0.0/8")],
        &input,
    );
    assert!(out.status.success());
    let d = docs(&out);
    assert_eq!(d.len(), 1);
    assert_eq!(d[0]["destination"]["ip"], "8.8.8.8");
    assert!(
        summary(&out).contains("read=2 forwarded=1 filtered=1"),
        "{}",
        summary(&out)
    );
}

#[test]
fn log_format_option() {
    let out = run(
        &["process", "--log-format", "${dstaddr} ${srcaddr}"],
        &[],
        b"1.1.1.1 2.2.2.2\n",
    );
    assert!(out.status.success());
    assert_eq!(docs(&out)[0]["source"]["ip"], "2.2.2.2");
}

#[test]
fn truncated_gzip_fails_the_input_and_keeps_what_was_read() {
    let full = gzip(LINE.repeat(5000).as_bytes());
    let cut = temp_file("cut.log.gz", &full[..full.len() * 3 / 4]);
    let good = temp_file("good.log", LINE.as_bytes());
    let out = run(
        &["process", cut.to_str().unwrap(), good.to_str().unwrap()],
        &[],
        b"",
    );
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cut.log.gz") && err.contains("after line"),
        "{err}"
    );
    let d = docs(&out);
    assert!(d.len() > 1 && d.len() < 5001, "{}", d.len());
    assert!(summary(&out).contains("input_errors=1"));
}

#[test]
fn missing_file_is_an_input_error() {
    let out = run(&["process", "/nonexistent/flow.log"], &[], b"");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/flow.log"));
}

#[test]
fn bad_arguments_and_configuration_exit_2() {
    let out = run(&["process", "--bogus"], &[], b"");
    assert_eq!(out.status.code(), Some(2));
    let out = run(&["process"], &[("INTERNAL_CIDRS", "10.0.0.0/40")], b"");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("INTERNAL_CIDRS"));
    let out = run(&["process", "--log-format", "${oops"], &[], b"");
    assert_eq!(out.status.code(), Some(2));
    let out = run(&["frobnicate"], &[], b"");
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn help_documents_commands_and_variables() {
    let out = run(&["--help"], &[], b"");
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for word in [
        "process",
        "--log-format",
        "DESTINATION_URL",
        "INTERNAL_CIDRS",
        "ACTIONS",
        "INCLUDE_ORIGINAL",
        "LOG_FORMAT",
    ] {
        assert!(help.contains(word), "{word}");
    }
}

/// Issue 16: an id is bound to the record, not to where it sat. Different records
/// piped to `process -` on different runs (same input name, same line number) get
/// different ids; the same record processed again gets the same id. Likewise a local
/// file rewritten with other content.
#[test]
fn event_ids_are_bound_to_content() {
    let id = |input: &[u8], args: &[&str]| -> Vec<String> {
        let out = run(args, &[], input);
        assert!(out.status.success());
        docs(&out)
            .iter()
            .map(|d| d["event"]["id"].as_str().unwrap().to_string())
            .collect()
    };
    let records = [
        "2 123456789010 eni-1 10.0.0.1 10.0.0.2 443 51000 6 10 840 1600000000 1600000060 ACCEPT OK\n",
        "2 123456789010 eni-1 10.0.0.1 10.0.0.2 443 51000 6 11 840 1600000000 1600000060 ACCEPT OK\n",
        "2 123456789010 eni-1 10.0.0.9 10.0.0.2 443 51000 6 10 840 1600000000 1600000060 REJECT OK\n",
    ];
    let stdin: Vec<String> = records
        .iter()
        .map(|r| id(r.as_bytes(), &["process", "-"])[0].clone())
        .collect();
    assert_ne!(stdin[0], stdin[1]);
    assert_ne!(stdin[0], stdin[2]);
    assert_ne!(stdin[1], stdin[2]);
    assert_eq!(stdin[0], id(records[0].as_bytes(), &["process", "-"])[0]);
    // Two equal lines in one input still differ by their line number.
    let twice = id(records[0].repeat(2).as_bytes(), &["process", "-"]);
    assert_ne!(twice[0], twice[1]);
    // A file rewritten under the same name.
    let path = temp_file("rewritten.log", records[0].as_bytes());
    let first = id(b"", &["process", path.to_str().unwrap()]);
    std::fs::write(&path, records[1]).unwrap();
    let second = id(b"", &["process", path.to_str().unwrap()]);
    assert_ne!(first, second);
    std::fs::write(&path, records[0]).unwrap();
    assert_eq!(first, id(b"", &["process", path.to_str().unwrap()]));
}

/// `invoke --s3-dir DIR` never reads outside DIR, whatever the bucket or key says.
#[test]
fn invoke_s3_dir_refuses_keys_leading_outside() {
    let dir = temp_file("s3dir/b/inside.log", LINE.as_bytes());
    let s3_dir = dir.parent().unwrap().parent().unwrap().to_path_buf();
    temp_file("secret.log", LINE.as_bytes());
    for (bucket, key) in [
        ("b", "..%2F..%2Fsecret.log"),
        ("b", "../../secret.log"),
        ("..", "secret.log"),
        ("b", "%2Fetc%2Fpasswd"),
    ] {
        let event = serde_json::json!({"Records":[{"eventSource":"aws:s3","eventName":"ObjectCreated:Put",
            "s3":{"bucket":{"name":bucket},"object":{"key":key,"eTag":"e"}}}]});
        let event_path = temp_file("escape.json", event.to_string().as_bytes());
        let out = run(
            &[
                "invoke",
                event_path.to_str().unwrap(),
                "--s3-dir",
                s3_dir.to_str().unwrap(),
            ],
            &[],
            b"",
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(out.stdout.is_empty(), "{bucket} {key}");
        assert!(
            stderr.contains("outside the --s3-dir directory"),
            "{stderr}"
        );
    }
}

/// Configuration is validated before anything runs: a URL the HTTP client could not
/// use, a bad margin, level or boolean exit 2 naming the variable.
#[test]
fn bad_configuration_exits_2_naming_the_variable() {
    for (name, value) in [
        ("DESTINATION_URL", "https://host:99999/_bulk"),
        ("DESTINATION_URL", "https://ho st/"),
        ("DESTINATION_URL", "https://[::1/"),
        ("DEADLINE_MARGIN_MS", "-5"),
        ("LOG_LEVEL", "loud"),
        ("INCLUDE_ORIGINAL", "garbage"),
        ("DESTINATION_CA_BUNDLE", "/nonexistent.pem"),
        ("OUTPUT_SCHEMA", "cef"),
    ] {
        let out = run(&["process", "-"], &[(name, value)], LINE.as_bytes());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{name}={value}: {stderr}");
        assert!(stderr.contains(name), "{stderr}");
        assert!(out.stdout.is_empty());
    }
}

/// Issue 20: `invoke` of an event that needs no S3 never starts the AWS SDK (no region
/// or IMDS warnings), and one that needs S3 with no credentials or endpoint says how to
/// point at a local S3 API server.
#[test]
fn invoke_needs_aws_only_for_s3_and_says_how_to_point_at_it() {
    let events = concat!(env!("CARGO_MANIFEST_DIR"), "/events");
    let mut cmd = Command::new(BIN);
    cmd.args(["invoke", &format!("{events}/cloudwatch-logs.json")])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default());
    let out = cmd.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(!stderr.contains("WARN"), "{stderr}");
    assert!(!stderr.to_lowercase().contains("imds"), "{stderr}");
    assert_eq!(docs(&out).len(), 4);

    let mut cmd = Command::new(BIN);
    cmd.args(["invoke", &format!("{events}/s3-put.json")])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("AWS_EC2_METADATA_DISABLED", "true");
    let out = cmd.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("no answer from S3"), "{stderr}");
    assert!(
        stderr.contains("AWS_ENDPOINT_URL") && stderr.contains("--s3-dir"),
        "{stderr}"
    );
}

/// OUTPUT_SCHEMA and `--output-schema` select OCSF; the option wins over the variable.
#[test]
fn output_schema_from_the_environment_or_the_option() {
    let ocsf = run(
        &["process", "-"],
        &[("OUTPUT_SCHEMA", "ocsf")],
        LINE.as_bytes(),
    );
    assert_eq!(docs(&ocsf)[0]["class_uid"], 4001);
    let option = run(
        &["process", "--output-schema", "ocsf", "-"],
        &[("OUTPUT_SCHEMA", "ecs")],
        LINE.as_bytes(),
    );
    let event = &docs(&option)[0];
    assert_eq!(event["src_endpoint"]["ip"], "10.0.0.1");
    assert_eq!(event["metadata"]["log_provider"], "File");
    let ecs = run(&["process", "-"], &[], LINE.as_bytes());
    assert_eq!(docs(&ecs)[0]["event"]["dataset"], "aws.vpcflow");
    assert_eq!(docs(&ecs)[0]["event"]["id"], event["metadata"]["uid"]);
    let bad = run(
        &["process", "--output-schema", "xml", "-"],
        &[],
        LINE.as_bytes(),
    );
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--output-schema"));
}

/// A LOG_FORMAT (or --log-format) naming no known flow log field is refused: it would
/// read every line as custom fields and nothing else.
#[test]
fn a_log_format_naming_no_known_field_is_refused() {
    for args in [
        vec!["process", "/dev/null"],
        vec!["process", "--log-format", "${foo} ${bar}", "/dev/null"],
    ] {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_flowlog-forwarder"));
        cmd.args(&args).env_remove("DESTINATION_URL");
        if args.len() == 2 {
            cmd.env("LOG_FORMAT", "${foo} ${bar-baz}");
        }
        let out = cmd.output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains("no known flow log field"), "{stderr}");
    }
}

/// A failed CloudWatch Logs invocation lands in the on-failure queue as a Lambda
/// invocation record holding the original payload; read from that queue (SQS), it is
/// replayed: the same documents, with the same ids, as the original invocation.
#[test]
fn a_cloudwatch_invocation_record_from_the_failure_queue_replays_with_the_same_ids() {
    let events = concat!(env!("CARGO_MANIFEST_DIR"), "/events");
    let run = |event: &str| {
        let out = Command::new(BIN)
            .args(["invoke", &format!("{events}/{event}")])
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut docs = docs(&out);
        docs.sort_by_key(|d| d["event"]["id"].to_string());
        docs
    };
    let original = run("cloudwatch-logs.json");
    let replayed = run("sqs-cloudwatch-replay.json");
    assert_eq!(original.len(), 4);
    assert_eq!(replayed, original);
}

/// FILTER: the records the expression is false for are dropped and counted as
/// filtered (read = forwarded + filtered + failed); a wrong expression stops the start
/// with exit 2, naming FILTER and the column.
#[test]
fn filter_expressions_drop_records_counted_as_filtered() {
    let input =
        "2 123456789012 eni-1 10.0.0.5 10.1.0.9 40000 443 6 10 600 1700000000 1700000060 ACCEPT OK
2 123456789012 eni-1 10.0.0.5 8.8.8.8 40000 53 17 1 60 1700000000 1700000060 ACCEPT OK
2 123456789012 eni-1 10.0.0.5 10.1.0.9 40000 22 6 1 40 1700000000 1700000060 REJECT OK
2 123456789012 eni-1 - - - - - - - 1700000000 1700000060 - NODATA
";
    let rule = r#"action == "REJECT" || !(srcaddr in "10.0.0.0/8" && dstaddr in "10.0.0.0/8")"#;
    let out = run(&["process", "-"], &[("FILTER", rule)], input.as_bytes());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let docs = docs(&out);
    let mut kept: Vec<&str> = docs
        .iter()
        .map(|d| d["destination"]["ip"].as_str().unwrap_or("-"))
        .collect();
    kept.sort_unstable();
    // The NODATA record has no address: "in" is false for it, so "!(...)" keeps it.
    assert_eq!(kept, ["-", "10.1.0.9", "8.8.8.8"]);
    assert!(stderr.contains("read=4 forwarded=3 filtered=1"), "{stderr}");
    common::assert_accounting(&stderr);

    let out = run(
        &["process", "-"],
        &[("FILTER", r#"action == "REJECT" && dstport == "ssh""#)],
        input.as_bytes(),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("FILTER"), "{stderr}");
    assert!(
        stderr.contains("at column 34: dstport is a number"),
        "{stderr}"
    );
}
