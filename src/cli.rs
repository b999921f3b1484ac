//! The command line (README, Command line): `process` runs files through
//! source -> parse -> filter -> normalize -> sink without Lambda.

use std::ffi::OsString;
use std::fs::File;
use std::io;
use std::process::ExitCode;

use crate::config::Config;
use crate::context::Origin;
use crate::handler::Handler;
use crate::ids::IdSeed;
use crate::pipeline::{run_input, Counts, Lookups, Output, UnitInput, UnitProcessor};
use crate::sink::{Batch, BatchLimits, Destination};

/// `--help`: usage, commands and options; then the variables (`config::variables`).
const USAGE: &str = "\
flowlog-forwarder: AWS VPC and Transit Gateway Flow Logs to ECS documents, forwarded over HTTP.

USAGE:
    flowlog-forwarder                      inside AWS Lambda (AWS_LAMBDA_RUNTIME_API set): run the function
    flowlog-forwarder process [OPTIONS] [FILE|-]...
    flowlog-forwarder invoke EVENT.json [--s3-dir DIR] [--response FILE] [OPTIONS]
    flowlog-forwarder --help | --version

COMMANDS:
    process    Read flow log files (plain, gzip or multi-member gzip, or Parquet as flow logs
               write it, detected from content; '-' or no FILE reads standard input). A
               header line ('version account-id ...') sets the format of the lines after it;
               lines without one use --log-format (a Parquet file names its own columns).
               Writes one JSON document per record (ECS, or OCSF with --output-schema ocsf)
               to standard output (NDJSON), and a
               one-line summary to standard error:
                 summary read=N forwarded=N filtered=N malformed=N failed=N inputs=N input_errors=N
                 (then enriched=N unenriched=N with ENRICH_ENI)
               With --destination / DESTINATION_URL, documents are POSTed instead (batched,
               gzip, retried). Exit status: 0 when every input was read to its end and
               every document delivered; 1 when an input failed (unreadable, truncated
               gzip, over a limit) or documents could not be delivered; 2 for bad
               arguments or configuration.

    invoke     Run the Lambda handler once on an event file, exactly as in Lambda: every
               trigger shape (S3, SQS, SNS in SQS, EventBridge, CloudWatch Logs). Documents
               go to the destination (standard output by default). S3 objects are read from
               --s3-dir DIR (DIR/bucket/key) when given, else from S3 (AWS_ENDPOINT_URL
               honoured). The handler's response JSON is written to --response FILE and is
               always the last line on standard error. Exit status 0 even when the response
               reports failures; 1 when the handler returned an error (as Lambda records it).

OPTIONS:
    --s3-dir DIR           invoke: read S3 objects from DIR/bucket/key instead of S3.
    --response FILE        invoke: write the handler response JSON to FILE.
    --log-format FORMAT    Format of lines without a header, as LOG_FORMAT:
                           '${version} ${account-id} ...' or bare names. Default: AWS default v2.
    --destination URL      Where documents go, as DESTINATION_URL ('stdout' is standard output).
    --output-schema NAME   ecs | ocsf | raw, as OUTPUT_SCHEMA.
    -h, --help             This help.
    -V, --version          The version.

ENVIRONMENT (validated at start; a bad value exits 2 naming the variable):";

/// The text of `--help`.
pub fn help() -> String {
    format!("{USAGE}\n{}", crate::config::variables::help_text(100))
}

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
        print!("{}", help());
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
        "invoke" => invoke_command(rest),
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
    output_schema: Option<String>,
    s3_dir: Option<String>,
    response: Option<String>,
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
            "--output-schema" => opts.output_schema = Some(value(&mut i)?),
            "--s3-dir" => opts.s3_dir = Some(value(&mut i)?),
            "--response" => opts.response = Some(value(&mut i)?),
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

