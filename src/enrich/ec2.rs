//! The two read-only EC2 calls of ENRICH_ENI, DescribeNetworkInterfaces and DescribeVpcs,
//! over the EC2 Query API: form-encoded POSTs signed with SigV4 by aws-sigv4 (the AWS
//! SDK's own signer), credentials and region from aws-config, XML answers read with
//! aws-smithy-xml (both already in the tree for S3). aws-sdk-ec2 would do the same at
//! the cost of minutes of every build. A short retry budget: 3 attempts on throttling,
//! 5xx and connection errors, 3 s an attempt, 8 s in all.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use aws_smithy_xml::decode::{try_data, Document, ScopedDecoder};

const API_VERSION: &str = "2016-11-15";
const CONTENT_TYPE: &str = "application/x-www-form-urlencoded; charset=utf-8";
const ATTEMPTS: u32 = 3;
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(3);
const TOTAL_TIMEOUT: Duration = Duration::from_secs(8);
/// Error codes worth another attempt (besides HTTP 5xx).
const RETRYABLE: &[&str] = &[
    "RequestLimitExceeded",
    "Throttling",
    "ThrottlingException",
    "RequestThrottled",
    "InternalError",
    "Unavailable",
    "ServiceUnavailable",
];

/// What EC2 says of one network interface.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetworkInterface {
    pub id: String,
    pub vpc_id: Option<String>,
    pub subnet_id: Option<String>,
    /// The instance it is attached to.
    pub instance_id: Option<String>,
    pub group_ids: Vec<String>,
    /// Private IPv4 addresses (primary first, then every one of the set) and IPv6.
    pub addresses: Vec<String>,
}

/// A VPC and its associated IPv4 and IPv6 CIDR blocks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Vpc {
    pub id: String,
    pub cidr_blocks: Vec<String>,
}

pub struct Ec2 {
    http: reqwest::Client,
    /// `https://ec2.REGION.amazonaws.com/`, or AWS_ENDPOINT_URL_EC2 / AWS_ENDPOINT_URL.
    endpoint: String,
    host: String,
    region: String,
    credentials: Option<SharedCredentialsProvider>,
    requests: AtomicU64,
}

impl Ec2 {
    pub fn new(aws: &aws_config::SdkConfig) -> Ec2 {
        let region = aws
            .region()
            .map(|r| r.as_ref().to_string())
            .unwrap_or_default();
        let endpoint = std::env::var("AWS_ENDPOINT_URL_EC2")
            .ok()
            .or_else(|| aws.endpoint_url().map(str::to_string))
            .unwrap_or_else(|| {
                let suffix = if region.starts_with("cn-") {
                    "amazonaws.com.cn"
                } else {
                    "amazonaws.com"
                };
                format!("https://ec2.{region}.{suffix}")
            });
        let endpoint = format!("{}/", endpoint.trim_end_matches('/'));
        let host = endpoint
            .split_once("://")
            .map_or("", |(_, rest)| rest)
            .split('/')
            .next()
            .unwrap_or_default()
            .to_string();
        let http = reqwest::Client::builder()
            .timeout(ATTEMPT_TIMEOUT)
            .connect_timeout(Duration::from_secs(2))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap_or_default();
        Ec2 {
            http,
            endpoint,
            host,
            region,
            credentials: aws.credentials_provider(),
            requests: AtomicU64::new(0),
        }
    }

    /// Requests sent so far (pages; retries of one page not counted).
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// The interfaces among `ids` that exist (filter `network-interface-id`: unknown ids
    /// are left out, not an error), every page.
    pub async fn describe_network_interfaces(
        &self,
        ids: &[String],
    ) -> Result<Vec<NetworkInterface>, String> {
        let action = ("DescribeNetworkInterfaces", "network-interface-id");
        self.describe(action, ids, "networkInterfaceSet", parse_interface)
            .await
    }

    /// The VPCs among `ids` that exist, with their blocks, every page.
    pub async fn describe_vpcs(&self, ids: &[String]) -> Result<Vec<Vpc>, String> {
        self.describe(("DescribeVpcs", "vpc-id"), ids, "vpcSet", parse_vpc)
            .await
    }

    /// Every page of a Describe `(action, filter)` on `values`: the items of the answer's
    /// `set` element, each read by `parse_item`.
    async fn describe<T>(
        &self,
        (action, filter): (&str, &str),
        values: &[String],
        set: &str,
        parse_item: fn(&mut ScopedDecoder<'_, '_>) -> Result<T, String>,
    ) -> Result<Vec<T>, String> {
        let mut found = Vec::new();
        let mut token = None;
        loop {
            let xml = self.call(action, filter, values, token.as_deref()).await?;
            let next = parse_page(&xml, set, parse_item, &mut found)
                .map_err(|e| format!("{action}: unreadable answer: {e}"))?;
            match next {
                Some(t) if !t.is_empty() => token = Some(t),
                _ => return Ok(found),
            }
        }
    }

