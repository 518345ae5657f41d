//! Starting a simulator and the handle that controls it: base URL, ready facts, request log,
//! clock, read-only state snapshots for tests, and shutdown (also on drop).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use jiff::Timestamp;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::audit_chain::AuditTamper;
use super::auth::JwtSigner;
use super::clock::SimClock;
use super::config::SimConfig;
use super::error::SimError;
use super::faults::FaultEngine;
use super::ground_truth::{self, GroundTruth, LeftoverKind, LeftoverState};
use super::hooks::{Delivery, Hooks};
use super::ready::ReadyInfo;
use super::request_log::{RecordedRequest, RequestLog};
use super::shared::Shared;
use super::state::State;
use super::{routes, seed, server, tls};

/// Starts simulators.
#[derive(Debug)]
pub struct Simulator;

/// A running simulator. Dropping it stops the server.
pub struct SimHandle {
    shared: Arc<Shared>,
    ready: ReadyInfo,
    ca_pem: Option<String>,
    stop: watch::Sender<bool>,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for SimHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimHandle")
            .field("base_url", &self.ready.base_url)
            .finish_non_exhaustive()
    }
}

/// A snapshot of one API key, for tests (no secret, not even its digest).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyState {
    /// Key id.
    pub id: String,
    /// Name.
    pub name: String,
    /// Client id.
    pub client_id: String,
    /// Owner user id.
    pub owner: String,
    /// Scopes.
    pub scopes: Vec<String>,
    /// The `active` flag as stored.
    pub active: bool,
    /// Whether it was deleted (the API answers 404 for it).
    pub deleted: bool,
    /// The key that replaced it.
    pub superseded_by: Option<String>,
    /// When it was last rotated.
    pub superseded_at: Option<Timestamp>,
    /// When its grace window ends, if superseded.
    pub grace_ends_at: Option<Timestamp>,
    /// Whether it would authenticate now.
    pub usable_now: bool,
}

/// A snapshot of one session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionState {
    /// Session id.
    pub id: String,
    /// Whether it was logged out or revoked.
    pub revoked: bool,
    /// Its user.
    pub user_id: String,
    /// How many of its refresh tokens are still unused and unexpired (0 once burned).
    pub live_refresh_tokens: usize,
}

impl Simulator {
    /// Seeds the scenario, binds the listener and starts serving. Must be called inside a tokio
    /// runtime; the server runs on it until the handle is shut down or dropped.
    pub async fn start(config: SimConfig) -> Result<SimHandle, SimError> {
        if !super::config::listen_allowed(&config.listen) {
            return Err(SimError::NotLoopback(config.listen));
        }
        let (scenario, origin) = config.load_scenario()?;
        let listener = TcpListener::bind(config.listen)
            .await
            .map_err(|source| SimError::Bind {
                addr: config.listen,
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| SimError::Bind {
            addr: config.listen,
            source,
        })?;
        let faults = FaultEngine::new(&config.faults, config.seed);
        let token_ttl = faults.token_ttl().unwrap_or(config.token_ttl);
        let generated_tls = if config.tls {
            Some(tls::generate()?)
        } else {
            None
        };
        let base_url = match generated_tls {
            Some(_) => format!("https://{addr}"),
            None => format!("http://{addr}"),
        };
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            clock: SimClock::default(),
            faults,
            jwt: JwtSigner::random()?,
            token_ttl,
            log: RequestLog::default(),
            hooks: Hooks::start(addr),
            base_url: base_url.clone(),
        });
        // Hashing passwords is CPU work: keep it off the async workers.
        let seeded = {
            let (shared, origin) = (shared.clone(), origin.clone());
            tokio::task::spawn_blocking(move || {
                seed::seed(&shared, &scenario, &origin, config.seed)
            })
            .await
            .map_err(|e| SimError::Internal(e.to_string()))??
        };
        if config.smart_auto_approve {
            shared.lock().smart_auto_approve = true;
        }
        let mut ca_cert = None;
        let mut ca_pem = None;
        let acceptor = match generated_tls {
            Some(g) => {
                let path = config.ca_out.clone().unwrap_or_else(|| {
                    std::env::temp_dir().join(format!("esus-sim-{}-ca.pem", addr.port()))
                });
                tls::write_ca(&path, &g.ca_pem)?;
                ca_cert = Some(path);
                ca_pem = Some(g.ca_pem);
                Some(g.acceptor)
            }
            None => None,
        };
        let ready = ReadyInfo {
            base_url,
            admin_token: seeded.admin_token,
            admin_refresh_token: seeded.admin_refresh_token,
            admin_email: seeded.admin_email,
            admin_password: seeded.admin_password,
            user_id: seeded.user_id,
            key_id: seeded.key_id,
            key_client_id: seeded.key_client_id,
            key_app_id: seeded.key_app_id,
            key_secret: seeded.key_secret,
            session_id: seeded.session_id,
            session_token: seeded.session_token,
            session_refresh_token: seeded.session_refresh_token,
            ca_cert,
        };
        let (stop, stop_rx) = watch::channel(false);
        let router = routes::router(shared.clone());
        let task = tokio::spawn(server::serve(listener, router, acceptor, stop_rx));
        Ok(SimHandle {
            shared,
            ready,
            ca_pem,
            stop,
            task: Mutex::new(Some(task)),
        })
    }
}

