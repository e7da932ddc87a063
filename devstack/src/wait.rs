//! Waiting for a condition with a deadline: the one polling loop that tests and the stack's
//! helpers share, instead of each writing out its own. A condition is asked again every
//! [`POLL`]; nothing here sleeps for a fixed time in place of a condition.

use std::future::Future;
use std::time::{Duration, Instant};

/// How often a condition is asked again.
pub const POLL: Duration = Duration::from_millis(50);

/// Asks `probe` until it gives `Some`, for at most `timeout` (it is asked at least once);
/// `None` when it never did.
pub fn until<T>(timeout: Duration, mut probe: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = probe() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(POLL);
    }
}

/// [`until`] for a probe that awaits, sleeping on tokio's timer between tries.
pub async fn until_async<T, F>(timeout: Duration, mut probe: impl FnMut() -> F) -> Option<T>
where
    F: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = probe().await {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Waits until `condition` holds, for at most `timeout`; else the test fails, saying `what`
/// did not happen.
#[track_caller]
pub fn expect(what: &str, timeout: Duration, mut condition: impl FnMut() -> bool) {
    if until(timeout, || condition().then_some(())).is_none() {
        panic!("{what}: not within {timeout:?}");
    }
}

/// [`expect`] for a condition that awaits.
pub async fn expect_async<F>(what: &str, timeout: Duration, mut condition: impl FnMut() -> F)
where
    F: Future<Output = bool>,
{
    let met = until_async(timeout, || {
        let f = condition();
        async move { f.await.then_some(()) }
    })
    .await;
    assert!(met.is_some(), "{what}: not within {timeout:?}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn until_asks_until_the_probe_answers() {
        let mut calls = 0;
        let got = until(Duration::from_secs(5), || {
            calls += 1;
            (calls == 3).then_some(calls)
        });
        assert_eq!(got, Some(3));
    }

    #[test]
    fn until_gives_up_at_the_deadline_having_asked_at_least_once() {
        let mut calls = 0;
        let got: Option<()> = until(Duration::ZERO, || {
            calls += 1;
            None
        });
        assert_eq!((got, calls), (None, 1));
    }

    #[test]
    #[should_panic(expected = "the moon rose: not within")]
    fn expect_fails_saying_what_did_not_happen() {
        expect("the moon rose", Duration::from_millis(120), || false);
    }

    #[tokio::test]
    async fn until_async_awaits_each_try() {
        let mut calls = 0;
        let got = until_async(Duration::from_secs(5), || {
            calls += 1;
            let n = calls;
            async move { (n == 2).then_some(n) }
        })
        .await;
        assert_eq!(got, Some(2));
        expect_async("a ready future", Duration::ZERO, || async { true }).await;
    }
}
