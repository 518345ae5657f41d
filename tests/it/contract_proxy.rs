//! A recording HTTP/1.1 proxy for the contract tests: the client under test is pointed at it,
//! it forwards every request to the simulator unchanged and keeps each exchange — method, path,
//! query, the request's header NAMES (never a value: credentials travel in headers), both bodies
//! and the status. The simulator's own request log has no bodies, and the contract tests must not
//! change the simulator, hence this.
//!
//! Bound to 127.0.0.1:0; every task it starts is aborted when it is dropped. Bodies are kept in
//! memory only, for the length of the test.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};

/// One request and its answer, as they crossed the proxy.
#[derive(Clone, Debug)]
pub(crate) struct Exchange {
    pub(crate) method: String,
    /// The path as sent (still percent-encoded), without the query.
    pub(crate) path: String,
    /// Decoded query pairs, in order (a repeated name appears twice).
    pub(crate) query: Vec<(String, String)>,
    /// Lower-case header names of the request; values are never kept.
    pub(crate) request_headers: Vec<String>,
    pub(crate) request_body: Vec<u8>,
    /// 502 when the simulator could not be reached.
    pub(crate) status: u16,
    pub(crate) response_body: Vec<u8>,
}

/// The running proxy.
pub(crate) struct RecordingProxy {
    base_url: String,
    log: Arc<Mutex<Vec<Exchange>>>,
    task: JoinHandle<()>,
}

impl Drop for RecordingProxy {
    fn drop(&mut self) {
        // The accept loop owns the connection tasks (a JoinSet): aborting it aborts them all.
        self.task.abort();
    }
}

/// Headers that belong to one connection, not to the request (RFC 9110 §7.6.1), and the ones
/// the forwarding client sets itself.
const HOP_BY_HOP: [&str; 9] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
    "content-length",
];

impl RecordingProxy {
    /// Starts a proxy that forwards to `upstream` (a base URL such as `http://127.0.0.1:4000`).
    pub(crate) async fn start(upstream: &str) -> RecordingProxy {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the proxy");
        let port = listener.local_addr().expect("proxy address").port();
        let log: Arc<Mutex<Vec<Exchange>>> = Arc::default();
        let forward = Forward {
            upstream: upstream.trim_end_matches('/').to_string(),
            http: reqwest::Client::builder()
                .no_proxy()
                .redirect(reqwest::redirect::Policy::none())
                .timeout(std::time::Duration::from_secs(60))
                .build()
                .expect("forwarding client"),
            log: log.clone(),
        };
        let task = tokio::spawn(async move {
            let mut connections = JoinSet::new();
            while let Ok((stream, _)) = listener.accept().await {
                let forward = forward.clone();
                connections.spawn(async move {
                    let svc = hyper::service::service_fn(move |req| {
                        let forward = forward.clone();
                        async move { Ok::<_, Infallible>(forward.exchange(req).await) }
                    });
                    // A client that hangs up mid-request is not the proxy's concern.
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
                // Reap finished connections so the set does not grow with every request.
                while connections.try_join_next().is_some() {}
            }
        });
        RecordingProxy {
            base_url: format!("http://127.0.0.1:{port}"),
            log,
            task,
        }
    }

    /// The base URL to give the client.
    pub(crate) fn base_url(&self) -> String {
        self.base_url.clone()
    }

    /// Every exchange so far, in the order the answers were sent.
    pub(crate) fn exchanges(&self) -> Vec<Exchange> {
        self.log.lock().expect("proxy log").clone()
    }
}

#[derive(Clone)]
struct Forward {
    upstream: String,
    http: reqwest::Client,
    log: Arc<Mutex<Vec<Exchange>>>,
}

impl Forward {
    async fn exchange(&self, req: hyper::Request<Incoming>) -> hyper::Response<Whole> {
        let (parts, body) = req.into_parts();
        let request_body = collect(body).await.unwrap_or_default();
        let path = parts.uri.path().to_string();
        let raw_query = parts.uri.query().unwrap_or_default();
        let query = url::form_urlencoded::parse(raw_query.as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        let request_headers = parts
            .headers
            .keys()
            .map(|n| n.as_str().to_ascii_lowercase())
            .collect();

        let target = match parts.uri.path_and_query() {
            Some(pq) => format!("{}{}", self.upstream, pq.as_str()),
            None => format!("{}{path}", self.upstream),
        };
        let method = reqwest::Method::from_bytes(parts.method.as_str().as_bytes())
            .unwrap_or(reqwest::Method::GET);
        let mut out = self.http.request(method, target);
        for (name, value) in &parts.headers {
            if !HOP_BY_HOP.contains(&name.as_str()) {
                out = out.header(name.as_str(), value.as_bytes());
            }
        }
        if !request_body.is_empty() {
            out = out.body(request_body.clone());
        }

        let (status, headers, response_body) = match out.send().await {
            Ok(resp) => {
                let status = resp.status().as_u16();
                let headers = resp.headers().clone();
                let body = resp.bytes().await.map(|b| b.to_vec()).unwrap_or_default();
                (status, headers, body)
            }
            Err(_) => (502, reqwest::header::HeaderMap::new(), Vec::new()),
        };
        self.log.lock().expect("proxy log").push(Exchange {
            method: parts.method.as_str().to_string(),
            path,
            query,
            request_headers,
            request_body,
            status,
            response_body: response_body.clone(),
        });

        let body = (!response_body.is_empty()).then(|| Bytes::from(response_body));
        let mut resp = hyper::Response::new(Whole(body));
        *resp.status_mut() =
            hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::BAD_GATEWAY);
        for (name, value) in &headers {
            if !HOP_BY_HOP.contains(&name.as_str())
                && let (Ok(n), Ok(v)) = (
                    hyper::header::HeaderName::from_bytes(name.as_str().as_bytes()),
                    hyper::header::HeaderValue::from_bytes(value.as_bytes()),
                )
            {
                resp.headers_mut().append(n, v);
            }
        }
        resp
    }
}

/// Reads a request body to its end.
async fn collect(mut body: Incoming) -> Result<Vec<u8>, hyper::Error> {
    let mut out = Vec::new();
    while let Some(frame) = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await {
        if let Ok(data) = frame?.into_data() {
            out.extend_from_slice(&data);
        }
    }
    Ok(out)
}

/// A body sent in one piece (hyper sets its Content-Length from the exact size hint).
struct Whole(Option<Bytes>);

impl Body for Whole {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Poll::Ready(self.0.take().map(|b| Ok(Frame::data(b))))
    }

    fn is_end_stream(&self) -> bool {
        self.0.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.0.as_ref().map_or(0, |b| b.len() as u64))
    }
}
