//! THREAT_INTEL_URI: the list is loaded from the local S3 API server (moto) with the
//! real SDK, matched against every address, read again after its TTL only when its
//! ETag changed, kept when a reload fails; a missing list fails the invocation. Through
//! the real binary: ECS `threat.enrichments`, the tag, THREAT_INTEL_ONLY, the summary.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::block_on;
use common::moto::{moto, put_objects};
use flowlog_forwarder::reload::Location;
use flowlog_forwarder::threat_intel::{ThreatIntel, ThreatList};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_flowlog-forwarder");

fn s3_intel(key: &str, ttl: Duration) -> ThreatIntel {
    let s3 = block_on(moto().client());
    ThreatIntel::new(
        Location::S3 {
            bucket: "threat-lists".into(),
            key: key.into(),
        },
        ttl,
        Some(s3),
    )
}

fn label(list: &ThreatList, ip: &str) -> Option<String> {
    list.lookup(ip.parse().unwrap())
        .map(|i| i.label.unwrap_or("").to_string())
}

#[test]
fn loads_from_s3_refreshes_on_a_changed_etag_and_keeps_the_list_on_failure() {
    let key = format!("feed-{}.txt", std::process::id());
    put_objects(
        "threat-lists",
        &[(
            &key,
            b"# feed v1\n198.51.100.0/24,scanner\n2001:db8:bad::/48,v6 feed\nnot-an-ip,x\n"
                .to_vec(),
        )],
    );
    let intel = s3_intel(&key, Duration::from_millis(500));
    let list = block_on(intel.current(None)).unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list.skipped_lines, 1);
    assert_eq!(label(&list, "198.51.100.77").as_deref(), Some("scanner"));
    assert_eq!(label(&list, "2001:db8:bad::1").as_deref(), Some("v6 feed"));
    assert_eq!(label(&list, "10.0.0.1"), None);
    assert_eq!(intel.downloads(), 1);

    // Within the TTL: not read again. After it, with the same ETag: not downloaded.
    block_on(intel.current(None)).unwrap();
    std::thread::sleep(Duration::from_millis(600));
    let same = block_on(intel.current(None)).unwrap();
    assert_eq!(
        intel.downloads(),
        1,
        "an unchanged ETag is not downloaded again"
    );
    assert_eq!(same.len(), 2);

    // A changed list is read after the TTL.
    put_objects("threat-lists", &[(&key, b"203.0.113.9,c2\n".to_vec())]);
    std::thread::sleep(Duration::from_millis(600));
    let changed = block_on(intel.current(None)).unwrap();
    assert_eq!(intel.downloads(), 2);
    assert_eq!(label(&changed, "203.0.113.9").as_deref(), Some("c2"));
    assert_eq!(label(&changed, "198.51.100.77"), None);

    // The object disappears: the previous list stays in use.
    block_on(async {
        moto()
            .client()
            .await
            .delete_object()
            .bucket("threat-lists")
            .key(&key)
            .send()
            .await
            .unwrap()
    });
    std::thread::sleep(Duration::from_millis(600));
    let kept = block_on(intel.current(None)).unwrap();
    assert_eq!(label(&kept, "203.0.113.9").as_deref(), Some("c2"));
}

#[test]
fn a_missing_list_at_cold_start_is_an_error_naming_it() {
    put_objects("threat-lists", &[]);
    let intel = s3_intel("no-such-feed.txt", Duration::from_secs(900));
    let e = block_on(intel.current(None)).unwrap_err();
    assert!(e.contains("s3://threat-lists/no-such-feed.txt"), "{e}");
}

