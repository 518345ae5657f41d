//! `esus-ir login`: a SMART on FHIR login through the browser (authorization code + PKCE), checked
//! on `/auth/me`, its tokens kept in memory — or, with `--keyring`, in the operating system's
//! keyring where `run --refresh-token-keyring` finds them. Never in a file, never on stdout.

use std::path::PathBuf;
use std::time::Duration;

use secrecy::SecretString;

use super::operator::{self, SmartLogin};
use super::output::out;
use super::terminal;
use crate::error::{Error, ExitCode};
use crate::esus::actions::Method;
use crate::esus::client::{ClientConfig, EsusClient};
use crate::esus::request::{ApiRequest, Auth};
use crate::exec::loopback::shown;
use crate::exec::shared::Interrupt;
use crate::exec::smart_login::{DEFAULT_CLIENT_ID, SmartAsk, SmartTokens};
use crate::exec::token::{KEYRING_SERVICE, RefreshStore};

/// Arguments of `esus-ir login`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  esus-ir login --base https://api.esus.health
  esus-ir login --base https://api.esus.health --scope user/ApiKey.write --scope user/AuditEvent.read --keyring
  esus-ir run session-compromise --refresh-token-keyring --base-url https://api.esus.health -i user_id=u-1001

The authorization URL is printed on stderr (and opened in a browser unless --no-browser); esus-ir
waits on a loopback port (127.0.0.1) for ESUS's redirect. Exit 0 logged in, 4 refused or timed
out (nothing exchanged), 6 ESUS unreachable, 2 usage.")]
pub struct LoginArgs {
    /// ESUS base URL (https; http only to loopback).
    #[arg(
        long = "base",
        visible_alias = "base-url",
        env = "ESUS_BASE_URL",
        value_name = "URL"
    )]
    pub base: Option<String>,
    /// PEM file of a private CA that signs ESUS's certificate.
    #[arg(long, value_name = "PEM")]
    pub ca_cert: Option<PathBuf>,
    /// How long to wait for the browser's redirect (e.g. 90s, 5m).
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = duration)]
    pub timeout: Duration,
    /// Keep the tokens in the operating system's keyring (service `esus-ir`, entries
    /// `access-token@<base>` and `refresh-token@<base>`); without it they are gone when the
    /// command ends.
    #[arg(long)]
    pub keyring: bool,
    /// Scopes and browser.
    #[command(flatten)]
    pub smart: SmartArgs,
}

/// The SMART options `login` and `run --login-smart` share.
#[derive(Debug, Clone, clap::Args)]
pub struct SmartArgs {
    /// A SMART scope to request (repeatable, or several separated by spaces). Only these are
    /// requested, plus `online_access` so the token can be renewed. Default: `openid fhirUser`.
    #[arg(long = "scope", value_name = "SCOPE")]
    pub scopes: Vec<String>,
    /// The SMART client id: a registered SMART app's `clientId`, or `esus-ir` (ESUS's public
    /// native client).
    #[arg(long = "smart-client-id", value_name = "ID", default_value = DEFAULT_CLIENT_ID)]
    pub client_id: String,
    /// Start no browser: only print the authorization URL on stderr.
    #[arg(long, env = "ESUS_IR_NO_BROWSER", value_parser = clap::builder::BoolishValueParser::new())]
    pub no_browser: bool,
}

impl Default for SmartArgs {
    fn default() -> Self {
        SmartArgs {
            scopes: Vec::new(),
            client_id: DEFAULT_CLIENT_ID.into(),
            no_browser: true,
        }
    }
}

impl SmartArgs {
    /// The login's settings (clap stops here).
    pub fn settings(&self, timeout: Duration) -> SmartLogin {
        SmartLogin {
            ask: SmartAsk {
                scopes: self.scopes.clone(),
                client_id: self.client_id.clone(),
                timeout,
            },
            open_browser: !self.no_browser,
        }
    }
}

/// `--timeout` and `--login-timeout`: `90s`, `5m`, `1h`, from one second to a day.
pub fn duration(text: &str) -> Result<Duration, String> {
    match crate::runbook::model::parse_duration(text) {
        Some(d) if d >= Duration::from_secs(1) && d <= Duration::from_secs(86_400) => Ok(d),
        _ => Err("a duration from 1s to 24h, such as 90s or 5m".into()),
    }
}

