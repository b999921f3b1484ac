//! A real HTTP/1.1 receiver on 127.0.0.1 for delivery tests: answers each request as
//! scripted (status, headers, body, or a hang), records every request with its decoded
//! body, and keeps connections alive as HTTP clients expect.
#![allow(dead_code)]

use std::io::{BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use super::http::{read_request, RawRequest};

/// How to answer one request.
#[derive(Clone, Debug)]
pub enum Reply {
    Status {
        code: u16,
        headers: Vec<(String, String)>,
        body: String,
    },
    /// Read the request, then say nothing for this long and close.
    Hang(Duration),
    /// Answer from a function of the decoded request body.
    With(fn(&str) -> (u16, String)),
    /// Declare `declared` body bytes, send only `body`, then close the connection.
    Truncated { body: Vec<u8>, declared: usize },
    /// Answer `code` to about `percent` % of requests (pseudo-random, reproducible),
    /// 200 to the others.
    FailSome { percent: u64, code: u16 },
    /// Answer `code` declaring a body of `declared` bytes, stream `total` bytes of it
    /// (`{"items":[` then spaces) as fast as the client reads, then close.
    Flood {
        code: u16,
        declared: u64,
        total: usize,
    },
    /// A 200 whose body is `chunk` repeated `times`, one chunk every `pause`: a slow,
    /// large object.
    Trickle {
        chunk: String,
        times: usize,
        pause: Duration,
    },
}

impl Reply {
    pub fn ok() -> Reply {
        Reply::Status {
            code: 200,
            headers: vec![],
            body: "{}".into(),
        }
    }
    pub fn status(code: u16) -> Reply {
        Reply::Status {
            code,
            headers: vec![],
            body: format!("{{\"status\":{code}}}"),
        }
    }
    pub fn retry_after(code: u16, seconds: u64) -> Reply {
        Reply::Status {
            code,
            headers: vec![("Retry-After".into(), seconds.to_string())],
            body: String::new(),
        }
    }
}

/// One request as received.
#[derive(Clone, Debug)]
pub struct Request {
    pub at: Instant,
    pub path: String,
    pub headers: Vec<(String, String)>,
    /// The body, gunzipped when Content-Encoding is gzip.
    pub body: String,
    /// What was answered (0 for a hang).
    pub status: u16,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

pub struct Receiver {
    /// `http://127.0.0.1:PORT/ingest`.
    pub url: String,
    /// `http://127.0.0.1:PORT` (as an S3 endpoint).
    pub base: String,
    state: Arc<Mutex<State>>,
}

struct State {
    /// A header every request must carry (name, value); others are answered 401 with
    /// an error that quotes what they sent, as some receivers do.
    required: Option<(String, String)>,
    script: Vec<Reply>,
    /// Answer once the script is used up.
    then: Reply,
    requests: Vec<Request>,
}

impl Receiver {
    /// Starts a receiver answering `script` in order, then `then` for ever.
    pub fn start(script: Vec<Reply>, then: Reply) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
        let base = format!("http://{}", listener.local_addr().unwrap());
        let url = format!("{base}/ingest");
        let state = Arc::new(Mutex::new(State {
            required: None,
            script,
            then,
            requests: Vec::new(),
        }));
        let shared = state.clone();
        thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let shared = shared.clone();
                thread::spawn(move || serve(stream, shared));
            }
        });
        Receiver { url, base, state }
    }

    /// From now on, requests without header `name: value` are refused (401), their
    /// error quoting the header they sent.
    pub fn require_header(&self, name: &str, value: &str) {
        self.state.lock().unwrap().required = Some((name.to_string(), value.to_string()));
    }

    pub fn requests(&self) -> Vec<Request> {
        self.state.lock().unwrap().requests.clone()
    }

    /// Every NDJSON document received, in order.
    pub fn documents(&self) -> Vec<serde_json::Value> {
        self.requests()
            .iter()
            .flat_map(|r| {
                r.body
                    .lines()
                    .map(|l| serde_json::from_str(l).expect("a JSON document"))
                    .collect::<Vec<_>>()
            })
            .collect()
    }
}

/// Records a request and what was answered to it.
fn record(
    state: &Mutex<State>,
    path: String,
    headers: Vec<(String, String)>,
    body: String,
    status: u16,
) {
    state.lock().unwrap().requests.push(Request {
        at: Instant::now(),
        path,
        headers,
        body,
        status,
    });
}

