//! The embedded ESUS simulator (issue 3): a stateful ESUS API on loopback for drills and tests.