impl SimHandle {
    /// `http://127.0.0.1:PORT` (no trailing slash).
    pub fn base_url(&self) -> String {
        self.ready.base_url.clone()
    }

    /// The ready facts (with secrets).
    pub fn ready(&self) -> &ReadyInfo {
        &self.ready
    }

    /// The CA certificate (PEM) when serving TLS.
    pub fn ca_cert_pem(&self) -> Option<&str> {
        self.ca_pem.as_deref()
    }

    /// Every request received so far (except `/_sim/`), in arrival order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.log.since(0)
    }

    /// The requests received after sequence number `seq` (as `GET /_sim/requests?since=SEQ`).
    pub fn requests_since(&self, seq: u64) -> Vec<RecordedRequest> {
        self.shared.log.since(seq)
    }

    /// Every rest-hook delivery attempt so far.
    pub fn deliveries(&self) -> Vec<Delivery> {
        self.shared.hooks.deliveries()
    }

    /// Moves the simulated clock forward.
    pub fn advance_clock(&self, by: Duration) {
        self.shared.clock.advance(by);
    }

    /// The simulated current time.
    pub fn now(&self) -> Timestamp {
        self.shared.clock.now()
    }

    /// A snapshot of a key (deleted keys included).
    pub fn api_key(&self, id: &str) -> Option<KeyState> {
        let now = self.shared.clock.now();
        let st = self.shared.lock();
        st.keys.get(id).map(|k| key_state(k, now))
    }

    /// Every key, deleted ones included, in creation order (to count replacements).
    pub fn api_keys(&self) -> Vec<KeyState> {
        let now = self.shared.clock.now();
        let st = self.shared.lock();
        st.key_order
            .iter()
            .filter_map(|id| st.keys.get(id))
            .map(|k| key_state(k, now))
            .collect()
    }

    /// Whether `X-API-Key: <client_id>:<secret>` would authenticate now, sent as the key's
    /// application would send it (with the key's `X-App-Id`, which is no secret). Reads the state
    /// directly: no request, no fault, no audit row, `lastUsedAt` untouched. The secret is only
    /// digested, never kept.
    pub fn key_authenticates(&self, client_id: &str, secret: &str) -> bool {
        let now = self.shared.clock.now();
        self.shared
            .lock()
            .key_by_credential(client_id, secret, now)
            .is_some()
    }

    /// Whether an access token would still authenticate now (issued, unexpired, its session not
    /// ended). Reads the state directly, like [`SimHandle::key_authenticates`].
    pub fn access_token_accepted(&self, token: &str) -> bool {
        let now = self.shared.clock.now();
        self.shared.lock().access_token_live(token, now)
    }

    /// Whether `POST /auth/refresh` would accept a refresh token now (unused, unburned,
    /// unexpired, its session not ended). Reads the state directly and uses nothing up.
    pub fn refresh_token_accepted(&self, token: &str) -> bool {
        let now = self.shared.clock.now();
        self.shared.lock().refresh_token_live(token, now)
    }

    /// The sessions of a user, revoked ones included.
    pub fn sessions_of(&self, user_id: &str) -> Vec<SessionState> {
        let now = self.shared.clock.now();
        let st = self.shared.lock();
        let mut live: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
        for rec in st.refresh_tokens.values().filter(|r| r.expires_at > now) {
            *live.entry(rec.session_id.as_str()).or_default() += 1;
        }
        st.sessions
            .values()
            .filter(|s| s.user_id == user_id)
            .map(|s| SessionState {
                id: s.id.clone(),
                revoked: s.revoked,
                user_id: s.user_id.clone(),
                live_refresh_tokens: live.get(s.id.as_str()).copied().unwrap_or(0),
            })
            .collect()
    }

    /// A user's organization role (`Admin`, `Member`, `ReadOnly`) while a member; `None` for
    /// an unknown user or one removed from the organization.
    pub fn org_role_of(&self, user_id: &str) -> Option<String> {
        self.shared
            .lock()
            .users
            .get(user_id)
            .filter(|u| u.member)
            .map(|u| u.org_role.as_str().to_owned())
    }

    /// How many audit rows name this user as agent.
    pub fn audit_rows_of(&self, user_id: &str) -> usize {
        self.shared
            .lock()
            .audit_by_user
            .get(user_id)
            .map_or(0, Vec::len)
    }

    /// All audit rows (a copy).
    pub fn audit_rows(&self) -> Vec<super::AuditRow> {
        self.shared.lock().audit.clone()
    }

    /// The organization every user belongs to (`org-…`).
    pub fn organization_id(&self) -> String {
        self.shared.lock().org_id.clone()
    }

    /// What the scenario planted: the answer key for drills and tests (empty lists for a
    /// scenario without an `incident`). Also `GET /_sim/ground-truth`.
    pub fn ground_truth(&self) -> GroundTruth {
        self.shared.lock().ground_truth.clone()
    }

    /// What an object is now (for scoring a sweep against the ground truth); `None` once the
    /// API no longer knows it.
    pub fn leftover_state(&self, kind: LeftoverKind, id: &str) -> Option<LeftoverState> {
        let now = self.shared.clock.now();
        ground_truth::state_of(&self.shared.lock(), kind, id, now)
    }

    /// Every object of a kind that exists now, whoever made it (to see what a sweep removed,
    /// kept, or made).
    pub fn leftovers_of(&self, kind: LeftoverKind) -> Vec<LeftoverState> {
        let now = self.shared.clock.now();
        let st = self.shared.lock();
        ground_truth::ids_of(&st, kind)
            .iter()
            .filter_map(|id| ground_truth::state_of(&st, kind, id, now))
            .collect()
    }

    /// Damages a stored audit row (`a-…`) so that `GET /admin/system-admins/audit/verify`
    /// reports a break; false when there is no such row. Also `POST /_sim/audit/tamper`.
    pub fn tamper_audit_row(&self, row_id: &str, how: AuditTamper) -> bool {
        self.shared.lock().tamper_audit(row_id, how)
    }

    /// Appends `n` audit rows now, by the compromised user from the compromised session's
    /// address (as the `audit_trickle` fault does): rows arriving while a test pulls the log.
    /// Also `POST /_sim/audit/trickle`.
    pub fn trickle_audit(&self, n: u64) {
        super::layers::trickle(&self.shared, None, None, n);
    }

    /// Whether a user is an ESUS system administrator.
    pub fn is_system_admin(&self, user_id: &str) -> bool {
        self.shared
            .lock()
            .users
            .get(user_id)
            .is_some_and(|u| u.system_admin)
    }

    /// The RBAC role slugs a user holds now (see [`super::role_id`] for their UUIDs).
    pub fn roles_of(&self, user_id: &str) -> Option<Vec<String>> {
        self.shared
            .lock()
            .users
            .get(user_id)
            .map(|u| u.roles.clone())
    }

    /// Stops accepting, closes open connections and waits for the server task.
    pub async fn shutdown(self) {
        self.stop.send_replace(true);
        let task = self.task.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(task) = task {
            let _ = task.await;
        }
    }
}

impl Drop for SimHandle {
    fn drop(&mut self) {
        self.stop.send_replace(true);
    }
}

fn key_state(k: &super::state::ApiKey, now: Timestamp) -> KeyState {
    KeyState {
        id: k.id.clone(),
        name: k.name.clone(),
        client_id: k.client_id.clone(),
        owner: k.owner.clone(),
        scopes: k.scopes.clone(),
        active: k.active,
        deleted: k.deleted,
        superseded_by: k.superseded_by.clone(),
        superseded_at: k.superseded_at,
        grace_ends_at: k.grace_ends_at,
        usable_now: k.usable_at(now).is_ok(),
    }
}
