//! The ESUS API client and the catalogue of built-in actions.
