//! `GET /console/events`: Server-Sent Events from the engine's read model. After every
//! commit the engine publishes a snapshot that names the incidents the commit touched;
//! each stream sends those ids — `event: incidents`, `data: INC-3 INC-7` — or `all` when
//! there are more than [`MAX_IDS`] or the stream missed a snapshot (a timeline entry leaves
//! no trace in the incident maps, so nothing else could tell). The page's script fetches
//! what it shows of them again. Ids only: a restricted incident's id is what its
//! restricted view shows anyway. A stream ends when its session does (`event:
//! signed-out`) and when the server stops; at most [`crate::api::console::MAX_STREAMS`] are open at once (503
//! beyond).

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use tokio::sync::OwnedSemaphorePermit;
use tokio_util::sync::CancellationToken;

use super::render;
use super::session::{action_viewer, viewer};
use crate::api::ApiState;
use crate::engine::{ReadModel, Snapshot};

/// More changed incidents than this in one commit are sent as `all`.
const MAX_IDS: usize = 200;
/// A comment this often keeps proxies and the server's idle timeout from closing a quiet
/// stream.
const KEEP_ALIVE: Duration = Duration::from_secs(15);
/// A quiet stream checks its session this often (expiry, sign-out elsewhere).
const RECHECK: Duration = Duration::from_secs(30);

/// The ids of the incidents changed from `before` to `after`, sorted; `None` when that is
/// not known (versions were skipped, or the engine reloaded its state) or too many.
pub(super) fn changed(before: &Snapshot, after: &Snapshot) -> Option<Vec<u64>> {
    if after.version == before.version {
        return Some(Vec::new());
    }
    if after.version != before.version + 1 {
        // Snapshots in between were not seen: a timeline entry leaves no trace in the
        // maps, so only "everything" is right.
        return None;
    }
    let touched = after.touched.as_ref()?;
    if touched.len() > MAX_IDS {
        return None;
    }
    let mut ids = touched.to_vec();
    ids.sort_unstable();
    Some(ids)
}

struct Stream {
    state: ApiState,
    headers: HeaderMap,
    read: ReadModel,
    last: Arc<Snapshot>,
    stop: CancellationToken,
    ended: bool,
    _permit: OwnedSemaphorePermit,
}

impl Stream {
    /// The next event to send, or `None` when the stream ends.
    async fn next(&mut self) -> Option<Event> {
        if self.ended {
            return None;
        }
        loop {
            tokio::select! {
                changed = self.read.changed() => {
                    if changed.is_err() {
                        return None; // the engine stopped
                    }
                }
                () = tokio::time::sleep(RECHECK) => {
                    if viewer(&self.state, &self.headers).is_none() {
                        self.ended = true;
                        return Some(Event::default().event("signed-out").data("ended"));
                    }
                    continue;
                }
                () = self.stop.cancelled() => return None,
            }
            if viewer(&self.state, &self.headers).is_none() {
                self.ended = true;
                return Some(Event::default().event("signed-out").data("ended"));
            }
            let now = self.read.borrow_and_update().clone();
            let ids = changed(&self.last, &now);
            self.last = now;
            let data = match ids {
                None => "all".to_owned(),
                Some(ids) if ids.is_empty() => continue,
                Some(ids) => ids
                    .iter()
                    .map(|id| format!("INC-{id}"))
                    .collect::<Vec<_>>()
                    .join(" "),
            };
            return Some(Event::default().event("incidents").data(data));
        }
    }
}

pub(super) async fn events(State(state): State<ApiState>, headers: HeaderMap) -> Response {
    if let Err(response) = action_viewer(&state, &headers) {
        return response;
    }
    let Ok(permit) = state.console.streams.clone().try_acquire_owned() else {
        return render::message(
            StatusCode::SERVICE_UNAVAILABLE,
            "Busy",
            "Too many consoles are open; live updates are off for this one. Reload later.",
        );
    };
    let mut read = state.read.clone();
    let last = read.borrow_and_update().clone();
    // Only what finds the session again is kept of the request.
    let mut kept = HeaderMap::new();
    for value in headers.get_all(axum::http::header::COOKIE) {
        kept.append(axum::http::header::COOKIE, value.clone());
    }
    let stream = Stream {
        stop: state.console.stop.clone(),
        state,
        headers: kept,
        read,
        last,
        ended: false,
        _permit: permit,
    };
    let events = futures_util::stream::unfold(stream, |mut stream| async move {
        let event = stream.next().await?;
        Some((Ok::<_, std::convert::Infallible>(event), stream))
    });
    let mut response = Sse::new(events)
        .keep_alive(KeepAlive::new().interval(KEEP_ALIVE))
        .into_response();
    response
        .headers_mut()
        .insert("x-accel-buffering", HeaderValue::from_static("no"));
    response
}
