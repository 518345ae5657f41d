//! The transcript's signing key and SSHSIG signatures.
//!
//! Signatures are OpenSSH's SSHSIG format (namespace [`NAMESPACE`], SHA-512) over the whole
//! transcript file, so anyone can check one with `ssh-keygen -Y verify` and no esus-ir at all. Keys
//! are Ed25519 OpenSSH private keys: the operator's own (`--sign-key`), or a per-user key created on
//! first use. The private half never leaves [`Signer`]: it has no accessor and its `Debug` shows
//! only the public fingerprint.

use std::fmt;
use std::path::{Path, PathBuf};

use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha512};
use ssh_key::{Algorithm, HashAlg, LineEnding, PrivateKey, rand_core::OsRng};

use super::TranscriptError;
use super::fsutil::{create_private_dir_all, create_private_file};

/// The SSHSIG namespace of transcript signatures.
pub const NAMESPACE: &str = "esus-ir-transcript";

/// File name of the per-user key inside `<config dir>/esus-ir/`.
pub const DEFAULT_KEY_FILE: &str = "transcript_ed25519";

/// Where the signing key comes from, as the edge resolved it from flags and environment.
#[derive(Debug, Default)]
pub struct SignerSource {
    /// `--sign-key PATH` or `ESUS_IR_SIGN_KEY`; `None` means the per-user default key.
    pub key: Option<PathBuf>,
    /// `ESUS_IR_SIGN_KEY_PASSPHRASE`, for an encrypted key.
    pub passphrase: Option<SecretString>,
}

/// Tells the caller that a new per-user key was created, so it can show the public key once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyCreated {
    /// Where the private key was written (the public key is beside it, `.pub`).
    pub path: PathBuf,
    /// The public key, OpenSSH format.
    pub public_key: String,
}

impl fmt::Display for KeyCreated {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The whole allowed_signers line, not the bare key: `ssh-keygen -Y verify` and
        // `verify --allowed-signers` need the principal and namespace too. The principal is the
        // default operator; a run with --operator NAME is recorded under NAME instead.
        write!(
            f,
            "created a transcript signing key at {}\nadd this line to your allowed_signers file (for runs with --operator NAME, `esus-ir keygen --show --operator NAME` prints NAME's):\n{}",
            self.path.display(),
            allowed_signers_line(&default_operator(), &self.public_key)
        )
    }
}

/// An Ed25519 key that signs transcripts.
pub struct Signer {
    key: PrivateKey,
    /// The same key, expanded once: `PrivateKey::sign` derives it again (a scalar
    /// multiplication) for every signature, which was half the cost of each checkpoint.
    expanded: ed25519_dalek::SigningKey,
}

impl fmt::Debug for Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Signer")
            .field("fingerprint", &self.fingerprint())
            .finish()
    }
}

impl Signer {
    /// Uses the configured key, or the per-user default key (creating it on first use).
    pub fn resolve(source: &SignerSource) -> Result<(Self, Option<KeyCreated>), TranscriptError> {
        match &source.key {
            Some(path) => Ok((Self::load(path, source.passphrase.as_ref())?, None)),
            None => {
                let path = default_key_path().ok_or(TranscriptError::NoConfigDir)?;
                Self::load_or_create(&path, source.passphrase.as_ref())
            }
        }
    }

    /// Loads the key at `path`, creating it (and a `.pub` beside it) when it does not exist.
    pub fn load_or_create(
        path: &Path,
        passphrase: Option<&SecretString>,
    ) -> Result<(Self, Option<KeyCreated>), TranscriptError> {
        if path.exists() {
            return Ok((Self::load(path, passphrase)?, None));
        }
        let signer = Self::generate(&default_comment())?;
        signer.write_key_files(path, false)?;
        let created = KeyCreated {
            path: path.to_path_buf(),
            public_key: signer.public_key_openssh(),
        };
        Ok((signer, Some(created)))
    }

    /// Reads an OpenSSH Ed25519 private key, decrypting it with `passphrase` when encrypted.
    pub fn load(path: &Path, passphrase: Option<&SecretString>) -> Result<Self, TranscriptError> {
        let key_error = |what: String| TranscriptError::Key {
            path: path.to_path_buf(),
            what,
        };
        let text = std::fs::read_to_string(path).map_err(|e| {
            TranscriptError::io(format!("reading signing key {}", path.display()), e)
        })?;
        let mut key = PrivateKey::from_openssh(text.trim_start())
            .map_err(|e| key_error(format!("not an OpenSSH private key ({e})")))?;
        if key.is_encrypted() {
            let passphrase =
                passphrase.ok_or_else(|| TranscriptError::PassphraseNeeded(path.to_path_buf()))?;
            key = key
                .decrypt(passphrase.expose_secret().as_bytes())
                .map_err(|_| key_error("wrong passphrase (ESUS_IR_SIGN_KEY_PASSPHRASE)".into()))?;
        }
        if key.algorithm() != Algorithm::Ed25519 {
            return Err(key_error(format!(
                "is {}; transcripts are signed with Ed25519 keys (create one with `esus-ir keygen`)",
                key.algorithm()
            )));
        }
        Self::from_key(key).map_err(|e| key_error(e.to_string()))
    }

