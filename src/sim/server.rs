//! The accept loop: one hyper HTTP/1.1 connection task per client, optionally behind TLS. It is
//! written out (rather than `axum::serve`) because a drop fault must be able to close one
//! connection after its route ran, without answering: each connection gets a [`ConnKill`] signal.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::{Notify, watch};
use tower::Service;

use super::layers::{ConnKill, PeerAddr};

/// A TLS handshake that has not finished by then is abandoned.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves until `stop` changes or its sender is dropped.
pub(crate) async fn serve(
    listener: TcpListener,
    router: Router,
    tls: Option<tokio_rustls::TlsAcceptor>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let accepted = tokio::select! {
            r = listener.accept() => r,
            _ = stop.changed() => return,
        };
        let Ok((stream, peer)) = accepted else {
            // Out of file descriptors and the like: back off instead of spinning.
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let _ = stream.set_nodelay(true);
        let (router, tls, stop) = (router.clone(), tls.clone(), stop.clone());
        tokio::spawn(async move {
            let kill = Arc::new(Notify::new());
            let svc = hyper::service::service_fn({
                let kill = kill.clone();
                move |mut req: hyper::Request<Incoming>| {
                    strip_trailing_slash(&mut req);
                    req.extensions_mut().insert(ConnKill(kill.clone()));
                    req.extensions_mut().insert(PeerAddr(peer));
                    let mut router = router.clone();
                    async move {
                        Ok::<_, Infallible>(router.call(req).await.unwrap_or_else(|e| match e {}))
                    }
                }
            });
            match tls {
                None => connection(TokioIo::new(stream), svc, kill, stop).await,
                Some(acceptor) => {
                    if let Ok(Ok(tls_stream)) =
                        tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await
                    {
                        connection(TokioIo::new(tls_stream), svc, kill, stop).await;
                    }
                }
            }
        });
    }
}

/// The OpenAPI writes collection paths with a trailing slash (`/roles/`, `/admin/audit/`):
/// `/roles/` and `/roles` are the same route here.
fn strip_trailing_slash<B>(req: &mut hyper::Request<B>) {
    let path = req.uri().path();
    if path.len() <= 1 || !path.ends_with('/') {
        return;
    }
    let trimmed = path.trim_end_matches('/');
    let trimmed = if trimmed.is_empty() { "/" } else { trimmed };
    let new = match req.uri().query() {
        Some(q) => format!("{trimmed}?{q}"),
        None => trimmed.to_owned(),
    };
    let mut parts = req.uri().clone().into_parts();
    if let Ok(pq) = new.parse() {
        parts.path_and_query = Some(pq);
        if let Ok(uri) = hyper::Uri::from_parts(parts) {
            *req.uri_mut() = uri;
        }
    }
}

async fn connection<I, S>(
    io: TokioIo<I>,
    svc: S,
    kill: Arc<Notify>,
    mut stop: watch::Receiver<bool>,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    S: hyper::service::Service<
            hyper::Request<Incoming>,
            Response = axum::response::Response,
            Error = Infallible,
        > + Send
        + 'static,
    S::Future: Send + 'static,
{
    let conn = hyper::server::conn::http1::Builder::new().serve_connection(io, svc);
    // Dropping `conn` closes the socket at once, with whatever was in flight unanswered.
    tokio::select! {
        _ = conn => {}
        _ = kill.notified() => {}
        _ = stop.changed() => {}
    }
}