    /// One page of `action` filtered on `filter` = `values`; the answer's XML.
    async fn call(
        &self,
        action: &str,
        filter: &str,
        values: &[String],
        token: Option<&str>,
    ) -> Result<String, String> {
        self.requests.fetch_add(1, Ordering::Relaxed);
        let mut params = vec![
            ("Action".to_string(), action.to_string()),
            ("Version".to_string(), API_VERSION.to_string()),
            ("Filter.1.Name".to_string(), filter.to_string()),
            ("MaxResults".to_string(), "1000".to_string()),
        ];
        for (i, v) in values.iter().enumerate() {
            params.push((format!("Filter.1.Value.{}", i + 1), v.clone()));
        }
        if let Some(t) = token {
            params.push(("NextToken".to_string(), t.to_string()));
        }
        let body = params
            .iter()
            .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
            .collect::<Vec<_>>()
            .join("&");
        let started = Instant::now();
        let mut attempt = 0;
        loop {
            attempt += 1;
            let error = match self.attempt(&body).await {
                Ok(xml) => return Ok(xml),
                Err(e) if !e.is_retryable() => return Err(format!("{action}: {e}")),
                Err(e) => e,
            };
            let backoff = Duration::from_millis(200 << (attempt - 1)).mul_f64(jitter());
            if attempt >= ATTEMPTS || started.elapsed() + backoff + ATTEMPT_TIMEOUT > TOTAL_TIMEOUT
            {
                return Err(format!("{action}: {error} (after {attempt} attempts)"));
            }
            tokio::time::sleep(backoff).await;
        }
    }

    /// One signed request: the answer's XML, or why there is none.
    async fn attempt(&self, body: &str) -> Result<String, AttemptError> {
        let provider = self
            .credentials
            .as_ref()
            .ok_or_else(|| AttemptError::Transport("no AWS credentials".to_string()))?;
        let credentials = provider
            .provide_credentials()
            .await
            .map_err(|e| AttemptError::Transport(format!("AWS credentials: {e}")))?;
        let identity: Identity = credentials.into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name("ec2")
            .time(SystemTime::now())
            .settings(SigningSettings::default())
            .build()
            .map_err(|e| AttemptError::Transport(format!("signing: {e}")))?
            .into();
        let headers = [("host", self.host.as_str()), ("content-type", CONTENT_TYPE)];
        let signable = SignableRequest::new(
            "POST",
            self.endpoint.as_str(),
            headers.into_iter(),
            SignableBody::Bytes(body.as_bytes()),
        )
        .map_err(|e| AttemptError::Transport(format!("signing: {e}")))?;
        let (instructions, _) = sign(signable, &params)
            .map_err(|e| AttemptError::Transport(format!("signing: {e}")))?
            .into_parts();
        let mut request = self
            .http
            .post(&self.endpoint)
            .header("content-type", CONTENT_TYPE)
            .body(body.to_string());
        for (name, value) in instructions.headers() {
            request = request.header(name, value);
        }
        let transport = |e: reqwest::Error| AttemptError::Transport(e.to_string());
        let response = request.send().await.map_err(transport)?;
        let status = response.status();
        let text = response.text().await.map_err(transport)?;
        if status.is_success() {
            return Ok(text);
        }
        let (code, message) = parse_error(&text);
        Err(AttemptError::Answer {
            retryable: status.is_server_error() || RETRYABLE.contains(&code.as_str()),
            status: status.as_u16(),
            code,
            message,
        })
    }
}

/// Why one EC2 request got no answer to use.
#[derive(Debug, thiserror::Error)]
enum AttemptError {
    /// No answer (credentials, signing, connection, timeout): tried again.
    #[error("{0}")]
    Transport(String),
    /// An error answer; throttling and server errors are tried again.
    #[error("HTTP {status}: {code}: {message}")]
    Answer {
        status: u16,
        code: String,
        message: String,
        retryable: bool,
    },
}

impl AttemptError {
    fn is_retryable(&self) -> bool {
        match self {
            AttemptError::Transport(_) => true,
            AttemptError::Answer { retryable, .. } => *retryable,
        }
    }
}

/// A factor in 0.5..1 for backoff jitter.
fn jitter() -> f64 {
    0.5 + fastrand::f64() / 2.0
}

/// Every byte but RFC 3986's unreserved characters, percent-encoded (the Query API's
/// form encoding, as SigV4 signs it).
const QUERY_VALUE: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

fn encode(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, QUERY_VALUE).to_string()
}

