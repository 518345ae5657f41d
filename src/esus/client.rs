//! The HTTP client that talks to ESUS: TLS policy, timeouts, identification headers, and the
//! distinction that matters for safe retries — did the request possibly reach the server?

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use reqwest::Url;
use secrecy::{ExposeSecret, SecretString};

use super::request::{ApiRequest, Auth};

/// How to reach ESUS.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Base URL, e.g. `https://api.esus.health`.
    pub base_url: String,
    /// A PEM file with the CA that signs ESUS's certificate (private CAs, the simulator's `--tls`).
    pub ca_cert: Option<PathBuf>,
    /// Longest time to establish a connection.
    pub connect_timeout: Duration,
    /// Default longest time for one request (a step's `timeout` overrides it).
    pub request_timeout: Duration,
}

impl ClientConfig {
    /// Defaults: 10 s to connect, 60 s per request.
    pub fn new(base_url: impl Into<String>) -> Self {
        ClientConfig {
            base_url: base_url.into(),
            ca_cert: None,
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(60),
        }
    }
}

/// Why a client could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The base URL does not parse or breaks the policy.
    #[error("base URL `{url}`: {why}")]
    BaseUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        why: String,
    },
    /// The CA file could not be read or parsed.
    #[error("CA certificate {path}: {why}")]
    Ca {
        /// The file.
        path: String,
        /// What went wrong.
        why: String,
    },
    /// reqwest refused the configuration.
    #[error("HTTP client: {0}")]
    Build(String),
}

/// A request that got no HTTP answer.
#[derive(Debug, Clone, thiserror::Error)]
pub enum TransportError {
    /// The connection was never established: the request certainly did not reach ESUS.
    #[error("could not connect: {0}")]
    NotSent(String),
    /// The request may have reached ESUS but no complete answer came back (timeout, dropped
    /// connection): its effect is unknown.
    #[error("no answer (the request may have reached ESUS): {0}")]
    Unknown(String),
}

/// An HTTP answer.
#[derive(Clone)]
pub struct ApiResponse {
    /// Status code.
    pub status: u16,
    /// How long `Retry-After` asks to wait (given as seconds or as an HTTP date), when given.
    pub retry_after: Option<Duration>,
    /// The body bytes.
    pub body: bytes::Bytes,
    /// Time from sending to the full body.
    pub duration: Duration,
}

impl std::fmt::Debug for ApiResponse {
    /// The body may hold a new secret or PHI: only its size is shown.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiResponse")
            .field("status", &self.status)
            .field("body_len", &self.body.len())
            .field("duration", &self.duration)
            .finish()
    }
}

impl ApiResponse {
    /// Whether the status is 2xx or listed in `expect`.
    pub fn is_success(&self, expect: &[u16]) -> bool {
        (200..300).contains(&self.status) || expect.contains(&self.status)
    }

    /// The body as JSON (`null` when empty, a string when not JSON).
    pub fn json(&self) -> serde_json::Value {
        if self.body.is_empty() {
            return serde_json::Value::Null;
        }
        serde_json::from_slice(&self.body).unwrap_or_else(|_| {
            serde_json::Value::String(String::from_utf8_lossy(&self.body).into_owned())
        })
    }
}

/// The ESUS API client.
#[derive(Debug, Clone)]
pub struct EsusClient {
    http: reqwest::Client,
    base: Url,
    timeout: Duration,
}

