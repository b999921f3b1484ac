//! Parquet flow log objects: files written with the parquet crate's writer (AWS column
//! names and types, nulls, several row groups, Transit Gateway columns) give the same
//! documents as the same records in text; through moto and the handler with ranged
//! reads; corrupt files are clear errors naming the object and column.

mod common;

use std::process::Command;

use common::moto::{moto, put_objects};
use common::parquet_file::{parquet_file, parquet_file_encoded, Dictionary, T, V5};
use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_flowlog-forwarder");

fn temp(name: &str, bytes: &[u8]) -> String {
    let dir = common::scratch_dir().to_path_buf();
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path.to_string_lossy().into_owned()
}

fn process(args: &[&str]) -> (std::process::Output, Vec<Value>) {
    process_with(args, &[])
}

/// `process` with environment variables set.
fn process_with(args: &[&str], env: &[(&str, &str)]) -> (std::process::Output, Vec<Value>) {
    process_on(Cpus::All, args, env)
}

/// Which CPUs `process` runs on: with one, Parquet batches are decoded on the thread
/// that reads the rows rather than on a thread of their own.
#[derive(Clone, Copy, Debug)]
enum Cpus {
    All,
    One,
}

fn process_on(
    cpus: Cpus,
    args: &[&str],
    env: &[(&str, &str)],
) -> (std::process::Output, Vec<Value>) {
    let mut command = match cpus {
        Cpus::All => Command::new(BIN),
        Cpus::One => {
            let mut taskset = Command::new("taskset");
            taskset.args(["--cpu-list", "0", BIN]);
            taskset
        }
    };
    let out = command
        .arg("process")
        .args(args)
        .env_remove("DESTINATION_URL")
        .env_remove("LOG_FORMAT")
        .envs(env.iter().copied())
        .output()
        .unwrap();
    let docs = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    (out, docs)
}

/// A document without what depends on the file rather than the record.
fn comparable(mut d: Value) -> Value {
    d.as_object_mut().unwrap().remove("log");
    d["event"].as_object_mut().unwrap().remove("id");
    d
}

/// A text flow log file of `rows` in the v5 format of `V5` (with its header line).
fn v5_text_file(name: &str, rows: &[String]) -> String {
    let header: Vec<String> = V5.iter().map(|(n, _)| n.replace('_', "-")).collect();
    let text = format!("{}\n{}\n", header.join(" "), rows.join("\n"));
    temp(name, text.as_bytes())
}

fn v5_rows() -> Vec<String> {
    (0..10)
        .map(|i| {
            if i == 4 {
                // NODATA: nulls in most columns.
                return "5 123456789012 eni-1 - - - - - - - 1700000000 1700000060 - NODATA vpc-1 subnet-1 - - - - - eu-west-1 euw1-az1 - - - - - - -".to_string();
            }
            format!(
                "5 123456789012 eni-1 10.0.0.{i} 2001:db8::{i} {} 443 6 {} {} 1700000000 1700000060 {} OK vpc-1 subnet-1 i-0abc {} IPv6 10.0.0.{i} 52.95.128.{i} eu-west-1 euw1-az1 - - {} - {} {} extra-{i}",
                1024 + i,
                i + 1,
                (i + 1) * 60,
                if i % 3 == 0 { "REJECT" } else { "ACCEPT" },
                i % 32,
                if i % 2 == 0 { "S3" } else { "-" },
                if i % 2 == 0 { "egress" } else { "ingress" },
                if i % 2 == 0 { "8" } else { "-" },
            )
        })
        .collect()
}

#[test]
fn parquet_and_text_give_the_same_documents() {
    let rows = v5_rows();
    let text = v5_text_file("v5.log", &rows);
    let split: Vec<Vec<&str>> = rows.iter().map(|r| r.split(' ').collect()).collect();
    let pq = temp("v5.log.parquet", &parquet_file(V5, &split, 3));
    let (out_text, text_docs) = process(&[&text]);
    let (out_pq, pq_docs) = process(&[&pq]);
    assert!(
        out_text.status.success() && out_pq.status.success(),
        "{}",
        String::from_utf8_lossy(&out_pq.stderr)
    );
    assert_eq!(pq_docs.len(), 10);
    assert!(String::from_utf8_lossy(&out_pq.stderr)
        .contains("summary read=10 forwarded=10 filtered=0 malformed=0"));
    let ids = |docs: &[Value]| -> Vec<String> {
        docs.iter().map(|d| d["event"]["id"].to_string()).collect()
    };
    let pq_ids = ids(&pq_docs);
    for (t, p) in text_docs.into_iter().zip(pq_docs) {
        assert_eq!(comparable(t), comparable(p));
    }
    // Ids come from row numbers, which run on across row groups: unique and stable.
    let (_, again) = process(&[&pq]);
    assert_eq!(ids(&again), pq_ids);
    let mut unique = pq_ids.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), pq_ids.len());
}

