//! Turning an action and its rendered parameters into an exact HTTP request, and showing that
//! request to people with every credential and secret value redacted.

use std::collections::HashMap;

use indexmap::IndexMap;
use percent_encoding::{AsciiSet, CONTROLS, utf8_percent_encode};
use secrecy::{ExposeSecret, SecretSlice, SecretString};
use serde_json::{Map, Value};

use super::actions::{ActionSpec, BodyShape, Method, Place};
use super::paths;
use crate::event::{REDACTED, RequestView};

/// Characters escaped in a path segment: everything but RFC 3986 unreserved and a few safe ones,
/// so a parameter value can never add a `/`, `?`, `#` or dot-segment to the path.
const SEGMENT: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'<')
    .add(b'>')
    .add(b'`')
    .add(b'?')
    .add(b'{')
    .add(b'}')
    .add(b'/')
    .add(b'%')
    .add(b'\\')
    .add(b'^')
    .add(b'|')
    .add(b'[')
    .add(b']')
    .add(b'@')
    .add(b'&')
    .add(b'=')
    .add(b'+')
    .add(b';')
    .add(b',')
    .add(b'$')
    .add(b'!')
    .add(b'\'')
    .add(b'(')
    .add(b')')
    .add(b'*');

/// Which credential a request carries.
#[derive(Debug, Clone)]
pub enum Auth {
    /// The operator's token (refreshed as needed).
    Operator,
    /// A specific bearer token (e.g. the compromised session's, to log it out).
    Bearer(SecretString),
    /// `X-Api-Key: clientId:secret`, with `X-App-Id` when the key belongs to an app (ESUS's own
    /// clients send both on every request).
    ApiKey {
        /// `clientId:secret`.
        key: SecretString,
        /// The key's `appId`.
        app: Option<String>,
    },
    /// No credential.
    None,
}

/// A JSON request body: what people see, and (when it holds secrets) the bytes that are sent.
#[derive(Debug, Clone)]
pub struct Body {
    /// `Content-Type` header value.
    pub content_type: &'static str,
    display: Value,
    secret: Option<SecretSlice<u8>>,
}

impl Body {
    /// A body without secrets.
    pub fn plain(content_type: &'static str, value: Value) -> Self {
        Body {
            content_type,
            display: value,
            secret: None,
        }
    }

    /// A body holding secrets: `display` is shown, `wire` is sent.
    pub fn with_secret(content_type: &'static str, display: Value, wire: Vec<u8>) -> Self {
        Body {
            content_type,
            display,
            secret: Some(SecretSlice::from(wire)),
        }
    }

    /// The body as shown, secrets redacted.
    pub fn display(&self) -> &Value {
        &self.display
    }

    /// The bytes to send.
    pub fn wire_bytes(&self) -> Vec<u8> {
        match &self.secret {
            Some(s) => s.expose_secret().to_vec(),
            None => serde_json::to_vec(&self.display).unwrap_or_default(),
        }
    }
}

/// An exact request to ESUS.
#[derive(Debug, Clone)]
pub struct ApiRequest {
    /// HTTP method.
    pub method: Method,
    /// Path relative to the base URL, already percent-encoded.
    pub path: String,
    /// Query parameters.
    pub query: Vec<(String, String)>,
    /// JSON body.
    pub body: Option<Body>,
    /// Credential.
    pub auth: Auth,
}

impl ApiRequest {
    /// A plain GET with the operator's token.
    pub fn get(path: impl Into<String>) -> Self {
        ApiRequest {
            method: Method::Get,
            path: path.into(),
            query: Vec::new(),
            body: None,
            auth: Auth::Operator,
        }
    }

    /// The request as shown and recorded; `url` is the full URL it goes to.
    pub fn view(&self, url: &str) -> RequestView {
        let mut headers = Vec::new();
        match &self.auth {
            Auth::Operator | Auth::Bearer(_) => {
                headers.push(("Authorization".to_string(), format!("Bearer {REDACTED}")))
            }
            Auth::ApiKey { app, .. } => {
                headers.push(("X-Api-Key".to_string(), REDACTED.to_string()));
                if let Some(app) = app {
                    headers.push(("X-App-Id".to_string(), app.clone()));
                }
            }
            Auth::None => {}
        }
        if let Some(b) = &self.body {
            headers.push(("Content-Type".to_string(), b.content_type.to_string()));
        }
        RequestView {
            method: self.method.as_str().to_string(),
            url: url.to_string(),
            headers,
            body: self.body.as_ref().map(|b| b.display.clone()),
        }
    }
}

