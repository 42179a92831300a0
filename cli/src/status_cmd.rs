//! `ferry status`: a deployed migration from its queues' counts, once or followed until
//! the copy queue is empty.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use ferry::aws::AwsClients;
use ferry::dead_letters::{summarize, DeadLetterQueue, KindSummary};
use ferry::status::{counts, stack_queues, Drain, QueueCounts};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;

use crate::args::StatusArgs;

/// Dead letters read for the summary by kind at most.
const DEAD_LETTERS_READ: usize = 1_000;

#[derive(Debug, Serialize)]
struct Snapshot {
    copy: QueueCounts,
    #[serde(skip_serializing_if = "Option::is_none")]
    plan: Option<QueueCounts>,
    #[serde(skip_serializing_if = "Option::is_none")]
    dead_letters: Option<u64>,
    /// Images a second leaving the copy queue, over the last minute.
    #[serde(skip_serializing_if = "Option::is_none")]
    rate: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    seconds_left: Option<u64>,
    /// Dead letters by kind (on --once and at the end).
    #[serde(skip_serializing_if = "Option::is_none")]
    kinds: Option<Vec<KindSummary>>,
}

impl Snapshot {
    fn empty(&self) -> bool {
        self.copy.remaining() == 0 && self.plan.is_none_or(|p| p.remaining() == 0)
    }
}

pub async fn run(mut args: StatusArgs) -> Result<ExitCode> {
    let aws = AwsClients::from_environment();
    if let Some(stack) = &args.stack {
        let queues = stack_queues(&aws, stack)
            .await
            .with_context(|| format!("reading the outputs of stack {stack}"))?;
        args.copy_queue.get_or_insert(queues.copy);
        args.plan_queue = args.plan_queue.or(queues.plan);
        args.dead_letter_queue = args.dead_letter_queue.or(queues.dead_letter);
    }
    let Some(copy_queue) = args.copy_queue.clone() else {
        anyhow::bail!("give --stack NAME (the deployed stack) or --copy-queue URL");
    };
    let sqs = aws.sqs().await;
    let dlq = args
        .dead_letter_queue
        .as_ref()
        .map(|url| DeadLetterQueue::new(sqs.clone(), url));
    let sample = || async {
        let copy = counts(&sqs, &copy_queue)
            .await
            .with_context(|| format!("reading {copy_queue}"))?;
        let plan = match &args.plan_queue {
            Some(url) => Some(
                counts(&sqs, url)
                    .await
                    .with_context(|| format!("reading {url}"))?,
            ),
            None => None,
        };
        let dead_letters = match &args.dead_letter_queue {
            Some(url) => Some(
                counts(&sqs, url)
                    .await
                    .with_context(|| format!("reading {url}"))?
                    .remaining(),
            ),
            None => None,
        };
        anyhow::Ok(Snapshot {
            copy,
            plan,
            dead_letters,
            rate: None,
            seconds_left: None,
            kinds: None,
        })
    };
    let by_kind = || async {
        match &dlq {
            Some(dlq) => dlq
                .read(DEAD_LETTERS_READ)
                .await
                .map(|l| Some(summarize(&l))),
            None => Ok(None),
        }
    };

    if args.once {
        let mut snapshot = sample().await?;
        snapshot.kinds = by_kind().await?;
        match args.json {
            true => println!("{}", serde_json::to_string_pretty(&snapshot)?),
            false => println!("{}", line(&snapshot)),
        }
        return Ok(ExitCode::SUCCESS);
    }

    let bar = (!args.json && std::io::stdout().is_terminal()).then(|| {
        let bar = ProgressBar::new(0);
        bar.set_style(
            ProgressStyle::with_template("{bar:40.cyan/blue} {pos}/{len} images  {msg}")
                .expect("valid template")
                .progress_chars("=> "),
        );
        bar
    });
    let started = Instant::now();
    let mut drain = Drain::default();
    let mut empty_in_a_row = 0;
    let last = loop {
        let mut snapshot = sample().await?;
        drain.sample(started.elapsed(), snapshot.copy.remaining());
        snapshot.rate = drain.rate();
        snapshot.seconds_left = drain.left().map(|d| d.as_secs());
        empty_in_a_row = match snapshot.empty() {
            true => empty_in_a_row + 1,
            false => 0,
        };
        match &bar {
            Some(bar) => {
                bar.set_length(drain.high_water);
                bar.set_position(drain.done());
                bar.set_message(line(&snapshot));
            }
            None if args.json => println!("{}", serde_json::to_string(&snapshot)?),
            None => println!("{}", line(&snapshot)),
        }
        // SQS's counts lag a little: empty twice running is empty.
        if empty_in_a_row >= 2 {
            break snapshot;
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(args.interval)) => {}
            _ = tokio::signal::ctrl_c() => break snapshot,
        }
    };
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    let kinds = by_kind().await?;
    if args.json {
        let done = Snapshot { kinds, ..last };
        println!("{}", serde_json::to_string(&done)?);
    } else {
        let done = Snapshot { kinds, ..last };
        let what = match done.empty() {
            true => "the copy queue is empty",
            false => "stopped",
        };
        println!("{what}: {}", line(&done));
    }
    Ok(ExitCode::SUCCESS)
}

/// One snapshot in a line, then the dead letters by kind if read.
fn line(s: &Snapshot) -> String {
    let mut out = format!(
        "{} waiting, {} in flight",
        s.copy.waiting + s.copy.delayed,
        s.copy.in_flight
    );
    if let Some(p) = &s.plan {
        out.push_str(&format!("; {} repositories to plan", p.remaining()));
    }
    if let Some(d) = s.dead_letters {
        out.push_str(&format!("; {d} dead letters"));
    }
    match (s.rate, s.seconds_left) {
        (Some(rate), Some(left)) => out.push_str(&format!(
            "; {rate:.1} images/s, about {} left",
            ferry::error::wait_words(Duration::from_secs(left))
        )),
        (Some(_), None) if s.copy.remaining() > 0 => out.push_str("; not draining"),
        _ => {}
    }
    for k in s.kinds.iter().flatten() {
        out.push_str(&format!("\n  {} {}: e.g. {}", k.count, k.kind, k.example));
    }
    out
}
