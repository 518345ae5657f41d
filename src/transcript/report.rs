//! Post-mortem report (placeholder).
