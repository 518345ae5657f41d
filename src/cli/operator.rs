//! Who runs esus-ir, and with what credential: the operator's ESUS token (ESUS_TOKEN,
//! `--token-file`, `--login`, or a hidden prompt — never argv), their name for the transcript, and
//! the machine's name. A token is a secret from the moment it is read. A SMART login
//! (`--login-smart`, `esus-ir login`) brings its tokens straight into memory.

use std::path::Path;

use secrecy::{ExposeSecret, SecretString};

use super::prompt::{ask_hidden, is_interrupt};
use crate::error::Error;
use crate::esus::client::EsusClient;
use crate::exec::loopback::{CallbackError, shown};
use crate::exec::shared::Interrupt;
use crate::exec::smart_login::{self, Browser, SmartAsk, SmartLoginError, SmartTokens};
use crate::exec::token::{self, OperatorToken, RefreshStore};

/// Where the operator's token comes from.
#[derive(Debug, Clone, Default)]
pub struct TokenSources {
    /// `--token-file`.
    pub token_file: Option<std::path::PathBuf>,
    /// `--login EMAIL`.
    pub login: Option<String>,
    /// `--refresh-token-file`: the refresh token is read from it, and a rotated one written back.
    pub refresh_file: Option<std::path::PathBuf>,
    /// `--refresh-token-keyring`: the OS keyring entry the refresh token is read from (else
    /// ESUS_REFRESH_TOKEN seeds it) and a rotated one written back to.
    pub refresh_keyring: Option<String>,
    /// Where a rotated refresh token goes without `--refresh-token-file`: the run's secrets folder.
    pub secrets_dir: Option<std::path::PathBuf>,
    /// `--login-smart`: log in through the browser (SMART on FHIR, PKCE) before the run.
    pub smart: Option<SmartLogin>,
    /// The OS keyring entry an access token kept by `esus-ir login --keyring` is read from.
    pub access_keyring: Option<String>,
}

/// A SMART login's settings: what to ask for, and whether a browser may be started.
#[derive(Debug, Clone)]
pub struct SmartLogin {
    /// Scopes, client id, how long to wait.
    pub ask: SmartAsk,
    /// Start the platform's browser (else only print the URL).
    pub open_browser: bool,
}

/// Logs in through the browser; the URL to open goes to stderr, the tokens stay in memory.
pub async fn smart_tokens(
    client: &EsusClient,
    smart: &SmartLogin,
    interrupt: &Interrupt,
) -> Result<SmartTokens, Error> {
    let browser: Box<dyn Browser> = if smart.open_browser {
        Box::new(super::browser::SystemBrowser)
    } else {
        Box::new(super::browser::NoBrowser)
    };
    let show = |text: &str| eprintln!("{text}");
    smart_login::login(client, &smart.ask, browser.as_ref(), &show, interrupt)
        .await
        .map_err(smart_error)
}

/// Every SMART failure but an unreachable ESUS (6), an interrupt (130) or a broken listener (1)
/// is an authentication failure (4): no token was obtained.
fn smart_error(e: SmartLoginError) -> Error {
    match e {
        SmartLoginError::Unreachable(why) => Error::Unreachable(format!(
            "cannot reach ESUS for the SMART login: {why} — check --base-url / ESUS_BASE_URL and the network (no token was obtained)"
        )),
        SmartLoginError::Callback(CallbackError::Interrupted) => Error::interrupted_before_start(),
        SmartLoginError::Callback(CallbackError::Io(e)) => {
            Error::io("the SMART login's loopback listener", e)
        }
        SmartLoginError::Callback(CallbackError::Timeout(d)) => Error::Auth(format!(
            "SMART login timed out: no answer from the browser within {} (browser closed, or the page left unanswered). No code was exchanged; run the login again (--timeout to wait longer)",
            shown(d)
        )),
        other => Error::Auth(format!(
            "SMART login failed: {other} (no token was obtained)"
        )),
    }
}

/// The file in the secrets folder that receives a refresh token ESUS rotated mid-run.
pub const ROTATED_REFRESH_FILE: &str = "esus-refresh-token";