impl EsusClient {
    /// Builds a client; refuses plain HTTP except to loopback.
    pub fn new(config: &ClientConfig) -> Result<EsusClient, ClientError> {
        let base = check_base_url(&config.base_url)?;
        let mut builder = reqwest::Client::builder()
            .user_agent(concat!("esus-ir/", env!("CARGO_PKG_VERSION")))
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(config.connect_timeout)
            .tls_version_min(reqwest::tls::Version::TLS_1_2)
            .pool_max_idle_per_host(256);
        if base.scheme() == "http" {
            // Plain http is allowed only because loopback bytes never leave the machine; a proxy
            // from HTTP_PROXY/ALL_PROXY may be anywhere and would read the token in clear text.
            builder = builder.no_proxy();
        }
        if let Some(path) = &config.ca_cert {
            let ca_err = |why: String| ClientError::Ca {
                path: path.display().to_string(),
                why,
            };
            let pem = std::fs::read(path).map_err(|e| ca_err(e.to_string()))?;
            let certs =
                reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| ca_err(e.to_string()))?;
            if certs.is_empty() {
                return Err(ca_err("no certificate in the file".into()));
            }
            builder = builder.tls_certs_merge(certs);
        }
        let http = builder
            .build()
            .map_err(|e| ClientError::Build(e.to_string()))?;
        Ok(EsusClient {
            http,
            base,
            timeout: config.request_timeout,
        })
    }

    /// The base URL.
    pub fn base(&self) -> &Url {
        &self.base
    }

    /// The full URL of a request (path already encoded, relative to the base).
    pub fn url(&self, req: &ApiRequest) -> Url {
        full_url(&self.base, &req.path, &req.query)
    }

    /// Sends a request. `operator` is the operator's token, used when `req.auth` is `Operator`.
    pub async fn send(
        &self,
        req: &ApiRequest,
        operator: Option<&SecretString>,
        request_id: &str,
        timeout: Option<Duration>,
    ) -> Result<ApiResponse, TransportError> {
        let method = reqwest::Method::from_bytes(req.method.as_str().as_bytes())
            .map_err(|e| TransportError::NotSent(e.to_string()))?;
        let mut rb = self
            .http
            .request(method, self.url(req))
            .timeout(timeout.unwrap_or(self.timeout))
            .header("X-Request-Id", request_id)
            .header("Accept", "application/json");
        rb = match &req.auth {
            Auth::Operator => match operator {
                Some(t) => rb.bearer_auth(t.expose_secret()),
                None => rb,
            },
            Auth::Bearer(t) => rb.bearer_auth(t.expose_secret()),
            // As ESUS's own clients send a key: with its app's id (lib/esus.ts in the quickstart).
            Auth::ApiKey { key, app } => {
                let rb = rb.header("X-Api-Key", key.expose_secret());
                match app {
                    Some(app) => rb.header("X-App-Id", app.as_str()),
                    None => rb,
                }
            }
            Auth::None => rb,
        };
        if let Some(body) = &req.body {
            rb = rb
                .header("Content-Type", body.content_type)
                .body(body.wire_bytes());
        }
        let started = Instant::now();
        let resp = rb.send().await.map_err(classify)?;
        let status = resp.status().as_u16();
        let retry_after = resp
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|s| parse_retry_after(s, jiff::Timestamp::now()));
        let body = resp
            .bytes()
            .await
            .map_err(|e| TransportError::Unknown(error_chain(&e)))?;
        Ok(ApiResponse {
            status,
            retry_after,
            body,
            duration: started.elapsed(),
        })
    }
}

/// `Retry-After` as a wait: delay-seconds, or an HTTP date (IMF-fixdate) counted from `now`
/// (a date in the past means "now"). Anything else is ignored, and the caller backs off.
pub fn parse_retry_after(value: &str, now: jiff::Timestamp) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = jiff::fmt::rfc2822::parse(value).ok()?.timestamp();
    let wait = now.duration_until(at);
    Some(Duration::try_from(wait).unwrap_or(Duration::ZERO))
}

