//! The Grafana dashboard `docs/grafana-dashboard.json` and the suggested
//! alerting rules `docs/prometheus-alerts.yml` against the daemon they are
//! for. The JSON parses; every query parses as PromQL (`promql-parser`,
//! a port of Prometheus's own grammar, after Grafana's `$__…` interval
//! variables are put in); every metric a query names is one that a running
//! daemon exports on `/metrics` (its `# TYPE` families, with the sample
//! suffixes of their type); every label a query groups or filters by is on
//! that metric's samples (or is `instance`/`job`, which Prometheus adds);
//! every panel takes the dashboard's datasource variable; and every family
//! the daemon exports is shown somewhere, so a new metric is not forgotten.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use allegro_testkit as support;
use promql_parser::parser::{self, Expr};
use promql_parser::util::{walk_expr, ExprVisitor};
use serde_json::Value;
use support::{
    accepted, free_port, http_get, no_mapping, rejected, repo_root, Db, Publisher, TestEnv,
};

/// Labels Prometheus adds to every scraped series.
const TARGET_LABELS: [&str; 2] = ["instance", "job"];

/// Series Prometheus makes itself for every target (an alert may use them).
const PROMETHEUS_SERIES: [&str; 1] = ["up"];

/// The queries of the dashboard, each with where it is (for messages).
struct Query {
    at: String,
    expr: String,
}

fn dashboard() -> Value {
    let path = repo_root().join("docs/grafana-dashboard.json");
    let text = std::fs::read_to_string(&path).unwrap();
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every panel, rows' collapsed panels included.
fn panels(dash: &Value) -> Vec<&Value> {
    fn walk<'a>(list: &'a Value, out: &mut Vec<&'a Value>) {
        for p in list.as_array().into_iter().flatten() {
            out.push(p);
            walk(&p["panels"], out);
        }
    }
    let mut out = Vec::new();
    walk(&dash["panels"], &mut out);
    out
}

/// The dashboard's structure: a Prometheus datasource variable that every
/// panel and query uses, unique panel ids, a query in every panel.
fn queries(dash: &Value) -> Vec<Query> {
    let vars = dash["templating"]["list"]
        .as_array()
        .expect("templating.list");
    let ds = vars.iter().find(|v| v["type"] == "datasource");
    let ds = ds.expect("a datasource variable");
    assert_eq!(ds["query"], "prometheus", "{ds}");
    let uid = format!("${{{}}}", ds["name"].as_str().unwrap());
    let uses_var = |v: &Value| v["type"] == "prometheus" && v["uid"] == uid.as_str();

    let mut out = Vec::new();
    let mut ids = BTreeSet::new();
    for p in panels(dash) {
        let title = p["title"].as_str().unwrap_or_default();
        assert!(
            ids.insert(p["id"].as_i64().expect("panel id")),
            "{title}: id"
        );
        if p["type"] == "row" {
            continue;
        }
        assert!(!title.is_empty(), "a panel without a title: {p}");
        assert!(uses_var(&p["datasource"]), "{title}: datasource");
        let targets = p["targets"].as_array().filter(|t| !t.is_empty());
        for t in targets.unwrap_or_else(|| panic!("{title}: no query")) {
            assert!(uses_var(&t["datasource"]), "{title}: target datasource");
            let expr = t["expr"].as_str().unwrap_or_default();
            assert!(!expr.trim().is_empty(), "{title}: empty query");
            out.push(Query {
                at: format!("panel `{title}` {}", t["refId"]),
                expr: expr.to_string(),
            });
        }
    }
    for v in vars.iter().filter(|v| v["type"] == "query") {
        assert!(uses_var(&v["datasource"]), "variable {}", v["name"]);
        out.push(Query {
            at: format!("variable `{}`", v["name"].as_str().unwrap()),
            expr: v["query"]["query"].as_str().unwrap().to_string(),
        });
    }
    out
}

/// The `expr:` of every rule in the suggested alerting rules (one line each).
fn alert_queries() -> Vec<Query> {
    let path = repo_root().join("docs/prometheus-alerts.yml");
    let text = std::fs::read_to_string(&path).unwrap();
    let mut out = Vec::new();
    let mut alert = None;
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if let Some(name) = line.strip_prefix("- alert: ") {
            assert!(alert.is_none(), "line {}: {:?} has no expr", n + 1, alert);
            alert = Some(name.to_string());
        } else if let Some(expr) = line.strip_prefix("expr: ") {
            let name = alert
                .take()
                .unwrap_or_else(|| panic!("line {}: expr outside a rule", n + 1));
            out.push(Query {
                at: format!("alert `{name}` (prometheus-alerts.yml:{})", n + 1),
                expr: expr.to_string(),
            });
        }
    }
    assert!(alert.is_none(), "{alert:?} has no expr");
    assert!(out.len() >= 10, "{} rules", out.len());
    out
}

