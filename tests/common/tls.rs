//! An HTTPS receiver on 127.0.0.1 whose certificate is issued by a private CA the test
//! generates (rcgen), served with rustls: for DESTINATION_CA_BUNDLE.
#![allow(dead_code)]

use std::io::{BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};

use super::http::read_request;

pub struct TlsReceiver {
    /// `https://127.0.0.1:PORT/ingest`.
    pub url: String,
    /// The private CA's certificate, PEM.
    pub ca_pem: String,
    /// The decoded bodies of the requests received.
    pub bodies: Arc<Mutex<Vec<String>>>,
}

/// A CA and a certificate it issued for `names`, expired when `expired`.
fn private_ca(
    names: &[&str],
    expired: bool,
) -> (String, rustls::pki_types::CertificateDer<'static>, KeyPair) {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "flowlog-forwarder test CA");
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = Issuer::from_params(&ca, &ca_key);
    let server_key = KeyPair::generate().unwrap();
    let mut params =
        CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
    if expired {
        params.not_before = rcgen::date_time_ymd(2020, 1, 1);
        params.not_after = rcgen::date_time_ymd(2021, 1, 1);
    }
    let server = params.signed_by(&server_key, &issuer).unwrap();
    (ca_cert.pem(), server.der().clone(), server_key)
}

impl TlsReceiver {
    /// Starts the receiver with a certificate for 127.0.0.1 and localhost; it answers
    /// every request 200.
    pub fn start() -> TlsReceiver {
        TlsReceiver::start_with(&["127.0.0.1", "localhost"], false)
    }

    /// Starts the receiver with a certificate for `names`, expired when `expired`.
    pub fn start_with(names: &[&str], expired: bool) -> TlsReceiver {
        let (ca_pem, cert, key) = private_ca(names, expired);
        let key = rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into());
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![cert], key)
            .unwrap();
        let config = Arc::new(config);
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("https://{}/ingest", listener.local_addr().unwrap());
        let bodies = Arc::new(Mutex::new(Vec::new()));
        let shared = bodies.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let config = config.clone();
                let bodies = shared.clone();
                std::thread::spawn(move || {
                    let Ok(connection) = rustls::ServerConnection::new(config) else {
                        return;
                    };
                    let tls = rustls::StreamOwned::new(connection, stream);
                    let mut reader = BufReader::new(tls);
                    while let Some(request) = read_request(&mut reader) {
                        let mut body = String::new();
                        let _ = flate2::read::MultiGzDecoder::new(&request.body[..])
                            .read_to_string(&mut body);
                        bodies.lock().unwrap().push(body);
                        let answer = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}";
                        let tls = reader.get_mut();
                        if tls
                            .write_all(answer.as_bytes())
                            .and_then(|_| tls.flush())
                            .is_err()
                        {
                            return;
                        }
                    }
                });
            }
        });
        TlsReceiver {
            url,
            ca_pem,
            bodies,
        }
    }
}
