//! template.yaml keeps the invariants the failure semantics rely on (cfn-lint in CI
//! checks the rest): partial batch responses, a visibility timeout six times the
//! function timeout, the runtime and build method, environment variables the function
//! knows; and, on the template as the SAM translator turns it into CloudFormation, the
//! bucket policy against the flow log's layout, the alarms, the event source's scaling
//! and the parameters for existing buckets and log groups.

mod common;

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

/// The function's environment sets only variables of the configuration's table.
#[test]
fn environment_variables_are_ones_the_function_reads() {
    let table: Vec<&str> = flowlog_forwarder::config::variables::VARIABLES
        .iter()
        .map(|v| v.name)
        .collect();
    let t = transformed();
    let env = resource(&t, "ForwarderFunction")["Properties"]["Environment"]["Variables"]
        .as_object()
        .expect("the function's environment")
        .clone();
    assert!(env.len() >= 20, "{env:?}");
    for var in env.keys() {
        assert!(
            table.contains(&var.as_str()),
            "{var} is not a variable of config::variables"
        );
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

/// template.yaml as `sam deploy` sends it: transformed by the SAM translator
/// (samtranslator, which cfn-lint brings; installed with pip when missing).
fn transformed() -> serde_json::Value {
    use std::process::Command;
    let has_translator = Command::new("python3")
        .args(["-c", "import samtranslator"])
        .status()
        .is_ok_and(|s| s.success());
    if !has_translator {
        common::pip_install("cfn-lint>=1");
    }
    let out = Command::new("python3")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/tools/sam_transform.py"
        ))
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/template.yaml"))
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("the transformed template is JSON")
}

fn resource<'t>(t: &'t serde_json::Value, name: &str) -> &'t serde_json::Value {
    t["Resources"]
        .get(name)
        .unwrap_or_else(|| panic!("no resource {name}"))
}

