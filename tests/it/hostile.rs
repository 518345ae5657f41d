//! Hostile runbooks: every file of the corpus is refused by `esus-ir validate` and by
//! `esus-ir run` (the real binary, against the in-process simulator, with an admin token in
//! ESUS_TOKEN and a fresh run folder) with exit 2 and its expected message, in bounded time (the
//! command's timeout) and memory (the child runs under `ulimit -v`), and not one request reaches
//! the simulator.
//!
//! The committed corpus is `tests/hostile/*.yaml`; each file's first line is
//! `# expect: <a substring of the message>` (compared with whitespace and miette's wrap marks
//! folded). Files too big to commit, and special files, are made at test time by [`generated`]:
//!
//! | name | what |
//! |---|---|
//! | `deep-flow-1mib.yaml` | 1 MiB of `[` (once ran past 120 s in the YAML scanner) |
//! | `deep-flow-100k.yaml` | `{a: ` nested 100 000 deep under `steps:` (once 28.8 s) |
//! | `deep-block-100k.yaml` | `- - - …` 100 000 deep |
//! | `steps-100k.yaml` | 100 000 steps |
//! | `problems-30k.yaml` | one step with 30 000 unknown parameters (once 70 s) |
//! | `huge-string.yaml` | a 900 000-character name and an unknown action |
//! | `too-large.yaml` | a file over 1 MiB |
//! | `utf16.yaml` | a runbook in UTF-16LE with its byte-order mark |
//! | `key-link.yaml` | a link to an OpenSSH private key (the key is never printed) |
//! | `dev-zero.yaml` | a link to `/dev/zero` |
//! | `fifo.yaml` | a named pipe nobody writes to |
//! | `folder.yaml` | a directory |

use std::path::{Path, PathBuf};
use std::time::Duration;

use secrecy::ExposeSecret;

use crate::run_support::{CLEARED_ENV, Env, text};

/// Virtual memory the child may use (KiB): reading `/dev/zero` to the end, or expanding an
/// alias bomb, would need far more.
const MEMORY_KIB: u64 = 1024 * 1024;

/// Wall time any one refusal may take (a debug build on a shared 2-core machine).
const TIMEOUT: Duration = Duration::from_secs(60);

/// A fake private key: what the loader must never print.
const KEY_BODY: &str = "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW";

struct Case {
    path: PathBuf,
    expect: String,
    /// Text that must not appear in the output (a key's body).
    never: Option<&'static str>,
}

fn corpus() -> Vec<Case> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/hostile");
    let mut cases: Vec<Case> = std::fs::read_dir(&dir)
        .expect("corpus folder")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .map(|path| {
            let bytes = std::fs::read(&path).expect("corpus file");
            let first = bytes.split(|b| *b == b'\n').next().unwrap_or_default();
            let first = String::from_utf8_lossy(first);
            let expect = first
                .strip_prefix("# expect: ")
                .unwrap_or_else(|| panic!("{} has no `# expect:` line", path.display()))
                .trim()
                .to_string();
            Case {
                path,
                expect,
                never: None,
            }
        })
        .collect();
    cases.sort_by(|a, b| a.path.cmp(&b.path));
    cases
}

/// The cases made at test time (see the table above).
fn generated(dir: &Path) -> Vec<Case> {
    const MIB: usize = 1024 * 1024;
    let mut cases = Vec::new();
    let mut file = |name: &str, bytes: Vec<u8>, expect: &str| {
        let path = dir.join(name);
        std::fs::write(&path, bytes).expect("write case");
        cases.push(Case {
            path,
            expect: expect.into(),
            never: None,
        });
    };
    let head = "version: 1\nname: hostile\nsteps:\n";
    let nesting = "nesting deeper than 64 levels";
    file("deep-flow-1mib.yaml", vec![b'['; MIB], nesting);
    file(
        "deep-flow-100k.yaml",
        format!("{head}  - {}", "{a: ".repeat(100_000)).into_bytes(),
        nesting,
    );
    file(
        "deep-block-100k.yaml",
        format!("{head}{}", "- ".repeat(100_000)).into_bytes(),
        nesting,
    );
    file(
        "steps-100k.yaml",
        format!("{head}{}", "- {}\n".repeat(100_000)).into_bytes(),
        "100000 steps; the limit is 500",
    );
    let params: Vec<String> = (0..30_000).map(|i| format!("p{i}: 1")).collect();
    file(
        "problems-30k.yaml",
        format!(
            "{head}  - id: a\n    name: A\n    action: api_keys.list\n    with: {{{}}}\n",
            params.join(", ")
        )
        .into_bytes(),
        "29900 more problems not shown",
    );
    file(
        "huge-string.yaml",
        format!(
            "version: 1\nname: \"{}\"\nsteps:\n  - {{id: a, name: A, action: nope}}\n",
            "x".repeat(900_000)
        )
        .into_bytes(),
        "unknown action `nope`",
    );
    file(
        "too-large.yaml",
        format!("{head}# {}\n", "x".repeat(MIB)).into_bytes(),
        "larger than 1 MiB",
    );
    let mut utf16 = vec![0xFF, 0xFE];
    for unit in format!("{head}  - {{id: a, name: A, action: api_keys.list}}\n").encode_utf16() {
        utf16.extend(unit.to_le_bytes());
    }
    file("utf16.yaml", utf16, "UTF-16 text");

    let key = dir.join("id_ed25519");
    std::fs::write(
        &key,
        format!(
            "-----BEGIN OPENSSH PRIVATE KEY-----\n{KEY_BODY}\n-----END OPENSSH PRIVATE KEY-----\n"
        ),
    )
    .expect("key");
    let mut link = |name: &str, target: &Path, expect: &str| {
        let path = dir.join(name);
        std::os::unix::fs::symlink(target, &path).expect("symlink");
        cases.push(Case {
            path,
            expect: expect.into(),
            never: Some(KEY_BODY),
        });
    };
    link("key-link.yaml", &key, "looks like key material");
    link(
        "dev-zero.yaml",
        Path::new("/dev/zero"),
        "not a regular file",
    );
    let fifo = dir.join("fifo.yaml");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("mkfifo runs");
    assert!(made.success(), "mkfifo");
    cases.push(Case {
        path: fifo,
        expect: "a named pipe (FIFO), not a regular file".into(),
        never: None,
    });
    let folder = dir.join("folder.yaml");
    std::fs::create_dir(&folder).expect("folder");
    cases.push(Case {
        path: folder,
        expect: "a directory, not a regular file".into(),
        never: None,
    });
    cases
}

