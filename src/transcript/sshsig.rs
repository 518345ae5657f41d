//! A strict reader of armored SSHSIG signatures (OpenSSH PROTOCOL.sshsig), as strict as
//! `ssh-keygen -Y verify` and stricter where the format allows only one reading: the armor
//! lines exactly, canonical base64, the magic `SSHSIG`, version 1, an Ed25519 public key, the
//! namespace [`NAMESPACE`], an empty reserved field, hash `sha512`, an Ed25519 signature, every
//! length exact and no byte after the last field. Only then is it handed to `ssh-key` to verify.

use base64::Engine as _;
use ssh_key::{PublicKey, SshSig};

use super::sign::NAMESPACE;

const BEGIN: &str = "-----BEGIN SSH SIGNATURE-----";
const END: &str = "-----END SSH SIGNATURE-----";

/// A signature that passed every structural check.
#[derive(Debug, Clone)]
pub struct StrictSig {
    sig: SshSig,
    key: PublicKey,
}

impl StrictSig {
    /// The signing key the signature names (trust it only if something else vouches for it).
    pub fn public_key(&self) -> PublicKey {
        self.key.clone()
    }

    /// The parsed signature.
    pub fn inner(&self) -> &SshSig {
        &self.sig
    }
}

/// Parses an armored SSHSIG (as a `.sig` file holds it, a final newline allowed).
pub fn parse_armored(text: &str) -> Result<StrictSig, String> {
    parse_armored_in(text, NAMESPACE)
}

/// [`parse_armored`] for a signature in another namespace (a plan's approval).
pub fn parse_armored_in(text: &str, expected: &str) -> Result<StrictSig, String> {
    let body = text
        .strip_suffix('\n')
        .map(|t| t.strip_suffix('\r').unwrap_or(t))
        .unwrap_or(text);
    let lines: Vec<&str> = body
        .split('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .collect();
    let (Some(first), Some(last)) = (lines.first(), lines.last()) else {
        return Err("empty".into());
    };
    if *first != BEGIN || *last != END || lines.len() < 3 {
        return Err(format!("not armored as {BEGIN} … {END}"));
    }
    let mut b64 = String::new();
    for line in &lines[1..lines.len() - 1] {
        if line.is_empty()
            || !line
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'='))
        {
            return Err("the armor holds something other than base64 lines".into());
        }
        b64.push_str(line);
    }
    let blob = base64::engine::general_purpose::STANDARD
        .decode(b64.as_bytes())
        .map_err(|e| format!("bad base64: {e}"))?;
    let key = check_blob(&blob, expected)?;
    let sig = SshSig::from_pem(body.as_bytes()).map_err(|e| format!("unreadable: {e}"))?;
    if sig.public_key() != key.key_data() {
        return Err("the signature's key does not read back the same".into());
    }
    Ok(StrictSig { sig, key })
}

/// Reads SSH wire strings off the front of a buffer.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if self.0.len() < n {
            return Err("a field runs past the end".into());
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn u32(&mut self) -> Result<u32, String> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn string(&mut self) -> Result<&'a [u8], String> {
        let n = self.u32()? as usize;
        self.take(n)
    }

    fn end(&self, what: &str) -> Result<(), String> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(format!("{} byte(s) after the {what}", self.0.len()))
        }
    }
}

