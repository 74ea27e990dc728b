//! `allegro-bridge mappings check|test`: lint and fixture tests for mapping developers.

use std::path::{Path, PathBuf};

use clap::Subcommand;

use crate::cli::fixtures;
use allegro_core::mapping;
use allegro_core::pipeline::Pipeline;
use allegro_core::pruefung::Sprache;
use allegro_daemon::config::Settings;

#[derive(Debug, Subcommand)]
pub enum MappingsCommand {
    /// Lint the mapping files; exit 1 with file:line messages on problems.
    Check,
    /// Run the fixture cases and print a coverage report.
    Test {
        /// Fixture folder.
        #[arg(long, default_value = "fixtures")]
        fixtures: PathBuf,
        /// Write the golden records instead of comparing them.
        #[arg(long)]
        bless: bool,
        /// Fail when a check or rule is exercised by no fixture.
        #[arg(long)]
        strict: bool,
    },
}

pub fn run(config: Option<&Path>, cmd: MappingsCommand) -> anyhow::Result<i32> {
    let settings = Settings::load(config)?;
    match cmd {
        MappingsCommand::Check => check(&settings),
        MappingsCommand::Test {
            fixtures,
            bless,
            strict,
        } => test(&settings, &fixtures, bless, strict),
    }
}

fn check(settings: &Settings) -> anyhow::Result<i32> {
    let p = &settings.pipeline;
    match mapping::load(&p.mappings_dir, &p.schemas_dir) {
        Err(errors) => {
            for e in &errors.0 {
                println!("error: {e}");
            }
            println!(
                "{} problem(s); the mapping set would be refused",
                errors.0.len()
            );
            Ok(1)
        }
        Ok(set) => {
            for f in &set.unused_fragments {
                println!(
                    "warning: {}: fragment is included by no mapping",
                    f.display()
                );
            }
            // Fragments are shared: a gap is named once, not per mapping.
            let mut named = std::collections::HashSet::new();
            for m in set.all() {
                for gap in m.applicant.gaps() {
                    let line = gap.to_string();
                    if named.insert(line.clone()) {
                        println!("warning: {line}");
                    }
                }
                for f in m.unlabeled_fields() {
                    println!(
                        "warning: {}: no German label for {f} (messages would say „{}“); add one under [labels.fields]",
                        m.name,
                        f.rsplit('/').next().unwrap_or_default()
                    );
                }
                for (f, code) in m.unlabeled_codes() {
                    println!(
                        "warning: {}: no German label for code {code} of {f} (the workbench would show the code); add one under [labels.values]",
                        m.name
                    );
                }
                for gap in m.casework.gaps() {
                    println!("warning: {}: {gap}", m.name);
                }
                let fields: usize = m.groups.iter().map(|g| g.fields.len()).sum();
                let applicant: Vec<String> = Sprache::ALL
                    .into_iter()
                    .map(|s| format!("{} {}", m.applicant.count(s), s.as_str()))
                    .collect();
                println!(
                    "ok: {} ({} {}): {} groups, {} fields, {} checks, {} rules, schema {}, record {}, applicant messages {}",
                    m.name,
                    m.form,
                    m.version,
                    m.groups.len(),
                    fields,
                    m.checks.len(),
                    m.rules.len(),
                    m.schema_file,
                    m.record_version,
                    applicant.join(", ")
                );
            }
            Ok(0)
        }
    }
}

fn print_coverage(mapping: &str, what: &str, item: &str, missing: &[String], total: usize) {
    println!(
        "  {mapping}: {what} exercised {}/{total}",
        total - missing.len()
    );
    for m in missing {
        println!("    not exercised: {item} {m}");
    }
}

fn test(settings: &Settings, dir: &Path, bless: bool, strict: bool) -> anyhow::Result<i32> {
    let pipeline = Pipeline::load(&settings.pipeline)?;
    let report = fixtures::run(&pipeline, dir, bless)?;
    for c in &report.cases {
        if c.problems.is_empty() {
            println!("PASS {}", c.name);
        } else {
            println!("FAIL {}", c.name);
            for p in &c.problems {
                println!("     {p}");
            }
        }
    }
    println!();
    println!("coverage:");
    let mut gaps = 0;
    for (m, missing) in &report.coverage.unexercised_rules {
        print_coverage(
            m,
            "checks and rules",
            "rule",
            missing,
            report.coverage.rules_total[m],
        );
        gaps += missing.len();
        let fmissing = &report.coverage.unexercised_fields[m];
        print_coverage(
            m,
            "mapped fields",
            "field",
            fmissing,
            report.coverage.fields_total[m],
        );
    }
    let passed = report.cases.len() - report.failed();
    println!();
    println!("{passed} passed, {} failed", report.failed());
    if report.failed() > 0 || (strict && gaps > 0) {
        if strict && gaps > 0 {
            println!("strict: {gaps} check(s)/rule(s) exercised by no fixture");
        }
        Ok(1)
    } else {
        Ok(0)
    }
}
