//! `run RUNBOOK --require-approvals N` without a saved plan: the two-person rule at a terminal.
//! The run makes its plan first (the same dry-run `esus-ir plan` makes, into the run folder),
//! shows it with its digest, and waits for N approvals by others before the first write — then
//! runs exactly as `run --plan` does. Inputs and the token are asked once for both legs.

use std::path::PathBuf;

use super::run_cmd::{self, Carried, RunArgs};
use super::terminal::Terminal;
use crate::error::{Error, ExitCode};
use crate::event::RunMode;

/// Runs `run RUNBOOK --require-approvals N` (no `--plan`).
pub(super) fn run(mut args: RunArgs, term: Terminal) -> Result<ExitCode, Error> {
    run_cmd::live_flags(&args)?;
    if let Some(from) = &args.resume {
        return Err(Error::Usage(format!(
            "a resumed run continues under the plan it began with: add --plan {} (nothing was sent)",
            from.join(crate::transcript::layout::PLAN_FILE).display()
        )));
    }
    let dir = run_folder(&args, term)?;
    let plan_path = dir.join(crate::transcript::layout::PLAN_FILE);
    args.run_dir = Some(dir);
    let runtime = super::runtime::runtime()?;
    let mut carried = Carried::default();
    if plan_path.exists() {
        // A wait cut short (Ctrl-C, a lost terminal) is taken up again with the same plan, so
        // approvals already given still count; a plan for other inputs or another runbook is
        // refused as `--plan` refuses it.
        eprintln!(
            "note: {} already holds this run's plan: using it (approvals beside it count)",
            plan_path.display()
        );
    } else {
        let mut planning = args.clone();
        planning.require_approvals = None;
        planning.dry_run = Some("reads".into());
        planning.bind_items = true;
        let done = runtime.block_on(run_cmd::execute_carrying(
            planning,
            term,
            RunMode::Live,
            None,
            &mut carried,
        ))?;
        // Approvals of it are for this incident, now: the plan expires (12 h) rather than stay
        // usable with its signatures forever.
        let (doc, digest) = super::plan_cmd::write_plan(
            &done,
            &plan_path,
            Some(std::time::Duration::from_secs(12 * 3600)),
        )?;
        eprint!("{}", super::plan_cmd::shown(&doc, &digest));
    }
    eprintln!(
        "\nplan: {}\nthe approver runs: esus-ir approve {} — and returns the .sig to the same folder",
        plan_path.display(),
        plan_path.display()
    );
    args.plan = Some(plan_path);
    let output = args.output;
    let done = runtime.block_on(run_cmd::execute_carrying(
        args,
        term,
        RunMode::Live,
        None,
        &mut carried,
    ))?;
    run_cmd::print_finished(&done, output, term)?;
    Ok(done.exit_code())
}

/// The run folder both legs use: `--run-dir`, else a new default one. A folder that already
/// holds a run with no plan of its own is not planned again: that run is continued with
/// `--resume` (one with its plan is continued under it, as a re-fired page continues).
fn run_folder(args: &RunArgs, term: Terminal) -> Result<PathBuf, Error> {
    if let Some(dir) = &args.run_dir {
        let planned = dir.join(crate::transcript::layout::PLAN_FILE).exists();
        if dir
            .join(crate::transcript::layout::TRANSCRIPT_FILE)
            .exists()
            && !planned
        {
            return Err(Error::Usage(format!(
                "{} already holds a run: continue it with `esus-ir run --resume {}` (nothing was sent)",
                dir.display(),
                dir.display()
            )));
        }
        return Ok(dir.clone());
    }
    let name = run_cmd::runbook_name(args, term)?;
    Ok(super::run_folder::default_run_dir(
        &name,
        &uuid::Uuid::new_v4().to_string(),
    ))
}