/// The keyring entry of a token for this ESUS: `<what>@<base URL>`.
pub fn keyring_entry(what: &str, client: &EsusClient) -> String {
    format!("{what}@{}", client.base().as_str().trim_end_matches('/'))
}

/// Runs `esus-ir login`.
pub fn run(args: LoginArgs) -> Result<ExitCode, Error> {
    let base = args
        .base
        .clone()
        .ok_or_else(|| Error::Usage("no ESUS base URL: use --base or ESUS_BASE_URL".into()))?;
    let mut config = ClientConfig::new(base);
    config.ca_cert = args.ca_cert.clone();
    let client = EsusClient::new(&config).map_err(|e| Error::Usage(e.to_string()))?;
    super::runtime::runtime()?.block_on(login(&args, &client))
}

async fn login(args: &LoginArgs, client: &EsusClient) -> Result<ExitCode, Error> {
    let (handle, interrupt) = Interrupt::new();
    let ctrl_c = terminal::ctrl_c_listener(handle)?;
    let got = operator::smart_tokens(client, &args.smart.settings(args.timeout), &interrupt).await;
    ctrl_c.stop();
    let tokens = got?;
    let email = who(client, &tokens.access).await?;
    let kept = if args.keyring {
        Some(keep(client, &tokens)?)
    } else {
        None
    };
    out(&summary(client, args, &tokens, &email, kept.as_deref()))?;
    Ok(ExitCode::Success)
}

/// Who the new token acts for, by `GET /auth/me`: proves the token works before anyone relies
/// on it.
async fn who(client: &EsusClient, access: &SecretString) -> Result<String, Error> {
    let req = ApiRequest {
        method: Method::Get,
        path: "/auth/me".into(),
        query: Vec::new(),
        body: None,
        auth: Auth::Bearer(access.clone()),
    };
    let resp = client
        .send(&req, None, &uuid::Uuid::new_v4().to_string(), None)
        .await
        .map_err(|e| Error::Unreachable(format!("GET /auth/me after the SMART login: {e}")))?;
    if resp.status != 200 {
        return Err(Error::Auth(format!(
            "ESUS refused the new token on GET /auth/me ({}): the login gave no usable token",
            resp.status
        )));
    }
    Ok(crate::exec::loopback::printable(
        resp.json()["email"].as_str().unwrap_or("(no email)"),
    ))
}

/// Writes both tokens to the OS keyring; a stale refresh token of an earlier login is removed
/// when this one brought none (it would renew someone else's session).
fn keep(client: &EsusClient, tokens: &SmartTokens) -> Result<String, Error> {
    let access = keyring_entry("access-token", client);
    let refresh = keyring_entry("refresh-token", client);
    let failed = |e: String| Error::Usage(format!("--keyring: {e} (the tokens were not kept)"));
    RefreshStore::Keyring(access.clone())
        .write(&tokens.access)
        .map_err(failed)?;
    match &tokens.refresh {
        Some(r) => RefreshStore::Keyring(refresh.clone())
            .write(r)
            .map_err(failed)?,
        None => {
            let _ =
                keyring::Entry::new(KEYRING_SERVICE, &refresh).and_then(|e| e.delete_credential());
        }
    }
    Ok(format!(
        "the OS keyring (service {KEYRING_SERVICE}, entries {access} and {refresh})"
    ))
}

fn summary(
    client: &EsusClient,
    args: &LoginArgs,
    tokens: &SmartTokens,
    email: &str,
    kept: Option<&str>,
) -> String {
    let base = client.base().as_str().trim_end_matches('/');
    let expiry = tokens.expires_in.map_or_else(
        || "an unstated time".to_string(),
        |s| shown(Duration::from_secs(s)),
    );
    let renewal = if tokens.refresh.is_some() {
        "a refresh token renews it"
    } else {
        "no refresh token came with it"
    };
    let whereto = match kept {
        Some(place) => format!(
            "Tokens kept in {place}: `esus-ir run … --refresh-token-keyring --base-url {base}` uses them.\n"
        ),
        None => "The tokens were held in memory only and are gone now (nothing was written): use --keyring to keep them, or `esus-ir run … --login-smart` to log in for a run.\n".into(),
    };
    format!(
        "Logged in to {base} as {email} (SMART client {}).\nScopes granted: {}\nThe access token expires in {expiry}; {renewal}.\n{whereto}",
        args.smart.client_id,
        // Every granted scope, whatever its length; no control character.
        tokens
            .scope
            .chars()
            .filter(|c| !c.is_control())
            .collect::<String>()
    )
}
