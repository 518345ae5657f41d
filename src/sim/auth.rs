//! Credential primitives of the simulated ESUS: Argon2id passwords, SHA-256 digests for tokens and
//! key secrets, HS256 JWT access tokens, TOTP codes. No request handling here.

use argon2::{Algorithm, Argon2, Params, PasswordHash, PasswordHasher, PasswordVerifier, Version};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jiff::Timestamp;
use rand::RngCore;
use serde::Serialize;
use sha2::{Digest as _, Sha256};

use super::error::SimError;
use super::state::Digest;

/// SHA-256 of a token or secret: how the simulator stores them. Key secrets and tokens are
/// random and long, so a fast digest is safe here; Argon2 would make every API-key request slow.
pub(crate) fn digest(secret: &str) -> Digest {
    Sha256::digest(secret.as_bytes()).into()
}

/// Compares digests without an early exit.
pub(crate) fn digests_equal(a: &Digest, b: &Digest) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A random URL-safe string with a readable prefix, e.g. `sk_live_…`.
pub(crate) fn random_secret(prefix: &str, bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut buf);
    format!("{prefix}{}", URL_SAFE_NO_PAD.encode(buf))
}

/// Argon2id with a deliberately small cost: the simulator hashes every scenario password at
/// start-up and tests start many simulators (simulator assumption; ESUS's real cost is its own).
fn hasher() -> Result<Argon2<'static>, SimError> {
    let params = Params::new(1024, 1, 1, None).map_err(|e| SimError::Internal(e.to_string()))?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

/// Hashes a password to an Argon2id PHC string.
pub(crate) fn hash_password(password: &str) -> Result<String, SimError> {
    hasher()?
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| SimError::Internal(format!("hashing a scenario password: {e}")))
}

/// Checks a password against its PHC string.
pub(crate) fn verify_password(password: &str, phc: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(phc) else {
        return false;
    };
    hasher().is_ok_and(|h| h.verify_password(password.as_bytes(), &parsed).is_ok())
}

#[derive(Serialize)]
struct Claims<'a> {
    iss: &'a str,
    sub: &'a str,
    sid: &'a str,
    iat: i64,
    exp: i64,
    jti: String,
}

/// Signs access tokens with a key generated at each start.
pub(crate) struct JwtSigner {
    key: jsonwebtoken::EncodingKey,
}

impl JwtSigner {
    /// A signer with a fresh random HS256 key.
    pub(crate) fn random() -> Result<Self, SimError> {
        let mut secret = [0u8; 32];
        rand::rng().fill_bytes(&mut secret);
        let key = jsonwebtoken::EncodingKey::from_secret(&secret)
            .map_err(|e| SimError::Internal(format!("JWT key: {e}")))?;
        Ok(JwtSigner { key })
    }

    /// Mints an HS256 JWT for a session. The server validates tokens by their digest in its
    /// token table (which makes logout immediate); the signed claims are for clients that read
    /// `exp`.
    pub(crate) fn mint(
        &self,
        user_id: &str,
        session_id: &str,
        iat: Timestamp,
        exp: Timestamp,
    ) -> Result<String, SimError> {
        let claims = Claims {
            iss: "esus-sim",
            sub: user_id,
            sid: session_id,
            iat: iat.as_second(),
            exp: exp.as_second(),
            jti: random_secret("", 12),
        };
        jsonwebtoken::encode(&jsonwebtoken::Header::default(), &claims, &self.key)
            .map_err(|e| SimError::Internal(format!("signing a token: {e}")))
    }
}

/// The TOTP code (RFC 6238 with HMAC-SHA256, 6 digits, 30-second steps) for `secret` at `at`.
/// Public so drills and tests can answer the MFA step of a scenario user.
pub fn totp_code(secret: &[u8], at: Timestamp) -> String {
    let step = (at.as_second().max(0) / 30) as u64;
    let mac = hmac_sha256(secret, &step.to_be_bytes());
    let offset = usize::from(mac[31] & 0x0f);
    let bin = u32::from_be_bytes([
        mac[offset],
        mac[offset + 1],
        mac[offset + 2],
        mac[offset + 3],
    ]) & 0x7fff_ffff;
    format!("{:06}", bin % 1_000_000)
}

/// HMAC (RFC 2104) over SHA-256, written out because it is twenty lines and avoids a dependency.
fn hmac_sha256(key: &[u8], msg: &[u8]) -> [u8; 32] {
    let mut block = [0u8; 64];
    if key.len() > 64 {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let ipad: Vec<u8> = block.iter().map(|b| b ^ 0x36).collect();
    let opad: Vec<u8> = block.iter().map(|b| b ^ 0x5c).collect();
    let inner = Sha256::new()
        .chain_update(&ipad)
        .chain_update(msg)
        .finalize();
    Sha256::new()
        .chain_update(&opad)
        .chain_update(inner)
        .finalize()
        .into()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn hmac_matches_rfc4231_case_2() {
        let mac = hmac_sha256(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(
            hex::encode(mac),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn password_round_trip() {
        let phc = hash_password("correct horse").unwrap();
        assert!(phc.starts_with("$argon2id$"));
        assert!(verify_password("correct horse", &phc));
        assert!(!verify_password("wrong", &phc));
    }

    #[test]
    fn totp_is_stable_within_a_step() {
        let t = Timestamp::from_second(1_700_000_010).unwrap();
        let same = Timestamp::from_second(1_700_000_019).unwrap();
        assert_eq!(totp_code(b"k", t), totp_code(b"k", same));
        assert_eq!(totp_code(b"k", t).len(), 6);
    }
}
