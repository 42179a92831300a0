//! `ferry dead-letters`: what the deployed pipeline could not do, by kind, and sending it
//! back once its cause is fixed.

use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use ferry::aws::AwsClients;
use ferry::dead_letters::{summarize, DeadLetter, DeadLetterQueue, KindSummary};
use ferry::queue::SqsQueue;
use ferry::status::stack_queues;
use serde::Serialize;

use crate::args::DeadLettersArgs;

#[derive(Serialize)]
struct Listing<'a> {
    count: usize,
    kinds: &'a [KindSummary],
    letters: &'a [DeadLetter],
}

#[derive(Serialize)]
struct Requeued<'a> {
    requeued: usize,
    kinds: &'a [KindSummary],
    letters: &'a [DeadLetter],
}

pub async fn run(mut args: DeadLettersArgs) -> Result<ExitCode> {
    let aws = AwsClients::from_environment();
    if let Some(stack) = &args.stack {
        let queues = stack_queues(&aws, stack)
            .await
            .with_context(|| format!("reading the outputs of stack {stack}"))?;
        args.queue = args.queue.or(queues.dead_letter);
        args.copy_queue.get_or_insert(queues.copy);
        args.plan_queue = args.plan_queue.or(queues.plan);
    }
    let Some(queue) = args.queue.clone() else {
        bail!("give --stack NAME (the deployed stack) or --queue URL (its dead-letter queue)");
    };
    let sqs = aws.sqs().await;
    let dlq = DeadLetterQueue::new(sqs.clone(), &queue);
    if !args.requeue {
        if !args.kinds.is_empty() {
            bail!("--kind picks what --requeue sends back; to list one kind, list them all (they are grouped by kind)");
        }
        let letters = dlq
            .read(args.limit)
            .await
            .with_context(|| format!("reading {queue}"))?;
        let kinds = summarize(&letters);
        if args.json {
            let listing = Listing {
                count: letters.len(),
                kinds: &kinds,
                letters: &letters,
            };
            println!("{}", serde_json::to_string_pretty(&listing)?);
        } else {
            print!("{}", listing(&letters, &kinds));
        }
        return Ok(ExitCode::SUCCESS);
    }
    let copy_url = args.copy_queue.as_deref().context(
        "--requeue needs --stack NAME or --copy-queue URL (the stack's CopyQueueUrl output), where copy and removal messages go back to",
    )?;
    let copy = SqsQueue::new(sqs.clone(), copy_url);
    let plan = args
        .plan_queue
        .as_deref()
        .map(|u| SqsQueue::new(sqs.clone(), u));
    let kinds = &args.kinds;
    let moved = dlq
        .requeue(
            args.limit,
            |l| kinds.is_empty() || kinds.contains(&l.kind),
            &copy,
            plan.as_ref(),
        )
        .await;
    let moved = match moved {
        Ok(moved) => moved,
        Err(e) => {
            eprintln!("error: requeueing stopped: {e}");
            return Ok(ExitCode::from(1));
        }
    };
    let summary = summarize(&moved);
    if args.json {
        let report = Requeued {
            requeued: moved.len(),
            kinds: &summary,
            letters: &moved,
        };
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        let by_kind: Vec<String> = summary
            .iter()
            .map(|k| format!("{} {}", k.count, k.kind))
            .collect();
        println!(
            "requeued {} dead letters{}",
            moved.len(),
            match by_kind.is_empty() {
                true => String::new(),
                false => format!(" ({})", by_kind.join(", ")),
            }
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// The dead letters as people read them: a line per kind with an example reason, then
/// one per letter.
fn listing(letters: &[DeadLetter], kinds: &[KindSummary]) -> String {
    if letters.is_empty() {
        return "no dead letters\n".into();
    }
    let width = kinds.iter().map(|k| k.kind.len()).max().unwrap_or(0);
    let mut out = format!("{} dead letters\n", letters.len());
    for k in kinds {
        out.push_str(&format!(
            "  {:<width$}  {:>5}  e.g. {}\n",
            k.kind, k.count, k.example
        ));
    }
    out.push('\n');
    for l in letters {
        let subject = match l.subject.as_str() {
            "" => "(not a ferry message)",
            s => s,
        };
        out.push_str(&format!("{:<width$}  {subject}: {}\n", l.kind, l.reason));
    }
    out
}
