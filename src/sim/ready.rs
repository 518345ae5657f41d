//! The ready facts: what a script or test needs to drive a started simulator. Written as JSON to
//! `--ready-file` (mode 0600, the one place secrets are written on purpose) and printed, secrets
//! excepted, on stdout.

use std::io::Write;
use std::path::{Path, PathBuf};

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize, Serializer};

use super::error::SimError;

fn expose<S: Serializer>(secret: &SecretString, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(secret.expose_secret())
}

/// Everything a client needs to drive the simulator and its default compromise.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReadyInfo {
    /// `http://127.0.0.1:PORT` (`https://…` with TLS); no trailing slash.
    pub base_url: String,
    /// An admin's access token (a fresh session opened at start).
    #[serde(serialize_with = "expose")]
    pub admin_token: SecretString,
    /// That admin session's refresh token.
    #[serde(serialize_with = "expose")]
    pub admin_refresh_token: SecretString,
    /// The admin's login email.
    pub admin_email: String,
    /// The admin's password.
    #[serde(serialize_with = "expose")]
    pub admin_password: SecretString,
    /// The compromised user.
    pub user_id: String,
    /// The leaked key's id.
    pub key_id: String,
    /// The leaked key's client id.
    pub key_client_id: String,
    /// The leaked key's `appId`, when it belongs to an app: requests with the key must send it
    /// as `X-App-Id` (docs/esus-api.md, "Credentials"). Not a secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_app_id: Option<String>,
    /// The leaked key's secret.
    #[serde(serialize_with = "expose")]
    pub key_secret: SecretString,
    /// The compromised live session's id.
    pub session_id: String,
    /// The compromised session's access token.
    #[serde(serialize_with = "expose")]
    pub session_token: SecretString,
    /// The compromised session's refresh token.
    #[serde(serialize_with = "expose")]
    pub session_refresh_token: SecretString,
    /// The CA certificate file, when serving TLS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_cert: Option<PathBuf>,
}

impl ReadyInfo {
    /// The facts without secrets, one `name: value` per line, for stdout.
    pub fn public_summary(&self) -> String {
        let mut out = format!(
            "base_url: {}\nadmin_email: {}\nuser_id: {}\nkey_id: {}\nkey_client_id: {}\nsession_id: {}\n",
            self.base_url,
            self.admin_email,
            self.user_id,
            self.key_id,
            self.key_client_id,
            self.session_id
        );
        if let Some(app) = &self.key_app_id {
            out.push_str(&format!("key_app_id: {app}\n"));
        }
        if let Some(ca) = &self.ca_cert {
            out.push_str(&format!("ca_cert: {}\n", ca.display()));
        }
        out
    }

    /// Writes the JSON (secrets included) to `path`, created with mode 0600. The file is written
    /// under a temporary name and renamed, so a poller never reads half a file.
    pub fn write_file(&self, path: &Path) -> Result<(), SimError> {
        let werr = |source| SimError::Write {
            path: path.to_owned(),
            source,
        };
        let json =
            serde_json::to_vec_pretty(self).map_err(|e| SimError::Internal(e.to_string()))?;
        let tmp = path.with_extension("tmp-ready");
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut file = opts.open(&tmp).map_err(werr)?;
        #[cfg(unix)]
        {
            // `mode` only applies when the file is created; an existing file is tightened too.
            use std::os::unix::fs::PermissionsExt;
            file.set_permissions(std::fs::Permissions::from_mode(0o600))
                .map_err(werr)?;
        }
        file.write_all(&json).map_err(werr)?;
        file.sync_all().map_err(werr)?;
        std::fs::rename(&tmp, path).map_err(werr)
    }
}
