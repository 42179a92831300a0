//! Answers a run asks a registry once per key, however many images want them at the same
//! moment, and trusts for a while: a repository's tag list, whether a destination
//! repository holds any tag.
//!
//! Images of one repository are copied side by side, and each of their blobs wants the
//! same answer at about the same time. A map filled after the request would let every one
//! of them ask (the benchmark's many fixture once listed each destination repository
//! several times over); here the first asks and the others wait for its answer.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::OnceCell;
// Tokio's clock, which tests can pause and advance; the same as std's outside them.
use tokio::time::Instant;

/// Answers by key, each asked once and trusted for `ttl` from when it was first wanted.
pub struct SharedAnswers<T> {
    ttl: Duration,
    /// Key → its answer.
    cells: Mutex<HashMap<String, Asked<T>>>,
}

/// When an answer was first wanted, and the answer (being) asked.
type Asked<T> = (Instant, Arc<OnceCell<T>>);

impl<T: Clone> SharedAnswers<T> {
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            cells: Mutex::new(HashMap::new()),
        }
    }

    /// The answer for `key`: one asked within the ttl, else `ask`'s. Callers that come
    /// while it is being asked wait for it. A failed ask is not kept: the next caller asks.
    pub async fn get_or_try_ask<E, F, Fut>(&self, key: &str, ask: F) -> Result<T, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        self.cell(key).get_or_try_init(ask).await.cloned()
    }

    /// [`get_or_try_ask`](Self::get_or_try_ask) for an ask that cannot fail.
    pub async fn get_or_ask<F, Fut>(&self, key: &str, ask: F) -> T
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = T>,
    {
        self.cell(key).get_or_init(ask).await.clone()
    }

    /// Take `answer` for `key`, got another way just now (a listing made for another
    /// purpose): callers within the ttl use it instead of asking.
    pub fn put(&self, key: &str, answer: T) {
        self.cells.lock().expect("recent answers poisoned").insert(
            key.to_string(),
            (Instant::now(), Arc::new(OnceCell::new_with(Some(answer)))),
        );
    }

    /// Forget every answer: the next caller of each key asks again.
    pub fn forget(&self) {
        self.cells.lock().expect("recent answers poisoned").clear();
    }

    fn cell(&self, key: &str) -> Arc<OnceCell<T>> {
        let mut cells = self.cells.lock().expect("recent answers poisoned");
        match cells.get(key) {
            Some((at, cell)) if at.elapsed() < self.ttl => cell.clone(),
            _ => {
                let cell = Arc::new(OnceCell::new());
                cells.insert(key.to_string(), (Instant::now(), cell.clone()));
                cell
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test(start_paused = true)]
    async fn callers_at_the_same_time_share_one_ask() {
        let recent = SharedAnswers::new(Duration::from_secs(60));
        let asks = AtomicUsize::new(0);
        let ask = || async {
            asks.fetch_add(1, Ordering::SeqCst);
            // Long enough that every caller arrives while the first is still asking.
            tokio::time::sleep(Duration::from_millis(50)).await;
            7
        };
        let answers =
            futures::future::join_all((0..8).map(|_| recent.get_or_ask("reg/repo", ask))).await;
        assert_eq!(answers, vec![7; 8]);
        assert_eq!(asks.load(Ordering::SeqCst), 1);
        // Another key is its own question.
        assert_eq!(recent.get_or_ask("reg/other", ask).await, 7);
        assert_eq!(asks.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_failed_ask_is_asked_again() {
        let recent: SharedAnswers<u8> = SharedAnswers::new(Duration::from_secs(60));
        let first: Result<u8, &str> = recent.get_or_try_ask("k", || async { Err("down") }).await;
        assert_eq!(first, Err("down"));
        let second: Result<u8, &str> = recent.get_or_try_ask("k", || async { Ok(3) }).await;
        assert_eq!(second, Ok(3));
    }

    #[tokio::test(start_paused = true)]
    async fn answers_expire_and_can_be_forgotten() {
        let recent = SharedAnswers::new(Duration::from_secs(60));
        assert_eq!(recent.get_or_ask("k", || async { 1 }).await, 1);
        tokio::time::advance(Duration::from_secs(59)).await;
        assert_eq!(recent.get_or_ask("k", || async { 2 }).await, 1);
        tokio::time::advance(Duration::from_secs(2)).await;
        assert_eq!(recent.get_or_ask("k", || async { 3 }).await, 3);
        recent.forget();
        assert_eq!(recent.get_or_ask("k", || async { 4 }).await, 4);
    }

    #[tokio::test]
    async fn an_answer_put_is_not_asked_for() {
        let recent = SharedAnswers::new(Duration::from_secs(60));
        recent.put("k", 5);
        assert_eq!(recent.get_or_ask("k", || async { 6 }).await, 5);
    }
}
