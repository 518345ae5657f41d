//! Progress of `foreach` fan-outs, reported to the terminal (or nowhere) through a small trait.

/// Receives fan-out progress; the terminal draws one aggregated bar per step.
pub trait Progress: Send + Sync {
    /// A `foreach` step starts `total` items.
    fn items_started(&self, _step: &str, _total: usize) {}
    /// One item finished.
    fn item_finished(&self, _step: &str, _ok: bool) {}
}

/// Progress that goes nowhere (tests, JSON output).
#[derive(Debug, Default, Clone, Copy)]
pub struct NoProgress;

impl Progress for NoProgress {}
