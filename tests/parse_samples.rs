//! Every record of the AWS documentation examples (tests/data/aws-doc-examples.txt, as
//! AWS publishes them) and the seed samples (Sekoia, Elastic) give the documented
//! values.

mod common;

use common::{examples, get, get_str, is_failure, one};
use serde_json::{json, Value};

fn example(label: &str) -> Value {
    let (_, format, line) = examples()
        .into_iter()
        .find(|(l, _, _)| l == label)
        .expect(label);
    let doc = one(Some(&format), &line);
    assert!(!is_failure(&doc), "{label}: {doc}");
    doc
}

#[test]
fn all_27_examples_parse() {
    let all = examples();
    assert_eq!(all.len(), 27);
    for (label, format, line) in all {
        let doc = one(Some(&format), &line);
        assert!(!is_failure(&doc), "{label} failed: {doc}");
        assert_eq!(doc["event"]["dataset"], "aws.vpcflow", "{label}");
    }
}

#[test]
fn accepted_and_rejected() {
    let d = example("ACCEPTED-1");
    assert_eq!(d["@timestamp"], "2014-12-14T04:07:50Z");
    assert_eq!(d["event"]["start"], "2014-12-14T04:06:50Z");
    assert_eq!(d["event"]["type"], json!(["connection", "allowed"]));
    assert_eq!(d["event"]["action"], "accept");
    assert_eq!(d["event"]["outcome"], "success");
    assert_eq!(
        d["source"],
        json!({"address":"172.31.16.139","ip":"172.31.16.139","port":20641,"bytes":4249,"packets":20})
    );
    assert_eq!(
        d["destination"],
        json!({"address":"172.31.16.21","ip":"172.31.16.21","port":22})
    );
    assert_eq!(d["network"]["transport"], "tcp");
    assert_eq!(d["network"]["iana_number"], "6");
    assert_eq!(d["network"]["bytes"], 4249);
    assert_eq!(d["cloud"]["account"]["id"], "123456789010");
    assert_eq!(d["aws"]["vpcflow"]["interface_id"], "eni-1235b8ca123456789");
    assert_eq!(d["aws"]["vpcflow"]["version"], "2");

    let r = example("REJECTED-1");
    assert_eq!(r["event"]["type"], json!(["connection", "denied"]));
    assert_eq!(r["event"]["action"], "reject");
    assert_eq!(r["event"]["outcome"], "failure");
    assert_eq!(r["destination"]["port"], 3389);
}

#[test]
fn nodata_and_skipdata() {
    for (label, status, eni) in [
        ("NODATA-1", "NODATA", "eni-1235b8ca123456789"),
        ("SKIPDATA-1", "SKIPDATA", "eni-11111111aaaaaaaaa"),
    ] {
        let d = example(label);
        assert_eq!(d["aws"]["vpcflow"]["log_status"], status);
        assert_eq!(d["aws"]["vpcflow"]["interface_id"], eni);
        assert_eq!(d["@timestamp"], "2015-05-10T18:02:14Z");
        assert_eq!(d["event"]["type"], json!(["connection"]));
        for absent in [
            "source",
            "destination",
            "related",
            "event.action",
            "event.outcome",
            "network",
            "aws.vpcflow.action",
        ] {
            assert!(
                get(&d, absent).is_none(),
                "{label}: {absent} should be absent: {d}"
            );
        }
    }
}

#[test]
fn icmp_and_ipv6() {
    let d = example("SG-NACL-1");
    assert_eq!(d["network"]["transport"], "icmp");
    assert_eq!(d["network"]["iana_number"], "1");
    let reply = example("SG-NACL-2");
    // AWS logs ICMP type/code as srcport/dstport (0 0 here: echo reply both ways), so
    // these two records are not a request/reply pair and hash apart, per the spec.
    assert!(d["network"]["community_id"]
        .as_str()
        .unwrap()
        .starts_with("1:"));
    assert_ne!(
        d["network"]["community_id"],
        reply["network"]["community_id"]
    );
    assert_eq!(reply["event"]["type"], json!(["connection", "denied"]));

    let v6 = example("IPV6-1");
    assert_eq!(v6["network"]["type"], "ipv6");
    assert_eq!(v6["source"]["ip"], "2001:db8:1234:a100:8d6e:3477:df66:f105");
    assert_eq!(
        v6["destination"]["ip"],
        "2001:db8:1234:a102:3304:8879:34cf:4071"
    );
    assert_eq!(v6["source"]["port"], 34892);
}

