//! Where the handler reads the S3 objects that notifications name: S3 itself (through
//! aws-sdk-s3, the client made when an event first names an object), or
//! `DIR/bucket/key` on local disk for `invoke --s3-dir`, confined to DIR.

use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use tokio::sync::OnceCell;

use crate::pipeline::UnitInput;
use crate::source::{self, s3::RangedObject};
use crate::trigger::S3Object;

/// Where S3 objects are read from.
#[derive(Clone)]
pub enum ObjectStore {
    /// S3, with a client made when first needed.
    S3(Arc<OnceCell<aws_sdk_s3::Client>>),
    /// `DIR/bucket/key` on local disk (`invoke --s3-dir`).
    Dir(PathBuf),
}

impl ObjectStore {
    /// Opens an object: a GetObject response body read as it arrives (and ranged reads
    /// for Parquet), or a file under `--s3-dir`; with the ETag GetObject answered. An
    /// error does not name the object (its caller does).
    pub async fn open(&self, obj: &S3Object) -> Result<(UnitInput, Option<String>), String> {
        match self {
            ObjectStore::Dir(dir) => {
                let path = local_object_path(dir, &obj.bucket, &obj.key)?;
                let file =
                    std::fs::File::open(&path).map_err(|e| format!("{e} ({})", path.display()))?;
                Ok((UnitInput::File(file), None))
            }
            ObjectStore::S3(cell) => {
                let client = cell
                    .get_or_init(|| async {
                        crate::aws::s3_client(&crate::aws::load_aws_config().await)
                    })
                    .await;
                let version = obj.version_id.as_deref();
                let stream =
                    source::s3::open_stream(client, &obj.bucket, &obj.key, version).await?;
                let ranged = RangedObject::new(
                    client.clone(),
                    tokio::runtime::Handle::current(),
                    &obj.bucket,
                    &obj.key,
                    version,
                    stream.len,
                );
                let input = UnitInput::S3 {
                    body: stream.body,
                    ranged,
                };
                Ok((input, stream.etag))
            }
        }
    }
}

/// `DIR/bucket/key` for `invoke --s3-dir`, refusing any bucket or key that would lead
/// outside DIR (`..`, an absolute path, a prefix).
fn local_object_path(dir: &Path, bucket: &str, key: &str) -> Result<PathBuf, String> {
    let mut path = dir.to_path_buf();
    for part in [bucket, key] {
        for component in Path::new(part).components() {
            match component {
                Component::Normal(c) => path.push(c),
                Component::CurDir => {}
                _ => {
                    return Err(format!(
                        "'{}' would be read outside the --s3-dir directory",
                        crate::text::shorten(part)
                    ))
                }
            }
        }
    }
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_object_paths_stay_inside_the_directory() {
        let dir = Path::new("/data/s3");
        assert_eq!(
            local_object_path(dir, "b", "AWSLogs/1/x.log.gz").unwrap(),
            Path::new("/data/s3/b/AWSLogs/1/x.log.gz")
        );
        for (bucket, key) in [
            ("b", "../x"),
            ("..", "x"),
            ("b", "/etc/passwd"),
            ("b", "a/../../x"),
        ] {
            assert!(
                local_object_path(dir, bucket, key).is_err(),
                "{bucket} {key}"
            );
        }
    }
}
