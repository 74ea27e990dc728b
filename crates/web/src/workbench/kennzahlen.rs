//! `GET /kennzahlen` and `GET /kennzahlen.csv`: the figures of the online
//! intake for management (role `leitung`: its own Dienststellen; role
//! `administration`: all), per month and Dienststelle, with two charts
//! (SVG, [`super::charts`]) each beside its data table, the rules that cause
//! most cases, the fields caseworkers correct most (the feedback for the
//! online form) and the documents owed. Nothing on these pages names an
//! application or a person. Filters are a GET form (`von`, `bis` as
//! `JJJJ-MM`, `dienststelle`, `formular`); bad input is shown again with
//! each error beside its field. The CSV (`;`, UTF-8 with BOM, German
//! headers) is what German Excel opens; `allegro-bridge kennzahlen` writes
//! the same.

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Query, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use chrono::{Datelike, Utc};
use serde::Deserialize;

use allegro_core::casework::fields::steps;
use allegro_core::pipeline::Pipeline;
use allegro_core::pointer::parse_concrete;
use allegro_store::audit::{Action, NewAudit};
use allegro_store::cases::Scope;
use allegro_store::kennzahlen::{Filter, Kennzahlen, Monat, Stelle, Zeile};

use super::auth::Caller;
use super::charts;
use super::error::WebError;
use super::layout::{self, FieldError, Layout};
use super::state::WorkbenchState;

/// Route layer: only `leitung` and administration see the figures; anyone
/// else gets 404, audited as `denied`.
pub async fn require_kennzahlen(
    State(state): State<WorkbenchState>,
    caller: Caller,
    req: Request,
    next: Next,
) -> Response {
    if caller.kennzahlen_scope().is_some() {
        return next.run(req).await;
    }
    deny(&state, &caller, req.uri().path()).await
}

/// Route layer of the case pages: `leitung` alone sees no application
/// (404, audited as `denied`).
pub async fn require_casework(
    State(state): State<WorkbenchState>,
    caller: Caller,
    req: Request,
    next: Next,
) -> Response {
    if caller.works_cases() {
        return next.run(req).await;
    }
    // The path may hold an antragId: the audit names only its first part.
    let page = req.uri().path().split('/').nth(1).unwrap_or("").to_string();
    deny(&state, &caller, &page).await
}

async fn deny(state: &WorkbenchState, caller: &Caller, page: &str) -> Response {
    let entry = NewAudit::new(&caller.user.name, Action::Denied, None).detail(page);
    match state.store.audit(&entry, Utc::now()).await {
        Ok(()) => layout::not_found(Some(caller)),
        Err(e) => WebError::from(e).into_response(),
    }
}

/// The query string.
#[derive(Debug, Default, Clone, Deserialize)]
pub struct Params {
    #[serde(default)]
    von: String,
    #[serde(default)]
    bis: String,
    #[serde(default)]
    dienststelle: String,
    #[serde(default)]
    formular: String,
}

