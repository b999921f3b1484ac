//! The command line (shared/DESIGN.md section 2): `process` runs files through
//! source -> parse -> filter -> normalize -> sink without Lambda.

use std::ffi::OsString;
use std::fs::File;
use std::io::{self, Read, Write};
use std::process::ExitCode;

use crate::config::Config;
use crate::ecs::Origin;
use crate::flowlog::Schema;
use crate::pipeline::{Counts, IdSeed, Outcome, UnitProcessor};
use crate::source;

pub const HELP: &str = "\
flowlog-forwarder: AWS VPC and Transit Gateway Flow Logs to ECS documents, forwarded over HTTP.

USAGE:
    flowlog-forwarder                      inside AWS Lambda (AWS_LAMBDA_RUNTIME_API set): run the function
    flowlog-forwarder process [OPTIONS] [FILE|-]...
    flowlog-forwarder --help | --version

COMMANDS:
    process    Read flow log files (plain, gzip or multi-member gzip, detected from content;
               '-' or no FILE reads standard input). A header line ('version account-id ...')
               sets the format of the lines after it; lines without one use --log-format.
               Writes one ECS JSON document per record to standard output (NDJSON), and a
               one-line summary to standard error:
                 summary read=N forwarded=N filtered=N malformed=N failed=N inputs=N input_errors=N
               Exit status: 0 when every input was read to its end, 1 when an input failed
               (unreadable, truncated gzip, over a limit), 2 for bad arguments or configuration.

OPTIONS:
    --log-format FORMAT    Format of lines without a header, as LOG_FORMAT:
                           '${version} ${account-id} ...' or bare names. Default: AWS default v2.
    --destination URL      Where documents go, as DESTINATION_URL ('stdout' is standard output).
    -h, --help             This help.
    -V, --version          The version.

ENVIRONMENT (validated at start; a bad value exits 2 naming the variable):
    DESTINATION_URL        http(s) URL of the receiver; 'stdout' outside Lambda (default outside Lambda)
    DESTINATION_FORMAT     ndjson | elasticsearch | splunk-hec                 (default ndjson)
    DESTINATION_HEADERS    JSON object of extra request headers (auth tokens; never logged)
    DESTINATION_SECRET_ARN Secrets Manager secret holding that JSON object instead
    DESTINATION_INDEX      elasticsearch index/data stream (default logs-aws.vpcflow-default), splunk index
    COMPRESSION            gzip | none, for request bodies                     (default gzip)
    BATCH_MAX_BYTES        uncompressed bytes per request                      (default 1048576)
    BATCH_MAX_EVENTS       documents per request                               (default 10000)
    MAX_RETRIES            retries of one request                              (default 5)
    LOG_FORMAT             format for inputs without a header line             (default AWS v2 format)
    INTERNAL_CIDRS         comma list; records whose source AND destination are both inside are
                           dropped (counted). 'a.b.c.d/n' and IPv6 CIDRs match by value; entries
                           without '/' are text prefixes. VPC_CIDR_PREFIX is read as well.
    ACTIONS                comma list of actions to keep: ACCEPT, REJECT (NODATA/SKIPDATA always kept)
    INCLUDE_ORIGINAL       true adds event.original, the raw line               (default false)
    MAX_LINE_BYTES         longest accepted line                               (default 262144)
    MAX_OBJECT_BYTES       most bytes one input may decompress to              (default 4 GiB)
    MAX_DECOMPRESSION_RATIO  most decompressed bytes per compressed byte       (default 200)
";

/// Runs the command line; returns the process exit status.
pub fn run(args: Vec<OsString>) -> ExitCode {
    let args: Vec<String> = match args.into_iter().map(|a| a.into_string()).collect() {
        Ok(a) => a,
        Err(bad) => return usage_error(&format!("argument {bad:?} is not valid UTF-8")),
    };
    if args
        .iter()
        .any(|a| a == "-h" || a == "--help" || a == "help")
    {
        print!("{HELP}");
        return ExitCode::SUCCESS;
    }
    if args.iter().any(|a| a == "-V" || a == "--version") {
        println!("flowlog-forwarder {}", env!("CARGO_PKG_VERSION"));
        return ExitCode::SUCCESS;
    }
    let Some((command, rest)) = args.split_first() else {
        return usage_error(
            "no command given (not inside Lambda: AWS_LAMBDA_RUNTIME_API is not set)",
        );
    };
    match command.as_str() {
        "process" => process_command(rest),
        other => usage_error(&format!("unknown command '{other}'")),
    }
}

fn usage_error(message: &str) -> ExitCode {
    eprintln!("flowlog-forwarder: {message}\nRun 'flowlog-forwarder --help' for usage.");
    ExitCode::from(2)
}

/// Options shared by the commands.
#[derive(Debug, Default)]
struct Options {
    log_format: Option<String>,
    destination: Option<String>,
    positional: Vec<String>,
}

