//! ENRICH_ENI against the local moto server: a VPC, a subnet, security groups, an
//! interface with primary and secondary addresses and an instance's interface, created
//! with boto3. The real binary runs in Lambda mode (Runtime API on
//! 127.0.0.1), its EC2 requests passing through a counting proxy that can also answer
//! RequestLimitExceeded. Checks the direction, groups, VPC/subnet/instance fill-in,
//! caching across invocations (requests counted at the proxy), and throttling: records
//! go out unenriched, counted, none lost.

mod common;

use std::io::{BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use common::http::{read_request, RawRequest};
use common::moto::{moto, put_objects};
use common::parquet_file::{parquet_file, V5};
use common::receiver::{Receiver, Reply};
use common::runtime_api::{lambda_command, start_runtime_api, wait_for_results};
use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_flowlog-forwarder");

/// What the test created in EC2.
struct Network {
    vpc_id: String,
    subnet_id: String,
    /// Security groups of `eni`, in order.
    groups: Vec<String>,
    /// 10.0.1.10 (primary) and 10.0.1.11 (secondary), in 10.0.1.0/24 of 10.0.0.0/16.
    eni: String,
    /// The interface of `instance_id`.
    instance_eni: String,
    instance_ip: String,
    instance_id: String,
}

/// Creates the network in moto with boto3 (installed with moto[server]).
fn create_network() -> Network {
    let script = r#"
import json, sys, boto3
ec2 = boto3.client("ec2", endpoint_url=sys.argv[1], region_name="us-east-1",
                   aws_access_key_id="testing", aws_secret_access_key="testing")
vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.1.0/24")["Subnet"]["SubnetId"]
groups = [ec2.create_security_group(GroupName=f"{n}-{vpc}", Description=n, VpcId=vpc)["GroupId"]
          for n in ("web", "ssh")]
eni = ec2.create_network_interface(SubnetId=subnet, Groups=groups, PrivateIpAddress="10.0.1.10",
    PrivateIpAddresses=[{"PrivateIpAddress": "10.0.1.10", "Primary": True},
                        {"PrivateIpAddress": "10.0.1.11", "Primary": False}])["NetworkInterface"]
instance = ec2.run_instances(ImageId="ami-12c6146b", MinCount=1, MaxCount=1,
                             SubnetId=subnet)["Instances"][0]
print(json.dumps({"vpc_id": vpc, "subnet_id": subnet, "groups": groups,
    "eni": eni["NetworkInterfaceId"],
    "instance_eni": instance["NetworkInterfaces"][0]["NetworkInterfaceId"],
    "instance_ip": instance["PrivateIpAddress"], "instance_id": instance["InstanceId"]}))
"#;
    let out = std::process::Command::new("python3")
        .args(["-c", script, &moto().endpoint])
        .output()
        .expect("python3 with boto3 (installed with moto[server])");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let text = |k: &str| v[k].as_str().unwrap().to_string();
    Network {
        vpc_id: text("vpc_id"),
        subnet_id: text("subnet_id"),
        groups: v["groups"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| g.as_str().unwrap().to_string())
            .collect(),
        eni: text("eni"),
        instance_eni: text("instance_eni"),
        instance_ip: text("instance_ip"),
        instance_id: text("instance_id"),
    }
}

/// An HTTP proxy to moto that records the EC2 Action of every request and answers
/// RequestLimitExceeded (503) instead while `throttle` is set.
struct Ec2Proxy {
    url: String,
    actions: Arc<Mutex<Vec<String>>>,
    throttle: Arc<AtomicBool>,
}

impl Ec2Proxy {
    fn start(upstream: &str) -> Ec2Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let upstream = upstream.trim_start_matches("http://").to_string();
        let actions = Arc::new(Mutex::new(Vec::new()));
        let throttle = Arc::new(AtomicBool::new(false));
        let (a, t) = (actions.clone(), throttle.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (a, t, upstream) = (a.clone(), t.clone(), upstream.clone());
                std::thread::spawn(move || proxy_connection(stream, &upstream, &a, &t));
            }
        });
        Ec2Proxy {
            url,
            actions,
            throttle,
        }
    }

    fn count(&self, action: &str) -> usize {
        self.actions
            .lock()
            .unwrap()
            .iter()
            .filter(|a| *a == action)
            .count()
    }
}