/// The filter a query asks for, or its errors (field id, German message).
fn filter_of(
    p: &Params,
    caller: &Caller,
    pipeline: &Pipeline,
    today: chrono::NaiveDate,
) -> Result<Filter, Vec<FieldError>> {
    let scope = caller
        .kennzahlen_scope()
        .unwrap_or(Scope::Dienststellen(vec![]));
    let this_month = Monat {
        jahr: today.year(),
        monat: today.month(),
    };
    let default_from = Monat {
        jahr: this_month.jahr - 1,
        monat: this_month.monat,
    }
    .next();
    let mut errors = Vec::new();
    let mut month = |text: &str, field: &str, default: Monat| {
        if text.trim().is_empty() {
            return default;
        }
        Monat::parse(text).unwrap_or_else(|e| {
            errors.push(FieldError::new(field, &format!("Monat: {e}.")));
            default
        })
    };
    let von = month(&p.von, "von", default_from);
    let bis = month(&p.bis, "bis", this_month);
    if errors.is_empty() && von > bis {
        errors.push(FieldError::new(
            "bis",
            "Bis: Der letzte Monat liegt vor dem ersten.",
        ));
    }
    if errors.is_empty() && von.bis(bis).len() > 120 {
        errors.push(FieldError::new(
            "von",
            "Von: Es können höchstens 120 Monate auf einmal gezeigt werden.",
        ));
    }
    let dienststelle = Some(p.dienststelle.trim().to_string()).filter(|d| !d.is_empty());
    if let (Some(d), Scope::Dienststellen(own)) = (&dienststelle, &scope) {
        if !own.contains(d) {
            errors.push(FieldError::new(
                "dienststelle",
                "Dienststelle: Diese Dienststelle gehört nicht zu Ihren.",
            ));
        }
    }
    let mapping = Some(p.formular.trim().to_string()).filter(|m| !m.is_empty());
    if let Some(m) = &mapping {
        if pipeline.mappings().by_name(m).is_none() {
            errors.push(FieldError::new(
                "formular",
                "Formular: Dieses Formular ist nicht bekannt.",
            ));
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(Filter {
        von,
        bis,
        scope,
        dienststelle,
        mapping,
        heute: today,
    })
}

/// One option of a select.
pub struct Choice {
    pub value: String,
    pub label: String,
    pub selected: bool,
}

/// A row of the table per month and Dienststelle, as shown.
pub struct Row {
    pub monat: String,
    pub dienststelle: String,
    pub cells: Vec<String>,
}

/// A bar or point of a chart's data table.
pub struct Datum {
    pub label: String,
    pub value: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "kennzahlen.html")]
pub struct Page {
    pub layout: Layout,
    pub errors: Vec<FieldError>,
    pub von: String,
    pub bis: String,
    /// The Dienststellen to choose from (`leitung`), or `None`: a free
    /// input (administration).
    pub dienststellen: Option<Vec<Choice>>,
    pub dienststelle: String,
    pub formulare: Vec<Choice>,
    pub headers: Vec<&'static str>,
    pub rows: Vec<Row>,
    pub summe: Vec<String>,
    pub line_svg: String,
    pub quote_data: Vec<Datum>,
    pub bars_svg: String,
    pub rule_data: Vec<Datum>,
    pub faelle: i64,
    pub fields: Vec<Datum>,
    pub csv_link: String,
    pub stand: String,
}

impl Page {
    fn error_for(&self, field: &str) -> Option<&FieldError> {
        self.errors.iter().find(|e| e.field == field)
    }
}

/// The table's columns (also the CSV's, after Monat and Dienststelle).
pub const COLUMNS: [&str; 12] = [
    "Eingegangen",
    "Direkt übernommen",
    "Anteil direkt",
    "Nach Korrektur freigegeben",
    "Ohne Import abgeschlossen",
    "Noch offen",
    "Unlesbar",
    "Bis Freigabe Median (Std.)",
    "Bis Freigabe 90 % (Std.)",
    "Nachweise angefordert",
    "Nachweise fristgerecht",
    "Nachweise überfällig",
];

/// The cells of a row in German notation.
pub fn cells(z: &Zeile) -> Vec<String> {
    let hours = |h: Option<f64>| h.map(|h| decimal(h, 1)).unwrap_or_else(|| "–".into());
    vec![
        z.eingegangen.to_string(),
        z.direkt.to_string(),
        percent(z.quote()),
        z.nach_korrektur.to_string(),
        z.ohne_import.to_string(),
        z.offen.to_string(),
        z.unlesbar.to_string(),
        hours(z.median_stunden),
        hours(z.p90_stunden),
        z.nachweise_angefordert.to_string(),
        z.nachweise_fristgerecht.to_string(),
        z.nachweise_ueberfaellig.to_string(),
    ]
}

/// A share as `40,7 %`; `–` when there is none.
fn percent(share: Option<f64>) -> String {
    share.map_or_else(|| "–".into(), |q| format!("{} %", decimal(q * 100.0, 1)))
}

/// `x` with `places` decimals and a decimal comma.
fn decimal(x: f64, places: usize) -> String {
    format!("{x:.places$}").replace('.', ",")
}

fn dienststelle_text(d: &Stelle) -> String {
    match d {
        Stelle::Dienststelle(d) => d.clone(),
        Stelle::Ohne => "ohne Dienststelle".into(),
        Stelle::Unlesbar => "unlesbar (ohne Dienststelle)".into(),
        Stelle::Alle => "alle".into(),
    }
}

/// `GET /kennzahlen`.
pub async fn page(
    State(state): State<WorkbenchState>,
    caller: Caller,
    Query(p): Query<Params>,
) -> Result<Response, WebError> {
    let pipeline = state.pipeline.current();
    let mut page = empty_page(&caller, &p, &pipeline);
    match filter_of(&p, &caller, &pipeline, state.clock.today()) {
        Err(errors) => {
            page.layout = page.layout.with_error_title();
            page.errors = errors;
            Ok((StatusCode::BAD_REQUEST, page).into_response())
        }
        Ok(f) => {
            let k = state.store.kennzahlen(&f).await?;
            fill(&mut page, &k, &pipeline, &p);
            Ok(page.into_response())
        }
    }
}

fn empty_page(caller: &Caller, p: &Params, pipeline: &Pipeline) -> Page {
    let dienststellen = match caller.kennzahlen_scope() {
        Some(Scope::Dienststellen(own)) => {
            let mut v = vec![Choice {
                value: String::new(),
                label: "Alle meine Dienststellen".into(),
                selected: p.dienststelle.is_empty(),
            }];
            v.extend(own.iter().map(|d| Choice {
                value: d.clone(),
                label: d.clone(),
                selected: *d == p.dienststelle,
            }));
            Some(v)
        }
        _ => None,
    };
    let mut formulare = vec![Choice {
        value: String::new(),
        label: "Alle Formulare".into(),
        selected: p.formular.is_empty(),
    }];
    formulare.extend(pipeline.mappings().all().into_iter().map(|m| Choice {
        value: m.name.clone(),
        label: format!("{} (Version {})", m.form, m.version),
        selected: m.name == p.formular,
    }));
    Page {
        layout: caller.layout(),
        errors: Vec::new(),
        von: p.von.clone(),
        bis: p.bis.clone(),
        dienststellen,
        dienststelle: p.dienststelle.clone(),
        formulare,
        headers: COLUMNS.to_vec(),
        rows: Vec::new(),
        summe: Vec::new(),
        line_svg: String::new(),
        quote_data: Vec::new(),
        bars_svg: String::new(),
        rule_data: Vec::new(),
        faelle: 0,
        fields: Vec::new(),
        csv_link: String::new(),
        stand: String::new(),
    }
}

fn fill(page: &mut Page, k: &Kennzahlen, pipeline: &Pipeline, p: &Params) {
    page.rows = k
        .zeilen
        .iter()
        .map(|(m, z)| Row {
            monat: m.to_string(),
            dienststelle: dienststelle_text(&z.dienststelle),
            cells: cells(z),
        })
        .collect();
    page.summe = cells(&k.summe);
    let points: Vec<(String, Option<f64>)> = k
        .monate
        .iter()
        .map(|(m, z)| (m.to_string(), z.quote()))
        .collect();
    page.line_svg = charts::quote_line(&points);
    page.quote_data = points
        .iter()
        .map(|(m, q)| Datum {
            label: m.clone(),
            value: percent(*q),
        })
        .collect();
    page.bars_svg = charts::rule_bars(&k.regeln);
    page.faelle = k.faelle;
    page.rule_data = k
        .regeln
        .iter()
        .map(|(r, n)| Datum {
            label: r.clone(),
            value: format!("{n} ({} % der Klärfälle)", decimal(share(*n, k.faelle), 1)),
        })
        .collect();
    page.fields = k
        .felder
        .iter()
        .map(|(ptr, n)| Datum {
            label: format!("{} ({ptr})", field_label(pipeline, ptr)),
            value: n.to_string(),
        })
        .collect();
    page.von = k
        .monate
        .first()
        .map(|m| m.0.to_string())
        .unwrap_or_default();
    page.bis = k.monate.last().map(|m| m.0.to_string()).unwrap_or_default();
    page.csv_link = format!(
        "/kennzahlen.csv?von={}&bis={}&dienststelle={}&formular={}",
        page.von,
        page.bis,
        urlencode(&p.dienststelle),
        urlencode(&p.formular)
    );
    page.stand = format!("{} UTC", Utc::now().format("%d.%m.%Y %H:%M"));
}

fn share(n: i64, of: i64) -> f64 {
    if of == 0 {
        0.0
    } else {
        n as f64 * 100.0 / of as f64
    }
}

fn urlencode(s: &str) -> String {
    serde_urlencoded::to_string([("", s)])
        .map(|t| t.trim_start_matches('=').to_string())
        .unwrap_or_default()
}

/// The German label of a field, from the first mapping that knows the
/// pointer; with a list index (`*`), the field's noun "(je Eintrag)".
pub fn field_label(pipeline: &Pipeline, pointer: &str) -> String {
    let generic = pointer.contains("/*");
    let concrete = pointer.replace("/*", "/0");
    let Some(segs) = parse_concrete(&concrete) else {
        return pointer.to_string();
    };
    let st = steps(&segs);
    let mappings = pipeline.mappings().all();
    let Some(m) = mappings
        .iter()
        .find(|m| pipeline.mappings().schema_defines(&m.name, &concrete))
        .or(mappings.first())
    else {
        return pointer.to_string();
    };
    if generic {
        format!("{} (je Eintrag)", m.labels.noun(&st))
    } else {
        m.labels.name(&st)
    }
}

/// `GET /kennzahlen.csv`: the table per month and Dienststelle.
pub async fn csv(
    State(state): State<WorkbenchState>,
    caller: Caller,
    Query(p): Query<Params>,
) -> Result<Response, WebError> {
    let pipeline = state.pipeline.current();
    let f = match filter_of(&p, &caller, &pipeline, state.clock.today()) {
        Ok(f) => f,
        Err(errors) => {
            // The page with the errors beside the fields, as for /kennzahlen.
            let mut page = empty_page(&caller, &p, &pipeline);
            page.layout = page.layout.with_error_title();
            page.errors = errors;
            return Ok((StatusCode::BAD_REQUEST, page).into_response());
        }
    };
    let k = state.store.kennzahlen(&f).await?;
    let name = format!("kennzahlen-{}-{}.csv", f.von, f.bis);
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
        ],
        csv_bytes(&k),
    )
        .into_response())
}