/// A list over 64 MiB (MAX_LIST_BYTES) is refused before it is read (its size from S3 or the
/// file system), with an error naming it and the limit; a list that was loaded stays.
/// Lists are read line by line, never held whole.
#[test]
fn a_list_over_the_size_limit_is_refused_before_it_is_read() {
    use flowlog_forwarder::threat_intel::MAX_LIST_BYTES;
    let key = format!("huge-{}.txt", std::process::id());
    let mut huge = b"198.51.100.0/24,scanner\n".to_vec();
    huge.resize(MAX_LIST_BYTES as usize + 1, b'\n');
    put_objects("threat-lists", &[(&key, huge)]);
    let e = block_on(s3_intel(&key, Duration::from_secs(900)).current(None)).unwrap_err();
    assert!(e.contains(&key) && e.contains("64 MiB"), "{e}");

    let path = common::scratch_dir().join("huge-list.txt");
    let file = std::fs::File::create(&path).unwrap();
    file.set_len(MAX_LIST_BYTES + 1).unwrap();
    let local = ThreatIntel::new(Location::File(path), Duration::from_secs(900), None);
    let e = block_on(local.current(None)).unwrap_err();
    assert!(e.contains("huge-list.txt") && e.contains("64 MiB"), "{e}");

    // Exactly at the limit, read line by line: loaded.
    let at_limit = format!("at-limit-{}.txt", std::process::id());
    let mut text = b"203.0.113.9,c2\n".to_vec();
    let comment = format!("# {}\n", "padding ".repeat(127));
    while text.len() + comment.len() <= MAX_LIST_BYTES as usize {
        text.extend_from_slice(comment.as_bytes());
    }
    text.resize(MAX_LIST_BYTES as usize, b'\n');
    put_objects("threat-lists", &[(&at_limit, text)]);
    let list = block_on(s3_intel(&at_limit, Duration::from_secs(900)).current(None)).unwrap();
    assert_eq!(label(&list, "203.0.113.9").as_deref(), Some("c2"));
}

/// `invoke` runs the handler as Lambda does: with no list, the invocation fails (its
/// records are retried) with the error type ThreatListUnavailable.
#[test]
fn without_a_list_the_invocation_fails_and_is_retried() {
    let dir = common::scratch_dir().join("invoke");
    std::fs::create_dir_all(dir.join("b")).unwrap();
    std::fs::write(dir.join("b/k.log"), LINES).unwrap();
    let event = dir.join("event.json");
    std::fs::write(
        &event,
        r#"{"Records":[{"eventSource":"aws:s3","eventName":"ObjectCreated:Put","s3":{"bucket":{"name":"b"},"object":{"key":"k.log"}}}]}"#,
    )
    .unwrap();
    let mut cmd = Command::new(BIN);
    cmd.args([
        "invoke",
        event.to_str().unwrap(),
        "--s3-dir",
        dir.to_str().unwrap(),
    ])
    .env_remove("DESTINATION_URL")
    .env_remove("AWS_LAMBDA_RUNTIME_API")
    .env("THREAT_INTEL_URI", "s3://threat-lists/missing.txt");
    for (k, v) in moto().env() {
        cmd.env(k, v);
    }
    put_objects("threat-lists", &[]);
    let out = cmd.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("ThreatListUnavailable"), "{stderr}");
    assert!(out.stdout.is_empty(), "no document went out");
    std::fs::remove_dir_all(&dir).ok();
}

const LINES: &str = "\
2 123456789010 eni-1 10.0.0.5 198.51.100.7 40000 443 6 1 60 1700000000 1700000060 ACCEPT OK
2 123456789010 eni-1 10.0.0.5 10.0.0.6 40000 443 6 1 60 1700000000 1700000060 ACCEPT OK
2 123456789010 eni-1 2001:db8:bad::9 2001:db8::1 443 40000 6 1 60 1700000000 1700000060 REJECT OK
";