impl ApiRequest {
    /// Sets one field of the JSON body, in what is shown and in what is sent alike (a claim name,
    /// a claim tag): the two never differ but for secrets.
    pub fn set_body_field(&mut self, field: &str, value: Value) {
        let Some(body) = &mut self.body else {
            return;
        };
        if let Value::Object(m) = &mut body.display {
            m.insert(field.to_string(), value.clone());
        }
        if let Some(secret) = &body.secret {
            let mut wire: Value =
                serde_json::from_slice(secret.expose_secret()).unwrap_or(Value::Null);
            if let Value::Object(m) = &mut wire {
                m.insert(field.to_string(), value);
                body.secret = Some(SecretSlice::from(
                    serde_json::to_vec(&wire).unwrap_or_default(),
                ));
            }
        }
    }

    /// The compromised (or otherwise non-operator) credential this request presents: a bearer
    /// token, an API key (`clientId:secret`), or a refresh token in the body of an
    /// unauthenticated request. Never the operator's own token.
    pub fn credential(&self) -> Option<SecretString> {
        match &self.auth {
            Auth::Bearer(t) => Some(t.clone()),
            Auth::ApiKey { key, .. } => Some(key.clone()),
            Auth::Operator => None,
            Auth::None => {
                let secret = self.body.as_ref()?.secret.as_ref()?;
                let wire: Value = serde_json::from_slice(secret.expose_secret()).ok()?;
                wire.get("refreshToken")
                    .and_then(Value::as_str)
                    .map(|t| SecretString::from(t.to_string()))
            }
        }
    }

    /// Whether every credential this request carries can be sent as an HTTP header value; the
    /// error never holds the value.
    pub fn check_headers(&self) -> Result<(), String> {
        match &self.auth {
            Auth::Bearer(t) => header_value_ok(&format!("Bearer {}", t.expose_secret())),
            Auth::ApiKey { key, app } => {
                header_value_ok(key.expose_secret())?;
                app.as_deref().map_or(Ok(()), header_value_ok)
            }
            Auth::Operator | Auth::None => Ok(()),
        }
    }
}

/// Whether `text` can be an HTTP header value (visible ASCII and spaces; no control characters,
/// no line breaks). The error does not quote the value: it may be a secret.
pub fn header_value_ok(text: &str) -> Result<(), String> {
    let ok = text
        .bytes()
        .all(|b| b == b' ' || b == b'\t' || (0x21..0x7f).contains(&b));
    if ok {
        Ok(())
    } else {
        Err("holds control characters, a line break or non-ASCII text".into())
    }
}

/// Parameters after template rendering.
#[derive(Debug, Default)]
pub struct Params {
    /// Every parameter, rendered with secrets shown as [`REDACTED`].
    pub display: IndexMap<String, Value>,
    /// Secret parameters, rendered with the real values (strings as they are, others as JSON).
    pub secrets: HashMap<String, SecretString>,
}

impl Params {
    fn get(&self, name: &str) -> Option<&Value> {
        self.display.get(name).filter(|v| !v.is_null())
    }

    /// A secret parameter's value, when given and not empty.
    pub fn secret(&self, name: &str) -> Option<SecretString> {
        self.secrets
            .get(name)
            .filter(|s| !s.expose_secret().is_empty())
            .cloned()
    }
}

/// A request that cannot be built from these parameters.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BuildError(pub String);