#[test]
fn tcp_flags() {
    let cases = [
        ("TCP-FLAGS-1", "2", json!(["syn"])),
        ("TCP-FLAGS-2", "18", json!(["syn", "ack"])),
        ("TCP-FLAGS-5", "1", json!(["fin"])),
        ("TCP-FLAGS-7", "3", json!(["fin", "syn"])),
        ("TCP-FLAGS-8", "19", json!(["fin", "syn", "ack"])),
    ];
    for (label, flags, names) in cases {
        let d = example(label);
        assert_eq!(d["aws"]["vpcflow"]["tcp_flags"], flags, "{label}");
        assert_eq!(d["aws"]["vpcflow"]["tcp_flags_array"], names, "{label}");
        assert_eq!(d["aws"]["vpcflow"]["vpc_id"], "vpc-abcdefab012345678");
        assert_eq!(d["cloud"]["instance"]["id"], "i-01234567890123456");
        assert_eq!(d["aws"]["vpcflow"]["type"], "IPv4");
    }
    // The double space in TCP-FLAGS-8 is one separator.
    let d = example("TCP-FLAGS-8");
    assert_eq!(d["source"]["port"], 5001);
    assert_eq!(d["destination"]["port"], 43638);
    assert_eq!(d["aws"]["vpcflow"]["pkt_srcaddr"], "10.0.0.62");
    assert_eq!(d["network"]["bytes"], 967);
    // Both directions of one connection share a Community ID.
    assert_eq!(
        example("TCP-FLAGS-7")["network"]["community_id"],
        d["network"]["community_id"]
    );
}

#[test]
fn nat_gateway_packet_addresses() {
    let d = example("NAT-1");
    assert!(get(&d, "cloud.instance").is_none());
    assert!(get(&d, "aws.vpcflow.instance_id").is_none());
    assert_eq!(d["source"]["ip"], "10.0.1.5");
    assert_eq!(d["destination"]["ip"], "10.0.0.220");
    assert_eq!(d["aws"]["vpcflow"]["pkt_srcaddr"], "10.0.1.5");
    assert_eq!(d["aws"]["vpcflow"]["pkt_dstaddr"], "203.0.113.5");
    assert_eq!(
        d["related"]["ip"],
        json!(["10.0.1.5", "10.0.0.220", "203.0.113.5"])
    );

    let d = example("NAT-4");
    assert_eq!(d["aws"]["vpcflow"]["pkt_srcaddr"], "203.0.113.5");
    assert_eq!(
        d["related"]["ip"],
        json!(["10.0.0.220", "10.0.1.5", "203.0.113.5"])
    );

    // The documentation's inline "#comment" is not part of the record.
    let d = example("NAT-5");
    assert_eq!(d["cloud"]["instance"]["id"], "i-01234567890123456");
    assert_eq!(d["aws"]["vpcflow"]["pkt_dstaddr"], "203.0.113.5");
    assert!(!d.to_string().contains("Traffic from"), "{d}");
}

#[test]
fn transit_gateway_path_records_of_a_vpc_flow_log() {
    let d = example("TGW-3");
    // These are VPC flow log records of ENIs behind a transit gateway.
    assert_eq!(d["cloud"]["service"]["name"], "vpc");
    assert_eq!(d["source"]["ip"], "10.40.1.175");
    assert_eq!(d["aws"]["vpcflow"]["pkt_srcaddr"], "10.20.33.164");
    assert_eq!(d["aws"]["vpcflow"]["subnet_id"], "subnet-11111111aaaaaaaaa");
    assert_eq!(
        d["aws"]["vpcflow"]["tcp_flags_array"],
        json!(["fin", "syn"])
    );
    assert!(get(&d, "@timestamp").is_some());
}

#[test]
fn service_path_and_direction_v5() {
    let d = example("SVC-PATH-DIR-1");
    assert_eq!(d["aws"]["vpcflow"]["pkt_src_service"], "S3");
    assert!(get(&d, "aws.vpcflow.pkt_dst_service").is_none());
    assert!(get(&d, "aws.vpcflow.traffic_path").is_none());
    assert!(get(&d, "aws.vpcflow.sublocation").is_none());
    assert_eq!(d["network"]["direction"], "ingress");
    assert_eq!(d["cloud"]["region"], "ap-southeast-2");
    assert_eq!(d["cloud"]["availability_zone"], "apse2-az3");
    assert_eq!(d["aws"]["vpcflow"]["version"], "5");
    assert_eq!(d["@timestamp"], "2021-03-26T03:29:09Z");

    let d = example("SVC-PATH-DIR-2");
    assert_eq!(d["aws"]["vpcflow"]["pkt_dst_service"], "S3");
    assert_eq!(d["aws"]["vpcflow"]["traffic_path"], "8");
    assert_eq!(d["network"]["direction"], "egress");
}