/// The binary under `ulimit -v`, with the test environment of [`Env::bare_cmd`].
fn limited(env: &Env, args: &[&std::ffi::OsStr]) -> assert_cmd::Command {
    let mut cmd = assert_cmd::Command::new("sh");
    cmd.arg("-c")
        .arg(format!("ulimit -v {MEMORY_KIB} && exec \"$0\" \"$@\""))
        .arg(assert_cmd::cargo::cargo_bin("esus-ir"))
        .args(args);
    for var in CLEARED_ENV {
        cmd.env_remove(var);
    }
    cmd.env("XDG_CONFIG_HOME", env.dir.path().join("config"))
        .env("HOME", env.dir.path())
        .env("NO_COLOR", "1")
        .timeout(TIMEOUT);
    cmd
}

/// Whitespace runs and miette's wrap marks folded, so a message may wrap anywhere.
fn folded(s: &str) -> String {
    s.replace('│', " ")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// Runs one command; returns what is wrong with its outcome, if anything.
async fn refused(env: &Env, case: &Case, what: &str, cmd: assert_cmd::Command) -> Option<String> {
    let before = env.sim.requests().len();
    let out = crate::run_support::output(cmd).await;
    let stderr = text(&out.stderr);
    let name = case.path.file_name().map_or_else(
        || case.path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    let mut wrong = Vec::new();
    if out.status.code() != Some(2) {
        wrong.push(format!("exit {:?}, not 2", out.status.code()));
    }
    if !folded(&stderr).contains(&folded(&case.expect)) {
        wrong.push(format!("no `{}` in the message", case.expect));
    }
    if let Some(never) = case.never
        && (stderr.contains(never) || text(&out.stdout).contains(never))
    {
        wrong.push("the key's body was printed".into());
    }
    let sent = env.sim.requests().len() - before;
    if sent > 0 {
        wrong.push(format!("{sent} requests reached the simulator"));
    }
    (!wrong.is_empty()).then(|| {
        let shown: String = stderr.chars().take(1500).collect();
        format!("{name} ({what}): {}\n{shown}", wrong.join("; "))
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_hostile_runbook_is_refused_by_validate_and_run_without_a_request() {
    let env = Env::start().await;
    let gen_dir = env.dir.path().join("generated");
    std::fs::create_dir(&gen_dir).expect("generated folder");
    let mut cases = corpus();
    assert!(
        cases.len() >= 30,
        "the committed corpus has {} files",
        cases.len()
    );
    cases.extend(generated(&gen_dir));
    let token = env.sim.ready().admin_token.expose_secret().to_string();
    let base = env.sim.base_url();
    let mut failures = Vec::new();
    for (i, case) in cases.iter().enumerate() {
        let file = case.path.as_os_str();
        let validate = limited(&env, &["validate".as_ref(), file]);
        failures.extend(refused(&env, case, "validate", validate).await);
        let run_dir = env.dir.path().join(format!("run-{i}"));
        let mut run = limited(
            &env,
            &[
                "run".as_ref(),
                file,
                "--base-url".as_ref(),
                base.as_ref(),
                "--run-dir".as_ref(),
                run_dir.as_os_str(),
                "--operator".as_ref(),
                "oncall@example.org".as_ref(),
                "--non-interactive".as_ref(),
                "--yes".as_ref(),
                "--input".as_ref(),
                "key_id=k-1".as_ref(),
            ],
        );
        run.env("ESUS_TOKEN", &token).env("T_TOKEN", "hunter2");
        failures.extend(refused(&env, case, "run", run).await);
        if run_dir.exists() {
            failures.push(format!(
                "{} (run): a refused run created its run folder",
                case.path.display()
            ));
        }
    }
    assert!(
        failures.is_empty() && env.sim.requests().is_empty(),
        "{} of {} cases were not refused as expected:\n\n{}",
        failures.len(),
        cases.len() * 2,
        failures.join("\n\n")
    );
}
