//! Limits on what clients can ask of the server: a token bucket per client address
//! ([`RateLimiter`], pure: the caller passes the time) and the middleware that applies it to
//! `/api/*` ([`rate_limit`]); request bodies are capped by [`MAX_BODY_BYTES`]. The router
//! (`mod.rs`) also puts tower's load shedding in front of a concurrency limit shared by the
//! data routes, and tower's timeout around every request; [`overloaded`] and [`timed_out`]
//! turn what those refuse into answers.
//!
//! A client is an IPv4 address, or an IPv6 /64 (one host usually holds a whole /64). Behind a
//! reverse proxy every request comes from the proxy, so `--trust-forwarded-for` takes the last
//! `X-Forwarded-For` address (the one the proxy appended) instead. `GET /api/health` is not
//! limited, so healthchecks never fail for being frequent.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::connect_info::MockConnectInfo;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tower::BoxError;

use super::{ApiError, paths};
use crate::AppState;
use crate::metrics::Metrics;

/// Largest request body the server reads (the Flux proxy's query is the only body).
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Most clients tracked at once; past it, idle (full) buckets are dropped, and if that is not
/// enough, all of them (memory stays bounded whatever the number of addresses).
const MAX_CLIENTS: usize = 100_000;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    last: Instant,
}

/// Token buckets per client: `burst` requests at once, refilled at `per_sec`.
#[derive(Debug)]
pub struct RateLimiter {
    per_sec: f64,
    burst: f64,
    buckets: Mutex<HashMap<IpAddr, Bucket>>,
}

/// The key a client is counted under: the address, or its /64 for IPv6.
pub fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
        v4 => v4,
    }
}

impl RateLimiter {
    /// `None` when `per_sec` is 0 (no limit).
    pub fn new(per_sec: u32, burst: u32) -> Option<Self> {
        (per_sec > 0).then(|| Self {
            per_sec: f64::from(per_sec),
            burst: f64::from(burst.max(1)),
            buckets: Mutex::new(HashMap::new()),
        })
    }

    /// Takes one request from `client`'s bucket at `now`; `Err(wait)` when it is empty.
    pub fn check(&self, client: IpAddr, now: Instant) -> Result<(), Duration> {
        let key = client_key(client);
        let mut buckets = self
            .buckets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if buckets.len() >= MAX_CLIENTS && !buckets.contains_key(&key) {
            let refill = Duration::from_secs_f64(self.burst / self.per_sec);
            buckets.retain(|_, b| now.saturating_duration_since(b.last) < refill);
            if buckets.len() >= MAX_CLIENTS {
                tracing::warn!(
                    clients = buckets.len(),
                    "rate limiter full; forgetting every client"
                );
                buckets.clear();
            }
        }
        let b = buckets.entry(key).or_insert(Bucket {
            tokens: self.burst,
            last: now,
        });
        let elapsed = now.saturating_duration_since(b.last).as_secs_f64();
        b.tokens = (b.tokens + elapsed * self.per_sec).min(self.burst);
        b.last = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - b.tokens) / self.per_sec))
        }
    }

    /// Clients tracked now.
    pub fn tracked(&self) -> usize {
        self.buckets.lock().map(|b| b.len()).unwrap_or(0)
    }
}

/// The client's address: the connection's, or the last `X-Forwarded-For` entry when trusted.
pub fn client_ip(
    peer: Option<IpAddr>,
    headers: &HeaderMap,
    trust_forwarded: bool,
) -> Option<IpAddr> {
    if trust_forwarded {
        let forwarded = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .next_back()
            .and_then(|s| s.trim().parse::<IpAddr>().ok());
        if forwarded.is_some() {
            return forwarded;
        }
    }
    peer
}

/// Middleware on `/api/*`: 429 with `Retry-After` once a client's bucket is empty.
pub async fn rate_limit(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let Some(limiter) = state.limiter.as_deref() else {
        return next.run(req).await;
    };
    // Nested under /api, the path here has lost its prefix.
    if req.uri().path() == paths::HEALTH {
        return next.run(req).await;
    }
    // The connection's address; tests that call the router directly give a mock one, or none.
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
        .or_else(|| {
            req.extensions()
                .get::<MockConnectInfo<SocketAddr>>()
                .map(|m| m.0.ip())
        });
    let Some(client) = client_ip(peer, req.headers(), state.config.trust_forwarded_for) else {
        return next.run(req).await;
    };
    match limiter.check(client, Instant::now()) {
        Ok(()) => next.run(req).await,
        Err(wait) => {
            state.metrics.http_rate_limited.fetch_add(1, Relaxed);
            ApiError::TooManyRequests { retry_after: wait }.into_response()
        }
    }
}

