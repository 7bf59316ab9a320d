//! The job's HTTP endpoint, and signal handling, on a small tokio runtime in their
//! own thread, away from the workers:
//! - `GET /`: the live dashboard (`src/dashboard/index.html`, one self-contained
//!   page with hand-drawn SVG charts; it polls `/api/metrics` every second);
//! - `GET /api/metrics`: every metric as JSON (`Metrics::to_json`);
//! - `GET /metrics`: Prometheus text;
//! - `GET /features/{key}`: the key's latest features (`{"key","event_time","features"}`), 404 if unknown;
//! - `POST /features` with `{"keys": [..]}` (at most 10,000): `{"features": [record or null, ..]}`;
//! - `GET /healthz`, `GET /readyz` (with [`Probes`]): 200 or 503 with each check
//!   as JSON, for an orchestrator's liveness and readiness probes ([`crate::health`]).

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{Context, Result};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;

use crate::metrics::Metrics;
use crate::store::FeatureStore;
use crate::types::Control;

/// The live dashboard page, built into the binary.
const DASHBOARD: &str = include_str!("dashboard/index.html");

/// Most keys one batch lookup may ask for.
pub const MAX_BATCH_KEYS: usize = 10_000;

#[derive(Deserialize)]
struct BatchRequest {
    keys: Vec<String>,
}

/// What `/healthz` and `/readyz` judge: the job's control and the limits.
#[derive(Clone)]
pub struct Probes {
    pub control: Arc<Control>,
    /// `/healthz` fails once a worker has not finished a turn for this long.
    pub stall: std::time::Duration,
    /// `/readyz` fails while the consumer lag (summed) is above this.
    pub max_lag: i64,
}

impl Probes {
    pub fn new(control: Arc<Control>) -> Self {
        Probes { control, stall: crate::health::DEFAULT_STALL, max_lag: crate::health::DEFAULT_READY_MAX_LAG }
    }
}

fn probe_routes(probes: Probes, metrics: Arc<Metrics>) -> Router {
    let (live, live_metrics) = (probes.clone(), metrics.clone());
    Router::new()
        .route(
            "/healthz",
            get(move || {
                let (p, m) = (live.clone(), live_metrics.clone());
                async move {
                    let l = p.control.health().liveness(p.stall, m.output_blocked.get() > 0);
                    (if l.live { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE }, Json(l))
                }
            }),
        )
        .route(
            "/readyz",
            get(move || {
                let (p, m) = (probes.clone(), metrics.clone());
                async move {
                    let r = p.control.health().readiness(m.measured_lag(), p.max_lag, p.control.shutdown_requested());
                    (if r.ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE }, Json(r))
                }
            }),
        )
}

fn routes(metrics: Arc<Metrics>, store: Option<Arc<FeatureStore>>, probes: Option<Probes>) -> Router {
    let text = metrics.clone();
    let probed = probes.map(|p| probe_routes(p, metrics.clone()));
    let app = Router::new()
        .route(
            "/metrics",
            get(move || {
                let m = text.clone();
                async move { ([("content-type", "text/plain; version=0.0.4")], m.render()) }
            }),
        )
        .route(
            "/api/metrics",
            get(move || {
                let m = metrics.clone();
                async move { Json(m.to_json()) }
            }),
        )
        .route("/", get(|| async { ([("content-type", "text/html; charset=utf-8")], DASHBOARD) }));
    let app = match probed {
        Some(p) => app.merge(p),
        None => app,
    };
    let Some(store) = store else { return app };
    let features = Router::new()
        .route(
            "/features/{key}",
            get(|State(store): State<Arc<FeatureStore>>, Path(key): Path<String>| async move {
                match store.record(&key) {
                    Some(r) => Ok(Json(r)),
                    None => Err((StatusCode::NOT_FOUND, "unknown key\n")),
                }
            }),
        )
        .route(
            "/features",
            post(|State(store): State<Arc<FeatureStore>>, Json(req): Json<BatchRequest>| async move {
                if req.keys.len() > MAX_BATCH_KEYS {
                    return Err((StatusCode::PAYLOAD_TOO_LARGE, format!("at most {MAX_BATCH_KEYS} keys per request\n")));
                }
                let features: Vec<serde_json::Value> = req.keys.iter().map(|k| store.record(k).unwrap_or(serde_json::Value::Null)).collect();
                Ok(Json(serde_json::json!({ "features": features })))
            }),
        )
        .with_state(store);
    app.merge(features)
}

/// Serves `/metrics` and, with a store, `/features`; returns the bound address.
pub fn serve(addr: SocketAddr, metrics: Arc<Metrics>, store: Option<Arc<FeatureStore>>) -> Result<SocketAddr> {
    serve_probed(addr, metrics, store, None)
}

/// [`serve`], and with `probes` `/healthz` and `/readyz`.
pub fn serve_probed(addr: SocketAddr, metrics: Arc<Metrics>, store: Option<Arc<FeatureStore>>, probes: Option<Probes>) -> Result<SocketAddr> {
    let listener = std::net::TcpListener::bind(addr).with_context(|| format!("binding the metrics address {addr}"))?;
    listener.set_nonblocking(true)?;
    let bound = listener.local_addr()?;
    std::thread::Builder::new().name("vigil-http".into()).spawn(move || {
        let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
            Ok(rt) => rt,
            Err(e) => return tracing::error!(error = %e, "cannot start the HTTP runtime"),
        };
        rt.block_on(async move {
            let app = routes(metrics, store, probes);
            match tokio::net::TcpListener::from_std(listener) {
                Ok(l) => {
                    if let Err(e) = axum::serve(l, app).await {
                        tracing::error!(error = %e, "the metrics server stopped");
                    }
                }
                Err(e) => tracing::error!(error = %e, "cannot use the metrics listener"),
            }
        });
    })?;
    Ok(bound)
}

/// On the first SIGINT or SIGTERM asks the job to stop cleanly; on the second exits.
pub fn install_signal_handler(control: Arc<Control>) -> Result<()> {
    std::thread::Builder::new().name("vigil-signals".into()).spawn(move || {
        let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
            Ok(rt) => rt,
            Err(e) => return tracing::error!(error = %e, "cannot start the signal runtime"),
        };
        rt.block_on(async move {
            let Ok(mut term) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) else { return };
            for round in 0.. {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
                if round == 0 {
                    eprintln!("vigil: stopping: finishing in-flight work, flushing, committing (signal again to abort)");
                    control.request_shutdown();
                } else {
                    eprintln!("vigil: aborted");
                    std::process::exit(130);
                }
            }
        });
    })?;
    Ok(())
}
