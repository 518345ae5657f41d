//! The run folder may already exist, and someone may have planted links in it: links are never
//! followed (their targets stay untouched, nothing secret lands in them), a folder others may
//! write to or that is not ours is refused before any request is sent, an existing folder keeps
//! its mode, and a secret or an evidence file whose name is taken goes to a new file.

use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::Path;

use esus_ir::exec::evidence::{EvidenceWriter, Folders};

use crate::run_support::{Env, assert_code, output, text};

/// Creates a key; its secret is a secret output written to `secrets/create.new_secret`.
const CREATE: &str = "version: 1
name: create-key
steps:
  - id: create
    name: Create a key
    action: api_keys.create
    with: { name: run-folder-test, scopes: [\"Patient.read\"] }
    outputs:
      new_key_id: response.id
      new_secret: { value: response.secret, secret: true }
";

/// Reads only.
const LIST: &str = "version: 1
name: list-keys
steps:
  - id: list
    name: List keys
    action: api_keys.list
";

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .expect("metadata")
        .permissions()
        .mode()
        & 0o777
}

fn mkdir(path: &Path, mode: u32) {
    std::fs::create_dir_all(path).expect("mkdir");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

/// A world-readable file that must stay as it is.
fn bystander(env: &Env) -> std::path::PathBuf {
    let target = env.dir.path().join("bystander.txt");
    std::fs::write(&target, "untouched\n").expect("write");
    std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    target
}

fn folders(root: &Path) -> Folders {
    Folders {
        seal: None,
        evidence: root.join("evidence"),
        secrets: root.join("secrets"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_planted_secret_link_is_refused_before_any_request_and_its_target_untouched() {
    let env = Env::start().await;
    let target = bystander(&env);
    mkdir(&env.run_dir(), 0o700);
    mkdir(&env.run_dir().join("secrets"), 0o700);
    symlink(&target, env.run_dir().join("secrets/create.new_secret")).expect("plant");
    let rb = env.runbook("create.yaml", CREATE);
    let mut cmd = env.run_cmd(&rb);
    cmd.args(["--non-interactive", "--yes"]);
    let out = output(cmd).await;
    assert_code(&out, 2);
    assert!(
        text(&out.stderr).contains("is a symbolic link"),
        "{}",
        text(&out.stderr)
    );
    assert!(env.sim.requests().is_empty(), "{:?}", env.sim.requests());
    assert_eq!(
        std::fs::read_to_string(&target).expect("target"),
        "untouched\n"
    );
    assert_eq!(mode(&target), 0o644);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_planted_evidence_link_is_refused_before_any_request() {
    let env = Env::start().await;
    let outside = env.dir.path().join("outside");
    mkdir(&outside, 0o755);
    mkdir(&env.run_dir().join("evidence"), 0o700);
    symlink(&outside, env.run_dir().join("evidence/audit")).expect("plant");
    let rb = env.runbook("list.yaml", LIST);
    let mut cmd = env.run_cmd(&rb);
    cmd.args(["--non-interactive"]);
    let out = output(cmd).await;
    assert_code(&out, 2);
    assert!(env.sim.requests().is_empty(), "{:?}", env.sim.requests());
    assert_eq!(std::fs::read_dir(&outside).expect("outside").count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_planted_transcript_link_is_refused_before_any_request() {
    let env = Env::start().await;
    let target = bystander(&env);
    mkdir(&env.run_dir(), 0o700);
    symlink(&target, env.transcript()).expect("plant");
    let rb = env.runbook("list.yaml", LIST);
    let mut cmd = env.run_cmd(&rb);
    cmd.args(["--non-interactive"]);
    let out = output(cmd).await;
    assert_code(&out, 2);
    assert!(env.sim.requests().is_empty(), "{:?}", env.sim.requests());
    assert_eq!(
        std::fs::read_to_string(&target).expect("target"),
        "untouched\n"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_writable_run_folder_is_refused_before_any_request() {
    let env = Env::start().await;
    mkdir(&env.run_dir(), 0o775);
    let rb = env.runbook("list.yaml", LIST);
    let mut cmd = env.run_cmd(&rb);
    cmd.args(["--non-interactive"]);
    let out = output(cmd).await;
    assert_code(&out, 2);
    assert!(
        text(&out.stderr).contains("is writable by its group"),
        "{}",
        text(&out.stderr)
    );
    assert!(env.sim.requests().is_empty(), "{:?}", env.sim.requests());
    assert_eq!(
        mode(&env.run_dir()),
        0o775,
        "refused, and not chmod-ed either"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_folder_of_another_user_is_refused_before_any_request() {
    if rustix::process::geteuid().as_raw() != 0 {
        eprintln!("skipped: only root can give a folder to another user");
        return;
    }
    let env = Env::start().await;
    mkdir(&env.run_dir(), 0o700);
    std::os::unix::fs::chown(env.run_dir(), Some(65534), Some(65534)).expect("chown");
    let rb = env.runbook("list.yaml", LIST);
    let mut cmd = env.run_cmd(&rb);
    cmd.args(["--non-interactive"]);
    let out = output(cmd).await;
    assert_code(&out, 2);
    assert!(
        text(&out.stderr).contains("belongs to uid 65534"),
        "{}",
        text(&out.stderr)
    );
    assert!(env.sim.requests().is_empty(), "{:?}", env.sim.requests());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_existing_run_folder_keeps_its_mode() {
    let env = Env::start().await;
    mkdir(&env.run_dir(), 0o750);
    mkdir(&env.run_dir().join("evidence"), 0o710);
    let rb = env.runbook("list.yaml", LIST);
    let mut cmd = env.run_cmd(&rb);
    cmd.args(["--non-interactive"]);
    assert_code(&output(cmd).await, 0);
    assert_eq!(mode(&env.run_dir()), 0o750);
    assert_eq!(mode(&env.run_dir().join("evidence")), 0o710);
    assert_eq!(
        mode(&env.run_dir().join("secrets")),
        0o700,
        "created here: 0700"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_secret_with_the_same_name_gets_a_new_file() {
    let env = Env::start().await;
    let secrets = env.dir.path().join("shared-secrets");
    let rb = env.runbook("create.yaml", CREATE);
    for run in ["run-a", "run-b"] {
        let mut cmd = env.run_cmd_at(&rb, &env.dir.path().join(run));
        cmd.args(["--non-interactive", "--yes", "--secrets-dir"])
            .arg(&secrets);
        assert_code(&output(cmd).await, 0);
    }
    let first = std::fs::read_to_string(secrets.join("create.new_secret")).expect("first");
    let second = std::fs::read_to_string(secrets.join("create.new_secret.1")).expect("second");
    assert!(!first.trim().is_empty() && !second.trim().is_empty());
    assert_ne!(first, second, "the first secret was not overwritten");
    assert_eq!(mode(&secrets.join("create.new_secret.1")), 0o600);
}

#[test]
fn write_secret_never_follows_a_link_and_never_loses_a_secret() {
    let dir = tempfile::tempdir().expect("tempdir");
    let target = dir.path().join("world-readable.txt");
    std::fs::write(&target, "untouched\n").expect("write");
    let f = folders(&dir.path().join("run"));
    f.create().expect("folders");
    symlink(&target, f.secrets.join("recreate.new_secret")).expect("plant");
    let first = f
        .write_secret("recreate", "new_secret", "s3cret-1")
        .expect("written");
    assert_eq!(first, f.secrets.join("recreate.new_secret.1"));
    let second = f
        .write_secret("recreate", "new_secret", "s3cret-2")
        .expect("written");
    assert_eq!(second, f.secrets.join("recreate.new_secret.2"));
    assert_eq!(
        std::fs::read_to_string(&target).expect("target"),
        "untouched\n"
    );
    assert_eq!(
        std::fs::read_to_string(&first).expect("first"),
        "s3cret-1\n"
    );
    assert_eq!(
        std::fs::read_to_string(&second).expect("second"),
        "s3cret-2\n"
    );
    assert_eq!(mode(&first), 0o600);
    assert!(f.check().is_err(), "the planted link is refused by check");
}

#[test]
fn evidence_never_follows_links_and_never_overwrites() {
    let dir = tempfile::tempdir().expect("tempdir");
    let outside = dir.path().join("outside");
    mkdir(&outside, 0o755);
    let target = outside.join("target.json");
    std::fs::write(&target, "untouched\n").expect("write");
    let f = folders(&dir.path().join("run"));
    f.create().expect("folders");
    // A linked sub-folder is never entered.
    symlink(&outside, f.evidence.join("audit")).expect("plant");
    assert!(EvidenceWriter::create(&f, "audit/u-1.json").is_err());
    assert_eq!(std::fs::read_dir(&outside).expect("outside").count(), 1);
    // A linked file name is never opened: the next free name is used.
    symlink(&target, f.evidence.join("keys.json")).expect("plant");
    let mut w = EvidenceWriter::create(&f, "keys.json").expect("writer");
    w.write(b"[]").expect("write");
    assert_eq!(w.finish().expect("finish").file, "keys.1.json");
    assert_eq!(
        std::fs::read_to_string(&target).expect("target"),
        "untouched\n"
    );
    // An existing file is never overwritten; sub-folders are created as needed.
    for expected in ["logs/a.json", "logs/a.1.json", "logs/a.2.json"] {
        let mut w = EvidenceWriter::create(&f, "logs/a.json").expect("writer");
        w.write(expected.as_bytes()).expect("write");
        assert_eq!(w.finish().expect("finish").file, expected);
        assert_eq!(
            std::fs::read_to_string(f.evidence.join(expected)).expect("file"),
            expected
        );
    }
    assert_eq!(mode(&f.evidence.join("logs")), 0o700);
    assert_eq!(mode(&f.evidence.join("logs/a.1.json")), 0o600);
}
