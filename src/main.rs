//! Entry point: the Lambda runtime inside AWS Lambda, the command line elsewhere.

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    flowlog_forwarder::cli::run(args)
}
