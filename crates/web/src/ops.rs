//! The operations endpoints, with the names monitoring systems expect:
//!
//! - `GET /healthz`: the process is alive and answers (always 200 `ok`).
//! - `GET /readyz`: 200 `ok` while every dependency works, else 503 naming
//!   what is down (`down: broker, store`).
//! - `GET /health`: the same as `/readyz` (the name of earlier releases).
//! - `GET /metrics`: the Prometheus/OpenMetrics text exposition.
//!
//! Anything else is 404. Nothing here carries personal data: the probe
//! reports dependency names and counters only.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

/// What the endpoints ask of the running service.
pub trait Probe: Send + Sync + 'static {
    /// The metrics in the OpenMetrics text format.
    fn metrics_text(&self) -> String;
    /// The dependencies that do not work right now (empty: ready).
    fn unavailable(&self) -> Vec<&'static str>;
}

const TEXT: &str = "text/plain; charset=utf-8";
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The router for the operations endpoints.
pub fn router(probe: Arc<dyn Probe>) -> Router {
    Router::new()
        .route("/healthz", get(alive))
        .route("/readyz", get(ready))
        .route("/health", get(ready))
        .route("/metrics", get(metrics))
        .fallback(not_found)
        .with_state(probe)
}

async fn alive() -> Response {
    ([(header::CONTENT_TYPE, TEXT)], "ok\n").into_response()
}

async fn ready(State(probe): State<Arc<dyn Probe>>) -> Response {
    let down = probe.unavailable();
    if down.is_empty() {
        ([(header::CONTENT_TYPE, TEXT)], "ok\n").into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::CONTENT_TYPE, TEXT)],
            format!("down: {}\n", down.join(", ")),
        )
            .into_response()
    }
}

async fn metrics(State(probe): State<Arc<dyn Probe>>) -> Response {
    ([(header::CONTENT_TYPE, OPENMETRICS)], probe.metrics_text()).into_response()
}

async fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        [(header::CONTENT_TYPE, TEXT)],
        "try /healthz, /readyz or /metrics\n",
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use axum::body::Body;
    use axum::http::Request;
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    use super::*;

    struct Fake {
        down: Mutex<Vec<&'static str>>,
    }

    impl Probe for Fake {
        fn metrics_text(&self) -> String {
            "allegro_bridge_batches_total 7\n# EOF\n".into()
        }
        fn unavailable(&self) -> Vec<&'static str> {
            self.down.lock().unwrap().clone()
        }
    }

    async fn get(probe: &Arc<Fake>, path: &str) -> (StatusCode, String, String) {
        let app = router(Arc::clone(probe) as Arc<dyn Probe>);
        let resp = app
            .oneshot(Request::get(path).body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = resp.status();
        let ctype = resp.headers()[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .to_string();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        (status, ctype, String::from_utf8(body.to_vec()).unwrap())
    }

    fn probe(down: &[&'static str]) -> Arc<Fake> {
        Arc::new(Fake {
            down: Mutex::new(down.to_vec()),
        })
    }

    #[tokio::test]
    async fn ready_names_what_is_down() {
        let p = probe(&[]);
        assert_eq!(
            get(&p, "/readyz").await,
            (StatusCode::OK, TEXT.into(), "ok\n".into())
        );
        *p.down.lock().unwrap() = vec!["store", "outbox"];
        let (status, _, body) = get(&p, "/readyz").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(body, "down: store, outbox\n");
        assert_eq!(get(&p, "/health").await.2, "down: store, outbox\n");
    }

    #[tokio::test]
    async fn alive_while_not_ready() {
        let p = probe(&["broker"]);
        assert_eq!(get(&p, "/healthz").await.0, StatusCode::OK);
    }

    #[tokio::test]
    async fn metrics_and_unknown_paths() {
        let p = probe(&[]);
        let (status, ctype, body) = get(&p, "/metrics").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(ctype, OPENMETRICS);
        assert!(body.contains("allegro_bridge_batches_total 7"), "{body}");
        assert_eq!(get(&p, "/").await.0, StatusCode::NOT_FOUND);
        assert_eq!(get(&p, "/metrics/x").await.0, StatusCode::NOT_FOUND);
    }

    /// Idle connections do not hold up others (the hand-written listener
    /// before axum answered 2 s late per idle connection).
    #[tokio::test]
    async fn idle_connections_do_not_delay_answers() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = router(probe(&[]) as Arc<dyn Probe>);
        tokio::spawn(crate::serve(listener, app, std::future::pending()));
        let mut idle = Vec::new();
        for _ in 0..3 {
            idle.push(tokio::net::TcpStream::connect(addr).await.unwrap());
        }
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut out = String::new();
        tokio::time::timeout(
            std::time::Duration::from_secs(1),
            s.read_to_string(&mut out),
        )
        .await
        .expect("answered while three connections sit idle")
        .unwrap();
        assert!(out.starts_with("HTTP/1.1 200"), "{out}");
        drop(idle);
    }
}