fn proxy_connection(
    stream: TcpStream,
    upstream: &str,
    actions: &Mutex<Vec<String>>,
    throttle: &AtomicBool,
) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut writer = stream;
    while let Some(request) = read_request(&mut reader) {
        let text = String::from_utf8_lossy(&request.body);
        let action = text
            .split('&')
            .find_map(|kv| kv.strip_prefix("Action="))
            .unwrap_or("")
            .to_string();
        actions.lock().unwrap().push(action);
        let (status, response_body) = if throttle.load(Ordering::SeqCst) {
            (
                "503 Service Unavailable".to_string(),
                b"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Errors><Error><Code>RequestLimitExceeded</Code><Message>Request limit exceeded.</Message></Error></Errors><RequestID>test</RequestID></Response>".to_vec(),
            )
        } else {
            forward(upstream, &request)
        };
        let head = format!(
            "HTTP/1.1 {status}\r\nContent-Type: text/xml\r\nContent-Length: {}\r\n\r\n",
            response_body.len()
        );
        if writer.write_all(head.as_bytes()).is_err() || writer.write_all(&response_body).is_err() {
            return;
        }
    }
}

/// Sends one request to moto (connection closed after it); returns status and body.
fn forward(upstream: &str, request: &RawRequest) -> (String, Vec<u8>) {
    let mut up = TcpStream::connect(upstream).unwrap();
    let mut head = format!("{} {} HTTP/1.1\r\n", request.method, request.path);
    for (k, v) in &request.headers {
        if !k.eq_ignore_ascii_case("connection") {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
    }
    head.push_str("Connection: close\r\n\r\n");
    up.write_all(head.as_bytes()).unwrap();
    up.write_all(&request.body).unwrap();
    let mut response = Vec::new();
    up.read_to_end(&mut response).unwrap();
    let split = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("an HTTP response");
    let head = String::from_utf8_lossy(&response[..split]).into_owned();
    let status_line = head.lines().next().unwrap();
    let status = status_line.split_once(' ').unwrap().1.to_string();
    (status, response[split + 4..].to_vec())
}

/// A CloudWatch Logs subscription event of `messages`.
fn cloudwatch_event(stream: &str, messages: &[String]) -> Value {
    let events: Vec<Value> = messages
        .iter()
        .enumerate()
        .map(|(i, m)| json!({"id": format!("{stream}-{i}"), "timestamp": 1700000000000u64, "message": m}))
        .collect();
    let data = json!({"messageType":"DATA_MESSAGE","owner":"123456789012","logGroup":"/vpc/flowlogs",
        "logStream":stream,"subscriptionFilters":["f"],"logEvents":events});
    let gz = common::gzip(data.to_string().as_bytes());
    json!({"awslogs":{"data": base64::engine::general_purpose::STANDARD.encode(gz)}})
}

/// A default-format (v2) record.
fn record(eni: &str, src: &str, dst: &str) -> String {
    format!("2 123456789012 {eni} {src} {dst} 49152 443 6 10 840 1700000000 1700000060 ACCEPT OK")
}

/// The function in Lambda mode with ENRICH_ENI, its EC2 calls through `proxy`.
fn start_function(
    events: Vec<Value>,
    proxy: &Ec2Proxy,
    rx: &Receiver,
) -> (
    std::process::Child,
    Arc<Mutex<common::runtime_api::RuntimeState>>,
) {
    let (api, state) = start_runtime_api(events);
    let child = lambda_command(BIN, &api, &rx.url)
        .env("ENRICH_ENI", "true")
        .env("AWS_ENDPOINT_URL_EC2", &proxy.url)
        .env("LOG_LEVEL", "info")
        .spawn()
        .unwrap();
    (child, state)
}

fn summaries(stdout: &str) -> Vec<Value> {
    stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v.get("_aws").is_some())
        .collect()
}