#[test]
fn transit_gateway_columns_and_int64_protocol() {
    let cols: &[(&str, T)] = &[
        ("version", T::I32),
        ("resource_type", T::Str),
        ("account_id", T::Str),
        ("tgw_id", T::Str),
        ("tgw_attachment_id", T::Str),
        ("srcaddr", T::Str),
        ("dstaddr", T::Str),
        ("srcport", T::I32),
        ("dstport", T::I32),
        ("protocol", T::I64),
        ("packets", T::I64),
        ("bytes", T::I64),
        ("start", T::I64),
        ("end", T::I64),
        ("log_status", T::Str),
        ("packets_lost_no_route", T::I64),
    ];
    let row = "6 TransitGateway 123456789012 tgw-1 tgw-attach-1 10.0.1.15 10.1.2.20 43210 5432 6 12 3400 1732435200 1732435260 OK 3";
    let pq = temp(
        "tgw.log.parquet",
        &parquet_file(cols, &[row.split(' ').collect()], 10),
    );
    let (out, docs) = process(&[&pq]);
    assert!(out.status.success());
    let d = &docs[0];
    assert_eq!(d["cloud"]["service"]["name"], "transitgateway");
    assert_eq!(d["network"]["transport"], "tcp");
    assert_eq!(d["aws"]["vpcflow"]["packets_lost_no_route"], "3");
    assert_eq!(d["aws"]["vpcflow"]["tgw_attachment_id"], "tgw-attach-1");
}

#[test]
fn parquet_from_standard_input() {
    let rows = v5_rows();
    let split: Vec<Vec<&str>> = rows.iter().map(|r| r.split(' ').collect()).collect();
    let bytes = parquet_file(V5, &split, 4);
    let mut child = Command::new(BIN)
        .args(["process", "-"])
        .env_remove("DESTINATION_URL")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), &bytes).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 10);
}

#[test]
fn corrupt_parquet_is_a_clear_error() {
    let rows = v5_rows();
    let split: Vec<Vec<&str>> = rows.iter().map(|r| r.split(' ').collect()).collect();
    let good = parquet_file(V5, &split, 5);

    let truncated = temp("truncated.log.parquet", &good[..good.len() - 12]);
    let (out, _) = process(&[&truncated]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("truncated.log.parquet") && err.contains("Parquet"),
        "{err}"
    );

    let mut bad_magic = good.clone();
    let n = bad_magic.len();
    bad_magic[n - 4..].copy_from_slice(b"XXXX");
    let (out, _) = process(&[&temp("magic.log.parquet", &bad_magic)]);
    assert_eq!(out.status.code(), Some(1));

    let wrong_type = parquet_file(
        &[("srcaddr", T::I64), ("dstport", T::I32)],
        &[vec!["1", "2"]],
        5,
    );
    let (out, _) = process(&[&temp("type.log.parquet", &wrong_type)]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("column 'srcaddr' has type INT64"), "{err}");

    let double = parquet_file(
        &[("srcaddr", T::Str), ("bytes", T::F64)],
        &[vec!["1.2.3.4", "2.5"]],
        5,
    );
    let (out, _) = process(&[&temp("double.log.parquet", &double)]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("column 'bytes' has type DOUBLE"));
}