/// `process` of LINES on standard input with THREAT_INTEL_URI naming `list` (a path).
fn run_with_list(list: &std::path::Path, vars: &[(&str, &str)]) -> std::process::Output {
    let mut child = Command::new(BIN)
        .args(["process", "-"])
        .env_remove("DESTINATION_URL")
        .env("THREAT_INTEL_URI", list)
        .envs(vars.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // A refused list stops the run before stdin is read: a broken pipe is fine.
    let _ = child.stdin.take().unwrap().write_all(LINES.as_bytes());
    child.wait_with_output().unwrap()
}

/// `run_with_list` with the test feed; its documents, stderr and exit code.
fn process(vars: &[(&str, &str)]) -> (Vec<Value>, String, Option<i32>) {
    let list = common::scratch_dir().join("threat-list.txt");
    std::fs::write(
        &list,
        "# test feed\n198.51.100.0/24,scanner net\n2001:db8:bad::/48\n",
    )
    .unwrap();
    let out = run_with_list(&list, vars);
    let docs = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    (
        docs,
        String::from_utf8_lossy(&out.stderr).into_owned(),
        out.status.code(),
    )
}

#[test]
fn matching_records_carry_threat_enrichments_and_the_tag() {
    let (docs, stderr, code) = process(&[]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stderr.contains("threat_matches=2"), "{stderr}");
    assert_eq!(docs.len(), 3);
    let hit = docs
        .iter()
        .find(|d| d["destination"]["ip"] == "198.51.100.7")
        .unwrap();
    assert_eq!(hit["tags"], serde_json::json!(["threat_intel_match"]));
    let e = &hit["threat"]["enrichments"][0];
    assert_eq!(e["indicator"]["type"], "ipv4-addr");
    assert_eq!(e["indicator"]["ip"], "198.51.100.7");
    assert_eq!(e["indicator"]["description"], "scanner net");
    assert_eq!(e["matched"]["field"], "destination.ip");
    assert_eq!(e["matched"]["atomic"], "198.51.100.7");
    assert_eq!(e["matched"]["type"], "indicator_match_rule");
    assert_eq!(e["matched"]["id"], "198.51.100.0/24");
    let v6 = docs
        .iter()
        .find(|d| d["source"]["ip"] == "2001:db8:bad::9")
        .unwrap();
    let e = &v6["threat"]["enrichments"][0];
    assert_eq!(e["indicator"]["type"], "ipv6-addr");
    assert_eq!(e["matched"]["field"], "source.ip");
    assert!(e["indicator"].get("description").is_none());
    let clean = docs
        .iter()
        .find(|d| d["destination"]["ip"] == "10.0.0.6")
        .unwrap();
    assert!(clean.get("threat").is_none() && clean.get("tags").is_none());
}

#[test]
fn threat_intel_only_forwards_matches_and_counts_the_rest_filtered() {
    let (docs, stderr, code) = process(&[("THREAT_INTEL_ONLY", "true")]);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(docs.len(), 2);
    assert!(stderr.contains("read=3 forwarded=2 filtered=1"), "{stderr}");
}

#[test]
fn ocsf_events_carry_enrichments() {
    let (docs, stderr, _) = process(&[("OUTPUT_SCHEMA", "ocsf")]);
    let hit = docs
        .iter()
        .find(|d| d["dst_endpoint"]["ip"] == "198.51.100.7")
        .unwrap_or_else(|| panic!("{stderr}"));
    let e = &hit["enrichments"][0];
    assert_eq!(e["name"], "dst_endpoint.ip");
    assert_eq!(e["value"], "198.51.100.7");
    assert_eq!(e["data"]["indicator"], "198.51.100.0/24");
    assert_eq!(
        hit["metadata"]["labels"],
        serde_json::json!(["threat_intel_match"])
    );
}

#[test]
fn a_bad_threat_configuration_exits_2() {
    for (name, value) in [
        ("THREAT_INTEL_URI", "s3://bucket-without-key"),
        ("THREAT_INTEL_TTL_SECONDS", "0"),
        ("THREAT_INTEL_ONLY", "maybe"),
    ] {
        let out = Command::new(BIN)
            .args(["process", "/dev/null"])
            .env(name, value)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{name}={value}");
        assert!(String::from_utf8_lossy(&out.stderr).contains(name));
    }
    let out = Command::new(BIN)
        .args(["process", "/dev/null"])
        .env_remove("THREAT_INTEL_URI")
        .env("THREAT_INTEL_ONLY", "true")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

/// `run_with_list`: its stderr, exit code and number of documents.
fn process_with_list(
    list: &std::path::Path,
    vars: &[(&str, &str)],
) -> (String, Option<i32>, usize) {
    let out = run_with_list(list, vars);
    (
        String::from_utf8_lossy(&out.stderr).into_owned(),
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).lines().count(),
    )
}

/// A list with no valid entry (empty, comments only, garbage, NUL bytes) is refused at
/// cold start; a refresh that reads such a list keeps the previous one, so that
/// THREAT_INTEL_ONLY never drops every record on an emptied list.
#[test]
fn a_list_without_a_valid_entry_is_refused_and_never_replaces_a_working_one() {
    let dir = common::scratch_dir();
    for (name, content) in [
        ("empty.txt", &b""[..]),
        ("comments.txt", b"# nothing yet\n\n# still nothing\n"),
        ("garbage.txt", b"not an address\n10.0.0.0/99\n"),
        ("nul.txt", b"\0\0\0\0\n\0"),
    ] {
        let path = dir.join(name);
        std::fs::write(&path, content).unwrap();
        let (stderr, code, docs) = process_with_list(&path, &[("THREAT_INTEL_ONLY", "true")]);
        assert_eq!(code, Some(2), "{name}: {stderr}");
        assert!(stderr.contains("no valid entry"), "{name}: {stderr}");
        assert!(stderr.contains(name), "{name}: {stderr}");
        assert_eq!(docs, 0);
    }

    let key = format!("emptied-{}.txt", std::process::id());
    put_objects("threat-lists", &[(&key, b"203.0.113.9,c2\n".to_vec())]);
    let intel = s3_intel(&key, Duration::from_millis(300));
    let list = block_on(intel.current(None)).unwrap();
    assert_eq!(label(&list, "203.0.113.9").as_deref(), Some("c2"));
    for emptied in [&b""[..], b"# rotated\n", b"\0\0garbage"] {
        put_objects("threat-lists", &[(&key, emptied.to_vec())]);
        std::thread::sleep(Duration::from_millis(400));
        let kept = block_on(intel.current(None)).unwrap();
        assert_eq!(label(&kept, "203.0.113.9").as_deref(), Some("c2"));
    }
    assert_eq!(intel.downloads(), 1, "no broken list was taken");
}

/// The 64 MiB cap holds for a pipe too: a FIFO streaming more is refused, never cut
/// mid-line (a cut `10.0.0.0/16` must not become `0.0.0.0/1`). A FIFO with no writer
/// times out; a missing file or a directory is a configuration error (exit 2).
#[test]
fn the_size_cap_holds_for_pipes_and_paths_are_checked_at_start() {
    use flowlog_forwarder::threat_intel::MAX_LIST_BYTES;
    let dir = common::scratch_dir().join("fifo");
    std::fs::create_dir_all(&dir).unwrap();
    let fifo = dir.join("list.fifo");
    let _ = std::fs::remove_file(&fifo);
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let writer_path = fifo.clone();
    let writer = std::thread::spawn(move || {
        let mut w = std::fs::OpenOptions::new()
            .write(true)
            .open(writer_path)
            .unwrap();
        // Comments up to just before the cap, then an entry that crosses it.
        let comment = format!("# {}\n", "padding ".repeat(127));
        let mut sent = 0u64;
        while sent + comment.len() as u64 <= MAX_LIST_BYTES - 6 {
            if w.write_all(comment.as_bytes()).is_err() {
                return;
            }
            sent += comment.len() as u64;
        }
        let pad = vec![b'\n'; (MAX_LIST_BYTES - 5 - sent) as usize];
        let _ = w.write_all(&pad);
        let _ = w.write_all(b"10.0.0.0/16\n");
    });
    let local = ThreatIntel::new(Location::File(fifo.clone()), Duration::from_secs(900), None);
    let e = block_on(local.current(None)).unwrap_err();
    assert!(e.contains("64 MiB"), "{e}");
    writer.join().unwrap();

    // No writer: the reading times out (THREAT_INTEL_TIMEOUT_SECONDS) and the run stops
    // with an error.
    let started = std::time::Instant::now();
    let (stderr, code, docs) = process_with_list(&fifo, &[("THREAT_INTEL_TIMEOUT_SECONDS", "2")]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("not read in time"), "{stderr}");
    assert!(started.elapsed() < Duration::from_secs(20));
    assert_eq!(docs, 0);

    for (path, what) in [
        (dir.join("missing.txt"), "No such file"),
        (dir.clone(), "directory"),
    ] {
        let (stderr, code, _) = process_with_list(&path, &[]);
        assert_eq!(code, Some(2), "{stderr}");
        assert!(
            stderr.contains("THREAT_INTEL_URI") && stderr.contains(what),
            "{stderr}"
        );
    }
}

/// Peak RSS of `process` loading `list` (and matching LINES), in MB.
fn peak_rss_loading(list: &std::path::Path) -> (u64, String) {
    let out = Command::new("/usr/bin/time")
        .args(["-f", "peak_rss_kb=%M", BIN, "process", "/dev/null"])
        .env_remove("DESTINATION_URL")
        .env("THREAT_INTEL_URI", list)
        // The test build parses a 64 MiB list in several seconds: time is not measured.
        .env("THREAT_INTEL_TIMEOUT_SECONDS", "300")
        .output()
        .expect("GNU time measures the peak RSS: apt-get install time");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let kb: u64 = stderr
        .lines()
        .find_map(|l| l.strip_prefix("peak_rss_kb="))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("GNU time's peak RSS: {stderr}"));
    (kb >> 10, stderr)
}

