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
