//! The SAM template: cfn-lint accepts it, and its IAM is least privilege.

use std::path::PathBuf;

use serde_yaml_ng::Value;

fn template_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("template.yaml")
}

fn template() -> Value {
    serde_yaml_ng::from_str(&std::fs::read_to_string(template_path()).unwrap()).unwrap()
}

#[test]
fn cfn_lint_accepts_the_template() {
    let out = std::process::Command::new("cfn-lint")
        .arg(template_path())
        .output()
        .expect(
            "run cfn-lint: install it with pip install cfn-lint (the README's test command does)",
        );
    assert!(
        out.status.success(),
        "cfn-lint:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Every IAM statement in the template, wherever it sits.
fn statements(value: &Value, out: &mut Vec<Value>) {
    match value {
        Value::Mapping(m) => {
            if m.contains_key("Effect") && m.contains_key("Action") {
                out.push(value.clone());
            }
            for v in m.values() {
                statements(v, out);
            }
        }
        Value::Sequence(s) => s.iter().for_each(|v| statements(v, out)),
        Value::Tagged(t) => statements(&t.value, out),
        _ => {}
    }
}

fn strings(value: &Value) -> Vec<String> {
    match value {
        Value::String(s) => vec![s.clone()],
        Value::Sequence(s) => s.iter().flat_map(strings).collect(),
        _ => Vec::new(),
    }
}

#[test]
fn iam_uses_no_wildcard_beyond_get_authorization_token() {
    let mut found = Vec::new();
    statements(&template(), &mut found);
    assert!(found.len() >= 8, "statements found: {}", found.len());
    for s in &found {
        let actions = strings(&s["Action"]);
        assert!(
            actions.iter().all(|a| !a.contains('*')),
            "wildcard action in {s:?}"
        );
        if strings(&s["Resource"]).iter().any(|r| r == "*") {
            assert_eq!(
                actions,
                ["ecr:GetAuthorizationToken"],
                "only GetAuthorizationToken may have Resource \"*\""
            );
        }
    }
}

#[test]
fn queue_visibility_is_at_least_six_times_the_copier_timeout() {
    let t = template();
    let allowed = strings(&t["Parameters"]["CopierTimeout"]["AllowedValues"]);
    let allowed: Vec<u64> = match &t["Parameters"]["CopierTimeout"]["AllowedValues"] {
        Value::Sequence(s) => s.iter().filter_map(|v| v.as_u64()).collect(),
        _ => allowed.iter().filter_map(|s| s.parse().ok()).collect(),
    };
    assert!(!allowed.is_empty());
    for timeout in allowed {
        let visibility = t["Mappings"]["VisibilityTimeout"][timeout.to_string().as_str()]
            ["Seconds"]
            .as_u64()
            .unwrap_or_else(|| panic!("no visibility for timeout {timeout}"));
        assert!(visibility >= 6 * timeout, "{visibility} < 6 x {timeout}");
    }
}

/// The text of a scalar or a tagged scalar (`!Ref X`, `!GetAtt X.Arn`), tag included.
fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Tagged(t) => format!("{} {}", t.tag, text(&t.value)),
        _ => String::new(),
    }
}

#[test]
fn each_function_may_back_off_and_dead_letter_on_its_own_queue() {
    let t = template();
    for (function, queue) in [
        ("CopierFunction", "CopyQueue"),
        ("PlannerFunction", "PlanQueue"),
    ] {
        let policies = &t["Resources"][function]["Properties"]["Policies"];
        let mut found = Vec::new();
        statements(policies, &mut found);
        assert!(
            found
                .iter()
                .any(|s| strings(&s["Action"]) == ["sqs:ChangeMessageVisibility"]
                    && text(&s["Resource"]) == format!("!GetAtt {queue}.Arn")),
            "{function} may not change visibility on {queue}: {found:?}"
        );
        let sends: Vec<String> = match policies {
            Value::Sequence(list) => list
                .iter()
                .map(|p| text(&p["SQSSendMessagePolicy"]["QueueName"]))
                .collect(),
            _ => Vec::new(),
        };
        assert!(
            sends.contains(&"!GetAtt DeadLetterQueue.QueueName".to_string()),
            "{function} may not send to the dead-letter queue: {sends:?}"
        );
    }
}

#[test]
fn the_functions_know_their_queues_last_delivery() {
    let t = template();
    let env = &t["Globals"]["Function"]["Environment"]["Variables"];
    for (variable, queue) in [
        ("FERRY_COPY_MAX_RECEIVES", "CopyQueue"),
        ("FERRY_PLAN_MAX_RECEIVES", "PlanQueue"),
    ] {
        let redrive = &t["Resources"][queue]["Properties"]["RedrivePolicy"]["maxReceiveCount"];
        assert!(text(&env[variable]).starts_with("!Ref "), "{variable}");
        assert_eq!(
            text(&env[variable]),
            text(redrive),
            "{variable} and {queue}"
        );
    }
}

