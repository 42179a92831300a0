//! How a deployed migration is getting on, from the queues' own counts (`ferry status`):
//! images waiting and in flight, repositories still to plan, and the rate the copy queue
//! drains at, from counts sampled over time.

use std::time::Duration;

use aws_sdk_sqs::types::QueueAttributeName;
use serde::Serialize;

use crate::aws::AwsClients;
use crate::error::{Error, Result};

/// The queues of a deployed stack, from its outputs (the template's `CopyQueueUrl`,
/// `PlanQueueUrl`, `DeadLetterQueueUrl`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StackQueues {
    pub copy: String,
    pub plan: Option<String>,
    pub dead_letter: Option<String>,
}

/// Read `stack`'s queue URLs through CloudFormation (`cloudformation:DescribeStacks`).
pub async fn stack_queues(aws: &AwsClients, stack: &str) -> Result<StackQueues> {
    let client = aws_sdk_cloudformation::Client::new(aws.config().await);
    let answer = client
        .describe_stacks()
        .stack_name(stack)
        .send()
        .await
        .map_err(|e| crate::aws::error("cloudformation:DescribeStacks", &e))?;
    let Some(found) = answer.stacks().first() else {
        return Err(Error::Config(format!("no stack named {stack}")));
    };
    let output = |key: &str| {
        found
            .outputs()
            .iter()
            .find(|o| o.output_key() == Some(key))
            .and_then(|o| o.output_value())
            .map(str::to_string)
    };
    let copy = output("CopyQueueUrl").ok_or_else(|| {
        Error::Config(format!(
            "stack {stack} has no CopyQueueUrl output: is it deployed from ferry's template.yaml? Give the queue URLs instead (--copy-queue)"
        ))
    })?;
    Ok(StackQueues {
        copy,
        plan: output("PlanQueueUrl"),
        dead_letter: output("DeadLetterQueueUrl"),
    })
}

/// One queue's counts at one moment. SQS's counts are approximate (eventually consistent
/// for a minute or so), which is what its own console shows too.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct QueueCounts {
    /// Ready to be received.
    pub waiting: u64,
    /// Received and not yet deleted: being worked on (or parked by backoff).
    pub in_flight: u64,
    /// Sent with a delay not yet over.
    pub delayed: u64,
}

impl QueueCounts {
    /// What is still to be done.
    pub fn remaining(&self) -> u64 {
        self.waiting + self.in_flight + self.delayed
    }
}

/// The counts of the queue at `url`.
pub async fn counts(sqs: &aws_sdk_sqs::Client, url: &str) -> Result<QueueCounts> {
    let answer = sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesDelayed)
        .send()
        .await
        .map_err(|e| crate::aws::error("sqs:GetQueueAttributes", &e))?;
    let attributes = answer.attributes();
    let count = |name: QueueAttributeName| -> Result<u64> {
        let text = attributes.and_then(|a| a.get(&name)).map(String::as_str);
        match text {
            None => Ok(0),
            Some(t) => t.parse().map_err(|_| Error::Aws {
                action: "sqs:GetQueueAttributes",
                detail: format!("{name} is {t:?}, not a count"),
                retryable: false,
            }),
        }
    };
    Ok(QueueCounts {
        waiting: count(QueueAttributeName::ApproximateNumberOfMessages)?,
        in_flight: count(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)?,
        delayed: count(QueueAttributeName::ApproximateNumberOfMessagesDelayed)?,
    })
}

/// How fast a queue drains, from its remaining count sampled over time: the rate over the
/// last [`Drain::WINDOW`] of samples (older ones forgotten, so a queue that speeds up or
/// slows down shows it within a minute), and the time left at that rate. Pure: the caller
/// samples and says when.
#[derive(Debug, Clone, Default)]
pub struct Drain {
    /// (seconds since the first sample, remaining), oldest first.
    samples: Vec<(f64, u64)>,
    /// The most ever remaining: what a progress bar measures against.
    pub high_water: u64,
}

impl Drain {
    pub const WINDOW: Duration = Duration::from_secs(60);

    pub fn sample(&mut self, at: Duration, remaining: u64) {
        let at = at.as_secs_f64();
        self.samples.push((at, remaining));
        let window = Self::WINDOW.as_secs_f64();
        // Keep the newest sample at least a window old as the window's start.
        while self.samples.len() > 2 && at - self.samples[1].0 >= window {
            self.samples.remove(0);
        }
        self.high_water = self.high_water.max(remaining);
    }

    /// Images a second leaving the queue over the window; `None` until two samples apart
    /// in time. Zero or less (the queue grows, or stands) is `Some(0.0)`.
    pub fn rate(&self) -> Option<f64> {
        let (&(t0, r0), &(t1, r1)) = (self.samples.first()?, self.samples.last()?);
        if t1 <= t0 {
            return None;
        }
        Some(((r0 as f64 - r1 as f64) / (t1 - t0)).max(0.0))
    }

    /// Time left at the current rate; `None` while the rate is unknown or zero.
    pub fn left(&self) -> Option<Duration> {
        let remaining = self.samples.last()?.1;
        let rate = self.rate().filter(|r| *r > 0.0)?;
        Some(Duration::from_secs_f64(remaining as f64 / rate))
    }

    /// Done so far, against the high-water mark.
    pub fn done(&self) -> u64 {
        self.high_water - self.samples.last().map_or(0, |s| s.1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rate_follows_the_last_minute_and_gives_the_time_left() {
        let s = Duration::from_secs;
        let mut drain = Drain::default();
        drain.sample(s(0), 1000);
        assert_eq!(
            (drain.rate(), drain.left()),
            (None, None),
            "one sample says nothing"
        );
        drain.sample(s(10), 900);
        assert_eq!(drain.rate(), Some(10.0));
        assert_eq!(drain.left(), Some(s(90)));
        // Slower for a while: after a minute only the slow samples count.
        for t in 1..=7 {
            drain.sample(s(10 + 10 * t), 900 - 20 * t);
        }
        assert_eq!(drain.rate(), Some(2.0), "{drain:?}");
        assert_eq!(drain.left(), Some(s(380)));
        assert_eq!((drain.high_water, drain.done()), (1000, 240));
        // A queue that grows (the planner still sending) has no time left, not a negative one.
        drain.sample(s(100), 2000);
        assert_eq!(drain.rate(), Some(0.0));
        assert_eq!(drain.left(), None);
        assert_eq!(drain.high_water, 2000);
    }
}
