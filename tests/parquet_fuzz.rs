//! Damaged Parquet objects: bytes flipped in every region of small valid
//! objects (footer, dictionary pages, data pages; gzip, snappy and uncompressed) never
//! let a panic out of the unit, and the unit's accounting stays whole: every record read
//! is in the batch, and an object that cannot be read to its end is an error.

mod common;

use common::parquet_file::{parquet_file_compressed, Compression, Dictionary, GzipLevel, T, V5};
use common::settings;
use flowlog_forwarder::context::Origin;
use flowlog_forwarder::ids::IdSeed;
use flowlog_forwarder::pipeline::{run_input, Output, UnitInput, UnitProcessor};
use flowlog_forwarder::sink::{Batch, BatchLimits};
use flowlog_forwarder::source::Limits;
use proptest::prelude::*;

/// The default format's columns, with AWS's Parquet types.
const COLUMNS: &[(&str, T)] = V5.split_at(14).0;

fn object(dictionary: Dictionary, compression: Compression) -> Vec<u8> {
    let rows: Vec<Vec<String>> = (0..60)
        .map(|i| {
            vec![
                "2".into(),
                "123456789012".into(),
                format!("eni-{}", i % 3),
                format!("10.0.{}.{}", i % 7, i),
                "198.51.100.7".into(),
                format!("{}", 40000 + i),
                "443".into(),
                "6".into(),
                format!("{}", i + 1),
                format!("{}", 60 * (i + 1)),
                "1700000000".into(),
                "1700000060".into(),
                if i % 5 == 0 { "REJECT" } else { "ACCEPT" }.into(),
                "OK".into(),
            ]
        })
        .collect();
    let rows: Vec<Vec<&str>> = rows
        .iter()
        .map(|r| r.iter().map(String::as_str).collect())
        .collect();
    parquet_file_compressed(COLUMNS, &rows, 25, dictionary, compression)
}

/// Runs `bytes` as one unit; the unit's error, records read and documents batched, and
/// how many of them are failure documents.
fn run(bytes: Vec<u8>) -> (Option<String>, u64, u64, u64) {
    let settings = settings(&[]);
    let mut unit = UnitProcessor::new(
        &settings,
        Origin::file("fuzz.parquet"),
        IdSeed::for_file("fuzz.parquet"),
    );
    let limits = BatchLimits::new(1 << 20, 10_000, 1);
    let mut batch = Batch::default();
    let mut emitted = 0u64;
    let mut emit = |b: Batch| {
        emitted += b.len() as u64;
        true
    };
    let mut out = Output::new(0, &limits, &mut batch, &mut emit);
    let input = UnitInput::Stream(Box::new(std::io::Cursor::new(bytes)));
    let result = run_input(input, &mut unit, Limits::default(), &mut out);
    drop(out);
    let documents = emitted + batch.len() as u64;
    let counts = unit.counts();
    (
        result.err().map(|e| e.to_string()),
        counts.read,
        documents,
        counts.malformed,
    )
}

fn variants() -> &'static [Vec<u8>] {
    static ALL: std::sync::OnceLock<Vec<Vec<u8>>> = std::sync::OnceLock::new();
    ALL.get_or_init(build_variants)
}

fn build_variants() -> Vec<Vec<u8>> {
    let mut all = Vec::new();
    for dictionary in [Dictionary::On, Dictionary::Off, Dictionary::Small] {
        for compression in [
            Compression::GZIP(GzipLevel::default()),
            Compression::SNAPPY,
            Compression::UNCOMPRESSED,
        ] {
            all.push(object(dictionary, compression));
        }
    }
    all
}

