//! Liveness and readiness. `/healthz` answers while the process serves
//! (no token: it is what a supervisor polls). `/readyz` is true only when
//! the engine answers and the controller has observed it once in full:
//! before that, what the API reports about containers is not yet true;
//! and while the store cannot write (a full disk), it says so. A 503 from
//! it is an answer, not a failure of the server, so it is not logged at
//! `error` as other 5xx are: a prober would fill the log during an outage.

use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::error::{ApiError, ApiResult};
use super::query::{NoParams, StrictQuery};
use super::AppState;

/// How long readiness waits for the engine: under the 1 s timeout probes
/// default to (Kubernetes', berth's outage test), so a slow engine (one
/// starting up) gets a 503 that says so, not a probe that times out.
const ENGINE_TIMEOUT: Duration = Duration::from_millis(800);

/// Liveness.
pub async fn healthz(_: StrictQuery<NoParams>) -> &'static str {
    "ok\n"
}

/// What readiness found.
#[derive(Serialize, Deserialize, JsonSchema)]
pub struct Readiness {
    /// Each check and its result (`ok` or what is wrong).
    pub checks: Vec<Check>,
}

/// One readiness check.
#[derive(Serialize, Deserialize, JsonSchema)]
pub struct Check {
    /// `engine` or `observed`.
    pub name: String,
    /// Whether it passed.
    pub ok: bool,
    /// Details.
    pub message: String,
}

/// Readiness: 200 with the checks, or 503 naming the failed ones.
pub async fn readyz(State(state): State<AppState>, _: StrictQuery<NoParams>) -> ApiResult<Json<Readiness>> {
    let Some(connected) = state.engine.get() else {
        let message = "not ready: engine: not connected yet (berth serve is waiting for it)";
        return Err(ApiError::new(StatusCode::SERVICE_UNAVAILABLE, message)
            .detail(json!({ "check": "engine", "ok": false, "message": "not connected yet" }))
            .expected());
    };
    let engine = match tokio::time::timeout(ENGINE_TIMEOUT, connected.ctx.engine.info()).await {
        Ok(Ok(info)) => Check {
            name: "engine".into(),
            ok: true,
            message: format!("{} {} at {}", info.kind, info.version, info.endpoint),
        },
        Ok(Err(e)) => Check { name: "engine".into(), ok: false, message: format!("unreachable: {e}") },
        Err(_) => Check { name: "engine".into(), ok: false, message: format!("no answer within {ENGINE_TIMEOUT:?}") },
    };
    let observed = connected.observed.load(Ordering::SeqCst);
    let observed = Check {
        name: "observed".into(),
        ok: observed,
        message: if observed {
            "the engine has been observed in full".into()
        } else {
            "first observation of the engine not done yet".into()
        },
    };
    // After a failed write, each probe may reopen the database (at most
    // once a second), so readiness comes back when the disk has room again.
    if state.store.write_problem().is_some() {
        let recovering = state.store.clone();
        let _ = tokio::task::spawn_blocking(move || recovering.recover()).await;
    }
    let store = match state.store.write_problem() {
        None => Check { name: "store".into(), ok: true, message: "writes succeed".into() },
        Some(problem) => Check {
            name: "store".into(),
            ok: false,
            message: format!(
                "{problem}; free space there (berth tries again every second, nothing written before is lost)"
            ),
        },
    };
    let checks = vec![engine, observed, store];
    if checks.iter().all(|c| c.ok) {
        return Ok(Json(Readiness { checks }));
    }
    let failed: Vec<String> = checks.iter().filter(|c| !c.ok).map(|c| format!("{}: {}", c.name, c.message)).collect();
    // Not logged: what is wrong is logged where it is met (the engine's
    // outage by the controller's reconnects, a failed write by the writer),
    // and a prober asks every few seconds.
    let mut error =
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {}", failed.join("; "))).expected();
    for check in checks {
        error = error.detail(json!({ "check": check.name, "ok": check.ok, "message": check.message }));
    }
    Err(error)
}