/// The error code and message of an EC2 error answer
/// (`<Response><Errors><Error><Code>..</Code><Message>..</Message>`).
fn parse_error(xml: &str) -> (String, String) {
    let mut code = String::new();
    let mut message = String::new();
    let mut doc = Document::new(xml);
    if let Ok(mut root) = doc.root_element() {
        while let Some(mut errors) = root.next_tag() {
            if !errors.start_el().matches("Errors") {
                continue;
            }
            while let Some(mut error) = errors.next_tag() {
                while let Some(mut field) = error.next_tag() {
                    if field.start_el().matches("Code") {
                        code = text(&mut field).unwrap_or_default();
                    } else if field.start_el().matches("Message") {
                        message = text(&mut field).unwrap_or_default();
                    }
                }
            }
        }
    }
    if code.is_empty() {
        code = "UnknownError".to_string();
    }
    (code, message)
}

fn text(el: &mut ScopedDecoder<'_, '_>) -> Result<String, String> {
    try_data(el)
        .map(|t| t.trim().to_string())
        .map_err(|e| e.to_string())
}

/// One page of a Describe answer: appends the items of its `set` element to `found`;
/// returns the next page's token.
fn parse_page<T>(
    xml: &str,
    set: &str,
    parse_item: fn(&mut ScopedDecoder<'_, '_>) -> Result<T, String>,
    found: &mut Vec<T>,
) -> Result<Option<String>, String> {
    let mut doc = Document::new(xml);
    let mut root = doc.root_element().map_err(|e| e.to_string())?;
    let mut next = None;
    while let Some(mut tag) = root.next_tag() {
        if tag.start_el().matches(set) {
            while let Some(mut item) = tag.next_tag() {
                found.push(parse_item(&mut item)?);
            }
        } else if tag.start_el().matches("nextToken") {
            next = Some(text(&mut tag)?);
        }
    }
    Ok(next)
}

fn parse_interface(item: &mut ScopedDecoder<'_, '_>) -> Result<NetworkInterface, String> {
    let mut ni = NetworkInterface::default();
    let mut primary = None;
    let mut others = Vec::new();
    while let Some(mut tag) = item.next_tag() {
        let name = tag.start_el().local().to_string();
        match name.as_str() {
            "networkInterfaceId" => ni.id = text(&mut tag)?,
            "vpcId" => ni.vpc_id = Some(text(&mut tag)?),
            "subnetId" => ni.subnet_id = Some(text(&mut tag)?),
            "privateIpAddress" => primary = Some(text(&mut tag)?),
            "groupSet" => ni.group_ids = item_fields(&mut tag, "groupId")?,
            "privateIpAddressesSet" => others.extend(item_fields(&mut tag, "privateIpAddress")?),
            "ipv6AddressesSet" => others.extend(item_fields(&mut tag, "ipv6Address")?),
            "attachment" => {
                while let Some(mut field) = tag.next_tag() {
                    if field.start_el().matches("instanceId") {
                        ni.instance_id = Some(text(&mut field)?);
                    }
                }
            }
            _ => {}
        }
    }
    for address in primary.into_iter().chain(others) {
        if !address.is_empty() && !ni.addresses.contains(&address) {
            ni.addresses.push(address);
        }
    }
    Ok(ni)
}

/// The text of every `<item><NAME>` of a set (other fields of the items are skipped).
fn item_fields(set: &mut ScopedDecoder<'_, '_>, name: &str) -> Result<Vec<String>, String> {
    let mut values = Vec::new();
    while let Some(mut item) = set.next_tag() {
        while let Some(mut field) = item.next_tag() {
            if field.start_el().matches(name) {
                values.push(text(&mut field)?);
            }
        }
    }
    Ok(values)
}