/// Middleware on the data routes, outside their concurrency limit: reads a request's body
/// whole (at most [`MAX_BODY_BYTES`], `413` past it) within `timeout` (`408` after it), so a
/// client that sends slowly holds no slot. GET and HEAD have no body and pass straight on.
pub async fn read_body(State(timeout): State<Duration>, req: Request, next: Next) -> Response {
    use axum::http::Method;
    if matches!(*req.method(), Method::GET | Method::HEAD) {
        return next.run(req).await;
    }
    let (parts, body) = req.into_parts();
    let read = axum::body::to_bytes(body, MAX_BODY_BYTES);
    let bytes = if timeout.is_zero() {
        read.await
    } else {
        match tokio::time::timeout(timeout, read).await {
            Ok(r) => r,
            Err(_) => return ApiError::BodyTimedOut(timeout).into_response(),
        }
    };
    match bytes {
        Ok(bytes) => {
            next.run(Request::from_parts(parts, axum::body::Body::from(bytes)))
                .await
        }
        Err(e) if is_length_limit(&e) => ApiError::PayloadTooLarge(format!(
            "the request body is longer than {MAX_BODY_BYTES} bytes"
        ))
        .into_response(),
        Err(e) => ApiError::BadRequest(format!("reading the request body: {e}")).into_response(),
    }
}

/// Whether reading a body failed on its length limit.
fn is_length_limit(e: &axum::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        if s.to_string().contains("length limit exceeded") {
            return true;
        }
        source = s.source();
    }
    false
}

/// What a client refused by the data routes' concurrency limit is told to wait.
const OVERLOADED_RETRY_AFTER: Duration = Duration::from_secs(1);

/// A data request refused by load shedding (as many as allowed are being served): `503` with
/// `Retry-After`, counted.
pub async fn overloaded(metrics: Arc<Metrics>, e: BoxError) -> ApiError {
    if e.is::<tower::load_shed::error::Overloaded>() {
        metrics.http_overloaded.fetch_add(1, Relaxed);
        ApiError::Overloaded {
            retry_after: OVERLOADED_RETRY_AFTER,
        }
    } else {
        ApiError::Internal(anyhow::anyhow!("data route failed: {e}"))
    }
}

/// A request whose answer did not start within `after`: `503`, counted.
pub async fn timed_out(metrics: Arc<Metrics>, after: Duration, e: BoxError) -> ApiError {
    if e.is::<tower::timeout::error::Elapsed>() {
        metrics.http_timed_out.fetch_add(1, Relaxed);
        ApiError::TimedOut(after)
    } else {
        ApiError::Internal(anyhow::anyhow!("request failed: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn a_burst_then_the_sustained_rate() {
        let l = RateLimiter::new(10, 5).unwrap();
        let t0 = Instant::now();
        for _ in 0..5 {
            assert!(l.check(ip("10.0.0.1"), t0).is_ok());
        }
        let wait = l.check(ip("10.0.0.1"), t0).unwrap_err();
        assert!(
            wait <= Duration::from_millis(100) && wait > Duration::ZERO,
            "{wait:?}"
        );
        assert!(
            l.check(ip("10.0.0.2"), t0).is_ok(),
            "another client has its own bucket"
        );
        // 100 ms later one more request is allowed, the next is not.
        let t1 = t0 + Duration::from_millis(100);
        assert!(l.check(ip("10.0.0.1"), t1).is_ok());
        assert!(l.check(ip("10.0.0.1"), t1).is_err());
        // Idle for a long time: the bucket is full again, not fuller.
        let t2 = t0 + Duration::from_secs(60);
        for _ in 0..5 {
            assert!(l.check(ip("10.0.0.1"), t2).is_ok());
        }
        assert!(l.check(ip("10.0.0.1"), t2).is_err());
        assert!(RateLimiter::new(0, 5).is_none(), "0 turns it off");
    }

    #[test]
    fn ipv6_clients_are_counted_per_64() {
        let l = RateLimiter::new(1, 1).unwrap();
        let t = Instant::now();
        assert!(l.check(ip("2001:db8:1:2::1"), t).is_ok());
        assert!(l.check(ip("2001:db8:1:2:ffff::9"), t).is_err(), "same /64");
        assert!(l.check(ip("2001:db8:1:3::1"), t).is_ok());
        assert_eq!(client_key(ip("::ffff:10.1.2.3")), ip("10.1.2.3"));
    }

    #[test]
    fn memory_stays_bounded() {
        let l = RateLimiter::new(1, 1).unwrap();
        let t = Instant::now();
        for i in 0..(MAX_CLIENTS as u32 + 10) {
            let _ = l.check(IpAddr::from(i.to_be_bytes()), t);
        }
        assert!(l.tracked() <= MAX_CLIENTS, "{}", l.tracked());
    }

    #[test]
    fn forwarded_for_only_when_trusted() {
        let mut h = HeaderMap::new();
        h.append(
            "x-forwarded-for",
            "203.0.113.9, 198.51.100.7".parse().unwrap(),
        );
        let peer = Some(ip("172.18.0.5"));
        assert_eq!(client_ip(peer, &h, false), peer);
        assert_eq!(client_ip(peer, &h, true), Some(ip("198.51.100.7")));
        h.insert("x-forwarded-for", "garbage".parse().unwrap());
        assert_eq!(client_ip(peer, &h, true), peer);
        assert_eq!(client_ip(None, &HeaderMap::new(), true), None);
    }
}
