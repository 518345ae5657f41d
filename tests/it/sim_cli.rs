//! Simulator contract: the `esus-ir sim` command (ready file, refusals, no secrets on stdout),
//! TLS, and scenario files.

use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use esus_ir::sim::{SimConfig, Simulator};
use secrecy::ExposeSecret;
use serde_json::Value;

use crate::sim_support::client;

/// Kills the child on drop, so a failing assertion never leaves a server running.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn esus_ir() -> Command {
    Command::new(env!("CARGO_BIN_EXE_esus-ir"))
}

#[tokio::test]
async fn sim_command_writes_a_private_ready_file_and_keeps_secrets_off_stdout() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ready_path = dir.path().join("ready.json");
    let child = esus_ir()
        .args(["sim", "--listen", "127.0.0.1:0", "--ready-file"])
        .arg(&ready_path)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn esus-ir sim");
    let mut running = Running(child);
    let mut ready: Option<Value> = None;
    for _ in 0..400 {
        if let Ok(text) = std::fs::read_to_string(&ready_path) {
            ready = serde_json::from_str(&text).ok();
            if ready.is_some() {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let ready = ready.expect("the ready file appears");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&ready_path)
            .expect("meta")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    for field in [
        "base_url",
        "admin_token",
        "admin_refresh_token",
        "admin_email",
        "admin_password",
        "user_id",
        "key_id",
        "key_client_id",
        "key_app_id",
        "key_secret",
        "session_token",
        "session_refresh_token",
    ] {
        assert!(
            ready[field].as_str().is_some_and(|v| !v.is_empty()),
            "{field}"
        );
    }
    assert_eq!(ready["user_id"], "u-1001");
    assert_eq!(ready["key_id"], "k-1001");
    assert_eq!(ready["key_app_id"], "3f8e6b2a-9c41-4d7e-b5a0-2c6d9e1f4a73");
    let base = ready["base_url"].as_str().expect("base_url");
    assert!(base.starts_with("http://127.0.0.1:") && !base.ends_with('/'));
    let resp = client()
        .get(format!("{base}/api-keys"))
        .bearer_auth(ready["admin_token"].as_str().expect("token"))
        .send()
        .await
        .expect("answered");
    assert_eq!(resp.status(), 200);

    let _ = running.0.kill();
    let _ = running.0.wait();
    let mut stdout = String::new();
    running
        .0
        .stdout
        .take()
        .expect("stdout")
        .read_to_string(&mut stdout)
        .expect("read");
    let mut stderr = String::new();
    running
        .0
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut stderr)
        .expect("read");
    assert!(
        stdout.contains(base) && stdout.contains("k-1001") && stdout.contains("u-1001"),
        "{stdout}"
    );
    assert!(
        stdout.contains("key_app_id: 3f8e6b2a-9c41-4d7e-b5a0-2c6d9e1f4a73\n"),
        "the app id is no secret: {stdout}"
    );
    for secret in [
        "admin_token",
        "admin_refresh_token",
        "admin_password",
        "key_secret",
        "session_token",
        "session_refresh_token",
    ] {
        let value = ready[secret].as_str().expect("secret");
        assert!(
            !stdout.contains(value) && !stderr.contains(value),
            "{secret} leaked"
        );
    }
}