/// Grafana's interval variables as Prometheus would get them; other
/// variables may only stand inside label matcher strings.
fn expand(expr: &str) -> String {
    expr.replace("$__rate_interval", "1m")
        .replace("$__interval", "1m")
        .replace("$__range", "1h")
}

/// What a query names: metrics and labels.
#[derive(Default)]
struct Names {
    metrics: BTreeSet<String>,
    labels: BTreeSet<String>,
}

impl ExprVisitor for Names {
    type Error = String;

    fn pre_visit(&mut self, expr: &Expr) -> Result<bool, String> {
        let vs = match expr {
            Expr::VectorSelector(vs) => Some(vs),
            Expr::MatrixSelector(ms) => Some(&ms.vs),
            Expr::Aggregate(a) => {
                if let Some(m) = &a.modifier {
                    self.labels.extend(m.labels().labels.iter().cloned());
                }
                None
            }
            Expr::Binary(b) => {
                if let Some(m) = b.modifier.as_ref().and_then(|m| m.matching.as_ref()) {
                    self.labels.extend(m.labels().labels.iter().cloned());
                }
                None
            }
            _ => None,
        };
        if let Some(vs) = vs {
            let name = vs.name.clone().ok_or("a selector without a metric name")?;
            self.metrics.insert(name);
            let matchers = vs.matchers.matchers.iter();
            self.labels.extend(matchers.map(|m| m.name.clone()));
        }
        Ok(true)
    }
}

/// `label_values(metric, label)` (a Grafana variable query) or PromQL.
fn names(q: &Query) -> Names {
    if let Some(args) = q.expr.strip_prefix("label_values(") {
        let args = args.strip_suffix(')').unwrap_or_else(|| panic!("{}", q.at));
        let (metric, label) = args.split_once(',').unwrap_or_else(|| panic!("{}", q.at));
        return Names {
            metrics: [metric.trim().to_string()].into(),
            labels: [label.trim().to_string()].into(),
        };
    }
    let ast = parser::parse(&expand(&q.expr))
        .unwrap_or_else(|e| panic!("{}: not PromQL: {e}\n{}", q.at, q.expr));
    let mut n = Names::default();
    walk_expr(&mut n, &ast).unwrap_or_else(|e| panic!("{}: {e}", q.at));
    assert!(!n.metrics.is_empty(), "{}: names no metric", q.at);
    n
}

/// What the daemon exports: each family's sample names, and the labels
/// seen on each sample name.
#[derive(Debug, Default)]
struct Exported {
    /// Family (`# TYPE` name) → the sample names its type has.
    families: BTreeMap<String, Vec<String>>,
    labels: BTreeMap<String, BTreeSet<String>>,
}

impl Exported {
    fn parse(text: &str) -> Exported {
        let mut e = Exported::default();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').unwrap();
                let suffixes: &[&str] = match kind {
                    "counter" => &["_total", "_created"],
                    "histogram" | "gaugehistogram" => &["_bucket", "_sum", "_count", "_created"],
                    "summary" => &["", "_sum", "_count", "_created"],
                    "info" => &["_info"],
                    _ => &[""],
                };
                let samples = suffixes.iter().map(|s| format!("{name}{s}")).collect();
                e.families.insert(name.to_string(), samples);
            } else if !line.starts_with('#') && !line.is_empty() {
                let end = line.find(['{', ' ']).unwrap_or(line.len());
                let labels = e.labels.entry(line[..end].to_string()).or_default();
                labels.extend(label_names(&line[end..]));
            }
        }
        e
    }

    fn samples(&self) -> BTreeSet<&str> {
        self.families
            .values()
            .flatten()
            .map(String::as_str)
            .collect()
    }
}

/// The label names of a sample line's `{a="…",b="…"} value` part.
fn label_names(rest: &str) -> Vec<String> {
    let Some(mut s) = rest.strip_prefix('{') else {
        return vec![];
    };
    let mut out = Vec::new();
    while let Some((name, after)) = s.split_once("=\"") {
        out.push(name.trim_start_matches(',').to_string());
        // Skip the quoted value, escapes included.
        let mut chars = after.char_indices();
        let mut end = after.len();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => {
                    chars.next();
                }
                '"' => {
                    end = i + 1;
                    break;
                }
                _ => {}
            }
        }
        s = &after[end..];
        if s.starts_with('}') {
            break;
        }
    }
    out
}