/// The operator's token: `--token-file`, ESUS_TOKEN, `--login`, or a hidden prompt. Nothing is
/// sent to ESUS except by `--login`.
pub async fn operator_token(
    sources: &TokenSources,
    client: &EsusClient,
    interactive: bool,
    interrupt: &Interrupt,
) -> Result<OperatorToken, Error> {
    let token = access_token(sources, client, interactive, interrupt).await?;
    // Only a token that came with a refresh token can see one rotated. A SMART login's tokens
    // never go to a file: the keyring when asked, else memory only.
    let save_to = match (&sources.refresh_keyring, &sources.refresh_file) {
        (Some(entry), _) => Some(RefreshStore::Keyring(entry.clone())),
        (None, _) if sources.smart.is_some() => None,
        (None, Some(path)) => Some(RefreshStore::File(path.clone())),
        (None, None) => sources
            .secrets_dir
            .as_ref()
            .map(|d| RefreshStore::File(d.join(ROTATED_REFRESH_FILE))),
    };
    Ok(match save_to {
        Some(path) => token.saving_refresh_to(path),
        None => token,
    })
}

/// The refresh token: `--refresh-token-file`, else the one an earlier leg of this incident saved
/// in its secrets folder (ESUS rotated the one in the environment away), else
/// ESUS_REFRESH_TOKEN.
fn refresh_token(sources: &TokenSources) -> Result<Option<SecretString>, Error> {
    if let Some(entry) = &sources.refresh_keyring {
        let store = RefreshStore::Keyring(entry.clone());
        match store.read() {
            Ok(Some(t)) => return Ok(Some(checked(t, &store.to_string())?)),
            // Nothing kept yet: ESUS_REFRESH_TOKEN seeds it (its rotation is kept there).
            Ok(None) => {}
            Err(e) => {
                return Err(Error::Usage(format!(
                    "--refresh-token-keyring: {e} (nothing was sent)"
                )));
            }
        }
        return env_secret("ESUS_REFRESH_TOKEN")
            .map(|t| checked(t, "ESUS_REFRESH_TOKEN"))
            .transpose();
    }
    if let Some(path) = &sources.refresh_file {
        let what = format!("--refresh-token-file {}", path.display());
        return read_secret_file(path, &what).map(Some);
    }
    let saved = sources
        .secrets_dir
        .as_ref()
        .map(|d| d.join(ROTATED_REFRESH_FILE))
        .filter(|p| p.is_file());
    if let Some(path) = saved {
        let what = format!("the refresh token this incident saved ({})", path.display());
        eprintln!("note: using {what}: ESUS rotated the earlier one away");
        return read_secret_file(&path, &what).map(Some);
    }
    env_secret("ESUS_REFRESH_TOKEN")
        .map(|t| checked(t, "ESUS_REFRESH_TOKEN"))
        .transpose()
}

async fn access_token(
    sources: &TokenSources,
    client: &EsusClient,
    interactive: bool,
    interrupt: &Interrupt,
) -> Result<OperatorToken, Error> {
    let hidden = |prompt: &str| hidden(prompt, interrupt);
    if let Some(smart) = &sources.smart {
        let tokens = smart_tokens(client, smart, interrupt).await?;
        return Ok(OperatorToken::new(Some(tokens.access), tokens.refresh));
    }
    let refresh = refresh_token(sources)?;
    if let Some(path) = &sources.token_file {
        let t = read_token_file(path)?;
        return Ok(OperatorToken::new(Some(t), refresh));
    }
    if let Some(t) = env_secret("ESUS_TOKEN") {
        return Ok(OperatorToken::new(Some(checked(t, "ESUS_TOKEN")?), refresh));
    }
    if let Some(email) = &sources.login {
        let password = match env_secret("ESUS_PASSWORD") {
            Some(p) => Some(p),
            None if interactive => hidden(&format!("ESUS password for {email}"))?,
            None => None,
        };
        let password = password.ok_or_else(|| {
            Error::Usage(
                "--login needs ESUS_PASSWORD or a terminal to ask for the password (nothing was sent)"
                    .into(),
            )
        })?;
        let mfa = || {
            env_secret("ESUS_MFA_CODE").or_else(|| {
                interactive
                    .then(|| hidden("MFA code").ok().flatten())
                    .flatten()
            })
        };
        let login = token::login(client, email, &password, mfa).await;
        if interrupt.count() > 0 {
            return Err(Error::interrupted_before_start());
        }
        let (access, refresh) = login.map_err(|e| match e {
            token::LoginError::Refused(e) => Error::Auth(e.0),
            token::LoginError::Unreachable(why) => Error::Unreachable(format!(
                "cannot reach ESUS to log in as {email}: {why} — check --base-url / ESUS_BASE_URL and the network (no token was obtained)"
            )),
        })?;
        return Ok(OperatorToken::new(Some(access), refresh));
    }
    if let Some(entry) = &sources.access_keyring {
        let store = RefreshStore::Keyring(entry.clone());
        if let Ok(Some(t)) = store.read() {
            return Ok(OperatorToken::new(
                Some(checked(t, &store.to_string())?),
                refresh,
            ));
        }
    }
    if interactive && let Some(t) = hidden("ESUS access token (hidden)")? {
        return Ok(OperatorToken::new(Some(checked(t, "the token")?), refresh));
    }
    Err(Error::Usage(
        "no ESUS token: set ESUS_TOKEN, use --token-file or --login (nothing was sent)".into(),
    ))
}

