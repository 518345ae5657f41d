//! `--sign-key` and `--allowed-signers`: which key signs this command's record, and whose
//! signatures it trusts — shared by `run`, `drill`, `approve` and the resume's trust.

use std::path::PathBuf;

use secrecy::SecretString;

use crate::error::Error;
use crate::transcript::{Signer, SignerSource, default_key_path, sign::public_key_path};

/// The environment variable holding the passphrase of an encrypted signing key.
pub const PASSPHRASE_ENV: &str = "ESUS_IR_SIGN_KEY_PASSPHRASE";

/// `--sign-key`: which key signs the transcript (for `run`, flattened).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct SignKeyArgs {
    /// OpenSSH Ed25519 private key that signs the transcript (default: a per-user key created on
    /// first use). An encrypted key reads its passphrase from ESUS_IR_SIGN_KEY_PASSPHRASE.
    #[arg(long, env = "ESUS_IR_SIGN_KEY", value_name = "PATH")]
    pub sign_key: Option<PathBuf>,
    /// With --resume: an OpenSSH allowed_signers file naming who may have signed the transcript
    /// resumed (default: only this operator's own signing key). Resume trusts only the records a
    /// trusted key signed (the final signature, or the last checkpoint of a killed run).
    #[arg(long = "allowed-signers", value_name = "FILE")]
    pub resume_allowed_signers: Option<PathBuf>,
}

impl SignKeyArgs {
    /// The signer source: the key path and, from the environment, its passphrase.
    pub fn into_source(self) -> SignerSource {
        SignerSource {
            key: self.sign_key,
            passphrase: std::env::var(PASSPHRASE_ENV).ok().map(SecretString::from),
        }
    }
}

impl SignKeyArgs {
    /// The public key (OpenSSH) of the key this operator signs with, without creating one: the
    /// `.pub` beside it, else the private key itself.
    pub fn public_key(&self) -> Result<Option<String>, Error> {
        let path = match &self.sign_key {
            Some(p) => p.clone(),
            None => match default_key_path() {
                Some(p) => p,
                None => return Ok(None),
            },
        };
        if let Ok(text) = std::fs::read_to_string(public_key_path(&path))
            && let Some(line) = text.lines().find(|l| !l.trim().is_empty())
        {
            return Ok(Some(line.trim().to_string()));
        }
        if !path.exists() {
            return Ok(None);
        }
        let source = self.clone().into_source();
        let signer = Signer::load(&path, source.passphrase.as_ref())?;
        Ok(Some(signer.public_key_openssh()))
    }
}
