//! Parse + filter + normalize + serialize throughput, one core, for the default
//! 14-field format and the 29-field v5 format, as ECS and as OCSF, with REJECT
//! attribution (the default) and without.
//! `cargo bench --bench pipeline`.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use flowlog_forwarder::config::{OutputSchema, RecordSettings};
use flowlog_forwarder::context::Origin;
use flowlog_forwarder::filter::Filter;
use flowlog_forwarder::flowlog::Schema;
use flowlog_forwarder::ids::IdSeed;
use flowlog_forwarder::json::Document;
use flowlog_forwarder::pipeline::{Lookups, UnitProcessor};
use flowlog_forwarder::source::SourceLine;
use flowlog_forwarder::threat_intel::ThreatList;
use std::sync::Arc;

const V5: &str = "version account-id interface-id srcaddr dstaddr srcport dstport protocol packets bytes start end action log-status vpc-id subnet-id instance-id tcp-flags type pkt-srcaddr pkt-dstaddr region az-id sublocation-type sublocation-id pkt-src-aws-service pkt-dst-aws-service flow-direction traffic-path";

fn lines(v5: bool, n: usize) -> Vec<String> {
    (0..n)
        .map(|i| {
            let src = format!("10.{}.{}.{}", i % 7, (i / 7) % 250, i % 251);
            let dst = format!("203.0.{}.{}", (i / 3) % 256, i % 254 + 1);
            let base = format!(
                "{} 123456789012 eni-0a1b2c3d4e5f60718 {src} {dst} {} 443 6 {} {} {} {} {} OK",
                if v5 { 5 } else { 2 },
                1024 + i % 60000,
                i % 200 + 1,
                (i % 200 + 1) * 512,
                1_700_000_000 + i as u64,
                1_700_000_060 + i as u64,
                if i % 5 == 0 { "REJECT" } else { "ACCEPT" },
            );
            if v5 {
                format!("{base} vpc-0abc1234def567890 subnet-0123456789abcdef0 i-0fedcba9876543210 19 IPv4 {src} {dst} eu-west-1 euw1-az1 - - - S3 egress 8")
            } else {
                base
            }
        })
        .collect()
}

fn bench_format(
    c: &mut Criterion,
    name: &str,
    schema: Schema,
    output_schema: OutputSchema,
    reject_attribution: bool,
    threats: Option<Arc<ThreatList>>,
    input: &[String],
) {
    let settings = RecordSettings {
        schema,
        filter: Filter::default(),
        include_original: false,
        output_schema,
        reject_attribution,
        hec_line: false,
        data_stream: String::new(),
        aggregate: None,
        trim: None,
    };
    let mut group = c.benchmark_group("parse_normalize_serialize");
    group.throughput(Throughput::Elements(input.len() as u64));
    group.bench_function(name, |b| {
        // As the pipeline does: each document is written into a buffer of its own, then
        // appended to a batch of BATCH_MAX_BYTES (1 MB by default), which the sink takes.
        let mut doc = Document::new();
        let mut batch = Vec::with_capacity(1 << 20);
        b.iter(|| {
            let mut unit = UnitProcessor::new(
                &settings,
                Origin::s3("bucket", "key.log.gz"),
                IdSeed::new(&["s3", "bucket", "key"]),
            )
            .with_lookups(&Lookups {
                threats: threats.clone(),
                ..Lookups::default()
            });
            let mut total = 0;
            for (i, line) in input.iter().enumerate() {
                let line = SourceLine {
                    number: i as u64 + 1,
                    bytes: line.as_bytes(),
                    too_long: None,
                };
                unit.process_line(&line, &mut doc);
                if batch.len() + doc.len() > batch.capacity() {
                    batch.clear();
                }
                batch.extend_from_slice(doc.as_bytes());
                total += doc.len();
            }
            // The held REJECT records (REJECT_ATTRIBUTION) leave at the unit's end.
            let _ = unit.release_held(&mut doc, true, |doc, _, _| {
                if batch.len() + doc.len() > batch.capacity() {
                    batch.clear();
                }
                batch.extend_from_slice(doc.as_bytes());
                total += doc.len();
                Ok(())
            });
            std::hint::black_box(&batch);
            total
        })
    });
    group.finish();
}

fn benches(c: &mut Criterion) {
    let (default, v5) = (lines(false, 10_000), lines(true, 10_000));
    let v5_schema = Schema::parse_format(V5).unwrap();
    for (suffix, output) in [("", OutputSchema::Ecs), ("_ocsf", OutputSchema::Ocsf)] {
        let name = format!("default_14_fields{suffix}");
        bench_format(c, &name, Schema::default_v2(), output, true, None, &default);
        let name = format!("v5_29_fields{suffix}");
        bench_format(c, &name, v5_schema.clone(), output, true, None, &v5);
    }
    // REJECT_ATTRIBUTION=false: what attribution costs (a fifth of the records are
    // REJECTs, held and read again at the unit's end).
    let (name, schema) = ("default_14_fields_no_attribution", Schema::default_v2());
    bench_format(c, name, schema, OutputSchema::Ecs, false, None, &default);
    // THREAT_INTEL_URI with 100,000 entries (about 1 % of the records match).
    let list = Arc::new(ThreatList::parse(&threat_list(100_000), "bench").expect("a valid list"));
    let (name, schema) = ("default_14_fields_threat_list_100k", Schema::default_v2());
    bench_format(
        c,
        name,
        schema,
        OutputSchema::Ecs,
        true,
        Some(list),
        &default,
    );

    let text = threat_list(1_000_000);
    let mut group = c.benchmark_group("threat_list");
    group.sample_size(10);
    group.throughput(Throughput::Elements(1_000_000));
    group.bench_function("load_1m_entries", |b| {
        b.iter(|| ThreatList::parse(&text, "bench").map(|l| l.len()))
    });
    group.finish();
}

/// A threat list of `n` entries: public /32s spread over the address space (a
/// deterministic sequence), every 50th a /24, and 203.0.7.0/24 (which holds some of
/// the benchmark's destinations).
fn threat_list(n: usize) -> String {
    let mut text = String::from("# bench feed\n203.0.7.0/24,bench\n");
    let mut x: u32 = 0x9e37_79b9;
    for i in 0..n.saturating_sub(1) {
        x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        let a = (x >> 24).clamp(11, 223);
        let ip = std::net::Ipv4Addr::new(a as u8, (x >> 16) as u8, (x >> 8) as u8, x as u8);
        if i % 50 == 0 {
            text.push_str(&format!(
                "{}/24,feed\n",
                std::net::Ipv4Addr::from(u32::from(ip) & !0xff)
            ));
        } else {
            text.push_str(&format!("{ip}\n"));
        }
    }
    text
}

criterion_group!(pipeline, benches);
criterion_main!(pipeline);
