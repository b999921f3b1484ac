//! Issue 16: Parquet obeys the same limits as text. Hostile objects written with the
//! parquet crate's own writer: a small object whose dictionary value is referenced by
//! every row (output amplification), a huge compressible cell, and rows of large
//! values. Each is refused or bounded with a clear error, the accounting stays whole,
//! and the process's peak memory, as GNU time measures it, stays small.

mod common;

use std::process::Command;

use common::parquet_file::{parquet_file_encoded, Dictionary, T};

const BIN: &str = env!("CARGO_BIN_EXE_flowlog-forwarder");

const COLUMNS: &[(&str, T)] = &[
    ("srcaddr", T::Str),
    ("dstaddr", T::Str),
    ("action", T::Str),
    ("note", T::Str),
];

fn object(note: &str, rows: usize, dictionary: Dictionary) -> Vec<u8> {
    let rows: Vec<Vec<&str>> = (0..rows)
        .map(|_| vec!["10.0.0.1", "198.51.100.7", "ACCEPT", note])
        .collect();
    parquet_file_encoded(COLUMNS, &rows, 100_000, dictionary)
}

/// Peak RSS allowed: 64 MB plus the configured limits that size buffers (the longest
/// line, held as a failure document's start).
const PEAK_RSS: u64 = (64 << 20) + 2 * 256 * 1024;

/// Runs `process` on `bytes` under GNU time; its exit code, stderr and documents. Its
/// peak RSS is checked against PEAK_RSS.
fn process(name: &str, bytes: &[u8]) -> (Option<i32>, String, Vec<serde_json::Value>) {
    let dir = common::scratch_dir().to_path_buf();
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    let time = "/usr/bin/time";
    assert!(
        std::path::Path::new(time).exists(),
        "GNU time measures the peak RSS: apt-get install time"
    );
    let out = Command::new(time)
        .args(["-f", "peak_rss_kb=%M", BIN, "process"])
        .arg(&path)
        .env_remove("DESTINATION_URL")
        .env_remove("AWS_LAMBDA_RUNTIME_API")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(common::assert_accounting(&stderr), 1, "{stderr}");
    let peak: u64 = stderr
        .lines()
        .find_map(|l| l.strip_prefix("peak_rss_kb="))
        .and_then(|v| v.trim().parse().ok())
        .expect("GNU time's peak RSS");
    assert!(peak * 1024 < PEAK_RSS, "{name}: peak RSS {} MB", peak >> 10);
    let docs = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    (out.status.code(), stderr, docs)
}

#[test]
fn hostile_parquet_objects_are_bounded() {
    // 1. One 100 KB dictionary value referenced by 20,000 rows: 2 GB of documents from
    //    a few KB. Refused by the decompression ratio after about a MiB of text.
    let amplifier = object(&"ab".repeat(50_000), 20_000, Dictionary::On);
    assert!(amplifier.len() < 10_000, "{} bytes", amplifier.len());
    let (code, stderr, docs) = process("amplifier.parquet", &amplifier);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("MAX_DECOMPRESSION_RATIO"), "{stderr}");
    assert!(docs.len() < 50, "{} documents", docs.len());

    // 2. One 100 MB cell that compresses to a few hundred KB: the page that would hold
    //    it is refused before it is decompressed, naming the column.
    let cell = object(&"a".repeat(100 << 20), 1, Dictionary::Off);
    assert!(cell.len() < 400_000, "{} bytes", cell.len());
    let (code, stderr, docs) = process("cell.parquet", &cell);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("column 'note'"), "{stderr}");
    assert!(stderr.contains("decompresses to"), "{stderr}");
    assert!(docs.is_empty());

    // 3. Rows of 1 MB values (each within a page, incompressible): read in small
    //    batches, each row a failure document holding the start of its line
    //    (MAX_LINE_BYTES), to the end of the object.
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let noise: String = (0..1 << 20)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (b'a' + (state % 26) as u8) as char
        })
        .collect();
    let wide = object(&noise, 6, Dictionary::Off);
    let (code, stderr, docs) = process("wide.parquet", &wide);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(docs.len(), 6);
    for doc in &docs {
        assert!(common::is_failure(doc), "{doc}");
        let message = doc["error"]["message"].as_str().unwrap();
        assert!(message.contains("MAX_LINE_BYTES"), "{message}");
        assert!(doc["event"]["original"].as_str().unwrap().len() <= 256 * 1024);
    }

    // 4. The same huge value compressed 1000:1 in its page: refused by the ratio.
    let bomb = object(&"z".repeat(1 << 20), 6, Dictionary::Off);
    let (code, stderr, _) = process("bomb.parquet", &bomb);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("MAX_DECOMPRESSION_RATIO"), "{stderr}");
}
