//! A Lambda Runtime API server on 127.0.0.1 (GET next invocation, POST response or
//! error, POST init error) that drives the real binary in Lambda mode. Events can be
//! queued while it runs; `next` waits for one.
#![allow(dead_code)]

use std::collections::VecDeque;
use std::io::{BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::http::read_request;

#[derive(Default)]
pub struct RuntimeState {
    pub events: VecDeque<Value>,
    /// Milliseconds from "next" to each invocation's deadline (60 s when 0).
    pub deadline_after_ms: u128,
    /// Sent as Lambda-Runtime-Deadline-Ms instead, when set (cargo-lambda's emulator
    /// sends a duration such as `600000`, not an epoch time).
    pub deadline_header: Option<String>,
    /// (request id, "response" | "error", body)
    pub results: Vec<(String, String, String)>,
    pub init_errors: Vec<String>,
}

pub fn start_runtime_api(events: Vec<Value>) -> (String, Arc<Mutex<RuntimeState>>) {
    start_runtime_api_with_deadline(events, 0)
}

pub fn start_runtime_api_with_deadline(
    events: Vec<Value>,
    deadline_after_ms: u128,
) -> (String, Arc<Mutex<RuntimeState>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let state = Arc::new(Mutex::new(RuntimeState {
        events: events.into(),
        deadline_after_ms,
        ..Default::default()
    }));
    let shared = state.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let shared = shared.clone();
            std::thread::spawn(move || serve(stream, shared));
        }
    });
    (addr, state)
}

fn serve(stream: TcpStream, state: Arc<Mutex<RuntimeState>>) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut writer = stream;
    while let Some(request) = read_request(&mut reader) {
        let (method, path) = (request.method, request.path);
        let body = String::from_utf8_lossy(&request.body).into_owned();
        let response = if method == "GET" && path.ends_with("/runtime/invocation/next") {
            // Wait for an event, as Lambda holds `next` between invocations.
            let waiting = Instant::now();
            let next = loop {
                {
                    let mut st = state.lock().unwrap();
                    if let Some(event) = st.events.pop_front() {
                        break Some((st.results.len() + 1, event));
                    }
                }
                if waiting.elapsed() > Duration::from_secs(600) {
                    break None;
                }
                std::thread::sleep(Duration::from_millis(5));
            };
            let Some((n, event)) = next else {
                return;
            };
            let after = match state.lock().unwrap().deadline_after_ms {
                0 => 60_000,
                ms => ms,
            };
            let deadline = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_millis()
                + after;
            let deadline = match &state.lock().unwrap().deadline_header {
                Some(raw) => raw.clone(),
                None => deadline.to_string(),
            };
            let text = event.to_string();
            format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nLambda-Runtime-Aws-Request-Id: req-{n}\r\n\
                 Lambda-Runtime-Deadline-Ms: {deadline}\r\nLambda-Runtime-Invoked-Function-Arn: arn:aws:lambda:us-east-1:123456789012:function:flowlog-forwarder\r\n\
                 Lambda-Runtime-Trace-Id: Root=1-5bef4de7-ad49b0e87f6ef6c87fc2e700;Parent=9a9197af755a6419;Sampled=1\r\n\
                 Content-Length: {}\r\n\r\n{text}",
                text.len()
            )
        } else if method == "POST" && path.contains("/runtime/invocation/") {
            let mut segs = path.rsplit('/');
            let kind = segs.next().unwrap_or("").to_string();
            let id = segs.next().unwrap_or("").to_string();
            state.lock().unwrap().results.push((id, kind, body));
            "HTTP/1.1 202 Accepted\r\nContent-Length: 2\r\n\r\n{}".to_string()
        } else if method == "POST" && path.ends_with("/runtime/init/error") {
            state.lock().unwrap().init_errors.push(body);
            "HTTP/1.1 202 Accepted\r\nContent-Length: 2\r\n\r\n{}".to_string()
        } else {
            "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n".to_string()
        };
        if writer.write_all(response.as_bytes()).is_err() {
            return;
        }
    }
}

/// Waits until the function has posted `n` results (responses or errors), at most
/// `limit`; returns how long it took.
pub fn wait_for_results(state: &Arc<Mutex<RuntimeState>>, n: usize, limit: Duration) -> Duration {
    let started = Instant::now();
    while state.lock().unwrap().results.len() < n && started.elapsed() < limit {
        std::thread::sleep(Duration::from_millis(10));
    }
    started.elapsed()
}

/// The binary `bin` in Lambda mode against the Runtime API at `api`, with the
/// environment Lambda sets, S3 at moto, and documents sent to `destination`; standard
/// output and error piped.
pub fn lambda_command(bin: &str, api: &str, destination: &str) -> std::process::Command {
    let mut cmd = std::process::Command::new(bin);
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(super::moto::moto().env())
        .env("AWS_LAMBDA_RUNTIME_API", api)
        .env("AWS_LAMBDA_FUNCTION_NAME", "flowlog-forwarder")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/flowlog-forwarder")
        .env("AWS_LAMBDA_LOG_STREAM_NAME", "2024/11/24/[$LATEST]abc")
        .env("DESTINATION_URL", destination)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    cmd
}
