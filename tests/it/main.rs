//! The integration tests of the binary, one test crate: each module was a
//! test binary of its own, each linking the whole workspace again. Tests of
//! different modules now run side by side in one process; see
//! ARCHITECTURE.md ("Tests and benchmarks") for how they keep out of each
//! other's way (own queues, databases and folders, the broker lock of
//! `allegro-testkit`, no process-wide state such as environment variables or
//! the current folder).
//!
//! One module: `cargo test --test it core_e2e::`; one test:
//! `cargo test --test it -- --exact core_e2e::NAME`.

mod api;
mod broker_restart;
mod core_e2e;
mod daemon_e2e;
mod daemon_faults;
mod daemon_scale;
mod dlq;
mod fitconnect;
mod grafana_dashboard;
mod hostile;
mod kennzahlen;
mod mitwirkung;
mod no_personal_data;
mod oidc;
mod poison;
mod properties;
mod record_xsd;
mod reload;
mod retention;
mod store_both;
mod submit;
mod tls;
mod upgrade;
mod watchdog;
mod workbench_browser;
mod workbench_case_ops;
mod workbench_cases;
mod workbench_form_layout;
mod workbench_http;
mod workbench_mitwirkung;
mod workbench_store;