/// A running daemon's `/metrics` after an accepted, a rejected and an
/// invalid application (the first two owe documents) and one call of its
/// check API, so that the labelled families have samples.
async fn scrape() -> String {
    let mut env = TestEnv::new(Db::Sqlite, "dashboard").await;
    let port = free_port();
    let api_port = free_port();
    let clients = env.dir.path().join("api-clients.toml");
    let token = "abr_dashboard";
    std::fs::write(
        &clients,
        format!(
            "[[client]]\nname = \"dashboard\"\ntoken_sha256 = \"{}\"\n",
            allegro_web::api::clients::token_hash(token)
        ),
    )
    .unwrap();
    env.extra_env.extend([
        (
            "ALLEGRO_BRIDGE__API__LISTEN".into(),
            format!("127.0.0.1:{api_port}"),
        ),
        (
            "ALLEGRO_BRIDGE__API__CLIENTS_FILE".into(),
            clients.display().to_string(),
        ),
    ]);
    env.extra_env.push((
        "ALLEGRO_BRIDGE__METRICS__LISTEN".into(),
        format!("127.0.0.1:{port}"),
    ));
    // The gauges read from the database (documents owed) every second.
    env.extra_env.push((
        "ALLEGRO_BRIDGE__METRICS__STORE_REFRESH_SECS".into(),
        "1".into(),
    ));
    env.declare().await;
    let msgs = [accepted(), rejected(), no_mapping()];
    Publisher::new(&env)
        .await
        .publish_all(&env.intake, &msgs)
        .await;
    let mut daemon = env.spawn_daemon();
    env.wait_for(
        "three acked, one record",
        Duration::from_secs(60),
        || async {
            let text = http_get(port, "/metrics").await;
            text.contains("allegro_bridge_deliveries_acked_total 3")
                && text.contains("allegro_bridge_records_written_total 1")
                && text.contains("allegro_bridge_documents_owed{")
        },
    )
    .await;
    let auth = format!("Bearer {token}");
    let check = crate::api::request(
        api_port,
        "POST",
        "/api/v1/pruefung",
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/json"),
        ],
        &rejected().body,
    )
    .await;
    assert_eq!(check.status, 200);
    let text = http_get(port, "/metrics").await;
    daemon.sigterm();
    assert_eq!(daemon.wait_exit(Duration::from_secs(20)), Some(0));
    env.cleanup().await;
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    body.to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn every_dashboard_query_names_metrics_the_daemon_exports() {
    let dash = dashboard();
    let queries = queries(&dash);
    let alerts = alert_queries();
    let exported = Exported::parse(&scrape().await);
    let samples = exported.samples();
    assert!(
        samples.contains("allegro_bridge_applications_total"),
        "{exported:?}"
    );

    let mut problems = Vec::new();
    let mut shown = BTreeSet::new();
    let mut unchecked = BTreeSet::new();
    for (q, on_dashboard) in queries
        .iter()
        .map(|q| (q, true))
        .chain(alerts.iter().map(|q| (q, false)))
    {
        let mut n = names(q);
        n.metrics
            .retain(|m| !PROMETHEUS_SERIES.contains(&m.as_str()));
        for m in &n.metrics {
            if samples.contains(m.as_str()) {
                if on_dashboard {
                    shown.insert(m.clone());
                }
            } else {
                problems.push(format!("{}: `{m}` is not exported", q.at));
            }
        }
        // A label must be on the samples of a metric the query names.
        let sampled: Vec<_> = n
            .metrics
            .iter()
            .filter_map(|m| exported.labels.get(m))
            .collect();
        if sampled.is_empty() {
            unchecked.extend(n.metrics.iter().cloned());
            continue;
        }
        let seen: BTreeSet<&String> = sampled.into_iter().flatten().collect();
        for l in &n.labels {
            if !TARGET_LABELS.contains(&l.as_str()) && !seen.contains(l) {
                problems.push(format!(
                    "{}: no sample of {:?} has label `{l}`",
                    q.at, n.metrics
                ));
            }
        }
    }
    for (family, names) in &exported.families {
        if !names.iter().any(|s| shown.contains(s)) {
            problems.push(format!("`{family}` is exported but on no panel"));
        }
    }
    if !unchecked.is_empty() {
        eprintln!("labels not checked (no samples in this run): {unchecked:?}");
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// The checks above catch what they claim: a misspelt metric, a label the
/// metric does not have, a query that is not PromQL.
#[test]
fn the_checks_catch_a_wrong_query() {
    let text = "# TYPE allegro_bridge_x counter\nallegro_bridge_x_total{reason=\"a,b\\\"\",kind=\"k\"} 1\n";
    let e = Exported::parse(text);
    assert_eq!(
        e.labels["allegro_bridge_x_total"],
        ["kind".to_string(), "reason".to_string()].into()
    );
    assert!(e.samples().contains("allegro_bridge_x_total"));
    let q = |expr: &str| Query {
        at: "test".into(),
        expr: expr.into(),
    };
    let n = names(&q(
        "sum by (reason) (rate(allegro_bridge_x_total{instance=~\"$instance\"}[$__rate_interval]))",
    ));
    assert_eq!(n.metrics, ["allegro_bridge_x_total".to_string()].into());
    assert_eq!(
        n.labels,
        ["instance".to_string(), "reason".to_string()].into()
    );
    let bad = std::panic::catch_unwind(|| names(&q("sum by (reason (allegro_bridge_x_total)")));
    assert!(bad.is_err());
}
