//! S3 objects: a streamed GetObject body for text and gzip objects, and ranged reads for
//! Parquet objects (footer first, then the row groups' pages), through aws-sdk-s3.

use std::io::{Cursor, Read};
use std::sync::Mutex;

use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use bytes::Bytes;
use parquet::errors::ParquetError;
use parquet::file::reader::{ChunkReader, Length};

/// Smallest ranged read: ranges are fetched in windows of this size or more, so the
/// many small reads of a Parquet reader become few requests; memory stays bounded by
/// the window.
const WINDOW: u64 = 8 * 1024 * 1024;

/// A streamed GetObject body and what the response says of the object.
pub struct ObjectStream {
    /// The body as a blocking reader (to be used on a blocking thread).
    pub body: Box<dyn Read + Send>,
    pub len: u64,
    /// The object's ETag, which names its content (event ids use it when the
    /// notification gave none).
    pub etag: Option<String>,
}

/// Starts a streamed GetObject.
pub async fn open_stream(
    client: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
    version_id: Option<&str>,
) -> Result<ObjectStream, String> {
    let output = client
        .get_object()
        .bucket(bucket)
        .key(key)
        .set_version_id(version_id.map(str::to_string))
        .send()
        .await
        .map_err(|e| describe("GetObject", e))?;
    let len = output.content_length().unwrap_or(0).max(0) as u64;
    let etag = output.e_tag().map(str::to_string);
    let reader = tokio_util::io::SyncIoBridge::new(output.body.into_async_read());
    Ok(ObjectStream {
        body: Box::new(reader),
        len,
        etag,
    })
}

/// What went wrong with an S3 request: the S3 error code and message, or the cause of a
/// request that never got an answer (with how to point at S3). The object is named by
/// whoever reports the unit.
fn describe<E, R>(op: &str, e: SdkError<E, R>) -> String
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug + 'static,
{
    if let SdkError::DispatchFailure(_) | SdkError::ConstructionFailure(_) = &e {
        // The chain of causes, without the debug dump DisplayErrorContext adds.
        let mut causes = Vec::new();
        let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(&e);
        while let Some(c) = cause {
            causes.push(c.to_string());
            cause = c.source();
        }
        let cause = causes.join(": ");
        return format!(
            "{op} failed: no answer from S3 ({cause}): no AWS credentials, region or reachable endpoint? \
             For a local S3 API server set AWS_ENDPOINT_URL (with AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION); \
             `invoke --s3-dir DIR` reads DIR/bucket/key instead"
        );
    }
    let code = e.code().unwrap_or("error").to_string();
    let message = e
        .message()
        .map(str::to_string)
        .unwrap_or_else(|| DisplayErrorContext(&e).to_string());
    format!("{op} failed: {code}: {message}")
}

/// Random access to an S3 object by ranged GetObject, for the Parquet reader. Used on a
/// blocking thread: each fetch blocks on the runtime `handle`.
pub struct RangedObject {
    client: aws_sdk_s3::Client,
    handle: tokio::runtime::Handle,
    bucket: String,
    key: String,
    version_id: Option<String>,
    len: u64,
    /// The last window fetched: its start offset and bytes.
    window: Mutex<(u64, Bytes)>,
}

impl RangedObject {
    pub fn new(
        client: aws_sdk_s3::Client,
        handle: tokio::runtime::Handle,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
        len: u64,
    ) -> RangedObject {
        RangedObject {
            client,
            handle,
            bucket: bucket.to_string(),
            key: key.to_string(),
            version_id: version_id.map(str::to_string),
            len,
            window: Mutex::new((0, Bytes::new())),
        }
    }

    /// The bytes from `start` on, at least `want` of them (fewer at the end of the
    /// object), from the current window or a new ranged GET.
    fn fetch(&self, start: u64, want: u64) -> Result<Bytes, ParquetError> {
        if start > self.len {
            return Err(ParquetError::EOF(format!(
                "offset {start} past the end ({})",
                self.len
            )));
        }
        let want = want.min(self.len - start);
        let mut window = self
            .window
            .lock()
            .map_err(|_| ParquetError::General("window lock poisoned".into()))?;
        let (w_start, bytes) = &*window;
        if start >= *w_start && start + want <= w_start + bytes.len() as u64 {
            return Ok(bytes.slice((start - w_start) as usize..));
        }
        let end = (start + want.max(WINDOW)).min(self.len);
        if end == start {
            return Ok(Bytes::new());
        }
        let request = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(&self.key)
            .set_version_id(self.version_id.clone())
            .range(format!("bytes={start}-{}", end - 1));
        let body = self.handle.block_on(async {
            let output = request
                .send()
                .await
                .map_err(|e| describe("ranged GetObject", e))?;
            output
                .body
                .collect()
                .await
                .map(|data| data.into_bytes())
                .map_err(|e| format!("reading a range: {e}"))
        });
        let body = body.map_err(ParquetError::General)?;
        if (body.len() as u64) < end - start {
            return Err(ParquetError::EOF(format!(
                "range {start}-{} returned {} bytes",
                end - 1,
                body.len()
            )));
        }
        *window = (start, body.clone());
        Ok(body)
    }
}

impl Length for RangedObject {
    fn len(&self) -> u64 {
        self.len
    }
}

impl ChunkReader for RangedObject {
    type T = Cursor<Bytes>;

    fn get_read(&self, start: u64) -> Result<Self::T, ParquetError> {
        // A page header is read from here: make sure a generous amount follows.
        Ok(Cursor::new(self.fetch(start, 64 * 1024)?))
    }

    fn get_bytes(&self, start: u64, length: usize) -> Result<Bytes, ParquetError> {
        let bytes = self.fetch(start, length as u64)?;
        if bytes.len() < length {
            return Err(ParquetError::EOF(format!(
                "{} bytes at {start}: only {} remain",
                length,
                bytes.len()
            )));
        }
        Ok(bytes.slice(..length))
    }
}