/// A binary column (no STRING annotation, so not checked by the reader) with bytes that
/// are not UTF-8: the object fails, naming the row and column; the rows of the row
/// group before it went out.
#[test]
fn binary_column_with_invalid_utf8_names_row_and_column() {
    use parquet::data_type::ByteArray;
    use parquet::file::properties::WriterProperties;
    use parquet::file::writer::SerializedFileWriter;
    use parquet::schema::parser::parse_message_type;
    let schema = parse_message_type(
        "message flowlogs { optional int32 srcport; optional binary log_status; }",
    )
    .unwrap();
    let props = WriterProperties::builder()
        .set_max_row_group_size(600)
        .build();
    let mut writer = SerializedFileWriter::new(Vec::new(), schema.into(), props.into()).unwrap();
    for group_start in [0, 600] {
        let mut group = writer.next_row_group().unwrap();
        let ports: Vec<i32> = (group_start..group_start + 600).collect();
        let mut col = group.next_column().unwrap().unwrap();
        col.typed::<parquet::data_type::Int32Type>()
            .write_batch(&ports, Some(&[1; 600]), None)
            .unwrap();
        col.close().unwrap();
        let status: Vec<ByteArray> = ports
            .iter()
            .map(|p| match p {
                1100 => ByteArray::from(vec![b'O', 0xff, 0xfe]),
                _ => ByteArray::from("OK"),
            })
            .collect();
        let mut col = group.next_column().unwrap().unwrap();
        col.typed::<parquet::data_type::ByteArrayType>()
            .write_batch(&status, Some(&[1; 600]), None)
            .unwrap();
        col.close().unwrap();
        group.close().unwrap();
    }
    let file = temp("binary.log.parquet", &writer.into_inner().unwrap());
    let (out, docs) = process(&[&file]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("binary.log.parquet")
            && err.contains("row 1101, column 'log_status': string value is not valid UTF-8"),
        "{err}"
    );
    assert_eq!(common::assert_accounting(&err), 1);
    assert!(err.contains("input_errors=1"), "{err}");
    // The first row group went out; the object is reported failed (so retried whole,
    // with the same event ids), the decoded batch holding the bad value with it.
    assert_eq!(docs.len(), 600);
    assert_eq!(docs[599]["source"]["port"], json!(599));
}

/// Many rows (several decoded batches in each row group, decoded on their own thread):
/// every row comes out once, in order, with `event.original` as its values joined by
/// spaces; rows with invalid values become failure documents naming row and field.
#[test]
fn rows_of_many_batches_in_order_with_originals_and_failures() {
    // Row groups of 4,500 and 500 rows: the first is decoded in five batches.
    let rows: Vec<String> = (0..5000)
        .map(|i| {
            let srcport = match i {
                2100 => "70000".to_string(),
                4750 => "-1".to_string(),
                _ => (i % 65536).to_string(),
            };
            let action = if i % 7 == 0 { "-" } else { "ACCEPT" };
            format!("2 123456789012 eni-{i} 10.0.{}.{} 10.1.0.1 {srcport} 443 6 {} 100 1700000000 1700000060 {action} OK", i / 256, i % 256, i + 1)
        })
        .collect();
    let split: Vec<Vec<&str>> = rows.iter().map(|r| r.split(' ').collect()).collect();
    let pq = temp("many.log.parquet", &parquet_file(&V5[..14], &split, 4500));
    for cpus in [Cpus::All, Cpus::One] {
        let (out, docs) = process_on(cpus, &[&pq], &[("INCLUDE_ORIGINAL", "true")]);
        check_many_batches(cpus, &out, &docs, &rows);
    }
}

fn check_many_batches(cpus: Cpus, out: &std::process::Output, docs: &[Value], rows: &[String]) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{cpus:?}: {stderr}");
    assert_eq!(common::assert_accounting(&stderr), 1);
    assert!(
        stderr.contains("summary read=5000 forwarded=5000 filtered=0 malformed=2"),
        "{stderr}"
    );
    assert_eq!(docs.len(), 5000);
    for (i, (doc, row)) in docs.iter().zip(rows).enumerate() {
        assert_eq!(doc["event"]["original"], json!(row), "row {}", i + 1);
        if i == 2100 || i == 4750 {
            assert_eq!(doc["tags"], json!(["_flowlog_parse_failure"]));
            let message = doc["error"]["message"].as_str().unwrap();
            assert!(
                message.starts_with(&format!("row {}: field 'srcport'", i + 1)),
                "{message}"
            );
        } else {
            assert_eq!(doc["source"]["port"], json!(i % 65536), "row {}", i + 1);
            assert_eq!(
                doc["aws"]["vpcflow"]["interface_id"],
                json!(format!("eni-{i}"))
            );
        }
    }
}