/// Sekoia's AWS Flowlogs intake samples (as Sekoia publishes them): the ECS fields that
/// README's Output section defines the same way have the same values.
#[test]
fn sekoia_seed_samples() {
    struct Case {
        message: &'static str,
        format: Option<&'static str>,
        expect: Value,
    }
    let v5 = "version account-id interface-id srcaddr dstaddr srcport dstport protocol packets bytes start end action log-status vpc-id subnet-id instance-id tcp-flags type pkt-srcaddr pkt-dstaddr region az-id sublocation-type sublocation-id pkt-src-aws-service pkt-dst-aws-service flow-direction traffic-path";
    let cases = [
        Case {
            message: "2 424805057484 eni-0f06a40fc9be596f6 212.83.179.156 10.0.0.96 123 123 17 2 152 1599665193 1599665488 ACCEPT OK",
            format: None,
            expect: json!({"event.action":"accept","event.end":"2020-09-09T15:31:28Z","event.start":"2020-09-09T15:26:33Z",
                "cloud.account.id":"424805057484","cloud.provider":"aws","cloud.service.name":"vpc",
                "destination.address":"10.0.0.96","destination.ip":"10.0.0.96","destination.port":123,
                "network.iana_number":"17","network.transport":"udp",
                "source.address":"212.83.179.156","source.bytes":152,"source.ip":"212.83.179.156","source.packets":2,"source.port":123}),
        },
        Case {
            message: "{\"version\":2,\"account_id\":\"424805057484\",\"interface_id\":\"eni-0f06a40fc9be596f6\",\"srcaddr\":\"5.6.7.8\",\"dstaddr\":\"1.2.3.4\",\"srcport\":4712,\"dstport\":53205,\"protocol\":6,\"packets\":12,\"bytes\":2610,\"start\":1661950735,\"end\":1661950746,\"action\":\"ACCEPT\",\"log_status\":\"OK\"}",
            format: None,
            expect: json!({"event.action":"accept","event.end":"2022-08-31T12:59:06Z","event.start":"2022-08-31T12:58:55Z",
                "cloud.account.id":"424805057484","destination.ip":"1.2.3.4","destination.port":53205,
                "network.iana_number":"6","network.transport":"tcp",
                "source.bytes":2610,"source.ip":"5.6.7.8","source.packets":12,"source.port":4712}),
        },
        Case {
            message: "5 424805057484 eni-1235b8ca123456789 52.95.128.179 10.0.0.71 46945 53 17 1 73 1658131186 1658131216 ACCEPT OK vpc-abcdefab012345678 subnet-aaaaaaaa012345678 - 0 IPv4 52.95.128.179 10.0.0.71 eu-west-1 euw1-az3 - - - - egress 8",
            format: Some(v5),
            expect: json!({"event.action":"accept","event.end":"2022-07-18T08:00:16Z","event.start":"2022-07-18T07:59:46Z",
                "cloud.account.id":"424805057484","destination.ip":"10.0.0.71","destination.port":53,
                "network.iana_number":"17","network.transport":"udp",
                "source.bytes":73,"source.ip":"52.95.128.179","source.packets":1,"source.port":46945,
                "network.direction":"egress","cloud.region":"eu-west-1","aws.vpcflow.traffic_path":"8"}),
        },
        Case {
            message: "2 123456789010 eni-1235b8ca123456789 2001:db8:1234:a100:8d6e:3477:df66:f105 2001:db8:1234:a102:3304:8879:34cf:4071 34892 22 6 54 8855 1477913708 1477913820 ACCEPT OK",
            format: None,
            expect: json!({"event.end":"2016-10-31T11:37:00Z","event.start":"2016-10-31T11:35:08Z",
                "destination.ip":"2001:db8:1234:a102:3304:8879:34cf:4071","source.ip":"2001:db8:1234:a100:8d6e:3477:df66:f105",
                "source.bytes":8855,"source.packets":54,"source.port":34892,"destination.port":22,"network.transport":"tcp"}),
        },
        Case {
            message: "2 123456789010 eni-1235b8ca123456789 - - - - - - - 1431280876 1431280934 - NODATA",
            format: None,
            expect: json!({"event.end":"2015-05-10T18:02:14Z","event.start":"2015-05-10T18:01:16Z","cloud.account.id":"123456789010"}),
        },
        Case {
            message: "2 424805057484 eni-0f06a40fc9be596f6 195.14.170.50 10.0.0.96 53996 20248 6 1 40 1599665374 1599665428 REJECT OK",
            format: None,
            expect: json!({"event.action":"reject","event.end":"2020-09-09T15:30:28Z","event.start":"2020-09-09T15:29:34Z",
                "destination.ip":"10.0.0.96","destination.port":20248,"source.ip":"195.14.170.50","source.port":53996,
                "source.bytes":40,"source.packets":1}),
        },
    ];
    for case in cases {
        let doc = one(case.format, case.message);
        assert!(!is_failure(&doc), "{doc}");
        for (path, want) in case.expect.as_object().unwrap() {
            assert_eq!(
                get(&doc, path),
                Some(want),
                "{path} of {}: {doc}",
                case.message
            );
        }
        // Sekoia lists related.ip sorted; the set is the same.
        if let Some(ips) = get(&doc, "related.ip").and_then(Value::as_array) {
            assert_eq!(ips.len(), 2);
        }
        assert_eq!(get_str(&doc, "event.category.0"), None);
        assert_eq!(doc["event"]["category"], json!(["network"]));
    }
    // `{"message": "<json record>"}`, as Sekoia stores the second sample.
    let wrapped = json!({"message": "{\"version\":2,\"account_id\":\"424805057484\",\"interface_id\":\"eni-0f06a40fc9be596f6\",\"srcaddr\":\"1.2.3.4\",\"dstaddr\":\"5.6.7.8\",\"srcport\":53094,\"dstport\":2323,\"protocol\":6,\"packets\":1,\"bytes\":40,\"start\":1661950735,\"end\":1661950746,\"action\":\"REJECT\",\"log_status\":\"OK\"}\n"});
    let doc = one(None, &wrapped.to_string());
    assert_eq!(doc["event"]["action"], "reject");
    assert_eq!(doc["destination"]["port"], 2323);
    assert_eq!(doc["source"]["ip"], "1.2.3.4");
}

