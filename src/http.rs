//! The job's HTTP endpoint (Prometheus text at `/metrics`), and signal handling.
//! Both run on a small tokio runtime in their own thread, away from the workers.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{Context, Result};
use axum::routing::get;
use axum::Router;

use crate::metrics::Metrics;
use crate::pipeline::Control;

/// Serves `/metrics` on `addr` (port 0 picks a free port); returns the bound address.
pub fn serve_metrics(addr: SocketAddr, metrics: Arc<Metrics>) -> Result<SocketAddr> {
    let listener = std::net::TcpListener::bind(addr).with_context(|| format!("binding the metrics address {addr}"))?;
    listener.set_nonblocking(true)?;
    let bound = listener.local_addr()?;
    std::thread::Builder::new().name("vigil-http".into()).spawn(move || {
        let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
            Ok(rt) => rt,
            Err(e) => return tracing::error!(error = %e, "cannot start the HTTP runtime"),
        };
        rt.block_on(async move {
            let app = Router::new()
                .route("/metrics", get(move || {
                    let m = metrics.clone();
                    async move { ([("content-type", "text/plain; version=0.0.4")], m.render()) }
                }))
                .route("/", get(|| async { "vigil: see /metrics\n" }));
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
