//! The destination secret rotates under a running function. The real binary
//! in Lambda mode reads DESTINATION_SECRET_ARN from the local AWS server (moto); after
//! the secret is rotated the receiver refuses the old token (401, quoting it), the
//! function reads the secret again and retries: nothing is lost, and no token reaches
//! the logs. After SECRET_TTL_SECONDS the secret is read again before any refusal.

mod common;

use std::time::Duration;

use common::block_on;
use common::moto::{moto, put_objects};
use common::receiver::{Receiver, Reply};
use common::runtime_api::{lambda_command, start_runtime_api, wait_for_results};
use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_flowlog-forwarder");

fn token(n: u32) -> String {
    format!("Bearer rotating-token-{n}-5f4dcc3b5aa765d61d83")
}

fn sqs(key: &str) -> Value {
    let s3 = json!({"Records":[{"eventSource":"aws:s3","eventName":"ObjectCreated:Put",
        "s3":{"bucket":{"name":"rotation"},"object":{"key":key,"eTag":"e"}}}]});
    json!({"Records":[{"messageId": key, "receiptHandle":"r", "body": s3.to_string(), "eventSource":"aws:sqs"}]})
}

#[test]
fn rotated_secret_is_read_again_and_nothing_is_lost() {
    let line = "2 123456789012 eni-1 10.0.0.1 198.51.100.1 1024 443 6 1 60 1700000000 1700000060 ACCEPT OK\n";
    let objects: Vec<(String, Vec<u8>)> = (1..=3)
        .map(|i| (format!("obj-{i}.log"), line.repeat(5 * i).into_bytes()))
        .collect();
    let refs: Vec<(&str, Vec<u8>)> = objects
        .iter()
        .map(|(k, v)| (k.as_str(), v.clone()))
        .collect();
    put_objects("rotation", &refs);
    let secrets = aws_sdk_secretsmanager::Client::new(&moto().sdk_config());
    let name = format!("destination-{}", std::process::id());
    let arn = block_on(
        secrets
            .create_secret()
            .name(&name)
            .secret_string(json!({"Authorization": token(1)}).to_string())
            .send(),
    )
    .unwrap()
    .arn
    .unwrap();
    let rotate = |n: u32| {
        block_on(
            secrets
                .put_secret_value()
                .secret_id(&arn)
                .secret_string(json!({"Authorization": token(n)}).to_string())
                .send(),
        )
        .unwrap();
    };

    let rx = Receiver::start(vec![], Reply::ok());
    rx.require_header("Authorization", &token(1));
    let (api, state) = start_runtime_api(vec![sqs("obj-1.log")]);
    let log_path = common::scratch_dir().join("rotation.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let mut child = lambda_command(BIN, &api, &rx.url)
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .env("DESTINATION_SECRET_ARN", &arn)
        .env("SECRET_TTL_SECONDS", "2")
        .env("LOG_LEVEL", "debug")
        .spawn()
        .unwrap();
    let read_logs = || std::fs::read_to_string(&log_path).unwrap_or_default();
    let response = |n: usize| -> Value {
        wait_for_results(&state, n, Duration::from_secs(60));
        let st = state.lock().unwrap();
        if st.results.len() < n {
            panic!("no result {n}: {:?}\n{}", st.init_errors, read_logs());
        }
        let (_, kind, body) = st.results.get(n - 1).expect("a result");
        assert_eq!(kind, "response", "{body}");
        serde_json::from_str(body).unwrap()
    };
    let none_failed = json!({"batchItemFailures": []});
    assert_eq!(response(1), none_failed);

    // Rotation: the receiver refuses the old token from now on.
    rotate(2);
    rx.require_header("Authorization", &token(2));
    state.lock().unwrap().events.push_back(sqs("obj-2.log"));
    assert_eq!(response(2), none_failed);
    let refused = rx.requests().iter().filter(|r| r.status == 401).count();
    assert!(refused >= 1, "the old token was refused at least once");

    // Past SECRET_TTL_SECONDS the secret is read again before any request is refused.
    rotate(3);
    rx.require_header("Authorization", &token(3));
    std::thread::sleep(Duration::from_millis(2200));
    let before = rx.requests().len();
    state.lock().unwrap().events.push_back(sqs("obj-3.log"));
    assert_eq!(response(3), none_failed);
    let after: Vec<_> = rx.requests().into_iter().skip(before).collect();
    assert!(!after.is_empty());
    assert!(
        after.iter().all(|r| r.status == 200),
        "no request refused after the TTL"
    );
    let _ = child.kill();
    let _ = child.wait();
    let logs = read_logs();
    assert_eq!(common::assert_accounting(&logs), 3, "{logs}");

    // Every record delivered, each exactly once accepted (5 + 10 + 15).
    let accepted: usize = rx
        .requests()
        .iter()
        .filter(|r| r.status == 200)
        .map(|r| r.body.lines().count())
        .sum();
    assert_eq!(accepted, 30);
    for n in 1..=3 {
        assert!(!logs.contains(&format!("rotating-token-{n}")), "{logs}");
    }
}

/// `process` reads DESTINATION_SECRET_ARN as Lambda does (its headers and URL apply),
/// or refuses to run when it cannot: never ignored.
#[test]
fn process_reads_the_destination_secret_or_refuses_it() {
    let rx = Receiver::start(vec![], Reply::ok());
    rx.require_header("Authorization", "Bearer process-secret-7c1e9a");
    let secrets = aws_sdk_secretsmanager::Client::new(&moto().sdk_config());
    let name = format!("process-destination-{}", std::process::id());
    let arn = block_on(
        secrets
            .create_secret()
            .name(&name)
            .secret_string(
                json!({"Authorization": "Bearer process-secret-7c1e9a", "DESTINATION_URL": rx.url})
                    .to_string(),
            )
            .send(),
    )
    .unwrap()
    .arn
    .unwrap();
    let file = common::scratch_dir().join("secret-process.log");
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    std::fs::write(
        &file,
        "2 123456789012 eni-1 10.0.0.1 198.51.100.1 1024 443 6 1 60 1700000000 1700000060 ACCEPT OK\n",
    )
    .unwrap();
    let run = |arn: &str| {
        let mut cmd = std::process::Command::new(BIN);
        cmd.arg("process")
            .arg(&file)
            .env_remove("DESTINATION_URL")
            .env_remove("AWS_LAMBDA_RUNTIME_API")
            .env("DESTINATION_SECRET_ARN", arn);
        for (k, v) in moto().env() {
            cmd.env(k, v);
        }
        cmd.output().unwrap()
    };
    let out = run(&arn);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("forwarded=1"), "{stderr}");
    assert_eq!(rx.requests().len(), 1);
    assert_eq!(rx.requests()[0].status, 200);
    assert!(!stderr.contains("process-secret-7c1e9a"), "{stderr}");

    let missing = arn.replace(&name, "no-such-secret");
    let out = run(&missing);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("DESTINATION_SECRET_ARN"), "{stderr}");
    assert!(out.stdout.is_empty());
    assert_eq!(rx.requests().len(), 1, "nothing more was sent");
}