/// Elastic `aws.vpcflow` integration pipeline expectations (test-v5-all-fields and
/// test-tgw-samples): same ECS values, aws.vpcflow keys and Community IDs.
#[test]
fn elastic_integration_expectations() {
    let v5 = "version account-id interface-id srcaddr dstaddr srcport dstport protocol packets bytes start end action log-status vpc-id subnet-id instance-id tcp-flags type pkt-srcaddr pkt-dstaddr region az-id sublocation-type sublocation-id pkt-src-aws-service pkt-dst-aws-service flow-direction traffic-path";
    let d = one(Some(v5), "5 64111117617 eni-069xxxxxb7a490 89.160.20.156 10.200.0.0 50041 33004 17 52 1 164000066 1640000297 REJECT OK vpc-09676f97xxxxxb8a7 subnet-02d645xxxxxxxdbc0 i-0axxxxxx1ad77 1 IPv4 89.160.20.156 10.200.0.80 us-east-1 use1-az5 - - AMAZON CLOUDFRONT ingress 1");
    assert_eq!(d["@timestamp"], "2021-12-20T11:38:17Z");
    assert_eq!(d["event"]["start"], "1975-03-14T03:34:26Z");
    assert_eq!(
        d["network"]["community_id"],
        "1:+zLdyx7gcy2L5ERP4Je5AZMgl3A="
    );
    assert_eq!(d["network"]["direction"], "ingress");
    assert_eq!(d["cloud"]["availability_zone"], "use1-az5");
    assert_eq!(
        d["aws"]["vpcflow"],
        json!({"version":"5","account_id":"64111117617","interface_id":"eni-069xxxxxb7a490","action":"REJECT","log_status":"OK",
            "vpc_id":"vpc-09676f97xxxxxb8a7","subnet_id":"subnet-02d645xxxxxxxdbc0","instance_id":"i-0axxxxxx1ad77",
            "tcp_flags":"1","type":"IPv4","pkt_srcaddr":"89.160.20.156","pkt_dstaddr":"10.200.0.80",
            "pkt_src_service":"AMAZON","pkt_dst_service":"CLOUDFRONT","traffic_path":"1","tcp_flags_array":["fin"],
            // Beyond Elastic's: a lone REJECT (README, REJECT attribution).
            "reject_attribution":"security_group_or_network_acl"})
    );

    let tgw = "version resource-type account-id tgw-id tgw-attachment-id tgw-src-vpc-account-id tgw-dst-vpc-account-id tgw-src-vpc-id tgw-dst-vpc-id tgw-src-subnet-id tgw-dst-subnet-id tgw-src-eni tgw-dst-eni tgw-src-az-id tgw-dst-az-id tgw-pair-attachment-id srcaddr dstaddr srcport dstport protocol packets bytes start end log-status type packets-lost-no-route packets-lost-blackhole packets-lost-mtu-exceeded packets-lost-ttl-expired tcp-flags region flow-direction pkt-src-aws-service pkt-dst-aws-service";
    let d = one(Some(tgw), "3 - 748335378900 tgw-0a12bc34de56f7890 tgw-attach-0789ijkl - - vpc-0jkl5678 vpc-0ghi9012 - - eni-0cc3dd4ee5f66aa7b eni-0cc3dd4ee5f66aa7b - - - 1.128.0.0 2a02:cf40:: 39464 22 6 49 8947 1755592533 1755592558 SKIPDATA - - - - - - - ingress - -");
    assert_eq!(d["cloud"]["service"]["name"], "transitgateway");
    assert_eq!(d["@timestamp"], "2025-08-19T08:35:58Z");
    assert_eq!(
        d["network"]["community_id"],
        "1:yMxrbWtpAzdDF0dFnvIBRb/Ys5c="
    );
    assert_eq!(d["network"]["type"], "ipv4");
    assert_eq!(d["related"]["ip"], json!(["1.128.0.0", "2a02:cf40::"]));
    assert!(get(&d, "cloud.region").is_none());
    assert_eq!(
        d["aws"]["vpcflow"],
        json!({"version":"3","account_id":"748335378900","tgw_id":"tgw-0a12bc34de56f7890","tgw_attachment_id":"tgw-attach-0789ijkl",
            "tgw_src_vpc_id":"vpc-0jkl5678","tgw_dst_vpc_id":"vpc-0ghi9012","tgw_src_eni":"eni-0cc3dd4ee5f66aa7b",
            "tgw_dst_eni":"eni-0cc3dd4ee5f66aa7b","log_status":"SKIPDATA"})
    );
}

