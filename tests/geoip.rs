//! GEOIP_DATABASE and GEOIP_ASN_DATABASE: where the source and destination are, from
//! MaxMind DB files the tests write with mmdb-writer, under the names Elastic's AWS
//! integration gives them (`source.geo.*`, `source.as.*`); databases that cannot be used
//! refused at start or, read again, replaced only by a working one.

mod common;

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use flowlog_forwarder::config::Config;
use flowlog_forwarder::geoip::GeoIpSources;
use flowlog_forwarder::reload::Reloadable;
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_flowlog-forwarder");

const LINES: &str =
    "2 123456789012 eni-1 203.0.113.9 10.0.0.1 443 40000 6 10 6000 1700000000 1700000060 ACCEPT OK
2 123456789012 eni-1 2001:db8:1::5 203.0.113.7 443 40000 6 10 6000 1700000000 1700000060 ACCEPT OK
2 123456789012 eni-1 198.51.100.1 192.168.0.1 443 40000 6 10 6000 1700000000 1700000060 ACCEPT OK
";

fn process(env: &[(&str, &Path)], extra: &[(&str, &str)]) -> Output {
    let input = common::input_file("flows.log", LINES);
    let mut cmd = Command::new(BIN);
    cmd.arg("process").arg(&input);
    common::delivery_env(&mut cmd, &[]);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.envs(extra.iter().copied());
    cmd.output().unwrap()
}

