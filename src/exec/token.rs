//! The operator's ESUS token for the length of a run: held as a secret, in memory only, and
//! renewed when ESUS says it expired (tokens live 15 minutes; incidents last longer).

use std::path::PathBuf;
use std::sync::Arc;

use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};

use super::approval::Confirmer;
use crate::esus::actions::Method;
use crate::esus::client::EsusClient;
use crate::esus::request::{ApiRequest, Auth, Body};
use crate::event::REDACTED;

/// The operator's credentials could not be (re)established.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct AuthError(pub String);

#[derive(Debug, Default)]
struct State {
    access: Option<SecretString>,
    refresh: Option<SecretString>,
    generation: u64,
}

/// The operator's access token and, when known, its refresh token.
#[derive(Debug, Default)]
pub struct OperatorToken {
    state: tokio::sync::Mutex<State>,
    /// Where a refresh token ESUS rotates is kept for the next run: the operator's
    /// `--refresh-token-file` or the OS keyring, else the run's secrets folder.
    refresh_store: Option<RefreshStore>,
    /// Where the last rotated refresh token was kept (read once the run is over).
    saved: std::sync::Mutex<Option<RefreshStore>>,
}

/// Where a rotated refresh token is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefreshStore {
    /// A file, 0600, replaced atomically.
    File(PathBuf),
    /// An entry of the operating system's keyring (service `esus-ir`, this user name).
    Keyring(String),
}

/// The keyring service esus-ir's entries live under.
pub const KEYRING_SERVICE: &str = "esus-ir";

impl RefreshStore {
    /// Reads the refresh token kept here; `Ok(None)` when there is none yet.
    pub fn read(&self) -> Result<Option<SecretString>, String> {
        match self {
            RefreshStore::File(path) => match std::fs::read_to_string(path) {
                Ok(t) => Ok(Some(SecretString::from(t.trim().to_string()))),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(format!("{}: {e}", path.display())),
            },
            RefreshStore::Keyring(user) => {
                let entry =
                    keyring::Entry::new(KEYRING_SERVICE, user).map_err(|e| e.to_string())?;
                match entry.get_password() {
                    Ok(t) => Ok(Some(SecretString::from(t))),
                    Err(keyring::Error::NoEntry) => Ok(None),
                    Err(e) => Err(format!("the OS keyring: {e}")),
                }
            }
        }
    }

    /// Keeps `secret` here (a file replaced atomically at 0600, or the keyring entry).
    pub fn write(&self, secret: &SecretString) -> Result<(), String> {
        match self {
            RefreshStore::File(path) => {
                write_secret_file(path, secret).map_err(|e| format!("{}: {e}", path.display()))
            }
            RefreshStore::Keyring(user) => {
                let set = || {
                    keyring::Entry::new(KEYRING_SERVICE, user)
                        .and_then(|e| e.set_password(secret.expose_secret()))
                };
                // A process's first keyutils write can fail with "no entry" while the kernel
                // sets up its session keyring (seen in headless containers); the second works.
                match set() {
                    Err(keyring::Error::NoEntry) => set(),
                    other => other,
                }
                .map_err(|e| format!("the OS keyring: {e}"))
            }
        }
    }
}

impl std::fmt::Display for RefreshStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RefreshStore::File(p) => write!(f, "{}", p.display()),
            RefreshStore::Keyring(user) => {
                write!(
                    f,
                    "the OS keyring (service {KEYRING_SERVICE}, entry {user})"
                )
            }
        }
    }
}

/// How a renewal went, for the record (no token in it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Renewal {
    /// `refresh-token` or `operator`.
    pub by: &'static str,
    /// ESUS answered with a new refresh token.
    pub refresh_rotated: bool,
    /// Where the new refresh token was kept.
    pub saved_to: Option<RefreshStore>,
    /// Why it could not be written.
    pub save_error: Option<String>,
}

impl OperatorToken {
    /// Holds the given tokens.
    pub fn new(access: Option<SecretString>, refresh: Option<SecretString>) -> Self {
        OperatorToken {
            state: tokio::sync::Mutex::new(State {
                access,
                refresh,
                generation: 0,
            }),
            refresh_store: None,
            saved: std::sync::Mutex::new(None),
        }
    }

    /// Keeps a refresh token ESUS rotates in `store` (a 0600 file replaced atomically, or the OS
    /// keyring): without it, ESUS's rotation would leave the next run with a dead refresh token.
    pub fn saving_refresh_to(mut self, store: RefreshStore) -> Self {
        self.refresh_store = Some(store);
        self
    }