/// v5 rows (and an unknown column) whose values repeat as flow logs' do: one account,
/// runs of the same interface, action, ports and direction, nulls between values;
/// every address distinct.
fn repeating_rows(n: usize) -> Vec<String> {
    (0..n)
        .map(|i| {
            let or_null = |null: bool, v: String| if null { "-".to_string() } else { v };
            [
                "5".to_string(),
                "123456789012".to_string(),
                format!("eni-{}", i / 1000),
                format!("10.{}.{}.{}", i >> 16, (i >> 8) & 255, i & 255),
                format!("2001:db8::{i:x}"),
                or_null(i % 7 == 0, (1024 + i / 50).to_string()),
                if (i / 100) % 2 == 0 { "443" } else { "80" }.to_string(),
                or_null(i % 97 == 0, "6".to_string()),
                (i % 5 + 1).to_string(),
                ((i % 5 + 1) * 60).to_string(),
                (1_700_000_000 + i / 100).to_string(),
                (1_700_000_060 + i / 100).to_string(),
                if (i / 10) % 3 == 0 {
                    "REJECT"
                } else {
                    "ACCEPT"
                }
                .to_string(),
                "OK".to_string(),
                "vpc-1".to_string(),
                format!("subnet-{}", i / 500),
                or_null(i % 3 == 0, "i-0abc".to_string()),
                ((i % 4) * 2).to_string(),
                "IPv6".to_string(),
                format!("10.{}.{}.{}", i >> 16, (i >> 8) & 255, i & 255),
                or_null(i % 2 == 0, format!("52.95.{}.{}", (i >> 8) & 255, i & 255)),
                "eu-west-1".to_string(),
                format!("euw1-az{}", (i / 300) % 3 + 1),
                "-".to_string(),
                "-".to_string(),
                or_null(i % 11 != 0, "S3".to_string()),
                "-".to_string(),
                if (i / 20) % 2 == 0 {
                    "ingress"
                } else {
                    "egress"
                }
                .to_string(),
                or_null(i % 2 == 1, (i % 8 + 1).to_string()),
                format!("x-{}", i % 5),
            ]
            .join(" ")
        })
        .collect()
}

/// String columns are read as dictionary arrays when their pages are all
/// dictionary-encoded, as string views (short values held in the view, longer ones
/// pointing into the page) when not, and rows repeating the row before share its text:
/// with
/// dictionary pages, plain pages, and dictionaries that fall back to plain pages within
/// a column chunk, over several decoded batches and row groups, every document is the
/// one the same record gives as text.
#[test]
fn dictionary_plain_and_fallback_pages_give_the_text_documents() {
    use parquet::basic::{Encoding, PageType};
    use parquet::file::reader::{FileReader, SerializedFileReader};
    let rows = repeating_rows(5000);
    let text = v5_text_file("repeating.log", &rows);
    let (out, text_docs) = process(&[&text]);
    assert!(out.status.success());
    assert_eq!(text_docs.len(), 5000);
    let split: Vec<Vec<&str>> = rows.iter().map(|r| r.split(' ').collect()).collect();
    for dictionary in [Dictionary::On, Dictionary::Off, Dictionary::Small] {
        let bytes = parquet_file_encoded(V5, &split, 4500, dictionary);
        // The premise: which data pages the srcaddr chunk (4,500 distinct values) has.
        let reader = SerializedFileReader::new(bytes::Bytes::from(bytes.clone())).unwrap();
        let stats = reader
            .metadata()
            .row_group(0)
            .column(3)
            .page_encoding_stats();
        let data_pages: Vec<Encoding> = stats
            .unwrap()
            .iter()
            .filter(|s| s.page_type == PageType::DATA_PAGE)
            .map(|s| s.encoding)
            .collect();
        let dictionary_pages = data_pages
            .iter()
            .any(|e| matches!(e, Encoding::RLE_DICTIONARY | Encoding::PLAIN_DICTIONARY));
        let plain_pages = data_pages.contains(&Encoding::PLAIN);
        match dictionary {
            Dictionary::On => assert!(dictionary_pages && !plain_pages, "{data_pages:?}"),
            Dictionary::Off => assert!(!dictionary_pages && plain_pages, "{data_pages:?}"),
            Dictionary::Small => assert!(dictionary_pages && plain_pages, "{data_pages:?}"),
        }
        let file = temp(&format!("repeating-{dictionary:?}.log.parquet"), &bytes);
        for cpus in [Cpus::All, Cpus::One] {
            let (out, pq_docs) = process_on(cpus, &[&file], &[]);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(out.status.success(), "{dictionary:?}, {cpus:?}: {stderr}");
            assert!(
                stderr.contains("summary read=5000 forwarded=5000 filtered=0 malformed=0"),
                "{dictionary:?}, {cpus:?}: {stderr}"
            );
            assert_eq!(pq_docs.len(), 5000, "{dictionary:?}, {cpus:?}");
            for (i, (t, p)) in text_docs.iter().zip(pq_docs).enumerate() {
                assert_eq!(
                    comparable(t.clone()),
                    comparable(p),
                    "{dictionary:?}, {cpus:?}, row {}",
                    i + 1
                );
            }
        }
    }
}