/// Joins the base URL with an encoded relative path and a query.
pub fn full_url(base: &Url, path: &str, query: &[(String, String)]) -> Url {
    let mut url = base.clone();
    let joined = format!(
        "{}/{}",
        base.path().trim_end_matches('/'),
        path.trim_start_matches('/')
    );
    url.set_path(&joined);
    if query.is_empty() {
        url.set_query(None);
    } else {
        url.query_pairs_mut()
            .clear()
            .extend_pairs(query.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    }
    url
}

/// Parses the base URL and applies the policy: https, or http only to a loopback host.
pub fn check_base_url(text: &str) -> Result<Url, ClientError> {
    let err = |why: &str| ClientError::BaseUrl {
        url: shown_url(text),
        why: why.to_string(),
    };
    let url = Url::parse(text).map_err(|e| err(&e.to_string()))?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(err(
            "credentials in the URL are not allowed; use ESUS_TOKEN or --token-file",
        ));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(err("the base URL cannot have a query or fragment"));
    }
    match url.scheme() {
        "https" => Ok(url),
        "http" if is_loopback(&url) => Ok(url),
        "http" => Err(err(
            "plain http is only allowed to a loopback host (127.0.0.1, ::1, localhost); use https",
        )),
        other => Err(err(&format!("scheme `{other}` is not http(s)"))),
    }
}

/// The URL as it may be shown in an error: without credentials, query or fragment.
fn shown_url(text: &str) -> String {
    match Url::parse(text) {
        Ok(mut u) => {
            let _ = u.set_username("");
            let _ = u.set_password(None);
            u.set_query(None);
            u.set_fragment(None);
            u.to_string()
        }
        Err(_) => "(unparsable URL, not shown)".into(),
    }
}

fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        None => false,
    }
}

fn classify(e: reqwest::Error) -> TransportError {
    if e.is_connect() {
        TransportError::NotSent(error_chain(&e))
    } else {
        TransportError::Unknown(error_chain(&e))
    }
}

/// The error with its causes; reqwest's top-level message alone is rarely enough at 3 a.m.
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        out.push_str(": ");
        out.push_str(&s.to_string());
        cur = s.source();
    }
    // URLs in reqwest errors never carry credentials (we never put any there), but keep it short.
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_url_policy_allows_https_and_loopback_http_only() {
        assert!(check_base_url("https://api.esus.health").is_ok());
        assert!(check_base_url("http://127.0.0.1:8080").is_ok());
        assert!(check_base_url("http://[::1]:8080").is_ok());
        assert!(check_base_url("http://localhost:1").is_ok());
        assert!(check_base_url("http://api.esus.health").is_err());
        assert!(check_base_url("http://10.0.0.1").is_err());
        assert!(check_base_url("ftp://x").is_err());
        assert!(check_base_url("https://user:pw@api.esus.health").is_err());
        assert!(check_base_url("not a url").is_err());
    }

    #[test]
    fn base_url_errors_never_show_credentials() {
        let err = check_base_url("https://admin:pw-canary@api.esus.health/?token=t-canary")
            .expect_err("refused")
            .to_string();
        assert!(
            !err.contains("pw-canary") && !err.contains("t-canary") && !err.contains("admin"),
            "{err}"
        );
    }

    #[test]
    fn retry_after_is_read_as_seconds_or_as_an_http_date() {
        let now: jiff::Timestamp = "2026-12-02T03:00:00Z".parse().expect("ts");
        assert_eq!(parse_retry_after("7", now), Some(Duration::from_secs(7)));
        assert_eq!(
            parse_retry_after("Wed, 02 Dec 2026 03:00:12 GMT", now),
            Some(Duration::from_secs(12))
        );
        assert_eq!(
            parse_retry_after("Wed, 02 Dec 2026 02:59:00 GMT", now),
            Some(Duration::ZERO),
            "a date in the past: retry now"
        );
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-3", now), None);
    }

    #[test]
    fn urls_join_under_the_base_path() {
        let base = Url::parse("https://h.example/esus/v1/").expect("url");
        let url = full_url(&base, "/api-keys/k%2F1", &[("a".into(), "b c".into())]);
        assert_eq!(
            url.as_str(),
            "https://h.example/esus/v1/api-keys/k%2F1?a=b+c"
        );
    }
}
