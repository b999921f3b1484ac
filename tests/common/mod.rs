//! Helpers shared by the integration tests.
#![allow(dead_code)]

pub mod http;
pub mod moto;
pub mod parquet_file;
pub mod receiver;
pub mod runtime_api;
pub mod tls;

use flowlog_forwarder::config::Config;
use flowlog_forwarder::config::RecordSettings;
use flowlog_forwarder::context::Origin;
use flowlog_forwarder::ids::IdSeed;
use flowlog_forwarder::pipeline::{run_input, Counts, Output, UnitInput, UnitProcessor};
use flowlog_forwarder::sink::{Batch, BatchLimits};
use flowlog_forwarder::source::Limits;
use serde_json::Value;

/// Record settings from environment-style variables.
pub fn settings(vars: &[(&str, &str)]) -> RecordSettings {
    let vars: Vec<(String, String)> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Config::from_lookup(|k| vars.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone()))
        .expect("valid test configuration")
        .records
}

/// Runs `input` (plain or gzip bytes) through source -> parse -> filter -> normalize as
/// one S3 object, returning the documents and the counts.
pub fn run_bytes(
    settings: &RecordSettings,
    input: Vec<u8>,
    limits: Limits,
) -> (Vec<Value>, Counts) {
    let (docs, counts, error) = try_run_bytes(settings, input, limits);
    assert_eq!(error, None, "the input reads to its end");
    (docs, counts)
}

/// `run_bytes` for inputs that may not read to their end (a corrupt gzip stream): the
/// documents and counts up to the read error, and the error. The input goes through the
/// production path, `run_input` into an `Output`, as one unit.
pub fn try_run_bytes(
    settings: &RecordSettings,
    input: Vec<u8>,
    limits: Limits,
) -> (Vec<Value>, Counts, Option<String>) {
    let mut unit = UnitProcessor::new(
        settings,
        Origin::s3("test-bucket", "AWSLogs/x.log.gz"),
        IdSeed::for_object("test-bucket", "AWSLogs/x.log.gz", "etag"),
    );
    let batch_limits = BatchLimits::new(64 << 20, 1_000_000, 1);
    let mut batch = Batch::default();
    let mut full = Vec::new();
    let mut emit = |b: Batch| {
        full.push(b);
        true
    };
    let mut out = Output::new(0, &batch_limits, &mut batch, &mut emit);
    let input = UnitInput::Stream(Box::new(std::io::Cursor::new(input)));
    let error = run_input(input, &mut unit, limits, &mut out)
        .err()
        .map(|e| e.to_string());
    full.push(batch);
    let docs: Vec<Value> = full
        .iter()
        .flat_map(|b| (0..b.len()).map(move |i| b.doc(i)))
        .map(|doc| {
            serde_json::from_slice(doc).unwrap_or_else(|e| {
                panic!(
                    "invalid JSON document ({e}): {}",
                    String::from_utf8_lossy(doc)
                )
            })
        })
        .collect();
    let mut counts = unit.counts();
    counts.forwarded = full.iter().flat_map(|b| b.units().into_values()).sum();
    (docs, counts, error)
}

/// Runs text lines through the pipeline.
pub fn run(settings: &RecordSettings, text: &str) -> (Vec<Value>, Counts) {
    run_bytes(settings, text.as_bytes().to_vec(), Limits::default())
}

/// The single document of one record line, parsed with `format` (None: default v2).
pub fn one(format: Option<&str>, line: &str) -> Value {
    let s = match format {
        Some(f) => settings(&[("LOG_FORMAT", f)]),
        None => settings(&[]),
    };
    let (docs, counts) = run(&s, line);
    assert_eq!(docs.len(), 1, "{counts:?}");
    docs.into_iter().next().unwrap()
}

/// A value by dotted path ("source.ip"); keys are nested objects.
pub fn get<'v>(doc: &'v Value, path: &str) -> Option<&'v Value> {
    let mut v = doc;
    for part in path.split('.') {
        v = v.get(part)?;
    }
    Some(v)
}

