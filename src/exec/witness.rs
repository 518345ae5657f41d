//! What this incident has seen ESUS accept: the "before" that containment is proven against.
//!
//! A refusal proves a credential dead only if ESUS accepted that same credential earlier in the
//! incident (a probe built wrong — a missing `X-App-Id`, a mistyped secret — is refused whatever
//! the key's state), and a 404 proves a key gone only if the incident saw it exist. So every
//! answer is watched: an operator's `GET /api-keys/{id}` (or a listing) answered 200 means the key
//! existed; a request presenting a compromised credential answered 2xx means ESUS accepted it.
//! Each fact is recorded (`witness`), so a resumed leg knows what earlier legs saw — and only from
//! their signed records. Credentials are never recorded: only a keyed fingerprint, whose key (a
//! random salt) lives in the run's 0600 secrets folder, never in the transcript.

use std::collections::HashSet;
use std::sync::Mutex;

use secrecy::ExposeSecret;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::esus::actions::Method;
use crate::esus::client::ApiResponse;
use crate::esus::request::{ApiRequest, Auth};
use crate::event::Event;

/// The file (in the secrets folder) holding the incident's fingerprint salt.
pub const SALT_FILE: &str = "witness.salt";

/// One fact an answer established.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Fact {
    /// The key existed (an operator's read answered 200).
    KeySeen(String),
    /// ESUS accepted the credential with this fingerprint.
    Accepted(String),
}

impl Fact {
    /// The event that records it.
    pub fn event(&self) -> Event {
        let (kind, what) = match self {
            Fact::KeySeen(id) => ("key-seen", id.clone()),
            Fact::Accepted(fp) => ("accepted", fp.clone()),
        };
        Event::Witness {
            fact: kind.to_string(),
            what,
        }
    }

    /// The fact a `witness` record states.
    pub fn from_record(fact: &str, what: &str) -> Option<Fact> {
        match fact {
            "key-seen" => Some(Fact::KeySeen(what.to_string())),
            "accepted" => Some(Fact::Accepted(what.to_string())),
            _ => None,
        }
    }
}

/// The incident's facts.
pub struct Witnesses {
    salt: Vec<u8>,
    facts: Mutex<HashSet<Fact>>,
}

impl Witnesses {
    /// Facts kept under `salt`, starting from what earlier legs recorded.
    pub fn new(salt: Vec<u8>, earlier: impl IntoIterator<Item = Fact>) -> Witnesses {
        Witnesses {
            salt,
            facts: Mutex::new(earlier.into_iter().collect()),
        }
    }

    /// The fingerprint of a credential: SHA-256 over the incident's secret salt and the
    /// credential. Without the salt it says nothing about the credential.
    pub fn fingerprint(&self, credential: &str) -> String {
        let mut h = Sha256::new();
        h.update(&self.salt);
        h.update(b"\0");
        h.update(credential.as_bytes());
        let mut out = hex::encode(h.finalize());
        out.truncate(32);
        out
    }

    /// Whether the incident saw key `id` exist.
    pub fn key_seen(&self, id: &str) -> bool {
        self.holds(&Fact::KeySeen(id.to_string()))
    }

    /// Whether ESUS accepted `credential` earlier in the incident.
    pub fn accepted(&self, credential: &str) -> bool {
        self.holds(&Fact::Accepted(self.fingerprint(credential)))
    }

    fn holds(&self, fact: &Fact) -> bool {
        self.facts.lock().is_ok_and(|f| f.contains(fact))
    }

    /// What the answer to `req` establishes that was not known yet (now known).
    pub fn observe(&self, req: &ApiRequest, resp: &ApiResponse) -> Vec<Fact> {
        let found = facts_of(req, resp, |c| self.fingerprint(c));
        let Ok(mut known) = self.facts.lock() else {
            return Vec::new();
        };
        found
            .into_iter()
            .filter(|f| known.insert(f.clone()))
            .collect()
    }
}

