//! `allegro-bridge kennzahlen`: the Kennzahlen for reporting, as CSV (the
//! workbench's export, which German Excel opens) or JSON, on stdout. Reads
//! the database of `store.url`; every Dienststelle (it runs on the server,
//! as the operator).

use std::io::Write as _;
use std::path::Path;

use anyhow::Context as _;
use chrono::{Datelike, Utc};
use clap::{Args, ValueEnum};
use serde_json::{json, Value};

use allegro_store::cases::Scope;
use allegro_store::kennzahlen::{Filter, Kennzahlen, Monat, Stelle, Zeile};
use allegro_store::Store;

use super::ops::load_settings;

/// Output formats.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Format {
    Csv,
    Json,
}

/// Arguments of `kennzahlen`.
#[derive(Debug, Args)]
pub struct KennzahlenArgs {
    /// First month, JJJJ-MM (default: eleven months before --bis).
    #[arg(long, value_parser = Monat::parse)]
    pub von: Option<Monat>,
    /// Last month, JJJJ-MM (default: this month).
    #[arg(long, value_parser = Monat::parse)]
    pub bis: Option<Monat>,
    /// Only this Dienststelle.
    #[arg(long, value_name = "NR")]
    pub dienststelle: Option<String>,
    /// Only this form version (mapping name, e.g. bg-ha-1.0).
    #[arg(long, value_name = "NAME")]
    pub formular: Option<String>,
    /// csv (`;`, UTF-8 with BOM) or json.
    #[arg(long, value_enum, default_value = "csv")]
    pub format: Format,
}

/// Prints the figures.
pub fn run(config: Option<&Path>, args: KennzahlenArgs) -> anyhow::Result<i32> {
    let settings = load_settings(config)?;
    let today = Utc::now().date_naive();
    let bis = args.bis.unwrap_or(Monat {
        jahr: today.year(),
        monat: today.month(),
    });
    let von = args.von.unwrap_or(
        Monat {
            jahr: bis.jahr - 1,
            monat: bis.monat,
        }
        .next(),
    );
    anyhow::ensure!(von <= bis, "--von {von} is after --bis {bis}");
    let filter = Filter {
        von,
        bis,
        scope: Scope::All,
        dienststelle: args.dienststelle,
        mapping: args.formular,
        heute: today,
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let k = rt.block_on(async {
        let store = Store::connect(&settings.store).await?;
        let k = store.kennzahlen(&filter).await;
        store.close().await;
        k.context("reading the figures")
    })?;
    let mut out = std::io::stdout().lock();
    match args.format {
        Format::Csv => out.write_all(&allegro_web::workbench::kennzahlen::csv_bytes(&k))?,
        Format::Json => writeln!(out, "{}", serde_json::to_string_pretty(&as_json(&k))?)?,
    }
    Ok(0)
}

fn zeile(z: &Zeile) -> Value {
    json!({
        "eingegangen": z.eingegangen,
        "direkt": z.direkt,
        "anteilDirekt": z.quote(),
        "nachKorrektur": z.nach_korrektur,
        "ohneImport": z.ohne_import,
        "offen": z.offen,
        "unlesbar": z.unlesbar,
        "stundenBisFreigabeMedian": z.median_stunden,
        "stundenBisFreigabeP90": z.p90_stunden,
        "nachweiseAngefordert": z.nachweise_angefordert,
        "nachweiseFristgerecht": z.nachweise_fristgerecht,
        "nachweiseUeberfaellig": z.nachweise_ueberfaellig,
    })
}

/// The figures as JSON: rows per month and Dienststelle (`art`:
/// `dienststelle`, `ohne_dienststelle` or `unlesbar` for the dead letters),
/// sums per month and for the period, rules and fields.
fn as_json(k: &Kennzahlen) -> Value {
    let zeilen: Vec<Value> = k
        .zeilen
        .iter()
        .map(|(m, z)| {
            let mut v = zeile(z);
            v["monat"] = json!(m.to_string());
            let (art, nr) = match &z.dienststelle {
                Stelle::Dienststelle(d) => ("dienststelle", Some(d.as_str())),
                Stelle::Ohne => ("ohne_dienststelle", None),
                Stelle::Unlesbar => ("unlesbar", None),
                Stelle::Alle => ("alle", None),
            };
            v["art"] = json!(art);
            v["dienststelle"] = json!(nr);
            v
        })
        .collect();
    let monate: Vec<Value> = k
        .monate
        .iter()
        .map(|(m, z)| {
            let mut v = zeile(z);
            v["monat"] = json!(m.to_string());
            v
        })
        .collect();
    json!({
        "zeilen": zeilen,
        "monate": monate,
        "summe": zeile(&k.summe),
        "klaerfaelle": k.faelle,
        "regeln": k.regeln.iter().map(|(r, n)| json!({"regel": r, "klaerfaelle": n})).collect::<Vec<_>>(),
        "felder": k.felder.iter().map(|(p, n)| json!({"zeiger": p, "korrekturen": n})).collect::<Vec<_>>(),
    })
}