fn parse_vpc(item: &mut ScopedDecoder<'_, '_>) -> Result<Vpc, String> {
    let mut vpc = Vpc::default();
    let push = |blocks: &mut Vec<String>, block: String| {
        if !block.is_empty() && !blocks.contains(&block) {
            blocks.push(block);
        }
    };
    while let Some(mut tag) = item.next_tag() {
        let name = tag.start_el().local().to_string();
        match name.as_str() {
            "vpcId" => vpc.id = text(&mut tag)?,
            "cidrBlock" => push(&mut vpc.cidr_blocks, text(&mut tag)?),
            "cidrBlockAssociationSet" | "ipv6CidrBlockAssociationSet" => {
                let (block_tag, state_tag) = if name.starts_with("ipv6") {
                    ("ipv6CidrBlock", "ipv6CidrBlockState")
                } else {
                    ("cidrBlock", "cidrBlockState")
                };
                while let Some(mut association) = tag.next_tag() {
                    let mut block = String::new();
                    let mut state = None;
                    while let Some(mut field) = association.next_tag() {
                        if field.start_el().matches(block_tag) {
                            block = text(&mut field)?;
                        } else if field.start_el().matches(state_tag) {
                            while let Some(mut s) = field.next_tag() {
                                if s.start_el().matches("state") {
                                    state = Some(text(&mut s)?);
                                }
                            }
                        }
                    }
                    if state.as_deref().is_none_or(|s| s == "associated") {
                        push(&mut vpc.cidr_blocks, block);
                    }
                }
            }
            _ => {}
        }
    }
    Ok(vpc)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_network_interfaces() {
        let xml = r#"<?xml version="1.0" encoding="UTF-8"?>
<DescribeNetworkInterfacesResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">
  <requestId>fc45294c-example</requestId>
  <networkInterfaceSet>
    <item>
      <networkInterfaceId>eni-0f7db66e2bexample</networkInterfaceId>
      <subnetId>subnet-c88abexample</subnetId>
      <vpcId>vpc-8e7fexample</vpcId>
      <description/>
      <groupSet>
        <item><groupId>sg-3f4b5example</groupId><groupName>default</groupName></item>
        <item><groupId>sg-aaaa1example</groupId><groupName>web &amp; ssh</groupName></item>
      </groupSet>
      <attachment><attachmentId>eni-attach-1</attachmentId><instanceId>i-0a1b2example</instanceId><deviceIndex>0</deviceIndex></attachment>
      <privateIpAddress>10.0.1.5</privateIpAddress>
      <privateIpAddressesSet>
        <item><privateIpAddress>10.0.1.5</privateIpAddress><primary>true</primary>
          <association><publicIp>203.0.113.12</publicIp></association></item>
        <item><privateIpAddress>10.0.1.6</privateIpAddress><primary>false</primary></item>
      </privateIpAddressesSet>
      <ipv6AddressesSet><item><ipv6Address>2600:1f18::5</ipv6Address></item></ipv6AddressesSet>
      <tagSet/>
    </item>
  </networkInterfaceSet>
  <nextToken>page+2/=</nextToken>
</DescribeNetworkInterfacesResponse>"#;
        let mut found = Vec::new();
        let next = parse_page(xml, "networkInterfaceSet", parse_interface, &mut found).unwrap();
        assert_eq!(next.as_deref(), Some("page+2/="));
        assert_eq!(
            found,
            vec![NetworkInterface {
                id: "eni-0f7db66e2bexample".into(),
                vpc_id: Some("vpc-8e7fexample".into()),
                subnet_id: Some("subnet-c88abexample".into()),
                instance_id: Some("i-0a1b2example".into()),
                group_ids: vec!["sg-3f4b5example".into(), "sg-aaaa1example".into()],
                addresses: vec!["10.0.1.5".into(), "10.0.1.6".into(), "2600:1f18::5".into()],
            }]
        );
    }

    #[test]
    fn reads_vpcs_with_associated_blocks_only() {
        let xml = r#"<DescribeVpcsResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">
  <vpcSet><item>
    <vpcId>vpc-1</vpcId><cidrBlock>10.0.0.0/16</cidrBlock>
    <cidrBlockAssociationSet>
      <item><cidrBlock>10.0.0.0/16</cidrBlock><cidrBlockState><state>associated</state></cidrBlockState></item>
      <item><cidrBlock>10.1.0.0/16</cidrBlock><cidrBlockState><state>associated</state></cidrBlockState></item>
      <item><cidrBlock>10.2.0.0/16</cidrBlock><cidrBlockState><state>disassociated</state></cidrBlockState></item>
    </cidrBlockAssociationSet>
    <ipv6CidrBlockAssociationSet>
      <item><ipv6CidrBlock>2600:1f18::/56</ipv6CidrBlock><ipv6CidrBlockState><state>associated</state></ipv6CidrBlockState></item>
    </ipv6CidrBlockAssociationSet>
  </item></vpcSet>
</DescribeVpcsResponse>"#;
        let mut found = Vec::new();
        let next = parse_page(xml, "vpcSet", parse_vpc, &mut found).unwrap();
        assert_eq!(next, None);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].id, "vpc-1");
        assert_eq!(
            found[0].cidr_blocks,
            vec!["10.0.0.0/16", "10.1.0.0/16", "2600:1f18::/56"]
        );
    }

    #[test]
    fn reads_error_answers() {
        let xml = r#"<?xml version="1.0" encoding="UTF-8"?>
<Response><Errors><Error><Code>RequestLimitExceeded</Code><Message>Request limit exceeded.</Message></Error></Errors><RequestID>x</RequestID></Response>"#;
        assert_eq!(
            parse_error(xml),
            (
                "RequestLimitExceeded".to_string(),
                "Request limit exceeded.".to_string()
            )
        );
        assert_eq!(parse_error("not xml").0, "UnknownError");
    }

    #[test]
    fn query_values_are_percent_encoded() {
        assert_eq!(encode("eni-0a1b"), "eni-0a1b");
        assert_eq!(encode("a+b/c= d"), "a%2Bb%2Fc%3D%20d");
    }
}
