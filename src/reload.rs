//! Data read at cold start and again after a TTL: the threat list (THREAT_INTEL_URI)
//! and the GeoIP databases (GEOIP_DATABASE, GEOIP_ASN_DATABASE). Each is read from S3
//! (not downloaded again while its ETag is unchanged) or a file, chunk by chunk and
//! never past its size cap, within its load timeout and the invocation's deadline; a
//! reading that fails, times out or gives nothing usable keeps the previous value, with
//! a warning. This module owns those rules; `Reloadable` is what each kind of data
//! brings (how it is parsed, its cap, its name in messages).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

/// Data that `Reloaded` reads and reads again.
pub trait Reloadable: Sized + Send + Sync + 'static {
    /// The variable that names its source, in messages (`THREAT_INTEL_URI`).
    const VARIABLE: &'static str;
    /// What it is, in messages (`threat list`).
    const WHAT: &'static str;
    /// The variable that sets its load timeout, in messages.
    const TIMEOUT_VARIABLE: &'static str;
    /// The largest source read, checked before reading where the size is known and
    /// while reading.
    const MAX_BYTES: u64;
    /// Reads it chunk by chunk.
    type Parser: Parser<Self>;

    /// A parser for the source called `name`.
    fn parser(name: &str) -> Self::Parser;

    /// What a source over MAX_BYTES is told (`size`: bytes read or declared).
    fn too_large(size: u64) -> String;

    /// What its "loaded" log line says of it.
    fn describe(&self) -> String;
}

/// Parses a source fed chunk by chunk.
pub trait Parser<T> {
    fn feed(&mut self, chunk: &[u8]) -> Result<(), String>;
    /// The value read: refused when it holds nothing usable.
    fn finish(self) -> Result<T, String>;
}

/// Where data is read from.
#[derive(Debug, Clone)]
pub enum Location {
    S3 { bucket: String, key: String },
    File(std::path::PathBuf),
}

impl Location {
    /// `s3://bucket/key`, or a path.
    pub fn parse(uri: &str) -> Result<Location, String> {
        match uri.strip_prefix("s3://") {
            Some(rest) => match rest.split_once('/') {
                Some((bucket, key)) if !bucket.is_empty() && !key.is_empty() => Ok(Location::S3 {
                    bucket: bucket.to_string(),
                    key: key.to_string(),
                }),
                _ => Err(format!("'{uri}' is not s3://bucket/key")),
            },
            None => Ok(Location::File(uri.into())),
        }
    }

    fn name(&self) -> String {
        match self {
            Location::S3 { bucket, key } => format!("s3://{bucket}/{key}"),
            Location::File(path) => path.display().to_string(),
        }
    }
}

/// A path must name a file (or a pipe) that exists, and a regular file's size must be
/// within `T::MAX_BYTES`; checked at cold start (a configuration error) and before each
/// reading.
pub fn check_path<T: Reloadable>(path: &std::path::Path) -> Result<(), String> {
    let meta = std::fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
    if meta.is_dir() {
        return Err(format!(
            "{} is a directory, not a {}",
            path.display(),
            T::WHAT
        ));
    }
    if meta.is_file() {
        check_size::<T>(meta.len())?;
    }
    Ok(())
}

/// `size` (bytes read or declared) is within `T::MAX_BYTES`.
pub fn check_size<T: Reloadable>(size: u64) -> Result<(), String> {
    if size > T::MAX_BYTES {
        return Err(T::too_large(size));
    }
    Ok(())
}

/// Longest a source is read for by default: at cold start (Lambda's whole init phase
/// has 10 s), and at most inside an invocation.
pub const LOAD_TIMEOUT: Duration = Duration::from_secs(10);

/// Data loaded at cold start and read again after its TTL.
pub struct Reloaded<T: Reloadable> {
    location: Location,
    ttl: Duration,
    /// Longest one reading may take.
    load_timeout: Duration,
    s3: Option<aws_sdk_s3::Client>,
    state: RwLock<State<T>>,
    /// How many times the content was read (not counting unchanged ETags).
    downloads: AtomicU64,
}

struct State<T> {
    value: Option<Arc<T>>,
    etag: Option<String>,
    checked: Option<Instant>,
}

/// What a reading found.
enum Fetched<T> {
    Unchanged,
    New(T, Option<String>),
}

impl<T: Reloadable> Reloaded<T> {
    pub fn new(location: Location, ttl: Duration, s3: Option<aws_sdk_s3::Client>) -> Reloaded<T> {
        Reloaded {
            location,
            ttl,
            load_timeout: LOAD_TIMEOUT,
            s3,
            state: RwLock::new(State {
                value: None,
                etag: None,
                checked: None,
            }),
            downloads: AtomicU64::new(0),
        }
    }

    /// Gives one reading at most `timeout` (LOAD_TIMEOUT by default).
    pub fn with_load_timeout(mut self, timeout: Duration) -> Reloaded<T> {
        self.load_timeout = timeout;
        self
    }