/// Every list shape just under the 64 MiB cap loads under 256 MB of peak RSS (or is
/// refused for its entry count): plain IPv4, labelled, distinct IPv6, `::` repeated,
/// one enormous label.
#[test]
fn memory_stays_bounded_for_every_list_shape_under_the_cap() {
    use flowlog_forwarder::threat_intel::MAX_LIST_BYTES;
    let dir = common::scratch_dir().join("shapes");
    std::fs::create_dir_all(&dir).unwrap();
    let limit = MAX_LIST_BYTES as usize - 64;
    type LineOf = Box<dyn Fn(u64) -> String>;
    let shapes: [(&str, LineOf); 5] = [
        (
            "ipv4",
            Box::new(|i| {
                format!(
                    "{}\n",
                    std::net::Ipv4Addr::from((i as u32).wrapping_mul(7919))
                )
            }),
        ),
        (
            "labelled",
            Box::new(|i| {
                format!(
                    "{},feed {}\n",
                    std::net::Ipv4Addr::from((i as u32).wrapping_mul(7919)),
                    i % 100_000
                )
            }),
        ),
        (
            "ipv6",
            Box::new(|i| format!("{:x}::{:x}\n", (i >> 16) & 0xffff, i & 0xffff)),
        ),
        ("repeated", Box::new(|_| "::\n".to_string())),
        (
            "big-label",
            Box::new(|i| {
                format!(
                    "10.{}.{}.{},{}\n",
                    (i >> 16) & 255,
                    (i >> 8) & 255,
                    i & 255,
                    "L".repeat(4000)
                )
            }),
        ),
    ];
    for (name, line) in shapes {
        let path = dir.join(format!("{name}.txt"));
        let mut text = String::with_capacity(limit);
        let mut i = 0u64;
        loop {
            let l = line(i);
            if text.len() + l.len() > limit {
                break;
            }
            text.push_str(&l);
            i += 1;
        }
        std::fs::write(&path, &text).unwrap();
        drop(text);
        let (peak, stderr) = peak_rss_loading(&path);
        assert!(peak < 256, "{name}: {peak} MB");
        assert!(!stderr.contains("panicked"), "{name}: {stderr}");
        assert!(
            stderr.contains("summary ") || stderr.contains("more than 4194304 entries"),
            "{name}: {stderr}"
        );
        std::fs::remove_file(&path).ok();
    }
}

