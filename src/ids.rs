//! Every event id (`event.id`, OCSF `metadata.uid`), deterministic so that a retried
//! unit gives the same ids: a unit's seed (an S3 object's identity, a CloudWatch log
//! stream, a local file and its content) and each record's number; the ids of
//! CloudWatch Logs events that came without one; and the ids of aggregates.

/// Where the deterministic event ids of a unit come from. An id is bound to the record's
/// content: it stays equal when the same record is processed again (retries are
/// idempotent at receivers that deduplicate on it) and differs whenever the record
/// differs.
#[derive(Debug, Clone, Copy)]
pub struct IdSeed {
    seed: u128,
    /// Whether the record's own bytes are hashed too: inputs without an identity that
    /// changes with their content (local files, standard input), where the same name and
    /// line number may hold another record on the next run.
    pub(crate) hash_content: bool,
}

impl IdSeed {
    /// A seed from the identity of an input whose content never changes under it: an S3
    /// object named by bucket, key and version or ETag (`s3`, bucket, key, version). The
    /// id of a record is a hash of this seed and its line (or row) number.
    pub fn new(parts: &[&str]) -> IdSeed {
        IdSeed {
            seed: hash_parts(parts),
            hash_content: false,
        }
    }

    /// The seed of an S3 object: its bucket, key, and version or ETag (`content`).
    pub fn for_object(bucket: &str, key: &str, content: &str) -> IdSeed {
        IdSeed::new(&["s3", bucket, key, content])
    }

    /// The seed of a CloudWatch Logs delivery: its log group and stream (each event has
    /// an id of its own, `LogEventIds`).
    pub fn for_log_stream(group: &str, stream: &str) -> IdSeed {
        IdSeed::new(&["cloudwatch", group, stream])
    }

    /// The seed of a local file or standard input (`-`), whose records' bytes are
    /// hashed too.
    pub fn for_file(name: &str) -> IdSeed {
        IdSeed::with_content(&["file", name])
    }

    /// A seed for an input whose name says nothing of its content (a local file,
    /// standard input): the id of a record also hashes the record's own bytes, unless
    /// the seed is bound to the whole input's digest (`bound_to`).
    pub fn with_content(parts: &[&str]) -> IdSeed {
        IdSeed {
            seed: hash_parts(parts),
            hash_content: true,
        }
    }

    /// This seed bound to the digest of the whole input (a Parquet object, read by
    /// position: hashing it once is cheaper than hashing each row's values): records
    /// are then told apart by their number alone.
    pub(crate) fn bound_to(self, digest: u128) -> IdSeed {
        if !self.hash_content {
            return self;
        }
        let mut bytes = [0u8; 32];
        bytes[..16].copy_from_slice(&self.seed.to_le_bytes());
        bytes[16..].copy_from_slice(&digest.to_le_bytes());
        IdSeed {
            seed: xxhash_rust::xxh3::xxh3_128(&bytes),
            hash_content: false,
        }
    }

    /// The id of record `line` whose bytes are `content`: a hash of the seed and the
    /// line number, and, for inputs whose records are hashed, of the content (seeded
    /// with the first hash, one pass over the bytes).
    pub(crate) fn id(&self, line: u64, content: &[u8], out: &mut String) {
        let mut bytes = [0u8; 24];
        bytes[..16].copy_from_slice(&self.seed.to_le_bytes());
        bytes[16..].copy_from_slice(&line.to_le_bytes());
        let mut h = xxhash_rust::xxh3::xxh3_128(&bytes);
        if self.hash_content {
            h ^= xxhash_rust::xxh3::xxh3_128_with_seed(content, h as u64);
        }
        out.clear();
        push_hex(h, out);
    }
}

/// Appends `h` as 32 lower-case hex digits.
fn push_hex(h: u128, out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut hex = [0u8; 32];
    for (i, b) in h.to_be_bytes().into_iter().enumerate() {
        hex[2 * i] = HEX[(b >> 4) as usize];
        hex[2 * i + 1] = HEX[(b & 0xf) as usize];
    }
    out.push_str(std::str::from_utf8(&hex).unwrap_or_default());
}

/// The `event.id` of an aggregate (AGGREGATE): derived from its first record's id and
/// the number of records folded, so that a unit read again gives the same ids.
pub fn aggregate_id(first: &str, records: u64) -> String {
    let mut bytes = Vec::with_capacity(first.len() + 9);
    bytes.extend_from_slice(first.as_bytes());
    bytes.push(b'/');
    bytes.extend_from_slice(&records.to_le_bytes());
    let mut id = String::with_capacity(32);
    push_hex(xxhash_rust::xxh3::xxh3_128(&bytes), &mut id);
    id
}

/// A hash of `parts`, each prefixed by its length (so that parts cannot run together).
fn hash_parts(parts: &[&str]) -> u128 {
    let mut bytes = Vec::new();
    for p in parts {
        bytes.extend_from_slice(&(p.len() as u64).to_le_bytes());
        bytes.extend_from_slice(p.as_bytes());
    }
    xxhash_rust::xxh3::xxh3_128(&bytes)
}

/// Ids for the events of a CloudWatch Logs delivery that came without one (or with an
/// empty one): a hash of the group, stream, timestamp and message, and of how many
/// identical events came before it in the delivery, so that the same delivery always
/// gets the same ids.
#[derive(Default)]
pub struct LogEventIds {
    seen: std::collections::HashMap<u128, u64>,
}

impl LogEventIds {
    /// The id of the next event without one.
    pub fn next(&mut self, group: &str, stream: &str, message: &str, timestamp: i64) -> String {
        let mut bytes = Vec::with_capacity(group.len() + stream.len() + message.len() + 48);
        for part in [group, stream, message] {
            bytes.extend_from_slice(&(part.len() as u64).to_le_bytes());
            bytes.extend_from_slice(part.as_bytes());
        }
        bytes.extend_from_slice(&timestamp.to_le_bytes());
        let content = xxhash_rust::xxh3::xxh3_128(&bytes);
        let occurrence = self.seen.entry(content).or_insert(0);
        bytes.extend_from_slice(&occurrence.to_le_bytes());
        *occurrence += 1;
        let mut id = String::with_capacity(32);
        push_hex(xxhash_rust::xxh3::xxh3_128(&bytes), &mut id);
        id
    }
}