pub fn get_str<'v>(doc: &'v Value, path: &str) -> Option<&'v str> {
    get(doc, path).and_then(Value::as_str)
}

pub fn is_failure(doc: &Value) -> bool {
    doc["tags"]
        .as_array()
        .is_some_and(|t| t.iter().any(|v| v == "_flowlog_parse_failure"))
}

/// Checks the accounting invariant on a run's output: every summary (the CLI's
/// `summary ...` line, the handler's EMF JSON line) says read = forwarded + filtered +
/// failed. Returns how many summaries were checked.
pub fn assert_accounting(stderr: &str) -> usize {
    let mut checked = 0;
    for line in stderr.lines() {
        if let Some(rest) = line.strip_prefix("summary ") {
            let field = |name: &str| -> u64 {
                rest.split_whitespace()
                    .find_map(|kv| kv.strip_prefix(&format!("{name}=")))
                    .and_then(|v| v.parse().ok())
                    .unwrap_or_else(|| panic!("{name} in {line}"))
            };
            assert_eq!(
                field("read"),
                field("forwarded") + field("filtered") + field("failed"),
                "{line}"
            );
            checked += 1;
        } else if let Ok(v) = serde_json::from_str::<Value>(line) {
            if v.get("_aws").is_some() {
                let n = |k: &str| v[k].as_u64().unwrap_or_else(|| panic!("{k} in {line}"));
                assert_eq!(
                    n("RecordsRead"),
                    n("RecordsForwarded") + n("RecordsFiltered") + n("RecordsFailed"),
                    "{line}"
                );
                checked += 1;
            }
        }
    }
    checked
}

/// Gzips bytes.
pub fn gzip(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// Whether `command` is on the PATH.
pub fn command_exists(command: &str) -> bool {
    std::process::Command::new("sh")
        .args(["-c", &format!("command -v {command}")])
        .stdout(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Installs a Python package with pip (what a test needs and the machine lacks), then
/// lets pyenv see its commands.
pub fn pip_install(package: &str) {
    let status = std::process::Command::new("python3")
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            package,
        ])
        .status()
        .unwrap_or_else(|e| panic!("python3 to install {package}: {e}"));
    assert!(status.success(), "pip install '{package}' failed");
    if command_exists("pyenv") {
        let _ = std::process::Command::new("pyenv").arg("rehash").status();
    }
}

/// Starts `tests/tools/<script>` with `args`: a local server that prints its port on its
/// first line (then its log); the process and that port.
pub fn python_server(script: &str, args: &[&str]) -> (std::process::Child, u16) {
    use std::io::BufRead;
    let mut child = std::process::Command::new("python3")
        .arg(format!(
            "{}/tests/tools/{script}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .args(args)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3");
    let mut port = String::new();
    std::io::BufReader::new(child.stdout.as_mut().expect("piped stdout"))
        .read_line(&mut port)
        .expect("the server's port");
    let port = port
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("{script} printed no port"));
    (child, port)
}

/// Stops a `python_server` and returns the lines it printed after its port.
pub fn python_server_log(mut child: std::process::Child) -> Vec<String> {
    let _ = child.kill();
    let out = child.wait_with_output().expect("the server's output");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

/// The documents a run printed on standard output, one JSON document a line.
pub fn stdout_docs(out: &std::process::Output) -> Vec<Value> {
    String::from_utf8(out.stdout.clone())
        .expect("UTF-8 documents")
        .lines()
        .map(|l| serde_json::from_str(l).expect("each stdout line is a JSON document"))
        .collect()
}

/// The AWS default (v2) format.
pub const DEFAULT: &str = "version account-id interface-id srcaddr dstaddr srcport dstport protocol packets bytes start end action log-status";

/// (label, format, record line) of every example.
pub fn examples() -> Vec<(String, String, String)> {
    let text = include_str!("../data/aws-doc-examples.txt");
    let mut out = Vec::new();
    let mut pending: Option<(String, String)> = None;
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("## ") {
            let (label, format) = rest.split_once(" | format: ").expect("annotated example");
            let label = label.split_whitespace().next().unwrap().to_string();
            let format = if format == "DEFAULT" {
                DEFAULT.to_string()
            } else {
                format.to_string()
            };
            pending = Some((label, format));
        } else if !line.starts_with('#') && !line.trim().is_empty() {
            let (label, format) = pending.take().expect("record follows its annotation");
            out.push((label, format, line.to_string()));
        }
    }
    out
}

/// Runs `f` to completion on a current-thread runtime (for SDK calls from a test).
pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

/// This test binary's scratch directory, `target/tmp/<test name>`: emptied when first
/// asked for in a run, so runs neither pile files up nor write to the system's /tmp.
pub fn scratch_dir() -> &'static std::path::Path {
    static DIR: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        let exe = std::env::current_exe().expect("the test binary's path");
        let stem = exe.file_stem().unwrap().to_string_lossy().into_owned();
        // Cargo names test binaries `<test>-<hash>`.
        let name = stem
            .rsplit_once('-')
            .map_or(stem.as_str(), |(name, _)| name);
        let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("scratch directory");
        dir
    })
}

