//! The loopback redirect of a SMART login (RFC 8252 §7.3): a listener on `127.0.0.1` at a port
//! the OS picks, that waits for the browser's one redirect and nothing else. It is bounded three
//! ways — a deadline, a cap on connections, a cap on the request's size — so a login left
//! alone, or a port scanner, ends it instead of keeping it open.

use std::net::Ipv4Addr;
use std::time::Duration;

use secrecy::SecretString;
use secrecy::zeroize::Zeroize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::shared::Interrupt;

/// Connections answered before giving up (a browser may first ask for a favicon or pre-connect).
const MAX_CONNECTIONS: usize = 16;
/// The largest request head read; a redirect with a code and state is far smaller.
const MAX_HEAD: usize = 8 * 1024;
/// How long one connection may take to send its request.
const READ_TIMEOUT: Duration = Duration::from_secs(10);
/// The only path the redirect URI names.
const CALLBACK: &str = "/callback";

/// Why no authorization code came back.
#[derive(Debug, thiserror::Error)]
pub enum CallbackError {
    /// The listener could not be opened or accept failed.
    #[error("the loopback redirect listener failed: {0}")]
    Io(#[from] std::io::Error),
    /// Nobody came back in time (browser closed, login abandoned).
    #[error("no answer from the browser within {}", shown(*.0))]
    Timeout(Duration),
    /// Too many connections that were not the redirect.
    #[error(
        "{MAX_CONNECTIONS} connections to the loopback listener, none of them the login's redirect"
    )]
    TooManyConnections,
    /// Ctrl-C while waiting.
    #[error("interrupted by Ctrl-C while waiting for the browser")]
    Interrupted,
    /// The redirect's `state` is not this login's: someone else's redirect, or a forged one.
    #[error(
        "the redirect's state does not match this login's (a forged or stale redirect): the code was not exchanged"
    )]
    StateMismatch,
    /// The authorization server said no (`error` in the redirect).
    #[error("ESUS refused the authorization: {0}")]
    Refused(String),
    /// A redirect without a code.
    #[error("the redirect carried no authorization code")]
    NoCode,
}

/// A duration as people write it: `5m`, `90s`, `1h`.
pub fn shown(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0 => format!("{}ms", d.as_millis()),
        s if s % 3600 == 0 => format!("{}h", s / 3600),
        s if s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

/// A listener waiting for one redirect.
#[derive(Debug)]
pub struct Loopback {
    listener: TcpListener,
    port: u16,
}

impl Loopback {
    /// Binds `127.0.0.1:0` (never another interface: the code must not be reachable from the
    /// network).
    pub async fn bind() -> std::io::Result<Loopback> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let port = listener.local_addr()?.port();
        Ok(Loopback { listener, port })
    }

    /// The redirect URI to register the authorization with.
    pub fn redirect_uri(&self) -> String {
        format!("http://127.0.0.1:{}{CALLBACK}", self.port)
    }

    /// Waits for the redirect carrying `state` and returns its code. The listener closes when
    /// this returns, whatever the outcome.
    pub async fn code(
        self,
        expected_state: &str,
        wait: Duration,
        interrupt: &Interrupt,
    ) -> Result<SecretString, CallbackError> {
        let mut interrupt = interrupt.clone();
        if interrupt.count() > 0 {
            return Err(CallbackError::Interrupted);
        }
        tokio::select! {
            r = tokio::time::timeout(wait, self.serve(expected_state)) => {
                r.map_err(|_| CallbackError::Timeout(wait))?
            }
            _ = interrupt.changed() => Err(CallbackError::Interrupted),
        }
    }

    async fn serve(self, expected_state: &str) -> Result<SecretString, CallbackError> {
        for _ in 0..MAX_CONNECTIONS {
            let (mut stream, _) = self.listener.accept().await?;
            let Some(mut head) = read_head(&mut stream).await else {
                continue;
            };
            let answer = answer(&head, expected_state);
            head.zeroize();
            match answer {
                None => respond(&mut stream, 404, "Not found").await,
                Some(result) => {
                    let (status, text) = match &result {
                        Ok(_) => (
                            200,
                            "esus-ir received the authorization. You can close this tab.",
                        ),
                        Err(CallbackError::StateMismatch) => (
                            400,
                            "This redirect does not belong to the esus-ir login that is waiting: nothing was exchanged.",
                        ),
                        Err(_) => (400, "The login did not complete: see the terminal."),
                    };
                    respond(&mut stream, status, text).await;
                    return result;
                }
            }
        }
        Err(CallbackError::TooManyConnections)
    }
}