#[test]
fn the_undamaged_objects_read_whole() {
    for bytes in variants() {
        let (error, read, documents, malformed) = run(bytes.clone());
        assert_eq!(error, None);
        assert_eq!(malformed, 0);
        assert_eq!((read, documents), (60, 60));
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 400,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// Flips up to four bytes anywhere (the offsets are spread over the whole object:
    /// footer, page headers, dictionary and data pages).
    #[test]
    fn flipped_bytes_never_panic_out_of_the_unit(
        which in 0usize..9,
        flips in proptest::collection::vec((0.0f64..1.0, 1u8..=255), 1..=4),
    ) {
        let mut bytes = variants()[which].clone();
        let len = bytes.len();
        for (at, mask) in flips {
            let i = ((at * len as f64) as usize).min(len - 1);
            bytes[i] ^= mask;
        }
        let (error, read, documents, malformed) = run(bytes);
        if let Some(e) = &error {
            if e.contains("internal error") {
                eprintln!("caught: {e}");
            }
        }
        // Every record read is in the batch (a failure document or a record), and a
        // damaged object that was not read to its end says so (or was no longer Parquet
        // at all, its lines each a failure document).
        prop_assert_eq!(read, documents);
        if read < 60 {
            prop_assert!(
                error.is_some() || malformed == read,
                "{} records read, {} malformed, and no error", read, malformed
            );
        }
    }
}

/// The first single-byte flip (from the end: the pages before the footer) that makes a
/// decoder panic.
fn panicking_object() -> Vec<u8> {
    let base = &variants()[0];
    for i in (0..base.len()).rev() {
        let mut bytes = base.clone();
        bytes[i] ^= 0xff;
        let (error, ..) = run(bytes.clone());
        if error.is_some_and(|e| e.contains("internal error")) {
            return bytes;
        }
    }
    panic!("no single flip makes the decoder panic any more");
}

/// Through the real binary: one SQS message's object makes a decoder panic; the other
/// messages of the batch are delivered and acknowledged, the summary is printed and
/// consistent, and only that message is reported failed.
#[test]
fn a_panic_fails_only_its_own_message() {
    let dir = common::scratch_dir().to_path_buf();
    let bucket = dir.join("b");
    std::fs::create_dir_all(&bucket).unwrap();
    let text = "2 123456789012 eni-1 10.0.0.1 10.0.0.2 443 51000 6 10 840 1700000000 1700000060 ACCEPT OK\n";
    std::fs::write(bucket.join("good.log"), text.repeat(3)).unwrap();
    std::fs::write(bucket.join("bad.parquet"), panicking_object()).unwrap();
    std::fs::write(bucket.join("good.parquet"), &variants()[0]).unwrap();
    let message = |id: &str, key: &str| {
        let body = serde_json::json!({"Records":[{"eventSource":"aws:s3","eventName":"ObjectCreated:Put",
            "s3":{"bucket":{"name":"b"},"object":{"key":key,"eTag":"e"}}}]});
        serde_json::json!({"messageId": id, "eventSource": "aws:sqs", "body": body.to_string()})
    };
    let event = serde_json::json!({"Records":[
        message("m1", "good.log"), message("m2", "bad.parquet"), message("m3", "good.parquet")
    ]});
    let event_path = dir.join("event.json");
    std::fs::write(&event_path, event.to_string()).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_flowlog-forwarder"))
        .arg("invoke")
        .arg(&event_path)
        .arg("--s3-dir")
        .arg(&dir)
        .env_remove("DESTINATION_URL")
        .env_remove("AWS_LAMBDA_RUNTIME_API")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(common::assert_accounting(&stderr), 1, "{stderr}");
    let response: serde_json::Value = serde_json::from_str(stderr.lines().last().unwrap()).unwrap();
    assert_eq!(
        response,
        serde_json::json!({"batchItemFailures":[{"itemIdentifier":"m2"}]})
    );
    let documents: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let from = |key: &str| {
        documents
            .iter()
            .filter(|d| d["aws"]["s3"]["object"]["key"] == key)
            .count()
    };
    assert_eq!((from("good.log"), from("good.parquet")), (3, 60));
    assert!(stderr.contains("internal error while decoding"), "{stderr}");
}
