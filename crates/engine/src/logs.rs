//! Container logs in Docker's `json-file` format: the monitor writes them,
//! `logs` reads them back.