#[test]
fn ecs_documents_carry_geo_and_as_under_the_integration_names() {
    let (city, asn) = (common::mmdb("city"), common::mmdb("asn"));
    let out = process(
        &[("GEOIP_DATABASE", &city), ("GEOIP_ASN_DATABASE", &asn)],
        &[],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let docs = common::stdout_docs(&out);
    assert_eq!(docs.len(), 3);
    let geo = &docs[0]["source"]["geo"];
    assert_eq!(geo["city_name"], "Sydney");
    assert_eq!(geo["country_iso_code"], "AU");
    assert_eq!(geo["country_name"], "Australia");
    assert_eq!(geo["continent_name"], "Oceania");
    assert_eq!(geo["region_iso_code"], "AU-NSW");
    assert_eq!(geo["region_name"], "New South Wales");
    assert_eq!(geo["location"]["lat"], -33.8688);
    assert_eq!(geo["location"]["lon"], 151.2093);
    assert_eq!(docs[0]["source"]["as"]["number"], 64500);
    assert_eq!(
        docs[0]["source"]["as"]["organization"]["name"],
        "Example Net \"AU\""
    );
    // A private address is in no database: nothing is added.
    assert!(docs[0]["destination"].get("geo").is_none());
    assert!(docs[0]["destination"].get("as").is_none());
    // IPv6, and the destination side.
    assert_eq!(docs[1]["source"]["geo"]["city_name"], "Zürich");
    assert_eq!(docs[1]["source"]["as"]["number"], 64501);
    assert_eq!(docs[1]["destination"]["geo"]["city_name"], "Sydney");
    // An address the databases do not hold.
    assert!(docs[2]["source"].get("geo").is_none());
    assert!(docs[2]["source"].get("as").is_none());
    // Without the databases, the same documents have none of it.
    let plain = common::stdout_docs(&process(&[], &[]));
    assert!(plain[0]["source"].get("geo").is_none());
}

#[test]
fn a_country_database_gives_the_country_and_continent() {
    let country = common::mmdb("country");
    let out = process(&[("GEOIP_DATABASE", &country)], &[]);
    assert!(out.status.success());
    let docs = common::stdout_docs(&out);
    let geo = &docs[0]["source"]["geo"];
    assert_eq!(geo["country_iso_code"], "AU");
    assert_eq!(geo["continent_name"], "Oceania");
    assert!(geo.get("city_name").is_none() && geo.get("location").is_none());
    assert!(docs[0]["source"].get("as").is_none());
}

#[test]
fn ocsf_endpoints_carry_a_location_and_asn_enrichments() {
    let (city, asn) = (common::mmdb("city"), common::mmdb("asn"));
    let out = process(
        &[("GEOIP_DATABASE", &city), ("GEOIP_ASN_DATABASE", &asn)],
        &[("OUTPUT_SCHEMA", "ocsf")],
    );
    assert!(out.status.success());
    let events = common::stdout_docs(&out);
    let location = &events[0]["src_endpoint"]["location"];
    assert_eq!(location["city"], "Sydney");
    assert_eq!(location["country"], "AU");
    assert_eq!(location["region"], "NSW");
    assert_eq!(location["continent"], "Oceania");
    assert_eq!(location["postal_code"], "2000");
    // OCSF coordinates are [longitude, latitude].
    assert_eq!(
        location["coordinates"],
        serde_json::json!([151.2093, -33.8688])
    );
    assert!(events[0]["dst_endpoint"].get("location").is_none());
    let enrichments = events[1]["enrichments"].as_array().unwrap();
    let asns: Vec<(&Value, &Value)> = enrichments
        .iter()
        .filter(|e| e["type"] == "asn")
        .map(|e| (&e["name"], &e["data"]["number"]))
        .collect();
    assert_eq!(asns.len(), 2, "{enrichments:?}");
    assert_eq!(
        asns[0],
        (&Value::from("src_endpoint.ip"), &Value::from(64501))
    );
    assert_eq!(
        asns[1],
        (&Value::from("dst_endpoint.ip"), &Value::from(64500))
    );
}

#[test]
fn databases_that_cannot_be_used_stop_the_run() {
    let dir = common::scratch_dir();
    std::fs::create_dir_all(dir).unwrap();
    let text = dir.join("not-a-database.mmdb");
    std::fs::write(&text, "10.0.0.0/8\n").unwrap();
    let asn = common::mmdb("asn");
    let city = common::mmdb("city");
    let missing = dir.join("missing.mmdb");
    for (variable, path, says) in [
        ("GEOIP_DATABASE", text.as_path(), "not a MaxMind DB file"),
        (
            "GEOIP_DATABASE",
            asn.as_path(),
            "database type is 'GeoLite2-ASN'",
        ),
        ("GEOIP_ASN_DATABASE", city.as_path(), "not ASN"),
        ("GEOIP_DATABASE", missing.as_path(), "missing.mmdb"),
        ("GEOIP_ASN_DATABASE", dir, "is a directory"),
    ] {
        let out = process(&[(variable, path)], &[]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{variable} {path:?}: {stderr}");
        assert!(stderr.contains(variable), "{stderr}");
        assert!(stderr.contains(says), "{says}: {stderr}");
        assert!(out.stdout.is_empty());
    }
}

#[test]
fn a_broken_reading_keeps_the_working_database() {
    let dir = common::scratch_dir();
    let path = dir.join("refreshed.mmdb");
    std::fs::copy(common::mmdb("city"), &path).unwrap();
    let config = Config::from_lookup(|k| match k {
        "GEOIP_DATABASE" => Some(path.to_string_lossy().into_owned()),
        "GEOIP_TTL_SECONDS" => Some("1".to_string()),
        _ => None,
    })
    .unwrap();
    let sources = GeoIpSources::new(&config.geoip, None).unwrap().unwrap();
    let kind = || {
        let geo = common::block_on(sources.current(None)).unwrap();
        geo.place.unwrap().describe()
    };
    assert!(kind().starts_with("GeoLite2-City"), "{}", kind());
    // Garbage, then a database of another kind: each refused, the city one kept.
    for replacement in [
        b"garbage".to_vec(),
        std::fs::read(common::mmdb("asn")).unwrap(),
    ] {
        std::fs::write(&path, replacement).unwrap();
        std::thread::sleep(Duration::from_millis(1100));
        assert!(kind().starts_with("GeoLite2-City"), "{}", kind());
    }
    // A working database replaces it.
    std::fs::copy(common::mmdb("country"), &path).unwrap();
    std::thread::sleep(Duration::from_millis(1100));
    assert!(kind().starts_with("GeoLite2-Country"), "{}", kind());
}

#[test]
fn the_handler_adds_geo_and_fails_invocations_without_a_database() {
    let dir = common::scratch_dir().join("s3");
    std::fs::create_dir_all(dir.join("b")).unwrap();
    std::fs::write(dir.join("b/flows.log"), LINES).unwrap();
    let event = serde_json::json!({"Records":[{"eventSource":"aws:s3","eventName":"ObjectCreated:Put",
        "s3":{"bucket":{"name":"b"},"object":{"key":"flows.log","eTag":"e"}}}]});
    let event_path = dir.join("event.json");
    std::fs::write(&event_path, event.to_string()).unwrap();
    let invoke = |database: &Path| {
        let mut cmd = Command::new(BIN);
        cmd.arg("invoke").arg(&event_path).arg("--s3-dir").arg(&dir);
        common::delivery_env(&mut cmd, &[]);
        cmd.env("GEOIP_DATABASE", database);
        cmd.output().unwrap()
    };
    let out = invoke(&common::mmdb("city"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let docs = common::stdout_docs(&out);
    assert_eq!(docs[0]["source"]["geo"]["city_name"], "Sydney");
    // A file that is no database: the invocation fails (its records are retried).
    let broken = dir.join("broken.mmdb");
    std::fs::write(&broken, "garbage").unwrap();
    let out = invoke(&broken);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("GeoIpUnavailable"), "{stderr}");
    assert!(out.stdout.is_empty());
}
