//! Evidence encrypted at rest with age (`--encrypt-to`): audit rows and listings are PHI, and
//! the evidence folder sits on an engineer's laptop. Every evidence file and every secret output
//! is encrypted as it is streamed — nothing is written in clear first — to the recipients the
//! run was given (age X25519 `age1…`, or OpenSSH `ssh-ed25519`/`ssh-rsa` public keys). The
//! transcript records the recipients (public keys) and the SHA-256 of each ciphertext, so
//! `verify` checks the files without any key; `scope --identity` and `report --identity` decrypt.

use std::fmt;
use std::io::{self, Read, Write};
use std::path::Path;
use std::sync::Arc;

use sha2::{Digest, Sha256};

/// The suffix of an encrypted file.
pub const SUFFIX: &str = ".age";

/// The most recipients one run encrypts to.
const MAX_RECIPIENTS: usize = 64;

/// The recipients a run's evidence is encrypted to.
#[derive(Clone)]
pub struct Recipients {
    keys: Arc<Vec<Box<dyn age::Recipient + Send + Sync>>>,
    shown: Vec<String>,
}

impl fmt::Debug for Recipients {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Recipients").field(&self.shown).finish()
    }
}

impl Recipients {
    /// Parses recipients: each an age X25519 recipient (`age1…`) or an OpenSSH public key line
    /// (`ssh-ed25519 AAAA… comment`, `ssh-rsa …`). Blank lines and `#` comments are skipped,
    /// so the lines of a recipients file can be given as they are.
    pub fn parse<'a>(specs: impl IntoIterator<Item = &'a str>) -> Result<Recipients, String> {
        let mut keys: Vec<Box<dyn age::Recipient + Send + Sync>> = Vec::new();
        let mut shown = Vec::new();
        for spec in specs {
            let spec = spec.trim();
            if spec.is_empty() || spec.starts_with('#') {
                continue;
            }
            if keys.len() == MAX_RECIPIENTS {
                return Err(format!("more than {MAX_RECIPIENTS} recipients"));
            }
            // X25519 and SSH recipients are what `age-keygen`, Debian's age 1.1 and OpenSSH
            // users have today; age 0.13 marks them for replacement by post-quantum ones
            // (`age1pq…`), which are taken too.
            #[allow(deprecated)]
            let key: Box<dyn age::Recipient + Send + Sync> = if spec.starts_with("age1pq") {
                Box::new(
                    spec.parse::<age::pq::Recipient>()
                        .map_err(|e| format!("`{}`: not an age recipient ({e})", short(spec)))?,
                )
            } else if spec.starts_with("age1") {
                Box::new(
                    spec.parse::<age::x25519::Recipient>()
                        .map_err(|e| format!("`{}`: not an age recipient ({e})", short(spec)))?,
                )
            } else if spec.starts_with("ssh-") {
                Box::new(spec.parse::<age::ssh::Recipient>().map_err(|e| {
                    format!(
                        "`{}`: not an SSH public key age can use ({e:?})",
                        short(spec)
                    )
                })?)
            } else if spec.to_ascii_uppercase().starts_with("AGE-SECRET-KEY")
                || spec.contains("PRIVATE KEY")
            {
                // Never echoed: that is the key that opens the evidence.
                return Err("a secret key was given as a recipient: a recipient is an age public key (age1…, `age-keygen -y KEYFILE` prints it) or an SSH public key line".into());
            } else {
                return Err(format!(
                    "`{}`: a recipient is an age public key (age1…, from age-keygen) or an SSH public key line (ssh-ed25519 …)",
                    short(spec)
                ));
            };
            keys.push(key);
            // A public key is no secret; the comment of an SSH line is dropped all the same.
            shown.push(
                spec.split_whitespace()
                    .take(2)
                    .collect::<Vec<_>>()
                    .join(" "),
            );
        }
        if keys.is_empty() {
            return Err("no recipient given".into());
        }
        Ok(Recipients {
            keys: Arc::new(keys),
            shown,
        })
    }

    /// The lines of a recipients file (`--encrypt-to-file`, as age's `-R`).
    pub fn lines_of(path: &Path) -> Result<Vec<String>, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("recipients file {}: {e}", path.display()))?;
        Ok(text.lines().map(str::to_string).collect())
    }

    /// The recipients as recorded in the transcript (public keys, without comments).
    pub fn shown(&self) -> &[String] {
        &self.shown
    }

    /// `bytes`, encrypted whole (a file made in memory, written once).
    pub fn seal_all(&self, bytes: &[u8]) -> io::Result<Vec<u8>> {
        let mut w = self.seal(Vec::new())?;
        w.write_all(bytes)?;
        w.finish()
    }

    /// Starts an encrypted stream into `out`: the age header is written now.
    pub fn seal<W: Write>(&self, out: W) -> io::Result<age::stream::StreamWriter<W>> {
        let encryptor = age::Encryptor::with_recipients(self.keys.iter().map(|k| k.as_ref() as _))
            .map_err(|e| io::Error::other(format!("age: {e}")))?;
        encryptor.wrap_output(out)
    }
}

fn short(s: &str) -> String {
    let head: String = s.chars().take(24).collect();
    if s.chars().count() > 24 {
        format!("{head}…")
    } else {
        head
    }
}

/// A writer that hashes what reaches the file: under encryption, the ciphertext — the bytes
/// `verify` will read back.
pub struct Hashing<W> {
    inner: W,
    hasher: Sha256,
}

impl<W> Hashing<W> {
    /// Wraps `inner`.
    pub fn new(inner: W) -> Self {
        Hashing {
            inner,
            hasher: Sha256::new(),
        }
    }

    /// The writer and the hex SHA-256 of everything written through it.
    pub fn finish(self) -> (W, String) {
        (self.inner, hex::encode(self.hasher.finalize()))
    }