/// Elastic beats parse_aws_vpc_flow_log golden file for v7 (ECS task) fields.
#[test]
fn ecs_task_fields_v7() {
    let format = "version account-id interface-id srcaddr dstaddr srcport dstport protocol packets bytes start end action log-status ecs-task-id ecs-task-arn ecs-task-definition-arn ecs-cluster-name ecs-cluster-arn ecs-container-instance-id ecs-container-instance-arn ecs-container-id ecs-second-container-id ecs-service-name";
    let d = one(Some(format), "5 64111117617 eni-069xxxxxb7a490 89.160.20.156 10.200.0.0 50041 33004 17 52 1 1616729292 1616729349 REJECT OK b9ad2f8a90b24f7bbce4b0341034852f arn:aws:ecs:us-east-1:123456789012:task/DEMOGO-ECS/b9ad2f8a90b24f7bbce4b0341034852f arn:aws:ecs:us-east-1:123456789012:task-definition/catsdef:2 DEMOGO-ECS arn:aws:ecs:us-east-1:123456789012:cluster/DEMOGO-ECS 39623aba81594d79b596c0c5f556d47b arn:aws:ecs:us-east-1:123456789012:container-instance/DEMOGO-ECS/39623aba81594d79b596c0c5f556d47b 0c5c6db7540ca5c4dbc692a53c1d7bab0a4e17e9cf44fc9167659c8687fd13df - cats");
    assert_eq!(
        d["orchestrator"],
        json!({"cluster":{"id":"arn:aws:ecs:us-east-1:123456789012:cluster/DEMOGO-ECS","name":"DEMOGO-ECS"},
            "resource":{"id":"39623aba81594d79b596c0c5f556d47b","name":"arn:aws:ecs:us-east-1:123456789012:container-instance/DEMOGO-ECS/39623aba81594d79b596c0c5f556d47b","type":"container"},
            "type":"ecs"})
    );
    assert_eq!(d["service"]["name"], "cats");
    assert_eq!(
        d["container"]["id"],
        "0c5c6db7540ca5c4dbc692a53c1d7bab0a4e17e9cf44fc9167659c8687fd13df"
    );
    assert_eq!(
        d["aws"]["vpcflow"]["ecs_task_id"],
        "b9ad2f8a90b24f7bbce4b0341034852f"
    );
    assert_eq!(d["aws"]["vpcflow"]["ecs_service_name"], "cats");
    assert_eq!(d["event"]["type"], json!(["connection", "denied"]));

    let d = one(
        Some("srcaddr dstaddr action reject-reason"),
        "1.2.3.4 5.6.7.8 REJECT BPA",
    );
    assert_eq!(d["event"]["reason"], "BPA");
    assert_eq!(d["aws"]["vpcflow"]["reject_reason"], "BPA");
}
