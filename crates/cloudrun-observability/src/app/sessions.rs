//! Visitor sessions: a `sid` cookie, and how many distinct sessions this
//! instance saw in the last five minutes (the `app.sessions.active` gauge).
//!
//! The count is per instance, like everything a Cloud Run instance knows; the
//! metric's series per instance add up to the service's total. The tracker is
//! bounded: a client that sends a fresh cookie with every request cannot make
//! it grow without limit.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use http::header::{COOKIE, SET_COOKIE};
use http::HeaderValue;
use rand::Rng;

/// How long a session counts as active after its last request.
pub const ACTIVE_WINDOW: Duration = Duration::from_secs(5 * 60);

/// The most sessions tracked at once; past it, new sessions go uncounted
/// until old ones expire.
pub const MAX_TRACKED_SESSIONS: usize = 50_000;

/// Expired sessions are swept at most this often, so a request pays only
/// for one map update.
const SWEEP_INTERVAL: Duration = Duration::from_secs(30);

/// The name of the session cookie.
pub const COOKIE_NAME: &str = "sid";

/// Distinct sessions seen recently, with when each was last seen.
#[derive(Debug)]
pub struct SessionTracker {
    state: Mutex<TrackerState>,
    window: Duration,
    capacity: usize,
}

#[derive(Debug)]
struct TrackerState {
    last_seen: HashMap<u128, Instant>,
    last_sweep: Instant,
}

impl Default for SessionTracker {
    fn default() -> Self {
        Self::new(ACTIVE_WINDOW, MAX_TRACKED_SESSIONS)
    }
}

impl SessionTracker {
    pub fn new(window: Duration, capacity: usize) -> Self {
        Self {
            state: Mutex::new(TrackerState {
                last_seen: HashMap::new(),
                last_sweep: Instant::now(),
            }),
            window,
            capacity,
        }
    }

    /// Records a request of session `id` at `now`.
    pub fn touch(&self, id: u128, now: Instant) {
        let mut state = self.lock();
        // Sweeping is O(n): only every SWEEP_INTERVAL, never per request,
        // even when the tracker is full (a flood of cookie-less clients would
        // otherwise make every request pay for it).
        if now.saturating_duration_since(state.last_sweep) >= SWEEP_INTERVAL {
            self.sweep(&mut state, now);
        }
        if state.last_seen.len() < self.capacity || state.last_seen.contains_key(&id) {
            state.last_seen.insert(id, now);
        }
    }

    /// Sessions seen within the window before `now`.
    pub fn active(&self, now: Instant) -> usize {
        let mut state = self.lock();
        self.sweep(&mut state, now);
        state.last_seen.len()
    }

    fn sweep(&self, state: &mut TrackerState, now: Instant) {
        let window = self.window;
        state
            .last_seen
            .retain(|_, seen| now.saturating_duration_since(*seen) < window);
        state.last_sweep = now;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, TrackerState> {
        // The state stays consistent even if a holder panicked: every update
        // is a single map operation.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Middleware: reads the visitor's `sid` cookie or gives a new one, and
/// records the session. `secure` adds the `Secure` attribute (on Cloud Run,
/// which serves only HTTPS).
pub async fn track_session(
    State(sessions): State<SessionLayerState>,
    request: Request,
    next: Next,
) -> Response {
    let existing = session_from_cookies(request.headers());
    let id = existing.unwrap_or_else(|| rand::rng().random::<u128>());
    sessions.tracker.touch(id, Instant::now());
    let mut response = next.run(request).await;
    if existing.is_none() {
        let cookie = format!(
            "{COOKIE_NAME}={id:032x}; Path=/; Max-Age=86400; HttpOnly; SameSite=Lax{}",
            if sessions.secure { "; Secure" } else { "" }
        );
        if let Ok(value) = HeaderValue::from_str(&cookie) {
            response.headers_mut().append(SET_COOKIE, value);
        }
    }
    response
}

/// What the session middleware needs.
#[derive(Clone, Debug)]
pub struct SessionLayerState {
    pub tracker: Arc<SessionTracker>,
    pub secure: bool,
}

/// The session id in the `Cookie` headers, if one is well formed (32 hex
/// digits); anything else is treated as no session.
fn session_from_cookies(headers: &http::HeaderMap) -> Option<u128> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE_NAME)
        .and_then(|(_, value)| {
            let value = value.trim();
            (value.len() == 32 && value.bytes().all(|b| b.is_ascii_hexdigit()))
                .then(|| u128::from_str_radix(value, 16).ok())
                .flatten()
        })
}

impl crate::telemetry::metrics::ActiveSessions for SessionTracker {
    fn active_sessions(&self, now: Instant) -> usize {
        self.active(now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_expire_after_the_window() {
        let tracker = SessionTracker::new(Duration::from_secs(300), 10);
        let start = Instant::now();
        tracker.touch(1, start);
        tracker.touch(2, start + Duration::from_secs(200));
        tracker.touch(1, start + Duration::from_secs(250));
        assert_eq!(tracker.active(start + Duration::from_secs(260)), 2);
        assert_eq!(tracker.active(start + Duration::from_secs(520)), 1);
        assert_eq!(tracker.active(start + Duration::from_secs(600)), 0);
    }

    #[test]
    fn the_tracker_never_grows_past_its_capacity() {
        let tracker = SessionTracker::new(Duration::from_secs(300), 3);
        let now = Instant::now();
        for id in 0..100 {
            tracker.touch(id, now);
        }
        assert_eq!(tracker.active(now), 3);
        // Known sessions are still refreshed when full.
        tracker.touch(0, now + Duration::from_secs(299));
        assert_eq!(tracker.active(now + Duration::from_secs(301)), 1);
    }

    #[test]
    fn only_well_formed_session_cookies_count() {
        let mut headers = http::HeaderMap::new();
        headers.insert(
            COOKIE,
            "theme=dark; sid=0123456789abcdef0123456789abcdef"
                .parse()
                .unwrap(),
        );
        assert_eq!(
            session_from_cookies(&headers),
            Some(0x0123456789abcdef0123456789abcdef)
        );
        headers.insert(COOKIE, "sid=not-a-session".parse().unwrap());
        assert_eq!(session_from_cookies(&headers), None);
    }
}
