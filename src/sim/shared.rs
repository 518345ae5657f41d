//! What every request handler shares: the state behind its lock, the clock, the faults, the
//! token signer, the request log and the rest-hook sender.

use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};

use super::auth::{self, JwtSigner};
use super::clock::SimClock;
use super::error::SimError;
use super::faults::FaultEngine;
use super::hooks::Hooks;
use super::request_log::RequestLog;
use super::state::{State, TokenRec};

/// Refresh tokens live 30 days ("Esus's default", esus-api-facts.md).
pub(crate) const REFRESH_TTL: SignedDuration = SignedDuration::from_hours(24 * 30);

/// The simulator's shared context (one per running simulator, behind an `Arc`).
pub(crate) struct Shared {
    pub(crate) state: Mutex<State>,
    pub(crate) clock: SimClock,
    pub(crate) faults: FaultEngine,
    pub(crate) jwt: JwtSigner,
    pub(crate) token_ttl: Duration,
    pub(crate) log: RequestLog,
    pub(crate) hooks: Hooks,
    /// The simulator's own base URL (for discovery documents and `Location` headers).
    pub(crate) base_url: String,
}

/// A freshly issued token pair (plaintext exists only here and in the response).
#[derive(Debug)]
pub(crate) struct TokenPair {
    pub(crate) access: String,
    pub(crate) refresh: String,
    pub(crate) expires_in: u64,
}

impl Shared {
    /// Locks the state; a poisoned lock is recovered because every update is a single step.
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Mints an access JWT and a refresh token for a session and registers their digests.
    pub(crate) fn issue_tokens(
        &self,
        st: &mut State,
        user_id: &str,
        session_id: &str,
        now: Timestamp,
    ) -> Result<TokenPair, SimError> {
        let ttl = SignedDuration::try_from(self.token_ttl).unwrap_or(SignedDuration::from_mins(15));
        let exp = now + ttl;
        let access = self.jwt.mint(user_id, session_id, now, exp)?;
        let refresh = auth::random_secret("rt_", 32);
        register_tokens(st, session_id, &access, &refresh, exp, now + REFRESH_TTL);
        Ok(TokenPair {
            access,
            refresh,
            expires_in: self.token_ttl.as_secs(),
        })
    }
}

/// Registers a token pair's digests for a session.
pub(crate) fn register_tokens(
    st: &mut State,
    session_id: &str,
    access: &str,
    refresh: &str,
    access_exp: Timestamp,
    refresh_exp: Timestamp,
) {
    st.access_tokens.insert(
        auth::digest(access),
        TokenRec {
            session_id: session_id.to_owned(),
            expires_at: access_exp,
        },
    );
    st.refresh_tokens.insert(
        auth::digest(refresh),
        TokenRec {
            session_id: session_id.to_owned(),
            expires_at: refresh_exp,
        },
    );
}