/// An S3 client for a scripted local server standing in for a slow S3.
fn slow_s3(endpoint: &str) -> aws_sdk_s3::Client {
    let creds = aws_sdk_s3::config::Credentials::new("testing", "testing", None, None, "test");
    let config = aws_sdk_s3::config::Builder::new()
        .http_client(flowlog_forwarder::aws::https_client())
        .behavior_version(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .credentials_provider(aws_sdk_s3::config::SharedCredentialsProvider::new(creds))
        .force_path_style(true)
        .build();
    aws_sdk_s3::Client::from_conf(config)
}

/// A refresh inside an invocation obeys its deadline: a slow S3 neither delays the
/// answer (the previous list is kept, the refresh given a quarter of the time left) nor,
/// with no list yet, holds the invocation past its deadline.
#[test]
fn a_refresh_obeys_the_invocation_deadline() {
    use common::receiver::{Receiver, Reply};
    let slow = Reply::Trickle {
        chunk: "# slow\n".into(),
        times: 600,
        pause: Duration::from_millis(100),
    };
    let rx = Receiver::start(
        vec![Reply::Status {
            code: 200,
            headers: vec![("ETag".into(), "\"v1\"".into())],
            body: "203.0.113.9,c2\n".into(),
        }],
        slow.clone(),
    );
    let source = || Location::S3 {
        bucket: "lists".into(),
        key: "feed.txt".into(),
    };
    let intel = ThreatIntel::new(
        source(),
        Duration::from_millis(200),
        Some(slow_s3(&rx.base)),
    );
    let list = block_on(intel.current(None)).unwrap();
    assert_eq!(label(&list, "203.0.113.9").as_deref(), Some("c2"));
    std::thread::sleep(Duration::from_millis(300));
    let started = std::time::Instant::now();
    let deadline = started + Duration::from_secs(2);
    let kept = block_on(intel.current(Some(deadline))).unwrap();
    assert_eq!(label(&kept, "203.0.113.9").as_deref(), Some("c2"));
    let took = started.elapsed();
    assert!(took < Duration::from_millis(1200), "took {took:?}");

    let fresh = ThreatIntel::new(source(), Duration::from_secs(900), Some(slow_s3(&rx.base)));
    let started = std::time::Instant::now();
    let e = block_on(fresh.current(Some(started + Duration::from_secs(1)))).unwrap_err();
    assert!(e.contains("not read in time"), "{e}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
}