/// Reads up to the end of the request head (bounded in size and time); `None` when the peer
/// sent no complete head.
async fn read_head(stream: &mut TcpStream) -> Option<Vec<u8>> {
    let mut buf = Vec::with_capacity(1024);
    let read = async {
        let mut chunk = [0u8; 1024];
        while buf.len() < MAX_HEAD && !buf.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = stream.read(&mut chunk).await.ok()?;
            if n == 0 {
                return None;
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        chunk.zeroize();
        Some(())
    };
    tokio::time::timeout(READ_TIMEOUT, read).await.ok()??;
    Some(buf)
}

/// What the request means: `None` for anything but `GET /callback`, else the login's result.
fn answer(head: &[u8], expected_state: &str) -> Option<Result<SecretString, CallbackError>> {
    let line = head.split(|b| *b == b'\r').next()?;
    let line = std::str::from_utf8(line).ok()?;
    let mut parts = line.split(' ');
    let (method, target) = (parts.next()?, parts.next()?);
    let url = url::Url::parse(&format!("http://127.0.0.1{target}")).ok()?;
    if method != "GET" || url.path() != CALLBACK {
        return None;
    }
    let (mut code, mut state, mut error, mut why) = (None, None, None, None);
    for (k, v) in url.query_pairs() {
        match k.as_ref() {
            "code" => code = Some(SecretString::from(v.into_owned())),
            "state" => state = Some(v.into_owned()),
            "error" => error = Some(printable(&v)),
            "error_description" => why = Some(printable(&v)),
            _ => {}
        }
    }
    // The state is checked first: a forged redirect learns nothing, not even whether it had a
    // valid code, and its error text is not repeated.
    if !state.is_some_and(|s| same(&s, expected_state)) {
        return Some(Err(CallbackError::StateMismatch));
    }
    if let Some(e) = error {
        let text = match why {
            Some(why) => format!("{e} ({why})"),
            None => e,
        };
        return Some(Err(CallbackError::Refused(text)));
    }
    Some(code.ok_or(CallbackError::NoCode))
}

/// Server text (a redirect's, a role's name, an email), safe to print: short, without
/// control characters (no escape sequence reaches the operator's terminal).
pub(crate) fn printable(text: &str) -> String {
    text.chars().filter(|c| !c.is_control()).take(100).collect()
}

/// Compares without an early exit.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

async fn respond(stream: &mut TcpStream, status: u16, text: &str) {
    let reason = match status {
        200 => "OK",
        404 => "Not Found",
        _ => "Bad Request",
    };
    let body = format!("<!doctype html><html><body><p>{text}</p></body></html>");
    let resp = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(resp.as_bytes()).await;
    let _ = stream.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    #[test]
    fn a_redirect_is_read_only_with_this_logins_state() {
        let ok = answer(b"GET /callback?code=c-1&state=s-1 HTTP/1.1\r\n\r\n", "s-1");
        assert_eq!(ok.expect("callback").expect("code").expose_secret(), "c-1");
        let forged = answer(b"GET /callback?code=c-1&state=s-2 HTTP/1.1\r\n\r\n", "s-1");
        assert!(matches!(forged, Some(Err(CallbackError::StateMismatch))));
        let missing = answer(b"GET /callback?code=c-1 HTTP/1.1\r\n\r\n", "s-1");
        assert!(matches!(missing, Some(Err(CallbackError::StateMismatch))));
        let denied = answer(
            b"GET /callback?error=access_denied&state=s-1 HTTP/1.1\r\n\r\n",
            "s-1",
        );
        assert!(matches!(denied, Some(Err(CallbackError::Refused(e))) if e == "access_denied"));
        assert!(answer(b"GET /favicon.ico HTTP/1.1\r\n\r\n", "s-1").is_none());
        assert!(answer(b"POST /callback?code=c&state=s-1 HTTP/1.1\r\n\r\n", "s-1").is_none());
    }

    /// A port scanner (or a browser's pre-connects) cannot keep the listener open: after 16
    /// connections that are not the redirect it gives up.
    #[tokio::test]
    async fn connections_that_are_not_the_redirect_end_the_wait() {
        let lb = Loopback::bind().await.expect("bind");
        let port = lb.port;
        let (_handle, interrupt) = Interrupt::new();
        let waiting =
            tokio::spawn(
                async move { lb.code("s-1", Duration::from_secs(3600), &interrupt).await },
            );
        for _ in 0..MAX_CONNECTIONS {
            let mut s = TcpStream::connect(("127.0.0.1", port))
                .await
                .expect("connect");
            s.write_all(b"GET /favicon.ico HTTP/1.1\r\n\r\n")
                .await
                .expect("send");
            let mut answer = String::new();
            let _ = s.read_to_string(&mut answer).await;
            assert!(answer.starts_with("HTTP/1.1 404"), "{answer}");
        }
        let result = waiting.await.expect("joined");
        assert!(matches!(result, Err(CallbackError::TooManyConnections)));
    }

    #[test]
    fn durations_are_shown_as_written() {
        assert_eq!(shown(Duration::from_secs(300)), "5m");
        assert_eq!(shown(Duration::from_secs(2)), "2s");
        assert_eq!(shown(Duration::from_secs(7200)), "2h");
    }
}