/// Builds the request for a one-request action (or the first request of a special one).
pub fn build(action: &ActionSpec, params: &Params) -> Result<ApiRequest, BuildError> {
    if action.name == "http" {
        return build_http(params);
    }
    let mut path = String::new();
    for seg in action.path.split('/').skip(1) {
        path.push('/');
        match seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
            Some(name) => path.push_str(&segment(name, params.get(name))?),
            None => path.push_str(seg),
        }
    }
    let mut query = Vec::new();
    let mut flat = Map::new();
    let mut wire_flat: Option<Map<String, Value>> = None;
    let mut auth = if action.unauthenticated {
        Auth::None
    } else {
        Auth::Operator
    };
    for p in action.params {
        match p.place {
            Place::Query => {
                if let Some(v) = params.get(p.name) {
                    query.push((p.wire.to_string(), scalar_text(v)));
                }
            }
            Place::Body => {
                if let Some(v) = params.get(p.name) {
                    flat.insert(p.wire.to_string(), v.clone());
                    // A secret parameter is shown redacted but sent with its real value.
                    if let Some(real) = params.secrets.get(p.name) {
                        let text = real.expose_secret();
                        let value = serde_json::from_str::<Value>(text)
                            .ok()
                            .filter(|v| v.is_array() || v.is_object())
                            .unwrap_or_else(|| Value::from(text));
                        wire_flat
                            .get_or_insert_with(Map::new)
                            .insert(p.wire.to_string(), value);
                    }
                }
            }
            Place::Bearer => {
                match params
                    .secrets
                    .get(p.name)
                    .filter(|t| !t.expose_secret().is_empty())
                {
                    Some(t) => auth = Auth::Bearer(t.clone()),
                    // Without it the operator's own token would be used: logging the operator
                    // out instead of the attacker's session.
                    None if p.required => {
                        return Err(BuildError(format!(
                            "`{}` needs the token `{}`, and it is empty (give the secret input, or add a `when:` that skips the step without it)",
                            action.name, p.name
                        )));
                    }
                    None => {}
                }
            }
            Place::Path | Place::Internal => {}
        }
    }
    let wire = wire_flat.map(|secret| {
        let mut all = flat.clone();
        all.extend(secret);
        all
    });
    let shape = |m: Map<String, Value>| match action.body {
        BodyShape::FhirSubscription => subscription(m),
        _ => Value::Object(m),
    };
    let content_type = match action.body {
        BodyShape::FhirSubscription => "application/fhir+json",
        _ => "application/json",
    };
    let body = match (action.body, wire) {
        (BodyShape::None | BodyShape::Raw, _) => None,
        (BodyShape::Fixed(text), _) => Some(Body::plain(
            content_type,
            serde_json::from_str(text).unwrap_or(Value::Null),
        )),
        (_, Some(wire)) => Some(Body::with_secret(
            content_type,
            shape(flat),
            serde_json::to_vec(&shape(wire)).unwrap_or_default(),
        )),
        (_, None) => Some(Body::plain(content_type, shape(flat))),
    };
    Ok(ApiRequest {
        method: action.method,
        path,
        query,
        body,
        auth,
    })
}

fn build_http(params: &Params) -> Result<ApiRequest, BuildError> {
    let method = params
        .get("method")
        .and_then(Value::as_str)
        .and_then(Method::parse)
        .ok_or_else(|| BuildError("`method` must be GET, POST, PUT, PATCH or DELETE".into()))?;
    let path = params
        .get("path")
        .and_then(Value::as_str)
        .ok_or_else(|| BuildError("`path` must be text".into()))?;
    paths::check_relative_path(path)
        .map_err(|why| BuildError(format!("`http` path `{path}` refused: {why}")))?;
    let path = format!("/{}", path.trim_start_matches('/'));
    let mut query = Vec::new();
    if let Some(q) = params.get("query") {
        let Value::Object(map) = q else {
            return Err(BuildError("`query` must be a mapping".into()));
        };
        for (k, v) in map {
            if !v.is_null() {
                query.push((k.clone(), scalar_text(v)));
            }
        }
    }
    let body = match (params.get("body"), params.secrets.get("body")) {
        (Some(display), Some(real)) => {
            let bytes = if display.is_string() {
                serde_json::to_vec(&Value::String(real.expose_secret().to_string()))
                    .unwrap_or_default()
            } else {
                real.expose_secret().as_bytes().to_vec()
            };
            Some(Body {
                content_type: "application/json",
                display: display.clone(),
                secret: Some(SecretSlice::from(bytes)),
            })
        }
        (Some(display), None) => Some(Body::plain("application/json", display.clone())),
        _ => None,
    };
    Ok(ApiRequest {
        method,
        path,
        query,
        body,
        auth: Auth::Operator,
    })
}

/// A FHIR R4 Subscription from the flat parameters, with the checklist's defaults.
fn subscription(mut flat: Map<String, Value>) -> Value {
    let mut channel = Map::new();
    channel.insert(
        "type".into(),
        flat.remove("type")
            .unwrap_or_else(|| Value::from("rest-hook")),
    );
    if let Some(e) = flat.remove("endpoint") {
        channel.insert("endpoint".into(), e);
    }
    channel.insert(
        "payload".into(),
        flat.remove("payload")
            .unwrap_or_else(|| Value::from("application/fhir+json")),
    );
    if let Some(h) = flat.remove("header") {
        channel.insert("header".into(), h);
    }
    let mut out = Map::new();
    out.insert("resourceType".into(), Value::from("Subscription"));
    out.insert(
        "status".into(),
        flat.remove("status")
            .unwrap_or_else(|| Value::from("active")),
    );
    for key in ["reason", "criteria", "end"] {
        if let Some(v) = flat.remove(key) {
            out.insert(key.into(), v);
        }
    }
    out.insert("channel".into(), Value::Object(channel));
    Value::Object(out)
}

/// Percent-encodes text as exactly one path segment.
pub fn encode_segment(text: &str) -> String {
    utf8_percent_encode(text, SEGMENT).to_string()
}