    /// How many times the content was read.
    pub fn downloads(&self) -> u64 {
        self.downloads.load(Ordering::Relaxed)
    }

    /// The value to use: loaded when there is none, read again when its TTL has passed
    /// (not downloaded when its ETag is unchanged), never past `deadline` (a refresh of
    /// a loaded value: never past a quarter of the time left) nor for longer than its
    /// load timeout. A reading that fails, times out or gives nothing usable keeps the
    /// previous value (with a warning); with no value at all it is an error.
    pub async fn current(&self, deadline: Option<Instant>) -> Result<Arc<T>, String> {
        let (value, etag, due) = {
            let state = self.state.read().unwrap_or_else(|e| e.into_inner());
            let due = state.checked.is_none_or(|t| t.elapsed() >= self.ttl);
            (state.value.clone(), state.etag.clone(), due)
        };
        if let (Some(value), false) = (&value, due) {
            return Ok(value.clone());
        }
        // A refresh, with a value to keep using, takes at most a quarter of the time left.
        let now = Instant::now();
        let deadline = match (deadline, &value) {
            (Some(d), Some(_)) => now + d.saturating_duration_since(now) / 4,
            (Some(d), None) => d,
            (None, _) => now + self.load_timeout,
        }
        .min(now + self.load_timeout);
        let fetch = self.fetch(etag.as_deref().filter(|_| value.is_some()));
        let fetched = match tokio::time::timeout_at(deadline.into(), fetch).await {
            Ok(fetched) => fetched,
            Err(_) => Err(format!(
                "not read in time (the invocation's deadline, or {}: {} s)",
                T::TIMEOUT_VARIABLE,
                self.load_timeout.as_secs()
            )),
        };
        let name = self.location.name();
        let mut state = self.state.write().unwrap_or_else(|e| e.into_inner());
        match fetched {
            Ok(Fetched::Unchanged) => {
                state.checked = Some(Instant::now());
            }
            Ok(Fetched::New(parsed, etag)) => {
                self.downloads.fetch_add(1, Ordering::Relaxed);
                tracing::info!(source = %name, details = %parsed.describe(), "{} loaded", T::WHAT);
                state.value = Some(Arc::new(parsed));
                state.etag = etag;
                state.checked = Some(Instant::now());
            }
            Err(e) => {
                if state.value.is_none() {
                    return Err(format!("{} {name}: {e}", T::VARIABLE));
                }
                tracing::warn!(source = %name, error = %e, "{} reload failed: the previous one stays in use", T::WHAT);
                state.checked = Some(Instant::now());
            }
        }
        state
            .value
            .clone()
            .ok_or_else(|| format!("{} {name}: not loaded", T::VARIABLE))
    }

    /// Reads the source (unless its ETag is `etag`), as a stream, never past
    /// `T::MAX_BYTES` whatever the source says of its size.
    async fn fetch(&self, etag: Option<&str>) -> Result<Fetched<T>, String> {
        let name = self.location.name();
        match &self.location {
            Location::File(path) => {
                check_path::<T>(path)?;
                // A FIFO blocks here until a writer comes: the caller's timeout ends it.
                let file = tokio::fs::File::open(path)
                    .await
                    .map_err(|e| e.to_string())?;
                Ok(Fetched::New(read::<T>(file, &name).await?, None))
            }
            Location::S3 { bucket, key } => {
                let s3 = self.s3.as_ref().ok_or("no S3 client")?;
                let mut request = s3.get_object().bucket(bucket).key(key);
                if let Some(etag) = etag {
                    request = request.if_none_match(etag);
                }
                let object = match request.send().await {
                    Ok(o) => o,
                    Err(e) => {
                        let status = e.raw_response().map(|r| r.status().as_u16());
                        if status == Some(304) {
                            return Ok(Fetched::Unchanged);
                        }
                        return Err(aws_sdk_s3::error::DisplayErrorContext(&e).to_string());
                    }
                };
                check_size::<T>(object.content_length().unwrap_or(0).max(0) as u64)?;
                let etag = object.e_tag().map(str::to_string);
                let value = read::<T>(object.body.into_async_read(), &name).await?;
                Ok(Fetched::New(value, etag))
            }
        }
    }
}

/// Reads a value from `reader` chunk by chunk, never past `T::MAX_BYTES`.
async fn read<T: Reloadable>(
    mut reader: impl tokio::io::AsyncRead + Unpin,
    name: &str,
) -> Result<T, String> {
    use tokio::io::AsyncReadExt;
    let mut parser = T::parser(name);
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0u64;
    loop {
        let n = reader.read(&mut buf).await.map_err(|e| e.to_string())?;
        if n == 0 {
            break;
        }
        total += n as u64;
        check_size::<T>(total)?;
        parser.feed(&buf[..n])?;
    }
    parser.finish()
}