fn serve(stream: TcpStream, state: Arc<Mutex<State>>) {
    let mut reader = BufReader::new(stream.try_clone().expect("clone"));
    let mut writer = stream;
    while let Some(request) = read_request(&mut reader) {
        let RawRequest {
            path,
            headers,
            body: raw,
            ..
        } = request;
        let gzipped = headers
            .iter()
            .any(|(k, v)| k.eq_ignore_ascii_case("content-encoding") && v == "gzip");
        let body = if gzipped {
            let mut s = String::new();
            flate2::read::MultiGzDecoder::new(&raw[..])
                .read_to_string(&mut s)
                .expect("gzip body decodes");
            s
        } else {
            String::from_utf8(raw).expect("utf-8 body")
        };
        let (reply, index) = {
            let mut st = state.lock().unwrap();
            let index = st.requests.len() as u64;
            let sent = |name: &str| {
                headers
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(name))
                    .map(|(_, v)| v.clone())
                    .unwrap_or_default()
            };
            let refused = st.required.as_ref().and_then(|(name, value)| {
                let got = sent(name);
                (got != *value).then(|| format!("{name}: {got}"))
            });
            let reply = if let Some(quoted) = refused {
                Reply::Status {
                    code: 401,
                    headers: vec![],
                    body: format!(
                        r#"{{"error":"invalid credentials [{quoted}] for uri [{path}]"}}"#
                    ),
                }
            } else if st.script.is_empty() {
                st.then.clone()
            } else {
                st.script.remove(0)
            };
            (reply, index)
        };
        let reply = match reply {
            Reply::FailSome { percent, code } => {
                // splitmix64 of the request index: reproducible, evenly spread.
                let mut z = index.wrapping_add(0x9E37_79B9_7F4A_7C15);
                z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
                z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
                z ^= z >> 31;
                if z % 100 < percent {
                    Reply::status(code)
                } else {
                    Reply::ok()
                }
            }
            other => other,
        };
        let (status, answer) = match reply {
            Reply::FailSome { .. } => unreachable!("resolved above"),
            Reply::Truncated {
                body: partial,
                declared,
            } => {
                record(&state, path, headers, body, 200);
                let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {declared}\r\nContent-Type: application/octet-stream\r\n\r\n");
                let _ = writer.write_all(head.as_bytes());
                let _ = writer.write_all(&partial);
                let _ = writer.flush();
                let _ = writer.shutdown(std::net::Shutdown::Both);
                return;
            }
            Reply::Flood {
                code,
                declared,
                total,
            } => {
                record(&state, path, headers, body, code);
                let head = format!(
                    "HTTP/1.1 {code} X\r\nContent-Length: {declared}\r\nContent-Type: application/json\r\n\r\n{{\"items\":["
                );
                if writer.write_all(head.as_bytes()).is_err() {
                    return;
                }
                let chunk = vec![b' '; 64 * 1024];
                let mut sent = 0;
                while sent < total {
                    if writer.write_all(&chunk).is_err() {
                        return;
                    }
                    sent += chunk.len();
                }
                let _ = writer.shutdown(std::net::Shutdown::Both);
                return;
            }
            Reply::Trickle {
                chunk,
                times,
                pause,
            } => {
                record(&state, path, headers, body, 200);
                let head = format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nContent-Type: application/octet-stream\r\n\r\n",
                    chunk.len() * times
                );
                if writer.write_all(head.as_bytes()).is_err() {
                    return;
                }
                for _ in 0..times {
                    if writer
                        .write_all(chunk.as_bytes())
                        .and_then(|_| writer.flush())
                        .is_err()
                    {
                        return;
                    }
                    thread::sleep(pause);
                }
                continue;
            }
            Reply::Hang(d) => {
                record(&state, path, headers, body, 0);
                thread::sleep(d);
                return;
            }
            Reply::Status {
                code,
                headers: extra,
                body: text,
            } => (code, (extra, text)),
            Reply::With(f) => {
                let (code, text) = f(&body);
                (code, (vec![], text))
            }
        };
        record(&state, path, headers, body, status);
        let (extra, text) = answer;
        let mut response = format!("HTTP/1.1 {status} X\r\nContent-Length: {}\r\n", text.len());
        if !extra
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("content-type"))
        {
            response.push_str("Content-Type: application/json\r\n");
        }
        for (k, v) in extra {
            response.push_str(&format!("{k}: {v}\r\n"));
        }
        response.push_str("\r\n");
        response.push_str(&text);
        if writer.write_all(response.as_bytes()).is_err() {
            return;
        }
    }
}