fn env_secret(name: &str) -> Option<SecretString> {
    std::env::var(name)
        .ok()
        .filter(|s| !s.trim().is_empty())
        .map(SecretString::from)
}

fn read_token_file(path: &Path) -> Result<SecretString, Error> {
    read_secret_file(path, &format!("--token-file {}", path.display()))
}

fn read_secret_file(path: &Path, what: &str) -> Result<SecretString, Error> {
    let text =
        std::fs::read_to_string(path).map_err(|e| Error::io(format!("reading {what}"), e))?;
    let text = SecretString::from(text);
    // One trailing newline is how files end; anything else inside the token is refused below.
    let trimmed = SecretString::from(
        text.expose_secret()
            .trim_end_matches(['\n', '\r'])
            .to_string(),
    );
    if trimmed.expose_secret().trim().is_empty() {
        return Err(Error::Usage(format!("{what} is empty (nothing was sent)")));
    }
    checked(trimmed, what)
}

/// A token with whitespace or control characters inside would fail every request (or split an
/// HTTP header): refused before anything is sent. Surrounding spaces are trimmed.
fn checked(token: SecretString, what: &str) -> Result<SecretString, Error> {
    let t = token.expose_secret().trim();
    if t.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(Error::Usage(format!(
            "{what}: the token contains a line break, space or control character (the value is not shown; nothing was sent)"
        )));
    }
    Ok(SecretString::from(t.to_string()))
}

/// Asks without echo; Ctrl-C ends the command before anything is sent.
fn hidden(prompt: &str, interrupt: &Interrupt) -> Result<Option<SecretString>, Error> {
    match ask_hidden(prompt, interrupt) {
        Ok(answer) => Ok(answer),
        Err(e) if is_interrupt(&e) => Err(Error::interrupted_before_start()),
        Err(e) => Err(Error::io("reading the terminal", e)),
    }
}

/// `--operator`, else $USER / $LOGNAME, else the OS account of this process.
pub fn operator_name(given: Option<&str>) -> String {
    given
        .filter(|s| !s.trim().is_empty())
        .map(str::to_string)
        .unwrap_or_else(crate::transcript::default_operator)
}

/// This machine's name.
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_with_line_breaks_are_refused_without_showing_them() {
        let err = checked(
            SecretString::from("abc\r\ndef-canary".to_string()),
            "ESUS_TOKEN",
        )
        .expect_err("refused");
        let msg = err.to_string();
        assert!(msg.contains("line break"), "{msg}");
        assert!(!msg.contains("canary"), "{msg}");
        let ok = checked(SecretString::from("  tok-123 ".to_string()), "x").expect("trimmed");
        assert_eq!(ok.expose_secret(), "tok-123");
    }

    #[test]
    fn the_operator_is_named_by_the_flag_else_the_environment_or_account() {
        assert_eq!(operator_name(Some("oncall@x")), "oncall@x");
        assert_ne!(operator_name(None), "");
    }
}