    /// Wraps an Ed25519 private key, expanding it once.
    fn from_key(key: PrivateKey) -> Result<Self, TranscriptError> {
        let pair = key
            .key_data()
            .ed25519()
            .ok_or_else(|| TranscriptError::Sign("not an Ed25519 key".into()))?;
        let expanded = ed25519_dalek::SigningKey::try_from(pair)
            .map_err(|e| TranscriptError::Sign(format!("the key does not match itself: {e}")))?;
        Ok(Signer { key, expanded })
    }

    /// A new random Ed25519 key with the given comment.
    pub fn generate(comment: &str) -> Result<Self, TranscriptError> {
        let mut key = PrivateKey::random(&mut OsRng, Algorithm::Ed25519)
            .map_err(|e| TranscriptError::Sign(format!("generating a key: {e}")))?;
        key.set_comment(comment);
        Self::from_key(key)
    }

    /// Writes the private key (0600, in a folder created 0700) and the public key at `path.pub`.
    /// Refuses to replace an existing key unless `force`.
    pub fn write_key_files(&self, path: &Path, force: bool) -> Result<(), TranscriptError> {
        use std::io::Write;
        let io = |what: &str, e| TranscriptError::io(format!("{what} {}", path.display()), e);
        if path.exists() {
            if !force {
                return Err(TranscriptError::Exists(path.to_path_buf()));
            }
            std::fs::remove_file(path).map_err(|e| io("removing", e))?;
        }
        if let Some(parent) = path.parent() {
            create_private_dir_all(parent).map_err(|e| io("creating the folder of", e))?;
        }
        let pem = self
            .key
            .to_openssh(LineEnding::LF)
            .map_err(|e| TranscriptError::Sign(format!("encoding the key: {e}")))?;
        let mut file = create_private_file(path).map_err(|e| io("creating", e))?;
        file.write_all(pem.as_bytes())
            .and_then(|()| file.sync_all())
            .map_err(|e| io("writing", e))?;
        let pub_path = public_key_path(path);
        std::fs::write(&pub_path, format!("{}\n", self.public_key_openssh()))
            .map_err(|e| io("writing the public key beside", e))?;
        Ok(())
    }

    /// The public key in OpenSSH format (`ssh-ed25519 AAAA… comment`).
    pub fn public_key_openssh(&self) -> String {
        self.key.public_key().to_openssh().unwrap_or_default()
    }

    /// The public key's SHA-256 fingerprint (`SHA256:…`), as `ssh-keygen -l` prints it.
    pub fn fingerprint(&self) -> String {
        self.key.fingerprint(HashAlg::Sha256).to_string()
    }

    /// Signs `bytes` and returns the armored SSHSIG (`-----BEGIN SSH SIGNATURE-----`…).
    pub fn sign(&self, bytes: &[u8]) -> Result<String, TranscriptError> {
        self.sign_in(NAMESPACE, bytes)
    }

    /// Signs `bytes` in another SSHSIG namespace (a plan's approval: `esus-ir-plan`).
    pub fn sign_in(&self, namespace: &str, bytes: &[u8]) -> Result<String, TranscriptError> {
        self.sign_digest(namespace, &Sha512::digest(bytes))
    }

    /// Signs the file at `path` (the transcript's detached signature) reading it in pieces: a
    /// 100,000-item fan-out's transcript is over 100 MiB, and reading it whole to sign it was
    /// most of the run's peak memory.
    pub fn sign_reader(&self, mut reader: impl std::io::Read) -> std::io::Result<String> {
        let mut hasher = Sha512::new();
        std::io::copy(&mut reader, &mut hasher)?;
        self.sign_digest(NAMESPACE, &hasher.finalize())
            .map_err(|e| std::io::Error::other(e.to_string()))
    }

    /// An SSHSIG (SHA-512) over a message whose SHA-512 is `digest`: the bytes
    /// `PrivateKey::sign` would give (Ed25519 signatures are deterministic), with the key
    /// expanded once instead of at every call.
    fn sign_digest(&self, namespace: &str, digest: &[u8]) -> Result<String, TranscriptError> {
        let err = |e: ssh_key::Error| TranscriptError::Sign(e.to_string());
        if namespace.is_empty() {
            return Err(err(ssh_key::Error::Namespace));
        }
        // PROTOCOL.sshsig: "SSHSIG", then the strings namespace, reserved, hash algorithm and
        // the message's hash.
        let mut signed = Vec::with_capacity(32 + namespace.len() + digest.len());
        signed.extend_from_slice(b"SSHSIG");
        for field in [namespace.as_bytes(), b"", b"sha512", digest] {
            let len = u32::try_from(field.len()).map_err(|_| {
                TranscriptError::Sign("a field of the signature is too long".into())
            })?;
            signed.extend_from_slice(&len.to_be_bytes());
            signed.extend_from_slice(field);
        }
        let raw = ed25519_dalek::Signer::sign(&self.expanded, &signed);
        let signature =
            ssh_key::Signature::new(Algorithm::Ed25519, raw.to_bytes().to_vec()).map_err(err)?;
        let sig = ssh_key::SshSig::new(
            self.key.public_key().key_data().clone(),
            namespace,
            HashAlg::Sha512,
            signature,
        )
        .map_err(err)?;
        sig.to_pem(LineEnding::LF).map_err(err)
    }
}