#[test]
fn a_damaged_row_group_fails_the_object_and_the_others_are_still_read() {
    use parquet::file::reader::{FileReader, SerializedFileReader};
    let rows: Vec<String> = (0..8).flat_map(|_| v5_rows()).collect();
    let split: Vec<Vec<&str>> = rows.iter().map(|r| r.split(' ').collect()).collect();
    let mut bytes = parquet_file(V5, &split, 10);
    let reader = SerializedFileReader::new(bytes::Bytes::from(bytes.clone())).unwrap();
    assert_eq!(reader.metadata().num_row_groups(), 8);
    // Garble the page header of the first column of row group 5.
    let at = reader.metadata().row_group(5).column(0).data_page_offset() as usize;
    bytes[at..at + 8].copy_from_slice(&[0xff; 8]);
    let damaged = temp("damaged.log.parquet", &bytes);
    for cpus in [Cpus::All, Cpus::One] {
        let (out, docs) = process_on(cpus, &[&damaged], &[]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{cpus:?}: {err}");
        assert!(err.contains("damaged.log.parquet"), "{err}");
        assert_eq!(common::assert_accounting(&err), 1);
        // The row groups read before the error went out, as lines before a read error do.
        assert_eq!(docs.len(), 50, "{cpus:?}");
    }
}

fn invoke(event: &Value) -> (std::process::Output, Vec<Value>, Value) {
    let path = temp(
        &format!(
            "event-{}.json",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ),
        event.to_string().as_bytes(),
    );
    let out = Command::new(BIN)
        .args(["invoke", &path])
        .env_remove("DESTINATION_URL")
        .envs(moto().env())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(common::assert_accounting(&stderr), 1, "{stderr}");
    let docs = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    (
        out,
        docs,
        serde_json::from_str(stderr.lines().last().unwrap()).unwrap(),
    )
}

#[test]
fn parquet_objects_through_s3_and_the_handler() {
    let rows = v5_rows();
    let split: Vec<Vec<&str>> = rows.iter().map(|r| r.split(' ').collect()).collect();
    let good = parquet_file(V5, &split, 3);
    let key = "AWSLogs/aws-account-id=123456789012/aws-service=vpcflowlogs/aws-region=eu-west-1/year=2024/month=11/day=24/hour=08/123456789012_vpcflowlogs_eu-west-1_fl-1_20241124T0800Z_hash.log.parquet";
    put_objects(
        "parquet-objects",
        &[
            (key, good.clone()),
            ("broken.log.parquet", good[..good.len() - 12].to_vec()),
        ],
    );
    let body = |k: &str| {
        json!({"Records":[{"eventSource":"aws:s3","eventName":"ObjectCreated:Put","s3":{"bucket":{"name":"parquet-objects"},"object":{"key":k,"eTag":"e"}}}]}).to_string()
    };
    let event = json!({"Records":[
        {"messageId":"good","body":body(key),"eventSource":"aws:sqs"},
        {"messageId":"broken","body":body("broken.log.parquet"),"eventSource":"aws:sqs"}]});
    let (out, docs, response) = invoke(&event);
    assert!(out.status.success());
    assert_eq!(
        response,
        json!({"batchItemFailures":[{"itemIdentifier":"broken"}]})
    );
    assert_eq!(docs.len(), 10);
    assert_eq!(docs[0]["aws"]["s3"]["object"]["key"], key);
    assert_eq!(docs[0]["network"]["type"], "ipv4");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("s3://parquet-objects/broken.log.parquet"));
    // A row counts as many bytes in as the same record as a text line.
    let line_bytes: usize = rows.iter().map(String::len).sum();
    assert!(
        stderr.contains(&format!("\"BytesIn\":{line_bytes},")),
        "{line_bytes}: {stderr}"
    );
}
