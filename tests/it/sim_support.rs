//! Shared helpers of the simulator contract tests: start an in-process simulator, talk to it with
//! a plain reqwest client (its own reading of the contract, not the esus-ir client).

use esus_ir::sim::{SimConfig, SimHandle, Simulator};
use secrecy::ExposeSecret;
use serde_json::Value;

/// How a request authenticates.
#[derive(Clone, Copy)]
pub(crate) enum Cred<'a> {
    None,
    Bearer(&'a str),
    /// `clientId:secret` alone (`X-API-Key`, no `X-App-Id`).
    Key(&'a str),
    /// `clientId:secret` with the key's app id as `X-App-Id`, as ESUS's quickstart sends it.
    AppKey(&'a str, &'a str),
}

/// An API key credential as its application sends it: `X-API-Key`, plus `X-App-Id` when the key
/// belongs to an app.
pub(crate) struct KeyCred {
    /// `clientId:secret`.
    pub(crate) key: String,
    /// The key's `appId`.
    pub(crate) app: Option<String>,
}

impl KeyCred {
    /// From a create or rotate answer (`clientId`, `secret`, `appId`).
    pub(crate) fn of(key: &Value) -> KeyCred {
        KeyCred {
            key: format!(
                "{}:{}",
                key["clientId"].as_str().expect("clientId"),
                key["secret"].as_str().expect("secret")
            ),
            app: key["appId"].as_str().map(str::to_owned),
        }
    }

    /// The credential to send.
    pub(crate) fn cred(&self) -> Cred<'_> {
        match &self.app {
            Some(app) => Cred::AppKey(&self.key, app),
            None => Cred::Key(&self.key),
        }
    }
}

/// A running simulator and a client for it.
pub(crate) struct Sim {
    pub(crate) sim: SimHandle,
    pub(crate) http: reqwest::Client,
}

/// An answer: status, parsed JSON body (Null when empty), headers.
pub(crate) struct Answer {
    pub(crate) status: u16,
    pub(crate) body: Value,
    pub(crate) headers: reqwest::header::HeaderMap,
}

impl Answer {
    /// The text of an `{"error": "…"}` body (non-FHIR routes, and every 429), asserting that
    /// shape and nothing else.
    pub(crate) fn error(&self) -> &str {
        let keys: Vec<&String> = self
            .body
            .as_object()
            .map(|m| m.keys().collect())
            .unwrap_or_default();
        assert_eq!(keys, ["error"], "an {{\"error\"}} body: {}", self.body);
        self.body["error"].as_str().unwrap_or_default()
    }

    /// The OperationOutcome issue code (FHIR routes).
    pub(crate) fn issue_code(&self) -> &str {
        assert_eq!(
            self.body["resourceType"], "OperationOutcome",
            "{}",
            self.body
        );
        self.body["issue"][0]["code"].as_str().unwrap_or_default()
    }
}

/// An object's keys, sorted.
pub(crate) fn keys(v: &Value) -> Vec<String> {
    let mut k: Vec<String> = v
        .as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default();
    k.sort();
    k
}

/// Owned and sorted, to compare with [`keys`].
pub(crate) fn sorted(list: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = list.iter().map(|s| (*s).to_owned()).collect();
    v.sort();
    v
}

pub(crate) fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(std::time::Duration::from_secs(20))
        .build()
        .expect("reqwest client")
}

impl Sim {
    /// The default scenario, no faults.
    pub(crate) async fn start() -> Sim {
        Self::with(SimConfig::default()).await
    }

    /// A given configuration.
    pub(crate) async fn with(config: SimConfig) -> Sim {
        let sim = Simulator::start(config).await.expect("simulator starts");
        Sim {
            sim,
            http: client(),
        }
    }

    /// The ready admin token.
    pub(crate) fn admin(&self) -> String {
        self.sim.ready().admin_token.expose_secret().to_owned()
    }

    /// The compromised session's token.
    pub(crate) fn session(&self) -> String {
        self.sim.ready().session_token.expose_secret().to_owned()
    }

    /// The leaked key as `clientId:secret`.
    pub(crate) fn leaked_key(&self) -> String {
        let r = self.sim.ready();
        format!("{}:{}", r.key_client_id, r.key_secret.expose_secret())
    }

    /// The leaked key as its app sends it: `clientId:secret` with the app's `X-App-Id`.
    pub(crate) fn leaked(&self) -> KeyCred {
        let app = self.sim.ready().key_app_id.clone();
        assert!(app.is_some(), "the leaked key belongs to an app");
        KeyCred {
            key: self.leaked_key(),
            app,
        }
    }

    /// Sends a request and reads the answer.
    pub(crate) async fn call(
        &self,
        method: &str,
        path: &str,
        cred: Cred<'_>,
        body: Option<Value>,
    ) -> Answer {
        self.call_with(method, path, cred, body, &[]).await
    }

    /// Sends a request with extra headers.
    pub(crate) async fn call_with(
        &self,
        method: &str,
        path: &str,
        cred: Cred<'_>,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> Answer {
        let resp = self
            .try_call(method, path, cred, body, headers)
            .await
            .expect("request answered");
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let text = resp.text().await.expect("body");
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).expect("JSON body")
        };
        Answer {
            status,
            body,
            headers,
        }
    }

    /// Sends a request; the error is the transport's (e.g. a dropped connection).
    pub(crate) async fn try_call(
        &self,
        method: &str,
        path: &str,
        cred: Cred<'_>,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> reqwest::Result<reqwest::Response> {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.sim.base_url()));
        req = match cred {
            Cred::None => req,
            Cred::Bearer(t) => req.bearer_auth(t),
            Cred::Key(k) => req.header("X-API-Key", k),
            Cred::AppKey(k, app) => req.header("X-API-Key", k).header("X-App-Id", app),
        };
        for (n, v) in headers {
            req = req.header(*n, *v);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        req.send().await
    }

    /// Logs in with email and password and returns the access token.
    pub(crate) async fn login(&self, email: &str, password: &str) -> String {
        let a = self
            .call(
                "POST",
                "/auth/login",
                Cred::None,
                Some(serde_json::json!({"email": email, "password": password})),
            )
            .await;
        assert_eq!(a.status, 200, "{}", a.body);
        a.body["accessToken"]
            .as_str()
            .expect("accessToken")
            .to_owned()
    }
}
