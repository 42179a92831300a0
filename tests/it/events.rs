//! The example events under `events/` are ones the functions accept, as the kind the README
//! says they are.

use std::path::Path;

use ferry::batch::records;
use ferry::event::PlannerEvent;
use ferry::message::Message;
use serde_json::Value;

fn event(name: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../events")
        .join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"))
}

#[test]
fn planner_examples_parse_as_their_kind() {
    for (file, kind) in [
        ("manual-sync.json", "manual"),
        ("manual-dry-run.json", "manual"),
        ("schedule.json", "schedule"),
        ("ecr-push.json", "ecr-push"),
        ("ecr-delete.json", "ecr-delete"),
        ("sqs-plan-batch.json", "sqs-tasks"),
    ] {
        let parsed =
            PlannerEvent::parse(&event(file)).unwrap_or_else(|e| panic!("{file}: {}", e.0));
        assert_eq!(parsed.kind(), kind, "{file}");
        if let PlannerEvent::Tasks(records) = parsed {
            for record in records {
                assert!(matches!(
                    Message::decode(&record.body),
                    Ok(Message::PlanRepository(_))
                ));
            }
        }
    }
    let PlannerEvent::Manual(dry) = PlannerEvent::parse(&event("manual-dry-run.json")).unwrap()
    else {
        panic!("manual")
    };
    assert!(dry.dry_run);
}

#[test]
fn copier_example_holds_a_valid_copy_job() {
    let records = records(&event("sqs-copy-batch.json"), "the copier").unwrap();
    assert_eq!(records.len(), 1);
    let Ok(Message::Copy(job)) = Message::decode(&records[0].body) else {
        panic!("not a copy message: {}", records[0].body)
    };
    job.request().expect("the job's references are valid");
    assert_eq!(records[0].receive_count, 1);
}

#[test]
fn every_example_is_listed_in_the_events_readme() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../events");
    let readme = std::fs::read_to_string(dir.join("README.md")).unwrap();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().to_string();
        if name.ends_with(".json") {
            assert!(
                readme.contains(&format!("`{name}`")),
                "{name} is not in events/README.md"
            );
        }
    }
}