/// Builds the configuration: the environment, with the command line's options read in
/// place of the variables they stand for, so that every setting derived from them
/// (pipeline, data stream, HEC framing) is derived once, by `Config`.
fn load_config(opts: &Options) -> Result<Config, String> {
    let overrides = [
        ("LOG_FORMAT", "--log-format", &opts.log_format),
        ("OUTPUT_SCHEMA", "--output-schema", &opts.output_schema),
        ("DESTINATION_URL", "--destination", &opts.destination),
    ];
    Config::from_lookup(
        |name| match overrides.iter().find(|(variable, _, _)| *variable == name) {
            Some((_, _, Some(value))) => Some(value.clone()),
            _ => std::env::var(name).ok(),
        },
    )
    .map_err(|e| {
        match overrides
            .iter()
            .find(|(variable, _, value)| *variable == e.variable && value.is_some())
        {
            Some((_, flag, _)) => format!("{flag}: {}", e.message),
            None => e.to_string(),
        }
    })
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
    if config.destination_secret_arn.is_none() {
        // Checked before anything starts; with a secret, once it is read.
        if let Err(e) = Destination::from_config(&config) {
            return usage_error(&e.to_string());
        }
    }
    crate::logging::init_cli(config.log_level);
    let inputs = if opts.positional.is_empty() {
        vec!["-".to_string()]
    } else {
        opts.positional
    };
    let runtime = match cli_runtime() {
        Ok(r) => r,
        Err(code) => return code,
    };
    // The cold start Lambda makes (the secret read, and again after SECRET_TTL_SECONDS),
    // and the threat list and GeoIP databases loaded before anything is read: one that
    // cannot be used (missing, over its caps, not read in time) stops the run.
    let built = runtime.block_on(async {
        let handler = Handler::new(config, None).await?;
        let lookups = handler.lookups(None).await.map_err(|e| e.to_string())?;
        Ok::<_, String>((handler, lookups))
    });
    let (handler, lookups) = match built {
        Ok(built) => built,
        Err(e) => {
            eprintln!("error: {e}");
            // A FIFO with no writer keeps a blocking thread in open(2): not waited for.
            runtime.shutdown_background();
            return ExitCode::from(2);
        }
    };
    let config = handler.config().clone();
    let result = runtime.block_on(process_inputs(&handler, inputs.clone(), lookups));
    let (counts, input_errors) = match result {
        Ok(r) => r,
        Err(e) => return output_error(e),
    };
    let threat_matches = if config.threat_intel_uri.is_some() {
        format!(" threat_matches={}", counts.threat_matches)
    } else {
        String::new()
    };
    let enrichment = if config.enrich_eni {
        format!(
            " enriched={} unenriched={}",
            counts.enriched, counts.unenriched
        )
    } else {
        String::new()
    };
    eprintln!(
        "summary read={} forwarded={} filtered={} malformed={} failed={} inputs={} input_errors={}{enrichment}{threat_matches}",
        counts.read,
        counts.forwarded,
        counts.filtered,
        counts.malformed,
        counts.failed,
        inputs.len(),
        input_errors
    );
    if input_errors > 0 || counts.failed > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

/// Reads the inputs on a blocking thread, batch by batch, while the destination
/// (standard output, or HTTP requests in flight) takes the batches.
async fn process_inputs(
    handler: &Handler,
    inputs: Vec<String>,
    lookups: Lookups,
) -> io::Result<(Counts, u64)> {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Batch>(2);
    let config = handler.config().clone();
    let producer = tokio::task::spawn_blocking(move || read_inputs(&config, &inputs, &lookups, tx));
    let mut delivery = handler.destination().delivery_run(None);
    while let Some(batch) = rx.recv().await {
        delivery.submit(batch).await;
    }
    let report = delivery.finish().await;
    let (units, input_errors) = producer.await.map_err(io::Error::other)?;
    let mut total = Counts::default();
    for (i, mut counts) in units.into_iter().enumerate() {
        let delivered = report.unit(i as u32);
        counts.settle(delivered.delivered);
        if let Some(error) = delivered.error {
            eprintln!(
                "error: input {}: {} documents not delivered: {error}",
                i + 1,
                delivered.failed
            );
        }
        total.add(&counts);
    }
    Ok((total, input_errors))
}

/// Reads every input through the record path; returns the counts of each input and the
/// number of inputs that could not be read to their end.
fn read_inputs(
    config: &Config,
    inputs: &[String],
    lookups: &Lookups,
    tx: tokio::sync::mpsc::Sender<Batch>,
) -> (Vec<Counts>, u64) {
    let limits = BatchLimits::of(config);
    let mut batch = Batch::default();
    let mut all = Vec::with_capacity(inputs.len());
    let mut input_errors = 0;
    let mut emit = |b: Batch| tx.blocking_send(b).is_ok();
    for (index, input) in inputs.iter().enumerate() {
        let name = if input == "-" {
            "<stdin>"
        } else {
            input.as_str()
        };
        let input_source = if input == "-" {
            UnitInput::Stream(Box::new(io::stdin()))
        } else {
            match File::open(input) {
                Ok(f) => UnitInput::File(f),
                Err(e) => {
                    eprintln!("error: {name}: {e}");
                    input_errors += 1;
                    all.push(Counts::default());
                    continue;
                }
            }
        };
        let mut unit =
            UnitProcessor::new(&config.records, Origin::file(name), IdSeed::for_file(name))
                .with_lookups(lookups);
        let mut out = Output::new(index as u32, &limits, &mut batch, &mut emit);
        let result = run_input(input_source, &mut unit, config.limits, &mut out);
        if let Err(e) = result {
            eprintln!("error: {name}: {e}");
            input_errors += 1;
        }
        all.push(unit.counts());
    }
    if !batch.is_empty() {
        emit(batch);
    }
    (all, input_errors)
}

fn invoke_command(args: &[String]) -> ExitCode {
    let opts = match parse_options(args) {
        Ok(o) => o,
        Err(e) => return usage_error(&e),
    };
    let [event_path] = opts.positional.as_slice() else {
        return usage_error("invoke takes exactly one EVENT.json");
    };
    let payload: serde_json::Value = match std::fs::read(event_path)
        .map_err(|e| e.to_string())
        .and_then(|b| serde_json::from_slice(&b).map_err(|e| format!("not JSON: {e}")))
    {
        Ok(v) => v,
        Err(e) => return usage_error(&format!("{event_path}: {e}")),
    };
    let config = match load_config(&opts) {
        Ok(c) => c,
        Err(e) => return usage_error(&e),
    };
    crate::logging::init_cli(config.log_level);
    let runtime = match cli_runtime() {
        Ok(r) => r,
        Err(code) => return code,
    };
    let s3_dir = opts.s3_dir.map(std::path::PathBuf::from);
    runtime.block_on(async move {
        let handler = match Handler::new(config, s3_dir).await {
            Ok(h) => h,
            Err(e) => return usage_error(&e),
        };
        handler.warm_up().await;
        // As long as the longest Lambda invocation may run.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(900);
        let (response, summary) = handler.handle(&payload, Some(deadline)).await;
        eprintln!("{summary}");
        match response {
            Ok(response) => {
                let text = response.to_string();
                if let Some(path) = &opts.response {
                    if let Err(e) = std::fs::write(path, format!("{text}\n")) {
                        eprintln!("error: writing {path}: {e}");
                        eprintln!("{text}");
                        return ExitCode::from(1);
                    }
                }
                eprintln!("{text}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                let text = serde_json::json!({ "errorType": e.error_type(), "errorMessage": e.to_string() })
                    .to_string();
                if let Some(path) = &opts.response {
                    let _ = std::fs::write(path, format!("{text}\n"));
                }
                eprintln!("{text}");
                ExitCode::from(1)
            }
        }
    })
}

/// The async runtime of the `process` and `invoke` commands (two workers: the machine
/// Lambda gives a function of moderate memory).
fn cli_runtime() -> Result<tokio::runtime::Runtime, ExitCode> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| {
            eprintln!("error: cannot start the async runtime: {e}");
            ExitCode::from(1)
        })
}

fn output_error(e: io::Error) -> ExitCode {
    if e.kind() == io::ErrorKind::BrokenPipe {
        return ExitCode::SUCCESS;
    }
    eprintln!("error: writing output: {e}");
    ExitCode::from(1)
}