/// The CSV German Excel opens: UTF-8 with BOM, `;`, CRLF, German headers,
/// one row per month and Dienststelle, decimal commas.
pub fn csv_bytes(k: &Kennzahlen) -> Vec<u8> {
    let mut out = String::from("\u{feff}");
    let mut head = vec!["Monat", "Dienststelle"];
    head.extend(COLUMNS);
    out.push_str(&head.join(";"));
    out.push_str("\r\n");
    for (m, z) in &k.zeilen {
        let mut cols = vec![m.to_string(), dienststelle_text(&z.dienststelle)];
        cols.extend(
            cells(z)
                .into_iter()
                .map(|c| c.replace(" %", "").replace('–', "")),
        );
        out.push_str(
            &cols
                .iter()
                .map(|c| csv_field(c))
                .collect::<Vec<_>>()
                .join(";"),
        );
        out.push_str("\r\n");
    }
    out.into_bytes()
}

/// A field quoted when it holds `;`, `"` or a line break; one that a
/// spreadsheet would take for a formula (`=`, `+`, `-`, `@` first, or a tab
/// or return) gets a leading `'`, unless it is a number.
fn csv_field(s: &str) -> String {
    let formula = s.starts_with(['=', '+', '-', '@', '\t', '\r'])
        && s.replace(',', ".").parse::<f64>().is_err();
    let s = if formula {
        format!("'{s}")
    } else {
        s.to_string()
    };
    if s.contains([';', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_are_quoted_and_no_formula() {
        assert_eq!(csv_field("13101"), "13101");
        assert_eq!(csv_field("a;b"), "\"a;b\"");
        assert_eq!(csv_field("=SUMME(A1)"), "'=SUMME(A1)");
        assert_eq!(csv_field("-1,5"), "-1,5");
        assert_eq!(csv_field("@x"), "'@x");
    }
}
