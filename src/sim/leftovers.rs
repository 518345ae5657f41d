//! What an attacker can leave behind besides API keys and Subscriptions (facts file, "What an
//! attacker can leave behind"): tenant-app webhooks and their deliveries, SMART apps, CORS
//! origins, invitations and bulk exports — their stored form and the JSON ESUS publishes for
//! each. Every object keeps who created it even where ESUS serves no such field, so the ground
//! truth and the scoring accessors can name the creator; the API serves only published fields.

use std::collections::BTreeMap;

use jiff::Timestamp;
use serde_json::{Map, Value, json};

/// The events a tenant-app webhook may subscribe to (postTenant-appsByIdWebhooks's enum).
pub(crate) const WEBHOOK_EVENTS: [&str; 10] = [
    "user.created",
    "user.email_verified",
    "user.password_changed",
    "user.password_reset",
    "user.email_changed",
    "user.deleted",
    "user.mfa_enabled",
    "user.mfa_disabled",
    "user.locked",
    "user.refresh_reuse",
];

/// A tenant-app webhook.
#[derive(Debug, Clone)]
pub(crate) struct Webhook {
    pub(crate) id: String,
    pub(crate) app_id: String,
    pub(crate) url: String,
    pub(crate) events: Vec<String>,
    pub(crate) description: Option<String>,
    pub(crate) active: bool,
    pub(crate) secret: String,
    pub(crate) created_at: Timestamp,
    pub(crate) updated_at: Timestamp,
    pub(crate) created_by: String,
}

impl Webhook {
    /// The published object; `secret` only when `with_secret` (create, and a PATCH that
    /// rotates it).
    pub(crate) fn to_json(&self, with_secret: bool) -> Value {
        let mut m = Map::new();
        m.insert("id".into(), json!(self.id));
        m.insert("appId".into(), json!(self.app_id));
        m.insert("url".into(), json!(self.url));
        m.insert("events".into(), json!(self.events));
        m.insert("description".into(), json!(self.description));
        m.insert("active".into(), json!(self.active));
        if with_secret {
            m.insert("secret".into(), json!(self.secret));
        }
        m.insert("createdAt".into(), json!(self.created_at));
        m.insert("updatedAt".into(), json!(self.updated_at));
        Value::Object(m)
    }
}

/// One delivery attempt record of a webhook.
#[derive(Debug, Clone)]
pub(crate) struct WebhookDelivery {
    pub(crate) id: String,
    pub(crate) webhook_id: String,
    pub(crate) event_id: String,
    pub(crate) event_type: String,
    /// `pending`, `delivered`, `failed` or `dead`.
    pub(crate) status: String,
    pub(crate) attempts: u32,
    pub(crate) last_status_code: Option<u16>,
    pub(crate) last_error: Option<String>,
    pub(crate) last_attempt_at: Option<Timestamp>,
    pub(crate) delivered_at: Option<Timestamp>,
    pub(crate) created_at: Timestamp,
}

impl WebhookDelivery {
    /// The published object (getTenant-appsByIdWebhooksByWebhookIdDeliveries).
    pub(crate) fn to_json(&self) -> Value {
        json!({
            "id": self.id, "webhookId": self.webhook_id, "eventId": self.event_id,
            "eventType": self.event_type, "status": self.status, "attempts": self.attempts,
            "lastStatusCode": self.last_status_code, "lastError": self.last_error,
            "lastAttemptAt": self.last_attempt_at, "deliveredAt": self.delivered_at,
            "createdAt": self.created_at,
        })
    }
}

/// A registered SMART on FHIR app.
#[derive(Debug, Clone)]
pub(crate) struct SmartApp {
    pub(crate) id: String,
    pub(crate) client_id: String,
    pub(crate) name: String,
    pub(crate) description: Option<String>,
    pub(crate) redirect_uris: Vec<String>,
    pub(crate) scopes: Vec<String>,
    pub(crate) launch_uri: Option<String>,
    pub(crate) logo_uri: Option<String>,
    pub(crate) is_confidential: bool,
    pub(crate) active: bool,
    pub(crate) created_at: Timestamp,
    pub(crate) updated_at: Timestamp,
    pub(crate) created_by: String,
}

