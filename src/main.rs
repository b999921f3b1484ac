//! Entry point: the Lambda runtime inside AWS Lambda, the command line elsewhere.

use std::process::ExitCode;

fn main() -> ExitCode {
    tune_allocator();
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    if args.is_empty() && std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_some() {
        return flowlog_forwarder::lambda::run();
    }
    flowlog_forwarder::cli::run(args)
}

/// glibc's malloc by default gives memory back to the system when the top of a heap has
/// 128 KB to 32 MB free (a threshold that moves), and takes it again at the next
/// allocation: with request bodies of 1 MB and Parquet pages of about as much allocated
/// and freed in turn, a million Parquet rows cost some 35,000 page faults and 20 % more
/// CPU than the same rows as text (BENCHMARKS.md). Fixed thresholds keep freed memory
/// up to 64 MB for reuse (peak memory is unchanged: it is what was in use at once) and
/// leave only blocks of 4 MB and more to mmap.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn tune_allocator() {
    // SAFETY: mallopt only sets allocator parameters; called before any thread starts.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 4 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 64 << 20);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn tune_allocator() {}