fn facts_of(req: &ApiRequest, resp: &ApiResponse, fp: impl Fn(&str) -> String) -> Vec<Fact> {
    let mut out = Vec::new();
    // A 403 is ESUS knowing who asked and refusing what was asked: the credential authenticated.
    let authenticated = (200..300).contains(&resp.status) || resp.status == 403;
    if let (true, Some(credential)) = (authenticated, req.credential()) {
        out.push(Fact::Accepted(fp(credential.expose_secret())));
    }
    if matches!(req.auth, Auth::Operator) && req.method == Method::Get && resp.status == 200 {
        out.extend(
            keys_read(&req.path, &resp.json())
                .into_iter()
                .map(Fact::KeySeen),
        );
    }
    out
}

/// The keys an operator's read showed: `GET /api-keys/{id}` or a listing's items.
fn keys_read(path: &str, body: &Value) -> Vec<String> {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    match segments.as_slice() {
        ["api-keys", _] => body
            .get("id")
            .and_then(Value::as_str)
            .map(str::to_string)
            .into_iter()
            .collect(),
        ["api-keys"] => body
            .get("items")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|k| k.get("id").and_then(Value::as_str).map(str::to_string))
            .collect(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::SecretString;

    fn answer(status: u16, body: &str) -> ApiResponse {
        ApiResponse {
            status,
            retry_after: None,
            body: bytes::Bytes::from(body.to_string()),
            duration: std::time::Duration::ZERO,
        }
    }

    fn probe(key: &str) -> ApiRequest {
        ApiRequest {
            auth: Auth::ApiKey {
                key: SecretString::from(key.to_string()),
                app: Some("app".into()),
            },
            ..ApiRequest::get("/api-keys/k-1")
        }
    }

    #[test]
    fn only_an_accepted_credential_is_witnessed_and_only_by_fingerprint() {
        let w = Witnesses::new(b"salt".to_vec(), []);
        for refused in [401, 404, 429, 500] {
            assert!(w.observe(&probe("c:s1"), &answer(refused, "")).is_empty());
        }
        assert!(!w.accepted("c:s1"));
        let forbidden = Witnesses::new(b"salt".to_vec(), []);
        forbidden.observe(&probe("c:s1"), &answer(403, ""));
        assert!(forbidden.accepted("c:s1"), "a 403 authenticated the key");
        let facts = w.observe(&probe("c:s1"), &answer(200, "{}"));
        assert_eq!(facts, [Fact::Accepted(w.fingerprint("c:s1"))]);
        assert!(w.accepted("c:s1"));
        assert!(!w.accepted("c:s2"), "another secret was never accepted");
        assert!(
            w.observe(&probe("c:s1"), &answer(200, "{}")).is_empty(),
            "known facts are not repeated"
        );
        let Event::Witness { what, .. } = &facts[0].event() else {
            panic!("a witness event");
        };
        assert!(!what.contains("s1"), "never the credential itself");
        let other = Witnesses::new(b"other salt".to_vec(), []);
        assert_ne!(other.fingerprint("c:s1"), w.fingerprint("c:s1"), "keyed");
    }

    #[test]
    fn a_key_is_seen_only_by_an_operators_successful_read() {
        let w = Witnesses::new(b"salt".to_vec(), []);
        let read = ApiRequest::get("/api-keys/k-1");
        assert!(w.observe(&read, &answer(404, "")).is_empty());
        assert!(!w.key_seen("k-1"));
        w.observe(&read, &answer(200, r#"{"id":"k-1"}"#));
        assert!(w.key_seen("k-1"));
        w.observe(
            &ApiRequest::get("/api-keys"),
            &answer(200, r#"{"items":[{"id":"k-2"},{"id":"k-3"}],"total":2}"#),
        );
        assert!(w.key_seen("k-2") && w.key_seen("k-3"));
        let as_key = probe("c:s");
        w.observe(&as_key, &answer(200, r#"{"id":"k-9"}"#));
        assert!(
            !w.key_seen("k-9"),
            "a read as the key itself is a probe, not a sighting"
        );
        let earlier = Witnesses::new(b"salt".to_vec(), [Fact::KeySeen("k-7".into())]);
        assert!(earlier.key_seen("k-7"), "what earlier legs recorded counts");
    }
}
