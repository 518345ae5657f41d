//! `run --plan` at a terminal, short of approvals: the run waits for the second engineer.

use std::path::{Path, PathBuf};

use crate::transcript::sha256_hex;

/// `run --plan` at a terminal, short of approvals: says the plan's digest and waits — for an
/// approver's signature file to appear beside the plan (checked each second), or for one pasted
/// here (saved beside the plan, then checked like the others). Ctrl-C stops waiting.
pub(super) fn wait_for_approvals(
    path: &Path,
    load: impl Fn() -> Result<crate::exec::plan_gate::PlanGate, crate::exec::plan_gate::PlanRefusal>,
    interrupt: &crate::exec::shared::Interrupt,
) -> Result<crate::exec::plan_gate::PlanGate, crate::exec::plan_gate::PlanRefusal> {
    use super::prompt::{LineOr, read_line_until};
    use crate::exec::plan_gate::PlanRefusal;
    let digest = std::fs::read(path)
        .map(|b| sha256_hex(&b))
        .unwrap_or_default();
    let mut why = match load() {
        Ok(gate) => return Ok(gate),
        Err(PlanRefusal::NotApproved(why)) => why,
        Err(other) => return Err(other),
    };
    let mut pasted = 0;
    loop {
        eprintln!(
            "\nwaiting for approval of plan sha256 {digest}: {why}.\nAn approver runs `esus-ir approve {}` and puts the .sig beside it, or paste an armored signature here (Ctrl-C stops):",
            path.display()
        );
        let seen = interrupt.count();
        // A person is waited for: this blocks the command, which has nothing else to do yet.
        let got =
            tokio::task::block_in_place(|| read_line_until(interrupt, seen, || load().is_ok()));
        let line = match got {
            Ok(LineOr::Done) => return load(),
            Ok(LineOr::Line(Some(l))) => l,
            Ok(LineOr::Line(None)) | Err(_) => {
                return Err(PlanRefusal::NotApproved(format!("{why}; stopped waiting")));
            }
        };
        if line.trim() == "-----BEGIN SSH SIGNATURE-----" {
            let mut armored = String::from("-----BEGIN SSH SIGNATURE-----\n");
            loop {
                let seen = interrupt.count();
                let Some(next) = super::prompt::read_line(interrupt, seen).ok().flatten() else {
                    break;
                };
                armored.push_str(next.trim());
                armored.push('\n');
                if next.trim() == "-----END SSH SIGNATURE-----" {
                    break;
                }
            }
            pasted += 1;
            let mut name = path.as_os_str().to_owned();
            name.push(format!(".pasted-{pasted}.sig"));
            if std::fs::write(PathBuf::from(name), armored).is_err() {
                eprintln!("could not save the pasted signature beside the plan");
            }
        }
        match load() {
            Ok(gate) => return Ok(gate),
            Err(PlanRefusal::NotApproved(still)) => why = still,
            Err(other) => return Err(other),
        }
    }
}