/// Every scheduled event the planner gets is one it accepts, as what it is meant to be:
/// the deep check's input asks for a repairing sync.
#[test]
fn the_planner_schedules_send_events_the_planner_accepts() {
    use ferry::event::PlannerEvent;
    let t = template();
    let events = &t["Resources"]["PlannerFunction"]["Properties"]["Events"];
    let schedules: Vec<(&str, &Value)> = events
        .as_mapping()
        .expect("planner events")
        .iter()
        .filter(|(_, e)| e["Type"].as_str() == Some("Schedule"))
        .map(|(name, e)| (name.as_str().unwrap(), e))
        .collect();
    assert_eq!(schedules.len(), 2, "the sync and the deep check");
    for (name, schedule) in schedules {
        let event = match schedule["Properties"]["Input"].as_str() {
            // What EventBridge sends without an input.
            None => serde_json::json!({"version": "0", "source": "aws.events",
                "detail-type": "Scheduled Event", "detail": {}}),
            Some(input) => serde_json::from_str(input).unwrap(),
        };
        let parsed = PlannerEvent::parse(&event).unwrap_or_else(|e| panic!("{name}: {}", e.0));
        match (name, parsed) {
            ("Schedule", PlannerEvent::Scheduled) => {}
            ("DeepCheck", PlannerEvent::Manual(m)) => assert!(m.repair && !m.dry_run),
            (name, parsed) => panic!("{name}: {parsed:?}"),
        }
    }
}

/// The dashboard shows what the functions emit, by the names and dimensions they emit it
/// under (a widget naming a metric nobody emits is an empty graph no test would notice),
/// and the AWS metrics of resources the stack has.
#[test]
fn the_dashboard_graphs_the_metrics_the_functions_emit() {
    let t = template();
    let dashboard = &t["Resources"]["Dashboard"];
    assert_eq!(
        dashboard["Type"].as_str(),
        Some("AWS::CloudWatch::Dashboard")
    );
    let Value::Tagged(body) = &dashboard["Properties"]["DashboardBody"] else {
        panic!("DashboardBody is a !Sub string")
    };
    let body: serde_json::Value = serde_json::from_str(body.value.as_str().unwrap())
        .unwrap_or_else(|e| panic!("the dashboard body is JSON: {e}"));

    // What the copier emits: (namespace, name, [(dimension, value)]).
    let emitted = ferry::handler::metrics::copier_metrics(&Default::default(), 0);
    let declared = &emitted["_aws"]["CloudWatchMetrics"][0];
    let namespace = declared["Namespace"].as_str().unwrap();
    let dimensions: Vec<(String, String)> = declared["Dimensions"][0]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            let d = d.as_str().unwrap();
            (d.to_string(), emitted[d].as_str().unwrap().to_string())
        })
        .collect();
    let names: Vec<&str> = declared["Metrics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["Name"].as_str().unwrap())
        .collect();

    let resources = t["Resources"].as_mapping().unwrap();
    let kind_of = |reference: &str| -> String {
        let name = reference
            .trim_start_matches("${")
            .trim_end_matches('}')
            .split('.')
            .next()
            .unwrap();
        resources
            .get(name)
            .and_then(|r| r["Type"].as_str())
            .unwrap_or_else(|| panic!("the dashboard names {reference}, which the stack lacks"))
            .to_string()
    };
    let mut graphed = Vec::new();
    for widget in body["widgets"].as_array().unwrap() {
        for metric in widget["properties"]["metrics"].as_array().unwrap() {
            let parts: Vec<&str> = metric
                .as_array()
                .unwrap()
                .iter()
                .filter_map(|p| p.as_str())
                .collect();
            let (ns, name, dims) = (parts[0], parts[1], &parts[2..]);
            let pairs: Vec<(String, String)> = dims
                .chunks(2)
                .map(|c| (c[0].to_string(), c[1].to_string()))
                .collect();
            match ns {
                "AWS/SQS" => {
                    assert_eq!(pairs[0].0, "QueueName", "{metric}");
                    assert_eq!(kind_of(&pairs[0].1), "AWS::SQS::Queue", "{metric}");
                }
                "AWS/Lambda" => {
                    assert_eq!(pairs[0].0, "FunctionName", "{metric}");
                    assert_eq!(
                        kind_of(&pairs[0].1),
                        "AWS::Serverless::Function",
                        "{metric}"
                    );
                }
                _ => {
                    assert_eq!(ns, namespace, "{metric}");
                    assert!(names.contains(&name), "{name} is not emitted: {names:?}");
                    assert_eq!(pairs, dimensions, "{metric}: emitted with {dimensions:?}");
                    graphed.push(name);
                }
            }
        }
    }
    for wanted in [
        "ImagesCopied",
        "ImagesUpToDate",
        "ImagesFailed",
        "BytesUploaded",
    ] {
        assert!(graphed.contains(&wanted), "{wanted} is not graphed");
    }
    let url = t["Outputs"]["DashboardUrl"]["Value"].clone();
    let Value::Tagged(url) = url else {
        panic!("DashboardUrl is a !Sub")
    };
    assert!(url
        .value
        .as_str()
        .unwrap()
        .contains("#dashboards:name=${Dashboard}"));
}