    /// Where the last rotated refresh token was kept, if one was.
    pub fn saved_refresh(&self) -> Option<RefreshStore> {
        self.saved.lock().ok().and_then(|s| s.clone())
    }

    /// The current token and its generation (to tell whether someone renewed it meanwhile).
    pub async fn current(&self) -> (Option<SecretString>, u64) {
        let s = self.state.lock().await;
        (s.access.clone(), s.generation)
    }

    /// Renews after a 401 seen with generation `seen`: by refresh token, else by asking the
    /// operator (interactive), else fails. Concurrent callers renew once: `None` when another
    /// caller already did.
    pub async fn renew(
        &self,
        seen: u64,
        client: &EsusClient,
        confirmer: Arc<dyn Confirmer>,
    ) -> Result<Option<Renewal>, AuthError> {
        let mut s = self.state.lock().await;
        if s.generation != seen {
            return Ok(None);
        }
        if let Some(refresh) = s.refresh.clone() {
            match refresh_tokens(client, &refresh).await {
                Ok((access, refresh)) => {
                    s.access = Some(access);
                    s.generation += 1;
                    let mut renewal = Renewal {
                        by: "refresh-token",
                        refresh_rotated: refresh.is_some(),
                        saved_to: None,
                        save_error: None,
                    };
                    // ESUS may rotate the refresh token; keep the old one when it does not.
                    if let Some(new) = refresh {
                        if let Some(store) = &self.refresh_store {
                            match store.write(&new) {
                                Ok(()) => {
                                    renewal.saved_to = Some(store.clone());
                                    if let Ok(mut saved) = self.saved.lock() {
                                        *saved = Some(store.clone());
                                    }
                                }
                                Err(e) => renewal.save_error = Some(e),
                            }
                        }
                        s.refresh = Some(new);
                    }
                    return Ok(Some(renewal));
                }
                Err(e) => tracing::warn!("token refresh failed: {e}"),
            }
        }
        let asked = tokio::task::spawn_blocking(move || confirmer.new_token())
            .await
            .ok()
            .flatten();
        match asked {
            Some(t) => {
                s.access = Some(t);
                s.refresh = None;
                s.generation += 1;
                Ok(Some(Renewal {
                    by: "operator",
                    refresh_rotated: false,
                    saved_to: None,
                    save_error: None,
                }))
            }
            None => Err(AuthError("the operator's ESUS token expired or was revoked and could not be renewed (no refresh token, no terminal to ask)".into())),
        }
    }
}

/// Replaces `path` with the secret, never readable by others: written to a 0600 file beside it,
/// synced, then renamed over it (a crash leaves the old token or the new, never half of one).
fn write_secret_file(path: &std::path::Path, secret: &SecretString) -> std::io::Result<()> {
    use std::io::Write;
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    let name = path.file_name().map(|n| n.to_string_lossy().to_string());
    let tmp = dir.join(format!(
        ".{}.{}.tmp",
        name.unwrap_or_else(|| "refresh".into()),
        std::process::id()
    ));
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let written = opts.open(&tmp).and_then(|mut f| {
        f.write_all(secret.expose_secret().as_bytes())?;
        f.write_all(b"\n")?;
        f.sync_all()
    });
    match written.and_then(|()| std::fs::rename(&tmp, path)) {
        Ok(()) => Ok(()),
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(e)
        }
    }
}

async fn refresh_tokens(
    client: &EsusClient,
    refresh: &SecretString,
) -> Result<(SecretString, Option<SecretString>), AuthError> {
    let wire = json!({"refreshToken": refresh.expose_secret()});
    let shown = json!({"refreshToken": REDACTED});
    let resp = post_secret_json(client, "/auth/refresh", shown, &wire).await?;
    if resp.status != 200 {
        return Err(AuthError(format!(
            "POST /auth/refresh answered {}",
            resp.status
        )));
    }
    token_pair(&resp.json())
}

/// Why a login gave no token: ESUS refused it, or ESUS could not be reached at all (a
/// different exit code: the credentials were never judged).
#[derive(Debug)]
pub enum LoginError {
    /// ESUS answered, and not with tokens.
    Refused(AuthError),
    /// No answer: connection refused, TLS failure, connection lost.
    Unreachable(String),
}

impl From<AuthError> for LoginError {
    fn from(e: AuthError) -> Self {
        LoginError::Refused(e)
    }
}