impl SmartApp {
    /// The published object; `clientSecret` only in the create answer of a confidential app.
    pub(crate) fn to_json(&self, client_secret: Option<&str>) -> Value {
        let mut m = Map::new();
        m.insert("id".into(), json!(self.id));
        m.insert("clientId".into(), json!(self.client_id));
        if let Some(s) = client_secret {
            m.insert("clientSecret".into(), json!(s));
        }
        m.insert("name".into(), json!(self.name));
        let optional = [
            ("description", &self.description),
            ("launchUri", &self.launch_uri),
            ("logoUri", &self.logo_uri),
        ];
        for (name, value) in optional {
            if let Some(v) = value {
                m.insert(name.into(), json!(v));
            }
        }
        m.insert("redirectUris".into(), json!(self.redirect_uris));
        m.insert("scopes".into(), json!(self.scopes));
        m.insert("isConfidential".into(), json!(self.is_confidential));
        m.insert("active".into(), json!(self.active));
        m.insert("createdAt".into(), json!(self.created_at));
        m.insert("updatedAt".into(), json!(self.updated_at));
        Value::Object(m)
    }
}

/// One allowed CORS origin of the organization. ESUS serves the origins as bare strings; who
/// added one and when is known only to the audit log (and to the simulator's ground truth).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CorsOrigin {
    pub(crate) origin: String,
    pub(crate) added_by: String,
    pub(crate) added_at: Timestamp,
}

/// An invitation to join the organization.
#[derive(Debug, Clone)]
pub(crate) struct Invitation {
    pub(crate) id: String,
    pub(crate) email: String,
    /// `owner` or `member`.
    pub(crate) role: String,
    pub(crate) invited_by: String,
    pub(crate) expires_at: Timestamp,
    pub(crate) accepted_at: Option<Timestamp>,
    pub(crate) accepted_by: Option<String>,
    pub(crate) practitioner_data: Option<Value>,
    pub(crate) created_at: Timestamp,
}

impl Invitation {
    /// The published object (getAuthInvitations).
    pub(crate) fn to_json(&self) -> Value {
        json!({
            "id": self.id, "email": self.email, "role": self.role, "invitedBy": self.invited_by,
            "expiresAt": self.expires_at, "acceptedAt": self.accepted_at,
            "acceptedBy": self.accepted_by, "practitionerData": self.practitioner_data,
            "createdAt": self.created_at,
        })
    }

    /// Still usable: neither accepted nor expired.
    pub(crate) fn pending_at(&self, now: Timestamp) -> bool {
        self.accepted_at.is_none() && self.expires_at > now
    }
}

/// A FHIR bulk export (`$export`) job.
#[derive(Debug, Clone)]
pub(crate) struct BulkExport {
    pub(crate) id: String,
    /// The kick-off request URL, as the status manifest's `request` reports it.
    pub(crate) request: String,
    /// Resource types it exports.
    pub(crate) types: Vec<String>,
    pub(crate) started_by: String,
    pub(crate) started_at: Timestamp,
    pub(crate) completes_at: Timestamp,
}

impl BulkExport {
    /// Whether it is still running at `now`.
    pub(crate) fn running_at(&self, now: Timestamp) -> bool {
        now < self.completes_at
    }

    /// `"35%"`: the share of its run time that has passed.
    pub(crate) fn progress_at(&self, now: Timestamp) -> String {
        let total = self
            .completes_at
            .duration_since(self.started_at)
            .as_secs_f64();
        let done = now.duration_since(self.started_at).as_secs_f64();
        let pct = if total > 0.0 {
            (done / total * 100.0).clamp(0.0, 99.0)
        } else {
            99.0
        };
        format!("{}%", pct.floor())
    }

    /// The complete manifest (getBulk-exportById, 200).
    pub(crate) fn manifest(&self, base_url: &str) -> Value {
        let output: Vec<Value> = self
            .types
            .iter()
            .map(|t| {
                json!({"type": t, "url": format!("{base_url}/bulk-export/{}/download/{t}", self.id),
                       "count": 4})
            })
            .collect();
        json!({
            "transactionTime": self.started_at, "request": self.request,
            "requiresAccessToken": true, "output": output, "error": [],
        })
    }
}

/// Everything of this module the simulator holds, behind the state lock.
#[derive(Debug, Default)]
pub(crate) struct Leftovers {
    pub(crate) webhooks: BTreeMap<String, Webhook>,
    /// Oldest first.
    pub(crate) deliveries: Vec<WebhookDelivery>,
    pub(crate) smart_apps: BTreeMap<String, SmartApp>,
    /// In the order ESUS serves them.
    pub(crate) cors: Vec<CorsOrigin>,
    pub(crate) invitations: BTreeMap<String, Invitation>,
    pub(crate) exports: BTreeMap<String, BulkExport>,
    /// Tenant apps known besides the `appId`s of API keys (apps of seeded webhooks).
    pub(crate) apps: std::collections::BTreeSet<String>,
    /// Who created each FHIR Subscription and when (the resource publishes neither).
    pub(crate) subscription_creators: BTreeMap<String, (String, Timestamp)>,
}