fn parse_options(args: &[String]) -> Result<Options, String> {
    let mut opts = Options::default();
    let mut i = 0;
    while i < args.len() {
        let arg = &args[i];
        let (name, inline) = match arg.split_once('=') {
            Some((n, v)) if n.starts_with("--") => (n, Some(v.to_string())),
            _ => (arg.as_str(), None),
        };
        let value = |i: &mut usize| -> Result<String, String> {
            if let Some(v) = inline.clone() {
                return Ok(v);
            }
            *i += 1;
            args.get(*i)
                .cloned()
                .ok_or_else(|| format!("{name} needs a value"))
        };
        match name {
            "--log-format" => opts.log_format = Some(value(&mut i)?),
            "--destination" => opts.destination = Some(value(&mut i)?),
            "-" => opts.positional.push(arg.clone()),
            "--" => {
                opts.positional.extend(args[i + 1..].iter().cloned());
                break;
            }
            flag if flag.starts_with('-') => return Err(format!("unknown option '{flag}'")),
            _ => opts.positional.push(arg.clone()),
        }
        i += 1;
    }
    Ok(opts)
}

/// Builds the configuration: environment first, then command-line overrides.
fn load_config(opts: &Options) -> Result<Config, String> {
    let mut config = Config::from_env().map_err(|e| e.0)?;
    if let Some(format) = &opts.log_format {
        config.records.schema =
            Schema::parse_format(format).map_err(|e| format!("--log-format: {e}"))?;
    }
    if let Some(dest) = &opts.destination {
        let overridden = Config::from_lookup(|k| match k {
            "DESTINATION_URL" => Some(dest.clone()),
            _ => None,
        })
        .map_err(|e| {
            format!(
                "--destination: {}",
                e.0.trim_start_matches("DESTINATION_URL: ")
            )
        })?;
        config.destination_url = overridden.destination_url;
    }
    Ok(config)
}

fn process_command(args: &[String]) -> ExitCode {
    let opts = match parse_options(args) {
        Ok(o) => o,
        Err(e) => return usage_error(&e),
    };
    let config = match load_config(&opts) {
        Ok(c) => c,
        Err(e) => return usage_error(&e),
    };
    if config.destination_url.is_some() {
        return usage_error("HTTP destinations are not available in this build; use stdout");
    }
    let inputs = if opts.positional.is_empty() {
        vec!["-".to_string()]
    } else {
        opts.positional
    };

    let stdout = io::stdout();
    let mut out = io::BufWriter::with_capacity(256 * 1024, stdout.lock());
    let mut total = Counts::default();
    let mut input_errors = 0u64;
    let mut doc = Vec::with_capacity(4096);
    for input in &inputs {
        let reader: Box<dyn Read + Send> = if input == "-" {
            Box::new(io::stdin())
        } else {
            match File::open(input) {
                Ok(f) => Box::new(f),
                Err(e) => {
                    eprintln!("error: {input}: {e}");
                    input_errors += 1;
                    continue;
                }
            }
        };
        let name = if input == "-" {
            "<stdin>"
        } else {
            input.as_str()
        };
        let mut lines = match source::open_lines(reader, config.limits) {
            Ok(l) => l,
            Err(e) => {
                eprintln!("error: {name}: {e}");
                input_errors += 1;
                continue;
            }
        };
        let mut unit = UnitProcessor::new(
            &config.records,
            Origin::file(name),
            IdSeed::new(&["file", name]),
        );
        let mut last_line = 0;
        let result = loop {
            let line = match lines.next_line() {
                Ok(Some(line)) => line,
                Ok(None) => break Ok(()),
                Err(e) => break Err(format!("after line {last_line}: {e}")),
            };
            last_line = line.number;
            doc.clear();
            if let Outcome::Document { .. } = unit.process_line(&line, &mut doc) {
                doc.push(b'\n');
                if let Err(e) = out.write_all(&doc) {
                    return output_error(e);
                }
                unit.counts.forwarded += 1;
                unit.counts.bytes_out += doc.len() as u64;
            }
        };
        if let Err(e) = result {
            eprintln!("error: {name}: {e}");
            input_errors += 1;
        }
        total.add(&unit.counts);
    }
    if let Err(e) = out.flush() {
        return output_error(e);
    }
    eprintln!(
        "summary read={} forwarded={} filtered={} malformed={} failed={} inputs={} input_errors={}",
        total.read,
        total.forwarded,
        total.filtered,
        total.malformed,
        total.failed,
        inputs.len(),
        input_errors
    );
    if input_errors > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

fn output_error(e: io::Error) -> ExitCode {
    if e.kind() == io::ErrorKind::BrokenPipe {
        return ExitCode::SUCCESS;
    }
    eprintln!("error: writing output: {e}");
    ExitCode::from(1)
}