/// Checks the decoded blob field by field; returns the public key.
fn check_blob(blob: &[u8], expected: &str) -> Result<PublicKey, String> {
    let mut r = Reader(blob);
    if r.take(6)? != b"SSHSIG" {
        return Err("no SSHSIG magic".into());
    }
    let version = r.u32()?;
    if version != 1 {
        return Err(format!("version {version}, not 1"));
    }
    let key_blob = r.string()?;
    let namespace = r.string()?;
    if namespace != expected.as_bytes() {
        return Err(format!(
            "namespace {:?}, not {expected:?}",
            String::from_utf8_lossy(namespace)
        ));
    }
    if !r.string()?.is_empty() {
        return Err("the reserved field is not empty".into());
    }
    let hash = r.string()?;
    if hash != b"sha512" {
        return Err(format!(
            "hash algorithm {:?}, not \"sha512\"",
            String::from_utf8_lossy(hash)
        ));
    }
    let signature = r.string()?;
    r.end("signature")?;

    let mut k = Reader(key_blob);
    if k.string()? != b"ssh-ed25519" {
        return Err("the signing key is not ssh-ed25519".into());
    }
    if k.string()?.len() != 32 {
        return Err("the Ed25519 key is not 32 bytes".into());
    }
    k.end("public key")?;
    let mut s = Reader(signature);
    if s.string()? != b"ssh-ed25519" {
        return Err("the signature is not ssh-ed25519".into());
    }
    if s.string()?.len() != 64 {
        return Err("the Ed25519 signature is not 64 bytes".into());
    }
    s.end("signature blob")?;
    PublicKey::from_bytes(key_blob).map_err(|e| format!("unreadable key: {e}"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::transcript::sign::Signer;

    fn blob_of(armored: &str) -> Vec<u8> {
        let b64: String = armored
            .lines()
            .filter(|l| !l.starts_with("-----"))
            .collect();
        base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap()
    }

    fn armor(blob: &[u8]) -> String {
        let b64 = base64::engine::general_purpose::STANDARD.encode(blob);
        let lines: Vec<String> = b64
            .as_bytes()
            .chunks(70)
            .map(|c| String::from_utf8(c.to_vec()).unwrap())
            .collect();
        format!("{BEGIN}\n{}\n{END}\n", lines.join("\n"))
    }

    #[test]
    fn a_signature_of_ours_reads_and_verifies() {
        let signer = Signer::generate("t").unwrap();
        let pem = signer.sign(b"data").unwrap();
        let sig = parse_armored(&pem).unwrap();
        sig.public_key()
            .verify(NAMESPACE, b"data", sig.inner())
            .unwrap();
        // Re-armored from the same blob it still reads.
        parse_armored(&armor(&blob_of(&pem))).unwrap();
    }

    #[test]
    fn every_flipped_length_byte_and_trailing_byte_is_refused() {
        let signer = Signer::generate("t").unwrap();
        let pem = signer.sign(b"data").unwrap();
        let blob = blob_of(&pem);
        let mut accepted = 0;
        for i in 0..blob.len() {
            for bit in 0..8 {
                let mut b = blob.clone();
                b[i] ^= 1 << bit;
                if let Ok(sig) = parse_armored(&armor(&b))
                    && sig
                        .public_key()
                        .verify(NAMESPACE, b"data", sig.inner())
                        .is_ok()
                {
                    accepted += 1;
                }
            }
        }
        assert_eq!(accepted, 0);
        let mut longer = blob.clone();
        longer.push(0);
        assert!(
            parse_armored(&armor(&longer))
                .unwrap_err()
                .contains("after")
        );
    }

    #[test]
    fn wrong_hash_namespace_and_version_are_refused() {
        let signer = Signer::generate("t").unwrap();
        let blob = blob_of(&signer.sign(b"data").unwrap());
        let text = |b: &[u8]| parse_armored(&armor(b)).unwrap_err();
        let replace = |from: &[u8], to: &[u8]| {
            let at = blob.windows(from.len()).position(|w| w == from).unwrap();
            let mut b = blob[..at - 4].to_vec();
            b.extend_from_slice(&(to.len() as u32).to_be_bytes());
            b.extend_from_slice(to);
            b.extend_from_slice(&blob[at + from.len()..]);
            b
        };
        assert!(text(&replace(b"sha512", b"sha256")).contains("sha256"));
        assert!(text(&replace(NAMESPACE.as_bytes(), b"file")).contains("namespace"));
        let mut v2 = blob.clone();
        v2[9] = 2;
        assert!(text(&v2).contains("version"));
        let mut magic = blob.clone();
        magic[0] = b'X';
        assert!(text(&magic).contains("magic"));
        assert!(parse_armored("garbage").is_err());
        assert!(parse_armored(&armor(&blob).replace(BEGIN, "-----BEGIN SSH SIG-----")).is_err());
    }
}
