//! Request body compression (GZIP): bodies are gzipped at level 1 on one thread of
//! their own, off the async workers.

use std::io::Write;

/// The thread request bodies are gzipped on, one at a time, off the async workers. One
/// thread keeps up with the one parsing thread; on the blocking pool, each of the threads
/// it started for concurrent bodies kept a glibc arena of its own, about 3 MB each
/// (8-10 MB of peak RSS at MAX_IN_FLIGHT 4, BENCHMARKS.md).
pub(super) struct Compressor {
    jobs: std::sync::mpsc::Sender<(Vec<u8>, GzipReply)>,
}

type GzipReply = tokio::sync::oneshot::Sender<std::io::Result<Vec<u8>>>;

impl Compressor {
    /// Starts the thread; it ends when the last sink clone is dropped.
    pub(super) fn start() -> std::io::Result<Compressor> {
        let (jobs, queue) = std::sync::mpsc::channel::<(Vec<u8>, GzipReply)>();
        std::thread::Builder::new()
            .name("gzip".into())
            .spawn(move || {
                for (body, reply) in queue {
                    let _ = reply.send(gzip(&body));
                }
            })?;
        Ok(Compressor { jobs })
    }

    pub(super) async fn gzip(&self, body: Vec<u8>) -> std::io::Result<Vec<u8>> {
        let (reply, done) = tokio::sync::oneshot::channel();
        self.jobs
            .send((body, reply))
            .map_err(|_| std::io::Error::other("the compression thread has stopped"))?;
        done.await
            .map_err(|_| std::io::Error::other("the compression thread has stopped"))?
    }
}

/// Gzips a request body (level 1: fast, and receivers pay for nothing else).
fn gzip(body: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut e = flate2::write::GzEncoder::new(
        Vec::with_capacity(body.len() / 6 + 64),
        flate2::Compression::fast(),
    );
    e.write_all(body)?;
    e.finish()
}