#[test]
fn sim_command_refuses_non_loopback_addresses_and_bad_faults() {
    let out = esus_ir()
        .args(["sim", "--listen", "0.0.0.0:0"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("loopback"));
    let out = esus_ir()
        .args(["sim", "--listen", "127.0.0.1:0", "--fault", "nap=1s"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("invalid fault `nap=1s`") && stderr.contains("unknown kind"),
        "{stderr}"
    );
    let help = esus_ir().args(["sim", "--help"]).output().expect("run");
    assert!(
        String::from_utf8_lossy(&help.stdout).contains("drop_count=1@POST /api-keys/{id}/rotate")
    );
}

// The docs promise 127.0.0.1 and ::1 only: the rest of 127.0.0.0/8 is refused too, by the
// command (exit 2, before binding) and by the library.
#[tokio::test]
async fn listen_on_127_0_0_2_is_refused_without_binding() {
    let out = esus_ir()
        .args(["sim", "--listen", "127.0.0.2:0"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("refusing to listen on 127.0.0.2:0") && stderr.contains("127.0.0.1, ::1"),
        "{stderr}"
    );
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("simulator ready"),
        "it never served"
    );
    let config = SimConfig {
        listen: "127.0.0.2:0".parse().expect("addr"),
        ..SimConfig::default()
    };
    let err = Simulator::start(config).await.expect_err("refused");
    assert!(
        matches!(err, esus_ir::sim::SimError::NotLoopback(_)),
        "{err}"
    );
    assert!(esus_ir::sim::listen_allowed(
        &"[::1]:0".parse().expect("addr")
    ));
    assert!(esus_ir::sim::listen_allowed(
        &"127.0.0.1:8080".parse().expect("addr")
    ));
    assert!(!esus_ir::sim::listen_allowed(
        &"127.1.2.3:0".parse().expect("addr")
    ));
}

#[tokio::test]
async fn tls_serves_with_a_generated_ca() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca_path = dir.path().join("ca.pem");
    let config = SimConfig {
        tls: true,
        ca_out: Some(ca_path.clone()),
        ..SimConfig::default()
    };
    let sim = Simulator::start(config).await.expect("starts");
    assert!(sim.base_url().starts_with("https://127.0.0.1:"));
    assert_eq!(sim.ready().ca_cert.as_deref(), Some(ca_path.as_path()));
    let pem = std::fs::read(&ca_path).expect("CA written");
    let ca = reqwest::Certificate::from_pem(&pem).expect("PEM");
    let http = reqwest::Client::builder()
        .no_proxy()
        .tls_certs_only([ca])
        .tls_version_min(reqwest::tls::Version::TLS_1_2)
        .build()
        .expect("client");
    let resp = http
        .get(format!("{}/auth/me", sim.base_url()))
        .bearer_auth(sim.ready().admin_token.expose_secret())
        .send()
        .await
        .expect("TLS answered");
    assert_eq!(resp.status(), 200);
    let untrusted = client()
        .get(format!("{}/auth/me", sim.base_url()))
        .send()
        .await;
    assert!(untrusted.is_err(), "an unknown CA is refused");
}

#[tokio::test]
async fn scenario_files_seed_the_simulator_and_errors_name_the_problem() {
    let yaml = esus_ir::sim::DEFAULT_SCENARIO_YAML.replace(
        "compromised:",
        "generate_keys: { count: 120, owner: u-0001, scopes: [Patient.read] }\ncompromised:",
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("many-keys.yaml");
    std::fs::write(&path, yaml).expect("write");
    let config = SimConfig {
        scenario: esus_ir::sim::ScenarioSource::File(path),
        ..SimConfig::default()
    };
    let sim = Simulator::start(config).await.expect("starts");
    let list: Value = client()
        .get(format!("{}/api-keys", sim.base_url()))
        .bearer_auth(sim.ready().admin_token.expose_secret())
        .send()
        .await
        .expect("answered")
        .json()
        .await
        .expect("json");
    assert_eq!(list["total"], 126);
    assert!(sim.api_key("gen-key-00120").is_some());

    let bad = esus_ir::sim::DEFAULT_SCENARIO_YAML.replace("roles: [researcher]", "roles: [wizard]");
    let err = SimConfig::default()
        .with_scenario_yaml(&bad)
        .map(|c| async move { Simulator::start(c).await });
    let err = match err {
        Ok(fut) => fut.await.expect_err("unknown role refused").to_string(),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("unknown role `wizard`"), "{err}");
    // An app id is a UUID (`appId` is `Format: uuid`), in scenarios too.
    let bad_app = esus_ir::sim::DEFAULT_SCENARIO_YAML.replace(
        "app_id: 3f8e6b2a-9c41-4d7e-b5a0-2c6d9e1f4a73",
        "app_id: app-ehr",
    );
    assert_ne!(bad_app, esus_ir::sim::DEFAULT_SCENARIO_YAML);
    let err = SimConfig::default()
        .with_scenario_yaml(&bad_app)
        .map(|c| async move { Simulator::start(c).await });
    let err = match err {
        Ok(fut) => fut
            .await
            .expect_err("a non-UUID app_id is refused")
            .to_string(),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("app_id `app-ehr` is not a UUID"), "{err}");
    let typo = SimConfig::default()
        .with_scenario_yaml("organization: {id: o, name: n}\nusers: []\nusres: []\n");
    assert!(
        typo.expect_err("unknown field")
            .to_string()
            .contains("usres")
    );
}

#[tokio::test]
async fn scenario_sessions_may_carry_literal_tokens() {
    let yaml = esus_ir::sim::DEFAULT_SCENARIO_YAML.replace(
        "created_minutes_ago: 95 }",
        "created_minutes_ago: 95, access_token: known-access-token, refresh_token: known-refresh-token }",
    );
    let sim = Simulator::start(
        SimConfig::default()
            .with_scenario_yaml(&yaml)
            .expect("yaml"),
    )
    .await
    .expect("starts");
    assert_eq!(
        sim.ready().session_token.expose_secret(),
        "known-access-token"
    );
    let me: Value = client()
        .get(format!("{}/auth/me", sim.base_url()))
        .bearer_auth("known-access-token")
        .send()
        .await
        .expect("answered")
        .json()
        .await
        .expect("json");
    assert_eq!(me["id"], "u-1001");
}
