//! The simulator as users meet it in a drill or a kill test: a separate `esus-ir sim` process,
//! found through its ready file, killed when the test ends (even when an assertion fails).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

/// A running `esus-ir sim`.
pub(crate) struct SimProcess {
    child: Child,
    /// The ready facts (secrets included).
    pub(crate) ready: Value,
    /// `http://127.0.0.1:PORT`.
    pub(crate) base_url: String,
}

impl Drop for SimProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl SimProcess {
    /// Starts the simulator with a scenario file (or the built-in one) and `--fault` specs, in
    /// `dir`; waits (bounded) for its ready file.
    pub(crate) fn start(dir: &Path, scenario: Option<&str>, faults: &[&str], seed: u64) -> Self {
        let ready_path = dir.join("sim-ready.json");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_esus-ir"));
        cmd.args(["sim", "--listen", "127.0.0.1:0", "--quiet"])
            .arg("--seed")
            .arg(seed.to_string())
            .arg("--ready-file")
            .arg(&ready_path)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some(text) = scenario {
            let path = dir.join("scenario.yaml");
            std::fs::write(&path, text).expect("write the scenario");
            cmd.arg("--scenario").arg(path);
        }
        for f in faults {
            cmd.arg("--fault").arg(f);
        }
        let child = cmd.spawn().expect("spawn esus-ir sim");
        let mut sim = SimProcess {
            child,
            ready: Value::Null,
            base_url: String::new(),
        };
        for _ in 0..600 {
            if let Some(v) = std::fs::read_to_string(&ready_path)
                .ok()
                .and_then(|t| serde_json::from_str::<Value>(&t).ok())
            {
                sim.ready = v;
                break;
            }
            if let Ok(Some(status)) = sim.child.try_wait() {
                panic!("esus-ir sim exited early: {status}");
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        sim.base_url = sim.ready["base_url"]
            .as_str()
            .expect("the simulator wrote its ready file")
            .to_string();
        sim
    }

    /// A ready fact.
    pub(crate) fn fact(&self, name: &str) -> String {
        self.ready[name]
            .as_str()
            .unwrap_or_else(|| panic!("ready fact {name}"))
            .to_string()
    }

    /// `esus-ir run …` against this simulator as its administrator, in `run_dir`, with no
    /// prompts; the signing key and config live in `home`.
    pub(crate) fn run_cmd(&self, home: &Path, run_dir: &Path) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_esus-ir"));
        for var in crate::run_support::CLEARED_ENV {
            cmd.env_remove(var);
        }
        cmd.env("XDG_CONFIG_HOME", home.join("config"))
            .env("NO_COLOR", "1")
            .env("ESUS_TOKEN", self.fact("admin_token"))
            .env("ESUS_BASE_URL", &self.base_url)
            .arg("run")
            .arg("--run-dir")
            .arg(run_dir)
            .arg("--non-interactive")
            .stdin(Stdio::null());
        cmd
    }

    /// A GET as the administrator: the JSON body.
    pub(crate) async fn get(&self, path: &str) -> Value {
        let resp = crate::sim_support::client()
            .get(format!("{}{path}", self.base_url))
            .bearer_auth(self.fact("admin_token"))
            .send()
            .await
            .expect("the simulator answers");
        assert_eq!(resp.status(), 200, "GET {path}");
        resp.json().await.expect("json")
    }

    /// The status of a patient read authenticated by an API key.
    pub(crate) async fn use_key(&self, client_id: &str, secret: &str) -> u16 {
        crate::sim_support::client()
            .get(format!("{}/fhir/Patient/p-0001", self.base_url))
            .header("X-API-Key", format!("{client_id}:{secret}"))
            .send()
            .await
            .expect("the simulator answers")
            .status()
            .as_u16()
    }
}

/// The transcripts of a run folder, oldest first (`transcript.jsonl`, `transcript.1.jsonl`, …).
pub(crate) fn transcripts(run_dir: &Path) -> Vec<PathBuf> {
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir(run_dir)
        .expect("run folder")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter_map(|p| {
            let name = p.file_name()?.to_str()?.to_string();
            let n = if name == "transcript.jsonl" {
                0
            } else {
                name.strip_prefix("transcript.")?
                    .strip_suffix(".jsonl")?
                    .parse()
                    .ok()?
            };
            Some((n, p))
        })
        .collect();
    found.sort();
    found.into_iter().map(|(_, p)| p).collect()
}

/// Counts the records of `kind` in a transcript that may still be growing (a partial last line is
/// not counted).
pub(crate) fn count_records(path: &Path, kind: &str) -> usize {
    let needle = format!("\"type\":\"{kind}\"");
    std::fs::read_to_string(path)
        .map(|t| t.lines().filter(|l| l.contains(&needle)).count())
        .unwrap_or(0)
}

/// The outputs of `step` as the first transcript of `run_dir` recorded them.
pub(crate) fn step_outputs(run_dir: &Path, step: &str) -> Value {
    let text = std::fs::read_to_string(run_dir.join("transcript.jsonl")).expect("transcript");
    text.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|r| r["type"] == "step-finished" && r["data"]["step"] == step)
        .map(|r| r["data"]["outputs"].clone())
        .unwrap_or_else(|| panic!("step `{step}` finished in the first transcript"))
}