/// Issue 20: the flow log the stack creates writes Hive-compatible partitions
/// (`AWSLogs/aws-account-id=<account>/...`); the bucket policy lets log delivery write
/// there (and under the plain layout), and the function may read both.
#[test]
fn bucket_policy_matches_the_flow_log_layout() {
    let t = transformed();
    let flow_log = &resource(&t, "VpcFlowLogToS3")["Properties"];
    let hive = flow_log["DestinationOptions"]["HiveCompatiblePartitions"] == true;
    let policy = &resource(&t, "FlowLogBucketPolicy")["Properties"]["PolicyDocument"];
    let write = policy["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["Action"] == "s3:PutObject")
        .expect("a PutObject statement for log delivery");
    let resources = write["Resource"].to_string();
    assert!(
        resources.contains("/AWSLogs/${AWS::AccountId}/*"),
        "{resources}"
    );
    if hive {
        assert!(
            resources.contains("/AWSLogs/aws-account-id=${AWS::AccountId}/*"),
            "{resources}"
        );
    }
    let role = resource(&t, "ForwarderFunctionRole").to_string();
    assert!(role.contains("${FlowLogBucket.Arn}/AWSLogs/*"), "{role}");
    // Notifications cover both layouts (the prefix is AWSLogs/).
    let bucket = resource(&t, "FlowLogBucket").to_string();
    assert!(bucket.contains(r#""Value":"AWSLogs/""#), "{bucket}");
}

/// Issue 20: failures before any record is read raise an alarm (FailedUnits), and so
/// does a queue falling behind (the age of its oldest message).
#[test]
fn alarms_on_failed_units_and_queue_age() {
    let t = transformed();
    let failed = &resource(&t, "FailedUnitsAlarm")["Properties"];
    assert_eq!(failed["Namespace"], "FlowlogForwarder");
    assert_eq!(failed["MetricName"], "FailedUnits");
    assert_eq!(failed["Statistic"], "Sum");
    let age = &resource(&t, "QueueOldestMessageAlarm")["Properties"];
    assert_eq!(age["MetricName"], "ApproximateAgeOfOldestMessage");
    assert_eq!(age["Threshold"]["Ref"], "OldestMessageAgeAlarmSeconds");
    assert_eq!(
        age["Dimensions"][0]["Value"]["Fn::GetAtt"][0],
        "FlowLogQueue"
    );
    // The metric names are the ones the invocation summary emits.
    let summary = include_str!("../src/metrics.rs");
    assert!(summary.contains("metric(\"FailedUnits\""));
}

/// Issue 20: concurrency is limited on the SQS event source (ScalingConfig), not by
/// reserved concurrency, whose throttled receives push messages to the DLQ.
#[test]
fn sqs_concurrency_through_scaling_config() {
    let t = transformed();
    let mapping = &resource(&t, "ForwarderFunctionFlowLogObjects")["Properties"];
    assert_eq!(
        mapping["FunctionResponseTypes"][0],
        "ReportBatchItemFailures"
    );
    let scaling = mapping["ScalingConfig"].to_string();
    assert!(scaling.contains("MaximumConcurrency"), "{scaling}");
    let function = &resource(&t, "ForwarderFunction")["Properties"];
    assert!(function.get("ReservedConcurrentExecutions").is_none());
}

/// Issue 20: a stack that cannot deliver does not deploy, and ALLOW_PLAIN_HTTP is a
/// parameter like the function's variable.
#[test]
fn a_destination_is_required() {
    let t = transformed();
    let rule = t["Rules"]["DestinationRequired"].to_string();
    assert!(
        rule.contains("DestinationUrl") && rule.contains("DestinationSecretArn"),
        "{rule}"
    );
    let env = &resource(&t, "ForwarderFunction")["Properties"]["Environment"]["Variables"];
    assert_eq!(env["ALLOW_PLAIN_HTTP"]["Ref"], "AllowPlainHttp");
    assert_eq!(env["SECRET_TTL_SECONDS"]["Ref"], "SecretTtlSeconds");
    // The log level reaches the function as Lambda's AWS_LAMBDA_LOG_LEVEL.
    let logging = &resource(&t, "ForwarderFunction")["Properties"]["LoggingConfig"];
    assert_eq!(logging["ApplicationLogLevel"]["Ref"], "LogLevel");
    assert_eq!(logging["LogFormat"], "JSON");
}

/// Issue 20: an existing bucket (a central log-archive bucket, maybe in another
/// account) and an existing log group come from parameters: the queue policy names the
/// bucket and its owner, the function reads only below the prefix and decrypts with
/// the bucket's key through S3 only.
#[test]
fn existing_bucket_and_log_group_from_parameters() {
    let t = transformed();
    let queue_policy = resource(&t, "FlowLogQueuePolicy").to_string();
    assert!(
        queue_policy.contains("ExistingBucketAccountId"),
        "{queue_policy}"
    );
    assert!(
        queue_policy.contains("arn:${AWS::Partition}:s3:::${ExistingBucketName}"),
        "{queue_policy}"
    );
    let role = resource(&t, "ForwarderFunctionRole").to_string();
    assert!(
        role.contains("s3:::${ExistingBucketName}/${ExistingBucketPrefix}*"),
        "{role}"
    );
    assert!(role.contains("ExistingBucketKmsKeyArn") && role.contains("kms:ViaService"));
    for conditional in ["FlowLogBucket", "FlowLogBucketPolicy"] {
        assert_eq!(resource(&t, conditional)["Condition"], "CreateBucket");
    }
    assert_eq!(resource(&t, "FlowLogGroup")["Condition"], "CreateLogGroup");
    let subscription = resource(&t, "FlowLogGroupSubscription").to_string();
    assert!(
        subscription.contains("ExistingLogGroupName"),
        "{subscription}"
    );
    assert!(t["Outputs"]["ExistingBucketNotification"].is_object());
}

/// Issue 18: with a threat list, the function may read that one object and nothing
/// more of its bucket; without one, no such permission exists.
#[test]
fn threat_list_read_access_is_the_list_object_only() {
    let t = transformed();
    let role = resource(&t, "ForwarderFunctionRole").to_string();
    assert!(role.contains("ReadThreatList"), "{role}");
    assert!(role.contains("HasThreatIntel"), "conditional: {role}");
    assert!(
        role.contains(r#"arn:${AWS::Partition}:s3:::${Path}"#),
        "{role}"
    );
    assert!(
        role.contains(r#"{"Fn::Split":["s3://",{"Ref":"ThreatIntelUri"}]}"#),
        "{role}"
    );
    assert!(TEMPLATE.contains("HasThreatIntel: !Not [!Equals [!Ref ThreatIntelUri, \"\"]]"));
    // So it is of the GeoIP databases: each its own object, each conditional.
    for (sid, parameter) in [
        ("ReadGeoipDatabase", "GeoipDatabase"),
        ("ReadGeoipAsnDatabase", "GeoipAsnDatabase"),
    ] {
        assert!(role.contains(sid), "{role}");
        assert!(role.contains(&format!("Has{parameter}")), "{role}");
        assert!(
            role.contains(&format!(
                r#"{{"Fn::Split":["s3://",{{"Ref":"{parameter}"}}]}}"#
            )),
            "{role}"
        );
    }
    for var in [
        "THREAT_INTEL_URI",
        "THREAT_INTEL_TTL_SECONDS",
        "THREAT_INTEL_ONLY",
        "REJECT_ATTRIBUTION",
        "OUTPUT_SCHEMA",
    ] {
        assert!(
            TEMPLATE.contains(&format!("          {var}: !Ref ")),
            "{var}"
        );
    }
}

/// The value of a condition of the transformed template `t` under `params` (the
/// parameters' defaults otherwise): Fn::Equals, Not, And, Or, Condition, Ref and Join,
/// as CloudFormation evaluates them.
fn condition(t: &serde_json::Value, name: &str, params: &[(&str, &str)]) -> bool {
    use serde_json::Value;
    fn value(t: &Value, v: &Value, params: &[(&str, &str)]) -> Value {
        if let Some(name) = v.get("Ref").and_then(Value::as_str) {
            let given = params.iter().find(|(k, _)| *k == name).map(|(_, v)| *v);
            let p = &t["Parameters"][name];
            let text = given
                .map(str::to_string)
                .or_else(|| p["Default"].as_str().map(str::to_string))
                .or_else(|| p["Default"].as_i64().map(|n| n.to_string()))
                .unwrap_or_else(|| panic!("no value for {name}"));
            return if p["Type"] == "CommaDelimitedList" {
                Value::Array(
                    text.split(',')
                        .filter(|s| !s.is_empty())
                        .map(|s| Value::String(s.into()))
                        .collect(),
                )
            } else {
                Value::String(text)
            };
        }
        if let Some(join) = v.get("Fn::Join") {
            let items = value(t, &join[1], params);
            let parts: Vec<String> = items
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i.as_str().unwrap().to_string())
                .collect();
            return Value::String(parts.join(join[0].as_str().unwrap()));
        }
        v.clone()
    }
    fn eval(t: &Value, c: &Value, params: &[(&str, &str)]) -> bool {
        if let Some(name) = c.get("Condition").and_then(Value::as_str) {
            return eval(t, &t["Conditions"][name], params);
        }
        if let Some(args) = c.get("Fn::Equals") {
            return value(t, &args[0], params) == value(t, &args[1], params);
        }
        if let Some(args) = c.get("Fn::Not") {
            return !eval(t, &args[0], params);
        }
        if let Some(args) = c.get("Fn::And") {
            return args.as_array().unwrap().iter().all(|a| eval(t, a, params));
        }
        if let Some(args) = c.get("Fn::Or") {
            return args.as_array().unwrap().iter().any(|a| eval(t, a, params));
        }
        panic!("condition {c}")
    }
    eval(t, &t["Conditions"][name], params)
}

/// The resources the stack creates under `params`.
fn created(t: &serde_json::Value, params: &[(&str, &str)]) -> Vec<String> {
    t["Resources"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(_, r)| {
            r["Condition"]
                .as_str()
                .is_none_or(|c| condition(t, c, params))
        })
        .map(|(name, _)| name.clone())
        .collect()
}

/// One flow log per VPC: S3 by default, the log group (and its subscription) only when
/// asked, both only when asked; an existing log group is subscribed whatever the choice.
#[test]
fn one_flow_log_per_vpc_and_no_log_group_for_s3_only() {
    let t = transformed();
    let vpc = ("VpcId", "vpc-0abc");
    let has = |params: &[(&str, &str)], name: &str| created(&t, params).iter().any(|r| r == name);
    let s3_only = [vpc];
    assert!(has(&s3_only, "VpcFlowLogToS3"));
    for absent in [
        "VpcFlowLogToCloudWatch",
        "FlowLogGroup",
        "FlowLogGroupSubscription",
        "FlowLogsDeliveryRole",
    ] {
        assert!(
            !has(&s3_only, absent),
            "{absent} with FlowLogDestination s3"
        );
    }
    let cwl = [vpc, ("FlowLogDestination", "cloud-watch-logs")];
    assert!(!has(&cwl, "VpcFlowLogToS3"));
    for present in [
        "VpcFlowLogToCloudWatch",
        "FlowLogGroup",
        "FlowLogGroupSubscription",
        "FlowLogGroupInvokePermission",
    ] {
        assert!(
            has(&cwl, present),
            "{present} with FlowLogDestination cloud-watch-logs"
        );
    }
    let both = [vpc, ("FlowLogDestination", "both")];
    assert!(has(&both, "VpcFlowLogToS3") && has(&both, "VpcFlowLogToCloudWatch"));
    let existing = [("ExistingLogGroupName", "/vpc/flow")];
    assert!(has(&existing, "FlowLogGroupSubscription") && !has(&existing, "FlowLogGroup"));
    assert!(
        !has(&[], "FlowLogGroupSubscription"),
        "no log group by default"
    );
    // The subscription and its permission invoke the published alias.
    let subscription = resource(&t, "FlowLogGroupSubscription").to_string();
    assert!(
        subscription.contains("ForwarderFunctionAliaslive"),
        "{subscription}"
    );
}

/// A customer-managed key encrypts what the stack creates, and the role may use exactly
/// that key; the secret's key is granted through its service only, never `key/*`.
#[test]
fn customer_managed_keys_encrypt_the_stack_and_are_granted_exactly() {
    let t = transformed();
    for queue in [
        "FlowLogQueue",
        "FlowLogDeadLetterQueue",
        "AsyncFailureQueue",
    ] {
        let q = resource(&t, queue)["Properties"].to_string();
        assert!(
            q.contains("KmsKeyArn") && q.contains("HasKmsKey"),
            "{queue}: {q}"
        );
    }
    for group in ["FlowLogGroup", "FunctionLogGroup"] {
        assert!(resource(&t, group)["Properties"]["KmsKeyId"]
            .to_string()
            .contains("KmsKeyArn"));
    }
    let bucket = resource(&t, "FlowLogBucket")["Properties"]["BucketEncryption"].to_string();
    assert!(
        bucket.contains("aws:kms") && bucket.contains("KmsKeyArn"),
        "{bucket}"
    );
    let role = resource(&t, "ForwarderFunctionRole").to_string();
    assert!(!role.contains("key/*"), "a wildcard key grant: {role}");
    assert!(role.contains("DestinationSecretKmsKeyArn") && role.contains("UseStackKey"));
    assert!(condition(
        &t,
        "HasKmsKey",
        &[("KmsKeyArn", "arn:aws:kms:us-east-1:123456789012:key/abc")]
    ));
    assert!(!condition(&t, "HasKmsKey", &[]));
}

/// The queue takes S3 notifications from the stack's bucket only (named by the same
/// expression as its BucketName), never from any bucket of the account.
#[test]
fn the_queue_accepts_notifications_from_the_stack_bucket_only() {
    let t = transformed();
    let policy = resource(&t, "FlowLogQueuePolicy").to_string();
    assert!(!policy.contains("s3:::*"), "{policy}");
    let name = resource(&t, "FlowLogBucket")["Properties"]["BucketName"]["Fn::Sub"].clone();
    assert!(policy.contains(&name[1].to_string()), "{policy}");
    assert!(policy.contains("-flowlogs-${StackSuffix}"), "{policy}");
}

/// The function runs in a VPC when subnets and security groups are given.
#[test]
fn vpc_placement_from_parameters() {
    let t = transformed();
    let vpc = resource(&t, "ForwarderFunction")["Properties"]["VpcConfig"].to_string();
    assert!(vpc.contains("InVpc") && vpc.contains("SubnetIds"), "{vpc}");
    assert!(condition(
        &t,
        "InVpc",
        &[
            ("SubnetIds", "subnet-1,subnet-2"),
            ("SecurityGroupIds", "sg-1")
        ]
    ));
    assert!(!condition(&t, "InVpc", &[]));
    assert!(t["Rules"]["VpcConfigComplete"].is_object());
}

/// Failed CloudWatch Logs deliveries can be replayed: an event source on the on-failure
/// queue, off unless asked, with partial batch responses; the queue's visibility timeout
/// fits the function timeout, and a record failing too often goes to the dead-letter queue.
#[test]
fn the_on_failure_queue_can_be_replayed() {
    let t = transformed();
    let replay = resource(&t, "ForwarderFunctionFailedInvocationReplay");
    let props = &replay["Properties"];
    assert_eq!(props["FunctionResponseTypes"][0], "ReportBatchItemFailures");
    assert!(props["EventSourceArn"]
        .to_string()
        .contains("AsyncFailureQueue"));
    assert!(props["Enabled"].to_string().contains("ReplayOn"));
    assert!(!condition(&t, "ReplayOn", &[]), "off by default");
    assert!(condition(
        &t,
        "ReplayOn",
        &[("ReplayFailedInvocations", "true")]
    ));
    let queue = resource(&t, "AsyncFailureQueue")["Properties"].to_string();
    assert!(
        queue.contains("VisibilityTimeout") && queue.contains("FlowLogDeadLetterQueue"),
        "{queue}"
    );
}

/// OpenSearch: the role may write to the one domain (its HTTP POST/PUT) or the one
/// collection named, and nothing when neither is; the function is told to sign.
#[test]
fn opensearch_grants_name_the_one_domain_or_collection() {
    let t = transformed();
    let role = resource(&t, "ForwarderFunctionRole").to_string();
    assert!(
        role.contains("es:ESHttpPost") && role.contains("${OpenSearchDomainArn}/*"),
        "{role}"
    );
    assert!(
        role.contains("aoss:APIAccessAll") && role.contains("OpenSearchCollectionArn"),
        "{role}"
    );
    assert!(!condition(&t, "HasOpenSearchDomain", &[]));
    assert!(condition(
        &t,
        "HasOpenSearchDomain",
        &[(
            "OpenSearchDomainArn",
            "arn:aws:es:eu-west-1:123456789012:domain/flows"
        )]
    ));
    assert!(!condition(&t, "HasOpenSearchCollection", &[]));
    let env = resource(&t, "ForwarderFunction")["Properties"]["Environment"].to_string();
    assert!(
        env.contains("DESTINATION_AUTH") && env.contains("DESTINATION_AWS_SERVICE"),
        "{env}"
    );
}

/// The dashboard's body is valid JSON once its references are filled in, and shows the
/// records, failed units, queues and function errors; the alarm on objects that arrive
/// while nothing is forwarded is wired to the alarm topic.
#[test]
fn dashboard_and_the_nothing_forwarded_alarm() {
    let t = transformed();
    let sub = &resource(&t, "Dashboard")["Properties"]["DashboardBody"]["Fn::Sub"];
    let mut body = sub[0].as_str().unwrap().to_string();
    for name in [
        "AWS::Region",
        "Function",
        "Queue",
        "DeadLetterQueue",
        "FailureQueue",
    ] {
        body = body.replace(&format!("${{{name}}}"), "x");
    }
    let dashboard: serde_json::Value = serde_json::from_str(&body).expect("dashboard JSON");
    let text = dashboard.to_string();
    for metric in [
        "RecordsRead",
        "RecordsForwarded",
        "RecordsFiltered",
        "RecordsFailed",
        "FailedUnits",
        "ApproximateAgeOfOldestMessage",
        "Errors",
        "Throttles",
    ] {
        assert!(text.contains(metric), "{metric} missing from the dashboard");
    }
    let alarm = resource(&t, "NothingForwardedAlarm")["Properties"].to_string();
    assert!(
        alarm.contains("NumberOfMessagesReceived") && alarm.contains("RecordsForwarded"),
        "{alarm}"
    );
    assert!(alarm.contains("AlarmTopicArn"), "{alarm}");
}

/// A backlog cannot flood the receiver by default, and `sam deploy` needs no prompt.
#[test]
fn bounded_concurrency_and_a_non_interactive_deploy() {
    let t = transformed();
    assert_eq!(t["Parameters"]["MaximumConcurrency"]["Default"], 10);
    assert!(condition(&t, "HasMaximumConcurrency", &[]));
    let samconfig = include_str!("../samconfig.toml");
    assert!(
        samconfig.contains("[default.deploy.parameters]") && samconfig.contains("capabilities")
    );
}

/// A bucket that already notifies someone else fans out through SNS or EventBridge: the
/// queue subscribes to the topic, or a rule sends the bucket's "Object Created" events
/// below the prefix, and the queue accepts messages from that topic or rule only.
#[test]
fn shared_buckets_through_sns_or_eventbridge() {
    let t = transformed();
    let bucket = [("ExistingBucketName", "central-logs")];
    let has = |params: &[(&str, &str)], name: &str| created(&t, params).iter().any(|r| r == name);
    assert!(!has(&bucket, "BucketTopicSubscription") && !has(&bucket, "BucketObjectCreatedRule"));
    let topic = [
        bucket[0],
        (
            "ExistingBucketSnsTopicArn",
            "arn:aws:sns:eu-west-1:123456789012:flow-log-objects",
        ),
    ];
    assert!(has(&topic, "BucketTopicSubscription"));
    let events = [bucket[0], ("ExistingBucketEventBridge", "true")];
    assert!(has(&events, "BucketObjectCreatedRule"));
    // Neither applies to the stack's own bucket.
    assert!(!has(
        &[("ExistingBucketEventBridge", "true")],
        "BucketObjectCreatedRule"
    ));
    let policy = resource(&t, "FlowLogQueuePolicy").to_string();
    assert!(
        policy.contains("sns.amazonaws.com") && policy.contains("ExistingBucketSnsTopicArn"),
        "{policy}"
    );
    assert!(
        policy.contains("events.amazonaws.com") && policy.contains("-object-created"),
        "{policy}"
    );
    let rule = resource(&t, "BucketObjectCreatedRule")["Properties"].to_string();
    assert!(
        rule.contains("Object Created") && rule.contains("ExistingBucketPrefix"),
        "{rule}"
    );
    assert!(
        rule.contains("-object-created"),
        "the rule's name is the one the policy names"
    );
}

/// Every delivery setting users tune is a parameter; DESTINATION_PIPELINE is left unset
/// by default (the schema chooses) and set empty for `none`; a permissions boundary
/// reaches the role.
#[test]
fn delivery_settings_and_a_permissions_boundary_are_parameters() {
    let t = transformed();
    let env = &resource(&t, "ForwarderFunction")["Properties"]["Environment"]["Variables"];
    for var in [
        "INCLUDE_ORIGINAL",
        "COMPRESSION",
        "BATCH_MAX_BYTES",
        "BATCH_MAX_EVENTS",
        "MAX_RETRIES",
        "REQUEST_TIMEOUT_MS",
        "MAX_IN_FLIGHT",
        "SPLUNK_HEC_ACK",
    ] {
        assert!(env.get(var).is_some(), "{var} is not set from a parameter");
    }
    let pipeline = env["DESTINATION_PIPELINE"].to_string();
    assert!(
        pipeline.contains("PipelineDefault") && pipeline.contains("AWS::NoValue"),
        "{pipeline}"
    );
    let role = resource(&t, "ForwarderFunctionRole")["Properties"].to_string();
    assert!(role.contains("PermissionsBoundaryArn"), "{role}");
}

/// README's list of parameters names every parameter of the template.
#[test]
fn readme_names_every_parameter() {
    let readme = include_str!("../README.md");
    let t = transformed();
    for name in t["Parameters"].as_object().unwrap().keys() {
        assert!(
            readme.contains(&format!("`{name}`")),
            "README does not name the parameter {name}"
        );
    }
}

/// PROFILE gives defaults that a variable set explicitly overrides: the parameters it
/// covers default to empty (unset), so that the profile's values apply.
#[test]
fn the_profile_s_variables_default_to_unset() {
    let t = transformed();
    for parameter in [
        "Filter",
        "Aggregate",
        "AggregateActions",
        "AggregateWhere",
        "FieldsExclude",
        "Profile",
    ] {
        assert_eq!(
            t["Parameters"][parameter]["Default"], "",
            "{parameter}: {}",
            t["Parameters"][parameter]
        );
    }
}
