//! AWS configuration and clients: one HTTPS stack (rustls with ring) for every AWS call,
//! the environment's region, credentials and endpoints, and the S3 client.

/// The AWS clients' HTTPS client: rustls with ring (see Cargo.toml).
pub fn https_client() -> aws_smithy_runtime_api::client::http::SharedHttpClient {
    use aws_smithy_http_client::tls::{rustls_provider::CryptoMode, Provider};
    aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::Ring))
        .build_https()
}

/// An S3 client; path-style addressing when an endpoint is set (a local S3 API server).
pub fn s3_client(aws: &aws_config::SdkConfig) -> aws_sdk_s3::Client {
    let endpoint_set = std::env::var_os("AWS_ENDPOINT_URL").is_some()
        || std::env::var_os("AWS_ENDPOINT_URL_S3").is_some();
    let s3_config = aws_sdk_s3::config::Builder::from(aws)
        .force_path_style(endpoint_set)
        .build();
    aws_sdk_s3::Client::from_conf(s3_config)
}

/// AWS configuration from the environment (region, credentials, endpoints), with
/// `https_client`.
pub async fn load_aws_config() -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .http_client(https_client())
        .load()
        .await
}
