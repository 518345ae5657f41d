//! Helpers for executor tests: an in-process simulator and the real `esus-ir` binary pointed at
//! it, each test in its own temporary folder (run folder, signing key, config).

use std::path::{Path, PathBuf};
use std::process::Output;

use esus_ir::sim::{SimConfig, SimHandle, Simulator};
use secrecy::ExposeSecret;

/// Variables of the developer's environment that would change what a test runs.
pub(crate) const CLEARED_ENV: [&str; 9] = [
    "ESUS_TOKEN",
    "ESUS_IR_ENCRYPT_TO_FILE",
    "ESUS_IR_REQUIRE_ENCRYPTION",
    "ESUS_BASE_URL",
    "ESUS_IR_SIGN_KEY",
    "ESUS_REFRESH_TOKEN",
    "ESUS_COMPROMISED_TOKEN",
    "ESUS_LEAKED_KEY_SECRET",
    "RUST_LOG",
];

/// A simulator plus a scratch folder for one test.
pub(crate) struct Env {
    pub(crate) sim: SimHandle,
    pub(crate) dir: tempfile::TempDir,
}

impl Env {
    pub(crate) async fn start() -> Env {
        Self::with(SimConfig::default()).await
    }

    pub(crate) async fn with(config: SimConfig) -> Env {
        let sim = Simulator::start(config).await.expect("simulator starts");
        Env {
            sim,
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    pub(crate) fn run_dir(&self) -> PathBuf {
        self.dir.path().join("run")
    }

    pub(crate) fn transcript(&self) -> PathBuf {
        self.run_dir().join("transcript.jsonl")
    }

    /// `esus-ir run RUNBOOK …` against the simulator, with the admin token in ESUS_TOKEN.
    pub(crate) fn run_cmd(&self, runbook: &str) -> assert_cmd::Command {
        self.run_cmd_at(runbook, &self.run_dir())
    }

    /// Like [`Env::run_cmd`], with another run folder.
    pub(crate) fn run_cmd_at(&self, runbook: &str, run_dir: &Path) -> assert_cmd::Command {
        let mut cmd = self.bare_cmd();
        let ready = self.sim.ready();
        cmd.env("ESUS_TOKEN", ready.admin_token.expose_secret())
            .arg("run")
            .arg(runbook)
            .arg("--base-url")
            .arg(self.sim.base_url())
            .arg("--run-dir")
            .arg(run_dir)
            .arg("--operator")
            .arg("oncall@example.org");
        cmd
    }

    /// The binary with a clean environment pointing its config (signing key) into the temp dir.
    pub(crate) fn bare_cmd(&self) -> assert_cmd::Command {
        let mut cmd = assert_cmd::Command::cargo_bin("esus-ir").expect("binary");
        for var in CLEARED_ENV {
            cmd.env_remove(var);
        }
        // No NO_COLOR: stdout and stderr are pipes, and that alone must keep them plain
        // (`output` checks it for every command).
        cmd.env("XDG_CONFIG_HOME", self.dir.path().join("config"))
            .env("HOME", self.dir.path())
            .env_remove("NO_COLOR")
            .timeout(std::time::Duration::from_secs(120));
        cmd
    }

    /// A plain `std::process::Command` with the environment of [`Env::bare_cmd`] (for PTY and
    /// signal tests, which need the child process itself).
    /// The binary with the environment of [`Env::std_cmd`] (clean, with the run's credentials
    /// and secret inputs) and no arguments: for a resume, which takes runbook and inputs from
    /// the transcript.
    pub(crate) fn std_env_cmd(&self) -> std::process::Command {
        let base = self.std_cmd();
        let mut cmd = std::process::Command::new(base.get_program());
        for (k, v) in base.get_envs() {
            match v {
                Some(v) => cmd.env(k, v),
                None => cmd.env_remove(k),
            };
        }
        cmd
    }

    /// `esus-ir run --resume RUN_DIR --yes --non-interactive`, unattended, with the environment of
    /// [`Env::std_cmd`].
    pub(crate) fn resume_cmd(&self) -> std::process::Command {
        let mut cmd = self.std_env_cmd();
        cmd.arg("run")
            .arg("--resume")
            .arg(self.run_dir())
            .args(["--yes", "--non-interactive"])
            .stdin(std::process::Stdio::null());
        cmd
    }

    pub(crate) fn std_cmd(&self) -> std::process::Command {
        let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin("esus-ir"));
        for var in CLEARED_ENV {
            cmd.env_remove(var);
        }
        let r = self.sim.ready();
        cmd.env("XDG_CONFIG_HOME", self.dir.path().join("config"))
            .env("HOME", self.dir.path())
            .env("NO_COLOR", "1")
            .env("ESUS_TOKEN", r.admin_token.expose_secret())
            .env("ESUS_COMPROMISED_TOKEN", r.session_token.expose_secret())
            .env("ESUS_LEAKED_KEY_SECRET", r.key_secret.expose_secret())
            .args([
                "run",
                "api-key-compromise",
                "--base-url",
                &self.sim.base_url(),
                "--operator",
                "oncall@example.org",
            ])
            .arg("--run-dir")
            .arg(self.run_dir())
            .args([
                "--input",
                &format!("key_id={}", r.key_id),
                "--input",
                &format!("user_id={}", r.user_id),
            ]);
        cmd
    }

    /// The compromise inputs of the default scenario.
    pub(crate) fn compromise_args(&self, cmd: &mut assert_cmd::Command) {
        let r = self.sim.ready();
        cmd.args([
            "--input",
            &format!("key_id={}", r.key_id),
            "--input",
            &format!("user_id={}", r.user_id),
        ])
        .env("ESUS_COMPROMISED_TOKEN", r.session_token.expose_secret())
        .env("ESUS_LEAKED_KEY_SECRET", r.key_secret.expose_secret());
    }

    /// Writes a runbook into the temp dir and returns its path.
    pub(crate) fn runbook(&self, name: &str, text: &str) -> String {
        let path = self.dir.path().join(name);
        std::fs::write(&path, text).expect("write runbook");
        path.display().to_string()
    }
}

/// Runs a command on a blocking thread (the simulator keeps serving on the test's runtime).
/// Its stdout and stderr are pipes, so — unless the command asks for `--color always` — not one
/// ANSI escape may reach them: a paging tool's log would carry it.
pub(crate) async fn output(mut cmd: assert_cmd::Command) -> Output {
    let forced = cmd.get_args().any(|a| a == "always");
    let out = tokio::task::spawn_blocking(move || cmd.output().expect("esus-ir runs"))
        .await
        .expect("join");
    if !forced {
        assert_no_ansi(&out);
    }
    out
}

/// No ANSI escape in a non-terminal output.
pub(crate) fn assert_no_ansi(out: &Output) {
    for (name, bytes) in [("stdout", &out.stdout), ("stderr", &out.stderr)] {
        assert!(
            !bytes.contains(&0x1b),
            "an ANSI escape reached {name}, a pipe: {}",
            text(bytes)
        );
    }
}

pub(crate) fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Asserts the exit code, showing stdout and stderr when it differs.
pub(crate) fn assert_code(out: &Output, code: i32) {
    assert_eq!(
        out.status.code(),
        Some(code),
        "stdout:\n{}\nstderr:\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
}

/// Every file under `dir`, recursively.
pub(crate) fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(files_under(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// `esus-ir verify` on a transcript: (exit code, stdout).
pub(crate) fn verify(env: &Env, transcript: &Path) -> (i32, String) {
    let out = env
        .bare_cmd()
        .arg("verify")
        .arg(transcript)
        .output()
        .expect("verify runs");
    (out.status.code().unwrap_or(-1), text(&out.stdout))
}