    /// The writer.
    pub fn get_ref(&self) -> &W {
        &self.inner
    }
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// The identities that decrypt a run's evidence (`--identity FILE`): an age identity file
/// (`AGE-SECRET-KEY-1…` lines, as `age-keygen` writes) or an unencrypted OpenSSH private key.
pub struct Identities {
    keys: Vec<Box<dyn age::Identity + Send + Sync>>,
}

impl fmt::Debug for Identities {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Identities({})", self.keys.len())
    }
}

impl Identities {
    /// The identities a command's `--identity FILE` names, if it names one.
    pub fn from_arg(path: Option<&Path>) -> Result<Option<Arc<Identities>>, String> {
        path.map(|p| Identities::from_file(p).map(Arc::new))
            .transpose()
    }

    /// Reads identities from `path`. The key never reaches an error message.
    pub fn from_file(path: &Path) -> Result<Identities, String> {
        let bytes = std::fs::read(path).map_err(|e| format!("identity {}: {e}", path.display()))?;
        let text = String::from_utf8_lossy(&bytes);
        if text.contains("-----BEGIN OPENSSH PRIVATE KEY-----") {
            let id = age::ssh::Identity::from_buffer(
                io::Cursor::new(&bytes[..]),
                Some(path.display().to_string()),
            )
            .map_err(|e| {
                format!(
                    "identity {}: not an SSH key age can read ({e})",
                    path.display()
                )
            })?;
            if matches!(id, age::ssh::Identity::Encrypted(_)) {
                return Err(format!(
                    "identity {}: a passphrase-protected SSH key; decrypt with `age -d -i` instead",
                    path.display()
                ));
            }
            return Ok(Identities {
                keys: vec![Box::new(id)],
            });
        }
        let file = age::IdentityFile::from_buffer(io::Cursor::new(&bytes[..]))
            .map_err(|_| format!("identity {}: not an age identity file", path.display()))?;
        let keys = file
            .into_identities()
            .map_err(|_| format!("identity {}: not an age identity file", path.display()))?;
        if keys.is_empty() {
            return Err(format!("identity {}: holds no identity", path.display()));
        }
        Ok(Identities { keys })
    }

    /// Decrypts a whole encrypted file's bytes.
    pub fn open(&self, sealed: &[u8]) -> Result<Vec<u8>, String> {
        let decryptor = age::Decryptor::new_buffered(sealed).map_err(|e| format!("age: {e}"))?;
        let mut reader = decryptor
            .decrypt(self.keys.iter().map(|k| k.as_ref() as _))
            .map_err(|e| format!("age: {e}"))?;
        let mut out = Vec::new();
        reader
            .read_to_end(&mut out)
            .map_err(|e| format!("age: {e}"))?;
        Ok(out)
    }
}

/// Reads an evidence file: as it is, or decrypted when its name ends in `.age` (which needs
/// `identities`).
pub fn read_evidence(path: &Path, identities: Option<&Identities>) -> Result<Vec<u8>, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    if !path.to_string_lossy().ends_with(SUFFIX) {
        return Ok(bytes);
    }
    match identities {
        Some(ids) => ids
            .open(&bytes)
            .map_err(|e| format!("{}: {e}", path.display())),
        None => Err(format!(
            "{} is encrypted: give --identity FILE (the age or SSH key it was encrypted to)",
            path.display()
        )),
    }
}

#[cfg(test)]
// X25519 keys are what `age-keygen` and Debian's age make: the ones people will decrypt with.
#[allow(deprecated)]
mod tests {
    use super::*;

    #[test]
    fn what_is_sealed_opens_with_the_identity_and_its_digest_is_of_the_ciphertext() {
        use age::secrecy::ExposeSecret;
        let key = age::x25519::Identity::generate();
        let public = key.to_public().to_string();
        let recipients =
            Recipients::parse([public.as_str(), "# a comment", ""]).expect("recipients");
        assert_eq!(recipients.shown(), std::slice::from_ref(&public));
        let mut sealed = recipients.seal(Hashing::new(Vec::new())).expect("seal");
        sealed.write_all(b"{\"rows\":[]}").expect("write");
        let (bytes, digest) = sealed.finish().expect("finish").finish();
        assert!(!bytes.windows(6).any(|w| w == b"\"rows\""), "no clear text");
        assert_eq!(digest, hex::encode(Sha256::digest(&bytes)));
        let dir = tempfile::tempdir().expect("dir");
        let id_path = dir.path().join("id.txt");
        std::fs::write(&id_path, key.to_string().expose_secret()).expect("id");
        let ids = Identities::from_file(&id_path).expect("identities");
        assert_eq!(ids.open(&bytes).expect("open"), b"{\"rows\":[]}");
        let other = dir.path().join("other.txt");
        std::fs::write(
            &other,
            age::x25519::Identity::generate()
                .to_string()
                .expose_secret(),
        )
        .expect("other");
        let wrong = Identities::from_file(&other).expect("identities");
        assert!(wrong.open(&bytes).is_err(), "another key does not open it");
    }

    #[test]
    fn a_recipient_that_is_not_a_public_key_is_refused_by_name_only() {
        let Err(e) = Recipients::parse(["AGE-SECRET-KEY-1QQQQQQQQQQQQQQQQQQQQQQQQQQQQQ"]) else {
            panic!("a secret key is no recipient")
        };
        assert!(e.contains("a recipient is an age public key"), "{e}");
        assert!(!e.contains("QQQQ"), "a pasted secret is not echoed: {e}");
        assert!(Recipients::parse(["age1notvalid"]).is_err());
        assert!(Recipients::parse(["", "# only comments"]).is_err());
    }
}