/// Sets up `cmd` (the binary, or a wrapper running it) to deliver to a test receiver:
/// the caller's destination variables removed, retries fast (20 ms base, 200 ms cap),
/// then `env`.
pub fn delivery_env(cmd: &mut std::process::Command, env: &[(&str, &str)]) {
    for var in [
        "DESTINATION_URL",
        "DESTINATION_FORMAT",
        "DESTINATION_HEADERS",
        "AWS_LAMBDA_RUNTIME_API",
        "LOG_LEVEL",
    ] {
        cmd.env_remove(var);
    }
    cmd.env("RETRY_BASE_DELAY_MS", "20")
        .env("RETRY_MAX_DELAY_MS", "200");
    cmd.envs(env.iter().copied());
}

/// A default-format flow log file in this test's scratch directory with `n` distinct
/// ACCEPT records; its path.
pub fn distinct_flows_file(name: &str, n: usize) -> String {
    let mut text = String::from("version account-id interface-id srcaddr dstaddr srcport dstport protocol packets bytes start end action log-status\n");
    for i in 0..n {
        text.push_str(&format!(
            "2 123456789012 eni-1 10.0.{}.{} 203.0.113.{} {} 443 6 {} {} 1700000000 1700000060 ACCEPT OK\n",
            i / 250,
            i % 250,
            i % 200,
            1024 + i,
            i + 1,
            (i + 1) * 60
        ));
    }
    input_file(name, &text).to_string_lossy().into_owned()
}

/// Writes `content` to `name` in this test's scratch directory; its path. Written aside
/// and renamed, so that tests running at once that write the same file never read it
/// half written.
pub fn input_file(name: &str, content: &str) -> std::path::PathBuf {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let dir = scratch_dir();
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let aside = dir.join(format!("{name}.{n}.tmp"));
    std::fs::write(&aside, content).unwrap();
    let path = dir.join(name);
    std::fs::rename(&aside, &path).unwrap();
    path
}

/// A small MaxMind DB file (`kind`: city, country or asn; see
/// tests/tools/make_mmdb.py) in this test's scratch directory, new at each call; its
/// path.
pub fn mmdb(kind: &str) -> std::path::PathBuf {
    let ready = std::process::Command::new("python3")
        .args(["-c", "import mmdb_writer, netaddr"])
        .status();
    if !ready.is_ok_and(|s| s.success()) {
        pip_install("mmdb-writer");
    }
    let dir = scratch_dir();
    std::fs::create_dir_all(dir).unwrap();
    // One file per call: tests of one binary run at once.
    static CALLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let path = dir.join(format!("{kind}-{n}.mmdb"));
    let status = std::process::Command::new("python3")
        .arg(format!(
            "{}/tests/tools/make_mmdb.py",
            env!("CARGO_MANIFEST_DIR")
        ))
        .arg(kind)
        .arg(&path)
        .status()
        .expect("python3");
    assert!(status.success(), "make_mmdb.py {kind}");
    path
}