/// A path parameter as one encoded segment; empty, `.` and `..` are refused.
fn segment(name: &str, value: Option<&Value>) -> Result<String, BuildError> {
    let text = value.map(scalar_text).unwrap_or_default();
    if text.is_empty() || text == "." || text == ".." || text == REDACTED {
        return Err(BuildError(format!(
            "path parameter `{name}` is empty or not a usable id: `{text}`"
        )));
    }
    Ok(encode_segment(&text))
}

fn scalar_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        Value::Array(items) => items.iter().map(scalar_text).collect::<Vec<_>>().join(","),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::esus::actions::lookup;
    use serde_json::json;

    fn params(pairs: &[(&str, Value)]) -> Params {
        Params {
            display: pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
            secrets: HashMap::new(),
        }
    }

    #[test]
    fn path_parameters_cannot_change_the_path() {
        let a = lookup("api_keys.delete").expect("action");
        let r = build(a, &params(&[("id", json!("../admin/x?y#z"))])).expect("built");
        assert_eq!(r.path, "/api-keys/..%2Fadmin%2Fx%3Fy%23z");
        assert!(build(a, &params(&[("id", json!(".."))])).is_err());
        assert!(build(a, &params(&[("id", json!(""))])).is_err());
    }

    #[test]
    fn rotate_sends_grace_hours_and_subscriptions_have_the_fhir_shape() {
        let r = build(
            lookup("api_keys.rotate").expect("a"),
            &params(&[("id", json!("k-1")), ("grace_hours", json!(0))]),
        )
        .expect("built");
        assert_eq!(
            (r.method, r.path.as_str()),
            (Method::Post, "/api-keys/k-1/rotate")
        );
        assert_eq!(
            r.body.as_ref().map(Body::display),
            Some(&json!({"graceHours": 0}))
        );
        let s = build(
            lookup("subscription.create").expect("a"),
            &params(&[
                ("criteria", json!("AuditEvent?outcome=failure")),
                ("endpoint", json!("https://x/alerts")),
            ]),
        )
        .expect("built");
        assert_eq!(
            s.body.as_ref().map(Body::display),
            Some(
                &json!({"resourceType": "Subscription", "status": "active", "criteria": "AuditEvent?outcome=failure",
                "channel": {"type": "rest-hook", "endpoint": "https://x/alerts", "payload": "application/fhir+json"}})
            )
        );
    }

    #[test]
    fn credentials_are_redacted_in_the_view() {
        let mut p = params(&[("token", json!(REDACTED))]);
        p.secrets
            .insert("token".into(), SecretString::from("canary-token-123"));
        let r = build(lookup("auth.logout").expect("a"), &p).expect("built");
        assert!(matches!(r.auth, Auth::Bearer(_)));
        let view = serde_json::to_string(&r.view("https://h/auth/logout")).expect("json");
        assert!(!view.contains("canary-token-123"), "{view}");
        assert!(view.contains("Bearer [secret]"));
    }

    #[test]
    fn a_logout_without_its_token_is_refused_rather_than_logging_out_the_operator() {
        let err = build(
            lookup("auth.logout").expect("a"),
            &params(&[("token", Value::Null)]),
        )
        .expect_err("refused");
        assert!(err.0.contains("needs the token `token`"), "{err}");
    }

    #[test]
    fn secret_body_parameters_are_sent_real_and_shown_redacted() {
        let mut p = params(&[
            ("criteria", json!("AuditEvent?outcome=failure")),
            ("endpoint", json!("https://x/a")),
            ("header", json!(REDACTED)),
        ]);
        p.secrets.insert(
            "header".into(),
            SecretString::from(r#"["Authorization: Bearer hook-canary"]"#.to_string()),
        );
        let r = build(lookup("subscription.create").expect("a"), &p).expect("built");
        let body = r.body.expect("body");
        assert_eq!(body.display()["channel"]["header"], json!(REDACTED));
        let wire: Value = serde_json::from_slice(&body.wire_bytes()).expect("json");
        assert_eq!(
            wire["channel"]["header"],
            json!(["Authorization: Bearer hook-canary"])
        );
    }

    #[test]
    fn http_refuses_paths_that_leave_the_base_url_after_rendering() {
        let a = lookup("http").expect("a");
        assert!(
            build(
                a,
                &params(&[
                    ("method", json!("GET")),
                    ("path", json!("//evil.example/x"))
                ])
            )
            .is_err()
        );
        let ok = build(
            a,
            &params(&[
                ("method", json!("get")),
                ("path", json!("fhir/Patient")),
                ("query", json!({"_count": 1})),
            ]),
        )
        .expect("built");
        assert_eq!(
            (ok.path.as_str(), ok.query.clone()),
            (
                "/fhir/Patient",
                vec![("_count".to_string(), "1".to_string())]
            )
        );
    }
}
