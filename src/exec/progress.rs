//! Progress of `foreach` fan-outs and paged pulls, reported to the terminal (or nowhere) through a small trait.

/// Receives fan-out progress; the terminal draws one aggregated bar per step.
pub trait Progress: Send + Sync {
    /// A `foreach` step starts `total` items.
    fn items_started(&self, _step: &str, _total: usize) {}
    /// One item finished.
    fn item_finished(&self, _step: &str, _ok: bool) {}
    /// A paged pull has `rows` distinct rows so far, of the `total` ESUS last reported.
    fn rows_read(&self, _step: &str, _rows: u64, _total: u64) {}
}

/// Progress that goes nowhere (tests, JSON output).
#[derive(Debug, Default, Clone, Copy)]
pub struct NoProgress;

impl Progress for NoProgress {}