/// `<platform config dir>/esus-ir/transcript_ed25519`, when the platform has a config dir.
pub fn default_key_path() -> Option<PathBuf> {
    dirs::config_dir().map(|d| d.join("esus-ir").join(DEFAULT_KEY_FILE))
}

/// `PATH.pub` for a private key at `PATH`.
pub fn public_key_path(path: &Path) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(".pub");
    PathBuf::from(p)
}

/// The `allowed_signers` line that lets `ssh-keygen -Y verify -I <operator>` trust `public_key`.
pub fn allowed_signers_line(operator: &str, public_key: &str) -> String {
    // Keep only "type base64": a comment is not part of the allowed_signers grammar's key field.
    let key: Vec<&str> = public_key.split_whitespace().take(2).collect();
    // A principal with spaces (or quotes' neighbours) must be quoted to stay one field.
    let principal =
        if operator.is_empty() || operator.contains(|c: char| c.is_whitespace() || c == '"') {
            format!("\"{}\"", operator.replace('"', ""))
        } else {
            operator.to_string()
        };
    format!("{principal} namespaces=\"{NAMESPACE}\" {}", key.join(" "))
}

/// The operator name when none is given: the OS user, else `unknown`.
pub fn default_operator() -> String {
    ["USER", "LOGNAME", "USERNAME"]
        .iter()
        .find_map(|v| std::env::var(v).ok().filter(|s| !s.trim().is_empty()))
        .or_else(os_account)
        .unwrap_or_else(|| "unknown".into())
}

/// The account name of this process's user, from the password database (for when the
/// environment names nobody, as under some schedulers and paging tools).
fn os_account() -> Option<String> {
    #[cfg(unix)]
    {
        let uid = rustix::process::getuid().as_raw().to_string();
        let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
        passwd.lines().find_map(|line| {
            let mut fields = line.split(':');
            let name = fields.next()?;
            let id = fields.nth(1)?;
            (id == uid && !name.is_empty()).then(|| name.to_string())
        })
    }
    #[cfg(not(unix))]
    {
        None
    }
}

fn default_comment() -> String {
    format!("esus-ir transcript key of {}", default_operator())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn signature_verifies_with_the_public_key() {
        let signer = Signer::generate("test").unwrap();
        let pem = signer.sign(b"hello").unwrap();
        let sig: ssh_key::SshSig = pem.parse().unwrap();
        let public: ssh_key::PublicKey = signer.public_key_openssh().parse().unwrap();
        public.verify(NAMESPACE, b"hello", &sig).unwrap();
        assert!(public.verify(NAMESPACE, b"hellO", &sig).is_err());
        assert_eq!(sig.hash_alg(), HashAlg::Sha512);
    }

    #[test]
    fn the_expanded_key_signs_the_bytes_ssh_key_would() {
        let signer = Signer::generate("test").unwrap();
        for (ns, msg) in [(NAMESPACE, &b"hello"[..]), ("esus-ir-plan", b"")] {
            let reference = signer
                .key
                .sign(ns, HashAlg::Sha512, msg)
                .unwrap()
                .to_pem(LineEnding::LF)
                .unwrap();
            assert_eq!(signer.sign_in(ns, msg).unwrap(), reference, "{ns}");
        }
        let streamed = signer.sign_reader(&b"a file's bytes"[..]).unwrap();
        assert_eq!(streamed, signer.sign(b"a file's bytes").unwrap());
        assert!(
            signer.sign_in("", b"x").is_err(),
            "SSHSIG needs a namespace"
        );
    }

    #[test]
    fn debug_shows_only_the_fingerprint() {
        let signer = Signer::generate("test").unwrap();
        let debug = format!("{signer:?}");
        assert!(debug.contains("SHA256:"));
        assert!(!debug.contains("PRIVATE"));
    }

    #[test]
    fn allowed_signers_line_quotes_a_principal_with_spaces() {
        let line = allowed_signers_line("Alice Smith", "ssh-ed25519 AAAAC3Nz");
        assert_eq!(
            line,
            "\"Alice Smith\" namespaces=\"esus-ir-transcript\" ssh-ed25519 AAAAC3Nz"
        );
    }

    #[test]
    fn allowed_signers_line_drops_the_comment() {
        let line = allowed_signers_line("alice", "ssh-ed25519 AAAAC3Nz my comment");
        assert_eq!(
            line,
            "alice namespaces=\"esus-ir-transcript\" ssh-ed25519 AAAAC3Nz"
        );
    }
}
