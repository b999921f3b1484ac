//! Entry point: the Lambda runtime inside AWS Lambda, the command line elsewhere.

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    if args.is_empty() && std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_some() {
        return flowlog_forwarder::cli::run_lambda();
    }
    flowlog_forwarder::cli::run(args)
}
