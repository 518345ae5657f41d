//! The async runtime every command that talks to ESUS (or serves the simulator) runs on.

use crate::error::Error;

/// A multi-threaded tokio runtime (the executor's parallel steps and the drill's simulator).
pub(super) fn runtime() -> Result<tokio::runtime::Runtime, Error> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::io("starting the async runtime", e))
}