impl From<Unanswered> for LoginError {
    fn from(e: Unanswered) -> Self {
        LoginError::Unreachable(e.0)
    }
}

/// A credential POST that got no HTTP answer.
#[derive(Debug)]
pub struct Unanswered(String);

impl From<Unanswered> for AuthError {
    fn from(e: Unanswered) -> Self {
        AuthError(e.0)
    }
}

/// Logs in with email and password (and an MFA code when ESUS asks for one).
pub async fn login(
    client: &EsusClient,
    email: &str,
    password: &SecretString,
    mfa_code: impl FnOnce() -> Option<SecretString>,
) -> Result<(SecretString, Option<SecretString>), LoginError> {
    let wire = json!({"email": email, "password": password.expose_secret()});
    let shown = json!({"email": email, "password": REDACTED});
    let resp = post_secret_json(client, "/auth/login", shown, &wire).await?;
    if resp.status != 200 {
        return Err(AuthError(format!(
            "login as {email} failed: ESUS answered {}",
            resp.status
        ))
        .into());
    }
    let body = resp.json();
    if body.get("mfaRequired").and_then(Value::as_bool) != Some(true) {
        return Ok(token_pair(&body)?);
    }
    let mfa_token = body
        .get("mfaToken")
        .and_then(Value::as_str)
        .ok_or_else(|| LoginError::Refused(AuthError("MFA required but no mfaToken".into())))?;
    let code = mfa_code().ok_or_else(|| {
        AuthError("ESUS asks for an MFA code: set ESUS_MFA_CODE or run interactively".into())
    })?;
    let wire = json!({"mfaToken": mfa_token, "code": code.expose_secret()});
    let shown = json!({"mfaToken": REDACTED, "code": REDACTED});
    let resp = post_secret_json(client, "/auth/mfa/verify", shown, &wire).await?;
    if resp.status != 200 {
        return Err(AuthError(format!(
            "MFA verification failed: ESUS answered {}",
            resp.status
        ))
        .into());
    }
    Ok(token_pair(&resp.json())?)
}

/// POSTs a JSON body that holds credentials, without a bearer token.
async fn post_secret_json(
    client: &EsusClient,
    path: &str,
    shown: Value,
    wire: &Value,
) -> Result<crate::esus::client::ApiResponse, Unanswered> {
    let req = ApiRequest {
        method: Method::Post,
        path: path.into(),
        query: Vec::new(),
        body: Some(Body::with_secret(
            "application/json",
            shown,
            serde_json::to_vec(wire).unwrap_or_default(),
        )),
        auth: Auth::None,
    };
    client
        .send(&req, None, &uuid::Uuid::new_v4().to_string(), None)
        .await
        .map_err(|e| Unanswered(e.to_string()))
}

fn token_pair(body: &Value) -> Result<(SecretString, Option<SecretString>), AuthError> {
    let access = body
        .get("accessToken")
        .and_then(Value::as_str)
        .ok_or_else(|| AuthError("ESUS's answer has no accessToken".into()))?;
    let refresh = body
        .get("refreshToken")
        .and_then(Value::as_str)
        .map(|r| SecretString::from(r.to_string()));
    Ok((SecretString::from(access.to_string()), refresh))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refresh_token_kept_in_a_file_is_0600_and_read_back() {
        let dir = tempfile::tempdir().expect("dir");
        let store = RefreshStore::File(dir.path().join("refresh"));
        assert!(store.read().expect("read").is_none(), "nothing kept yet");
        store
            .write(&SecretString::from("r-1".to_string()))
            .expect("write");
        store
            .write(&SecretString::from("r-2".to_string()))
            .expect("replace");
        let back = store.read().expect("read").expect("kept");
        assert_eq!(back.expose_secret(), "r-2");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("refresh"))
            .expect("meta")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn a_refresh_token_kept_in_the_os_keyring_is_read_back() {
        let entry = format!("refresh-token@test-{}", uuid::Uuid::new_v4());
        let store = RefreshStore::Keyring(entry.clone());
        assert!(store.read().expect("the keyring answers").is_none());
        store
            .write(&SecretString::from("r-keyring".to_string()))
            .expect("kept");
        let back = store.read().expect("read").expect("found");
        assert_eq!(back.expose_secret(), "r-keyring");
        assert!(store.to_string().contains(&entry));
        let _ = keyring::Entry::new(KEYRING_SERVICE, &entry).and_then(|e| e.delete_credential());
    }
}