fn by_source<'d>(docs: &'d [Value], eni: &str, src: &str, dst: &str) -> &'d Value {
    docs.iter()
        .find(|d| {
            d["aws"]["vpcflow"]["interface_id"] == eni
                && d["source"]["ip"] == src
                && d["destination"]["ip"] == dst
        })
        .unwrap_or_else(|| panic!("no document {eni} {src} -> {dst}"))
}

#[test]
fn interfaces_give_groups_direction_and_ids_and_are_cached_across_invocations() {
    let net = create_network();
    let proxy = Ec2Proxy::start(&moto().endpoint);
    let rx = Receiver::start(vec![], Reply::ok());
    let missing = "eni-0000000000000dead";

    // Invocation 1: CloudWatch Logs, default format (no flow-direction).
    let cw = cloudwatch_event(
        &format!("{}-all", net.eni),
        &[
            record(&net.eni, "203.0.113.5", "10.0.1.11"), // to the secondary address
            record(&net.eni, "10.0.1.10", "198.51.100.7"),
            record(&net.eni, "10.0.1.10", "10.0.2.20"),
            record(&net.eni, "203.0.113.5", "198.51.100.7"),
            record(&net.instance_eni, &net.instance_ip, "198.51.100.7"),
            record(missing, "203.0.113.5", "10.0.1.10"),
        ],
    );
    // Invocation 2: an S3 text object with flow-direction in its format, same interfaces.
    let header = "version account-id interface-id srcaddr dstaddr srcport dstport protocol packets bytes start end action log-status flow-direction";
    let v5 =
        |eni: &str, src: &str, dst: &str, dir: &str| format!("{} {dir}", record(eni, src, dst));
    let text = format!(
        "{header}\n{}\n{}\n{}\n",
        v5(&net.eni, "203.0.113.9", "10.0.1.10", "ingress"),
        v5(&net.eni, "10.0.1.10", "203.0.113.9", "-"),
        v5(missing, "203.0.113.9", "10.0.1.10", "-"),
    );
    // Invocation 3: a Parquet object, same interfaces.
    let row = record(&net.eni, "198.51.100.42", "10.0.1.10");
    let parquet = parquet_file(&V5[..14], &[row.split(' ').collect()], 10);
    put_objects(
        "enrich-objects",
        &[
            ("flows.log", text.into_bytes()),
            ("flows.log.parquet", parquet),
        ],
    );
    let sqs = |key: &str| {
        let s3 = json!({"Records":[{"eventSource":"aws:s3","eventName":"ObjectCreated:Put","s3":{"bucket":{"name":"enrich-objects"},"object":{"key":key}}}]});
        json!({"Records":[{"messageId":key,"receiptHandle":"r","body":s3.to_string(),"eventSource":"aws:sqs"}]})
    };

    let (mut child, state) = start_function(
        vec![cw, sqs("flows.log"), sqs("flows.log.parquet")],
        &proxy,
        &rx,
    );
    wait_for_results(&state, 3, Duration::from_secs(60));
    let _ = child.kill();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let st = state.lock().unwrap();
    assert_eq!(
        st.results.len(),
        3,
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        st.results[0].2.contains("\"forwarded\":6"),
        "{:?}",
        st.results[0]
    );
    assert_eq!(st.results[1].2, r#"{"batchItemFailures":[]}"#);
    assert_eq!(st.results[2].2, r#"{"batchItemFailures":[]}"#);
    assert_eq!(common::assert_accounting(&stdout), 3);

    let docs = rx.documents();
    assert_eq!(docs.len(), 10);
    let groups = json!(net.groups);
    let inbound = by_source(&docs, &net.eni, "203.0.113.5", "10.0.1.11");
    assert_eq!(inbound["network"]["direction"], "inbound");
    assert_eq!(inbound["aws"]["vpcflow"]["security_group_ids"], groups);
    assert_eq!(inbound["aws"]["vpcflow"]["vpc_id"], net.vpc_id.as_str());
    assert_eq!(
        inbound["aws"]["vpcflow"]["subnet_id"],
        net.subnet_id.as_str()
    );
    let outbound = by_source(&docs, &net.eni, "10.0.1.10", "198.51.100.7");
    assert_eq!(outbound["network"]["direction"], "outbound");
    let internal = by_source(&docs, &net.eni, "10.0.1.10", "10.0.2.20");
    assert_eq!(internal["network"]["direction"], "internal");
    // Neither end is the interface, one end outside the VPC: no direction, still groups.
    let unknown = by_source(&docs, &net.eni, "203.0.113.5", "198.51.100.7");
    assert!(unknown["network"].get("direction").is_none(), "{unknown}");
    assert_eq!(unknown["aws"]["vpcflow"]["security_group_ids"], groups);
    let instance = by_source(&docs, &net.instance_eni, &net.instance_ip, "198.51.100.7");
    assert_eq!(
        instance["cloud"]["instance"]["id"],
        net.instance_id.as_str()
    );
    assert_eq!(instance["network"]["direction"], "outbound");
    // An interface EC2 does not know: forwarded as it is.
    let gone = by_source(&docs, missing, "203.0.113.5", "10.0.1.10");
    assert!(gone["aws"]["vpcflow"].get("security_group_ids").is_none());
    assert!(gone["network"].get("direction").is_none());
    // The record's own flow-direction wins; '-' is absent, so it is derived.
    let s3_in = by_source(&docs, &net.eni, "203.0.113.9", "10.0.1.10");
    assert_eq!(s3_in["network"]["direction"], "ingress");
    assert_eq!(s3_in["aws"]["vpcflow"]["security_group_ids"], groups);
    let s3_out = by_source(&docs, &net.eni, "10.0.1.10", "203.0.113.9");
    assert_eq!(s3_out["network"]["direction"], "outbound");
    let from_parquet = by_source(&docs, &net.eni, "198.51.100.42", "10.0.1.10");
    assert_eq!(from_parquet["network"]["direction"], "inbound");
    assert_eq!(from_parquet["aws"]["vpcflow"]["security_group_ids"], groups);

    // One DescribeNetworkInterfaces and one DescribeVpcs for all three invocations:
    // the second and third found every interface in the cache, the unknown one too.
    assert_eq!(
        proxy.count("DescribeNetworkInterfaces"),
        1,
        "{:?}",
        proxy.actions
    );
    assert_eq!(proxy.count("DescribeVpcs"), 1);
    let s = summaries(&stdout);
    assert_eq!(s[0]["RecordsEnriched"], 5);
    assert_eq!(s[0]["RecordsUnenriched"], 0);
    assert_eq!(s[0]["Ec2Requests"], 2);
    assert_eq!(s[1]["RecordsEnriched"], 2);
    assert_eq!(s[1]["Ec2Requests"], 0);
    assert_eq!(s[2]["RecordsEnriched"], 1);
}

#[test]
fn throttled_lookups_forward_records_unenriched_and_counted() {
    let net = create_network();
    let proxy = Ec2Proxy::start(&moto().endpoint);
    proxy.throttle.store(true, Ordering::SeqCst);
    let rx = Receiver::start(vec![], Reply::ok());
    let messages: Vec<String> = (0..50)
        .map(|i| record(&net.eni, &format!("203.0.113.{i}"), "10.0.1.10"))
        .collect();
    let first = cloudwatch_event("throttled-1", &messages);
    let second = cloudwatch_event("throttled-2", &messages);
    let (mut child, state) = start_function(vec![first, second], &proxy, &rx);
    wait_for_results(&state, 2, Duration::from_secs(60));
    let _ = child.kill();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let st = state.lock().unwrap();
    assert_eq!(st.results.len(), 2, "{stdout}");
    for (_, kind, body) in &st.results {
        assert_eq!(kind, "response");
        assert!(body.contains("\"forwarded\":50"), "{body}");
    }
    // Every record delivered, none enriched, all counted as unenriched.
    let docs = rx.documents();
    assert_eq!(docs.len(), 100);
    assert!(docs
        .iter()
        .all(|d| d["aws"]["vpcflow"].get("security_group_ids").is_none()));
    let s = summaries(&stdout);
    assert_eq!(s[0]["RecordsUnenriched"], 50);
    assert_eq!(s[1]["RecordsUnenriched"], 50);
    // The SDK's retry budget (3 attempts) for the first invocation; the failure is
    // remembered, so the second invocation does not call EC2 again.
    assert_eq!(
        proxy.count("DescribeNetworkInterfaces"),
        3,
        "{:?}",
        proxy.actions
    );
    assert!(stdout.contains("ENI lookup failed"), "{stdout}");
    assert!(stdout.contains("RequestLimitExceeded"), "{stdout}");
}

#[test]
fn process_command_enriches_local_files() {
    let net = create_network();
    let dir = common::scratch_dir().to_path_buf();
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("flows.log.gz");
    let lines = [
        record(&net.eni, "203.0.113.5", "10.0.1.10"),
        record("eni-0000000000000beef", "203.0.113.5", "10.0.1.10"),
        "not a record".to_string(),
    ];
    std::fs::write(&path, common::gzip(lines.join("\n").as_bytes())).unwrap();
    let out = std::process::Command::new(BIN)
        .args(["process", path.to_str().unwrap()])
        .env_remove("DESTINATION_URL")
        .envs(moto().env())
        .env("ENRICH_ENI", "true")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{stderr}");
    assert_eq!(common::assert_accounting(&stderr), 1);
    assert!(
        stderr.contains("summary read=3 forwarded=3 filtered=0 malformed=1 failed=0 inputs=1 input_errors=0 enriched=1 unenriched=0"),
        "{stderr}"
    );
    let docs: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(docs[0]["network"]["direction"], "inbound");
    assert_eq!(
        docs[0]["aws"]["vpcflow"]["security_group_ids"],
        json!(net.groups)
    );
    assert!(docs[1]["aws"]["vpcflow"]
        .get("security_group_ids")
        .is_none());
}

/// Aggregated, each document counts once as enriched: the first record's document,
/// written when it came and replaced by its aggregate's, is not counted twice.
#[test]
fn aggregated_documents_count_as_enriched_once() {
    let net = create_network();
    let dir = common::scratch_dir().to_path_buf();
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("aggregated.log");
    let lines: Vec<String> = (0..3)
        .map(|_| record(&net.eni, "203.0.113.5", "10.0.1.10"))
        .chain([record(&net.eni, "203.0.113.6", "10.0.1.10")])
        .collect();
    std::fs::write(&path, lines.join("\n")).unwrap();
    let out = std::process::Command::new(BIN)
        .args(["process", path.to_str().unwrap()])
        .env_remove("DESTINATION_URL")
        .envs(moto().env())
        .env("ENRICH_ENI", "true")
        .env("AGGREGATE", "flows")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{stderr}");
    let docs = common::stdout_docs(&out);
    assert_eq!(docs.len(), 2);
    assert!(
        stderr.contains("read=4 forwarded=4 filtered=0 malformed=0 failed=0 inputs=1 input_errors=0 enriched=2 unenriched=0"),
        "{stderr}"
    );
}
