//! template.yaml keeps the invariants the failure semantics rely on (cfn-lint in CI
//! checks the rest): partial batch responses, a visibility timeout six times the
//! function timeout, the runtime and build method, and environment variables the
//! function knows.

const TEMPLATE: &str = include_str!("../template.yaml");

#[test]
fn sqs_mapping_reports_batch_item_failures() {
    assert!(TEMPLATE.contains("FunctionResponseTypes: [ReportBatchItemFailures]"));
    assert!(TEMPLATE.contains("deadLetterTargetArn: !GetAtt FlowLogDeadLetterQueue.Arn"));
    assert!(TEMPLATE.contains("OnFailure:"));
}

#[test]
fn visibility_timeout_is_six_times_every_allowed_function_timeout() {
    let allowed = TEMPLATE
        .lines()
        .skip_while(|l| !l.starts_with("  Timeout:"))
        .find_map(|l| {
            l.trim()
                .strip_prefix("AllowedValues: [")
                .map(|v| v.trim_end_matches(']').to_string())
        })
        .expect("Timeout has AllowedValues");
    for value in allowed.split(',') {
        let timeout: u64 = value.trim().trim_matches('"').parse().unwrap();
        let line = format!("\"{timeout}\": {{ Seconds: {} }}", timeout * 6);
        assert!(TEMPLATE.contains(&line), "missing mapping {line}");
    }
}

#[test]
fn function_runtime_and_build() {
    for needle in [
        "Runtime: provided.al2023",
        "Architectures: [arm64]",
        "BuildMethod: rust-cargolambda",
        "Handler: bootstrap",
    ] {
        assert!(TEMPLATE.contains(needle), "{needle}");
    }
}

#[test]
fn environment_variables_are_ones_the_function_reads() {
    let help = flowlog_forwarder::cli::HELP;
    let env: Vec<&str> = TEMPLATE
        .lines()
        .skip_while(|l| !l.trim().starts_with("Variables:"))
        .skip(1)
        .take_while(|l| l.trim().contains(": !Ref"))
        .map(|l| l.trim().split(':').next().unwrap())
        .collect();
    assert!(env.len() >= 7, "{env:?}");
    for var in env {
        assert!(help.contains(var), "{var} is not a documented variable");
    }
}

#[test]
fn ec2_permissions_only_when_enrichment_is_on() {
    let action = "Action: [ec2:DescribeNetworkInterfaces, ec2:DescribeVpcs]";
    assert_eq!(TEMPLATE.matches("Action: [ec2:").count(), 1);
    let at = TEMPLATE
        .find(action)
        .expect("the two read-only EC2 actions");
    let block = &TEMPLATE[TEMPLATE[..at].rfind("- !If").expect("inside an !If")..at];
    assert_eq!(
        block.lines().nth(1).map(str::trim),
        Some("- EnrichEniOn"),
        "{block}"
    );
    assert!(TEMPLATE.contains("EnrichEniOn: !Equals [!Ref EnrichEni, \"true\"]"));
    assert!(TEMPLATE.contains("ENRICH_ENI: !Ref EnrichEni"));
}
