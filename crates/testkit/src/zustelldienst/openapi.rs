//! The vendored Submission API document (FITKO's OpenAPI 3.0 document,
//! `crates/fitconnect/spec/submission-api-1.1.3.json`) as the referee of the
//! stand-in: which paths, methods and query parameters exist, which status
//! codes and content types an operation answers with, and the JSON Schema of
//! every body.
//!
//! OpenAPI 3.0 schemas are a dialect of JSON Schema. This document's are
//! plain enough to be checked as draft 2020-12 (checked: no `nullable`, no
//! boolean `exclusiveMinimum`, no `$ref` with siblings, examples only outside
//! the schemas); 2020-12 rather than draft 4 because only 2019-09 and later
//! know `format: uuid`. A schema is compiled with the whole document as its
//! root, so its `$ref`s to `#/components/...` resolve as written: the
//! schema's keywords are merged into a copy of the document, whose own
//! members (`openapi`, `paths`, `components`, ...) are no JSON Schema
//! keywords and are ignored. Formats are asserted (`uuid`, `uri`); unknown
//! ones (`int32`) are ignored.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use serde_json::{Map, Value};

/// The document, as vendored (JSON, converted from the published YAML).
const DOCUMENT: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../fitconnect/spec/submission-api-1.1.3.json"
));

/// The parsed document and the validators compiled from it so far.
pub(crate) struct OpenApi {
    doc: Value,
    validators: Mutex<HashMap<String, Arc<jsonschema::Validator>>>,
}

/// An operation of the document that a request's method and path matched.
pub(crate) struct Operation<'a> {
    /// The path as the document writes it, e.g. `/v1/cases/{caseId}/events`.
    pub template: &'a str,
    /// The method in upper case, as on the wire.
    pub method: String,
    path_item: &'a Value,
    op: &'a Value,
    /// The path parameters' values, by name.
    path_params: Vec<(String, String)>,
}

impl Operation<'_> {
    /// Whether the document requires authorization (a non-empty `security`).
    pub fn secured(&self) -> bool {
        self.op
            .get("security")
            .and_then(Value::as_array)
            .is_some_and(|s| !s.is_empty())
    }
}

/// The document, parsed once per process.
pub(crate) fn document() -> &'static OpenApi {
    static DOC: OnceLock<OpenApi> = OnceLock::new();
    DOC.get_or_init(|| OpenApi::parse(DOCUMENT))
}

impl OpenApi {
    fn parse(text: &str) -> Self {
        let doc: Value = serde_json::from_str(text).expect("the vendored OpenAPI document is JSON");
        assert!(
            doc["paths"].is_object() && doc["components"]["schemas"].is_object(),
            "the vendored OpenAPI document has no paths or component schemas"
        );
        Self {
            doc,
            validators: Mutex::default(),
        }
    }

    /// The operation `method` on `path` (no query), or why there is none.
    pub fn operation(&self, method: &str, path: &str) -> Result<Operation<'_>, String> {
        let paths = self.doc["paths"].as_object().expect("checked in parse");
        let (template, path_item, path_params) = paths
            .iter()
            .find_map(|(template, item)| {
                match_template(template, path).map(|params| (template.as_str(), item, params))
            })
            .ok_or_else(|| format!("{method} {path}: the path is not in the document"))?;
        let op = path_item
            .get(method.to_ascii_lowercase())
            .filter(|op| op.is_object())
            .ok_or_else(|| format!("{method} {path}: {template} has no {method} operation"))?;
        Ok(Operation {
            template,
            method: method.to_ascii_uppercase(),
            path_item,
            op,
            path_params,
        })
    }

    /// Whether `path` matches a path of the document (for any method).
    pub fn has_path(&self, path: &str) -> bool {
        let paths = self.doc["paths"].as_object().expect("checked in parse");
        paths.keys().any(|t| match_template(t, path).is_some())
    }

    /// Checks a request to `op`: its query and path parameters against the
    /// declared ones and their schemas, its body against the request body.
    pub fn check_request(
        &self,
        op: &Operation<'_>,
        query: &[(String, String)],
        content_type: Option<&str>,
        body: &[u8],
    ) -> Vec<String> {
        let params = self.parameters(op);
        let mut found = self.check_query(&params, query);
        for (name, value) in &op.path_params {
            if let Some(param) = find_param(&params, "path", name) {
                found.extend(self.check_param(param, value));
            }
        }
        found.extend(self.check_request_body(op, content_type, body));
        let at = format!("request {} {}", op.method, op.template);
        found.into_iter().map(|v| format!("{at}: {v}")).collect()
    }

    /// Checks a response of `op`: that its status is declared, its content
    /// type is one declared for that status, and its body fits the schema.
    pub fn check_response(
        &self,
        op: &Operation<'_>,
        status: u16,
        content_type: Option<&str>,
        body: &[u8],
    ) -> Vec<String> {
        let responses = &op.op["responses"];
        let found = match responses
            .get(status.to_string())
            .or_else(|| responses.get("default"))
        {
            None => vec![format!("status {status} is not declared")],
            Some(response) => {
                let response = self.resolve(response);
                match response.get("content").and_then(Value::as_object) {
                    None if body.is_empty() => Vec::new(),
                    None => vec![format!(
                        "status {status} declares no body, but one was sent"
                    )],
                    Some(content) => self.check_content(content, content_type, body),
                }
            }
        };
        let at = format!("response {status} to {} {}", op.method, op.template);
        found.into_iter().map(|v| format!("{at}: {v}")).collect()
    }

    /// Validates `instance` against the component schema `name`
    /// (`#/components/schemas/<name>`); one message per violation.
    pub fn validate_component(&self, name: &str, instance: &Value) -> Vec<String> {
        assert!(
            self.doc["components"]["schemas"].get(name).is_some(),
            "no component schema {name:?} in the document"
        );
        let reference = serde_json::json!({ "$ref": format!("#/components/schemas/{name}") });
        self.validate(&reference, instance)
    }

    /// The document's path templates and component schema names.
    pub fn names(&self) -> (Vec<String>, Vec<String>) {
        let keys = |v: &Value| v.as_object().map(|m| m.keys().cloned().collect::<Vec<_>>());
        (
            keys(&self.doc["paths"]).unwrap_or_default(),
            keys(&self.doc["components"]["schemas"]).unwrap_or_default(),
        )
    }

    fn check_query(&self, params: &[&Value], query: &[(String, String)]) -> Vec<String> {
        let mut found = Vec::new();
        for (name, value) in query {
            match find_param(params, "query", name) {
                Some(param) => found.extend(self.check_param(param, value)),
                None => found.push(format!("query parameter `{name}` is not declared")),
            }
        }
        for param in params.iter().filter(|p| p["in"] == "query") {
            let name = param["name"].as_str().unwrap_or_default();
            if param["required"] == true && !query.iter().any(|(n, _)| n == name) {
                found.push(format!("the required query parameter `{name}` is missing"));
            }
        }
        found
    }

    /// `value` (text from a path or query) against the parameter's schema.
    fn check_param(&self, param: &Value, value: &str) -> Vec<String> {
        let name = param["name"].as_str().unwrap_or_default();
        let schema = &param["schema"];
        let instance = match typed(schema, value) {
            Ok(instance) => instance,
            Err(expected) => {
                return vec![format!("parameter `{name}`: {value:?} is not {expected}")];
            }
        };
        self.validate(schema, &instance)
            .into_iter()
            .map(|v| format!("parameter `{name}`: {v}"))
            .collect()
    }

    fn check_request_body(
        &self,
        op: &Operation<'_>,
        content_type: Option<&str>,
        body: &[u8],
    ) -> Vec<String> {
        match op.op.get("requestBody").map(|b| self.resolve(b)) {
            None if body.is_empty() => Vec::new(),
            None => vec!["the operation takes no request body, but one was sent".into()],
            Some(request_body) if body.is_empty() => match request_body["required"] == true {
                true => vec!["the required request body is missing".into()],
                false => Vec::new(),
            },
            Some(request_body) => match request_body["content"].as_object() {
                Some(content) => self.check_content(content, content_type, body),
                None => Vec::new(),
            },
        }
    }

    /// A body against the media types `content` declares.
    fn check_content(
        &self,
        content: &Map<String, Value>,
        content_type: Option<&str>,
        body: &[u8],
    ) -> Vec<String> {
        let declared: Vec<&str> = content.keys().map(String::as_str).collect();
        let Some(media_type) = content_type.map(essence) else {
            return vec![format!("no content type; declared: {declared:?}")];
        };
        let Some(entry) = content.get(&media_type) else {
            return vec![format!(
                "content type {media_type:?} is not declared; declared: {declared:?}"
            )];
        };
        let Some(schema) = entry.get("schema") else {
            return Vec::new();
        };
        let instance = if is_json(&media_type) {
            match serde_json::from_slice(body) {
                Ok(value) => value,
                Err(e) => return vec![format!("the {media_type} body is no JSON: {e}")],
            }
        } else {
            match std::str::from_utf8(body) {
                Ok(text) => Value::String(text.to_owned()),
                Err(_) => return vec![format!("the {media_type} body is not UTF-8 text")],
            }
        };
        self.validate(schema, &instance)
    }

    /// The parameters of `op`, `$ref`s resolved; an operation's own
    /// parameter replaces the path item's of the same name and place.
    fn parameters<'a>(&'a self, op: &Operation<'a>) -> Vec<&'a Value> {
        let list = |v: &'a Value| -> Vec<&'a Value> {
            v.as_array()
                .map(|a| a.iter().map(|p| self.resolve(p)).collect())
                .unwrap_or_default()
        };
        let own = list(&op.op["parameters"]);
        let mut all: Vec<&Value> = list(&op.path_item["parameters"])
            .into_iter()
            .filter(|p| {
                !own.iter()
                    .any(|o| o["name"] == p["name"] && o["in"] == p["in"])
            })
            .collect();
        all.extend(own);
        all
    }

    /// `value` itself, or what its `$ref` (`#/...` in this document) names.
    fn resolve<'a>(&'a self, value: &'a Value) -> &'a Value {
        let mut value = value;
        for _ in 0..8 {
            match value.get("$ref").and_then(Value::as_str) {
                Some(reference) => {
                    let pointer = reference.strip_prefix('#').unwrap_or(reference);
                    value = self
                        .doc
                        .pointer(pointer)
                        .unwrap_or_else(|| panic!("unresolvable $ref {reference:?}"));
                }
                None => return value,
            }
        }
        panic!("$ref chain too long at {value}")
    }

    /// `instance` against `schema` (a schema object of this document).
    fn validate(&self, schema: &Value, instance: &Value) -> Vec<String> {
        let validator = self.validator(schema);
        validator
            .iter_errors(instance)
            .map(|e| {
                let at = e.instance_path().to_string();
                let at = if at.is_empty() { "/".to_owned() } else { at };
                shorten(&format!("at {at}: {e}"))
            })
            .collect()
    }

    fn validator(&self, schema: &Value) -> Arc<jsonschema::Validator> {
        let key = schema.to_string();
        let mut cache = self.validators.lock().unwrap();
        if let Some(v) = cache.get(&key) {
            return Arc::clone(v);
        }
        let mut root = self.doc.clone();
        let root_map = root.as_object_mut().expect("the document is an object");
        for (keyword, value) in schema.as_object().expect("a schema object") {
            root_map.insert(keyword.clone(), value.clone());
        }
        let validator = jsonschema::options()
            .with_draft(jsonschema::Draft::Draft202012)
            .should_validate_formats(true)
            .build(&root)
            .unwrap_or_else(|e| panic!("schema {key} does not compile: {e}"));
        let validator = Arc::new(validator);
        cache.insert(key, Arc::clone(&validator));
        validator
    }
}

/// The path parameters if `path` matches `template` (`{name}` matches one
/// non-empty segment).
fn match_template(template: &str, path: &str) -> Option<Vec<(String, String)>> {
    let (t, p): (Vec<&str>, Vec<&str>) = (template.split('/').collect(), path.split('/').collect());
    if t.len() != p.len() {
        return None;
    }
    let mut params = Vec::new();
    for (t, p) in t.iter().zip(&p) {
        match t.strip_prefix('{').and_then(|t| t.strip_suffix('}')) {
            Some(name) if !p.is_empty() => params.push((name.to_owned(), (*p).to_owned())),
            Some(_) => return None,
            None if t == p => {}
            None => return None,
        }
    }
    Some(params)
}

fn find_param<'a>(params: &[&'a Value], place: &str, name: &str) -> Option<&'a Value> {
    params
        .iter()
        .find(|p| p["in"] == place && p["name"] == name)
        .copied()
}

/// A parameter's text as the JSON value its schema's `type` expects, or the
/// name of what was expected.
fn typed(schema: &Value, text: &str) -> Result<Value, &'static str> {
    match schema["type"].as_str() {
        Some("integer") => text
            .parse::<i64>()
            .map(Value::from)
            .map_err(|_| "an integer"),
        Some("number") => text
            .parse::<f64>()
            .ok()
            .and_then(|n| serde_json::Number::from_f64(n).map(Value::Number))
            .ok_or("a number"),
        Some("boolean") => text
            .parse::<bool>()
            .map(Value::Bool)
            .map_err(|_| "a boolean"),
        _ => Ok(Value::String(text.to_owned())),
    }
}

/// A content type without parameters, in lower case.
fn essence(content_type: &str) -> String {
    content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase()
}

fn is_json(media_type: &str) -> bool {
    media_type == "application/json" || media_type.ends_with("+json")
}

/// At most 400 characters of a message (a violation quotes the value, which
/// may be a whole JWE).
fn shorten(message: &str) -> String {
    match message.char_indices().nth(400) {
        Some((at, _)) => format!("{}…", &message[..at]),
        None => message.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const SUBMISSION: &str = "0b7a1fd5-57a3-4f5d-9b3f-4a4cbd30f2a1";
    const DESTINATION: &str = "5d1a4b39-9a4e-4d7b-8a40-1f4f0e7c53c1";
    const CASE: &str = "c8b8e0a2-3c2e-4f53-8d27-35d4f0ad8c11";

    fn pickup() -> Value {
        json!({
            "count": 1, "offset": 0, "totalCount": 1,
            "submissions": [
                {"destinationId": DESTINATION, "submissionId": SUBMISSION, "caseId": CASE}
            ]
        })
    }

    #[test]
    fn a_pickup_list_fits_and_one_without_case_id_does_not() {
        let doc = document();
        assert_eq!(
            doc.validate_component("SubmissionsForPickup", &pickup()),
            Vec::<String>::new()
        );

        let mut broken = pickup();
        broken["submissions"][0]
            .as_object_mut()
            .unwrap()
            .remove("caseId");
        let found = doc.validate_component("SubmissionsForPickup", &broken);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0].contains("/submissions/0") && found[0].contains("caseId"),
            "{found:?}"
        );
    }

    #[test]
    fn formats_patterns_and_limits_are_asserted() {
        let doc = document();
        let mut not_a_uuid = pickup();
        not_a_uuid["submissions"][0]["submissionId"] = json!("x".repeat(36));
        assert!(!doc
            .validate_component("SubmissionsForPickup", &not_a_uuid)
            .is_empty());

        let error = json!({"type": "about:blank", "title": "Not Found", "status": 404});
        assert!(doc.validate_component("Error", &error).is_empty());
        assert!(!doc
            .validate_component("Error", &json!({"title": "Not Found", "status": 404}))
            .is_empty());
        assert!(!doc
            .validate_component("Error", &json!({"type": "a", "title": "b", "status": 42}))
            .is_empty());

        assert!(doc
            .validate_component("Attachment", &json!("eyJh.YWJj.ZGVm.Z2hp.amts"))
            .is_empty());
        assert!(!doc
            .validate_component("Attachment", &json!("eyJh.YWJj ZGVm"))
            .is_empty());

        let service = json!({"identifier": "urn:de:fim:leika:leistung:99123456760610"});
        assert!(doc.validate_component("ServiceType", &service).is_empty());
        assert!(!doc
            .validate_component("ServiceType", &json!({"identifier": "Bürgergeld"}))
            .is_empty());
    }

    #[test]
    fn requests_are_matched_to_operations_and_their_parameters_checked() {
        let doc = document();
        let path = format!("/v1/submissions/{SUBMISSION}/attachments/{CASE}");
        let op = doc.operation("GET", &path).unwrap();
        assert_eq!(
            op.template,
            "/v1/submissions/{submissionId}/attachments/{attachmentId}"
        );
        assert!(op.secured());
        assert!(doc.check_request(&op, &[], None, b"").is_empty());

        let op = doc.operation("GET", "/v1/submissions/nope").unwrap();
        let found = doc.check_request(&op, &[], None, b"");
        assert_eq!(
            found.len(),
            2,
            "format and length of submissionId: {found:?}"
        );

        assert!(doc.operation("GET", "/v1/nowhere").is_err());
        assert!(doc.operation("DELETE", "/v1/submissions").is_err());
        assert!(!doc
            .operation("GET", "/.well-known/jwks.json")
            .unwrap()
            .secured());

        let op = doc.operation("GET", "/v1/submissions").unwrap();
        let q = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
            pairs
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect()
        };
        let good = q(&[
            ("destinationId", DESTINATION),
            ("limit", "500"),
            ("offset", "0"),
        ]);
        assert!(doc.check_request(&op, &good, None, b"").is_empty());
        for bad in [
            q(&[("limit", "501")]),
            q(&[("limit", "0")]),
            q(&[("limit", "ten")]),
            q(&[("offset", "-1")]),
            q(&[("destination", DESTINATION)]),
            q(&[("destinationId", "42")]),
        ] {
            let found = doc.check_request(&op, &bad, None, b"");
            assert!(!found.is_empty(), "{bad:?} passed");
            assert!(
                found[0].starts_with("request GET /v1/submissions: "),
                "{found:?}"
            );
        }
    }

    #[test]
    fn bodies_are_checked_by_status_and_content_type() {
        let doc = document();
        let op = doc
            .operation("POST", &format!("/v1/cases/{CASE}/events"))
            .unwrap();
        let set = b"eyJhbGciOiJQUzUxMiJ9.eyJqdGkiOiIxIn0.c2lnbmF0dXJl";
        assert!(doc
            .check_request(&op, &[], Some("application/jose"), set)
            .is_empty());
        assert!(!doc
            .check_request(&op, &[], Some("application/json"), set)
            .is_empty());
        assert!(!doc
            .check_request(&op, &[], Some("application/jose"), b"")
            .is_empty());
        assert!(!doc
            .check_request(&op, &[], Some("application/jose"), b"no-dots-here")
            .is_empty());

        assert!(doc.check_response(&op, 204, None, b"").is_empty());
        let problem = json!({"type": "about:blank", "title": "Conflict", "status": 409});
        let problem = problem.to_string();
        let problem_json = Some("application/problem+json");
        assert!(doc
            .check_response(&op, 409, problem_json, problem.as_bytes())
            .is_empty());
        assert!(!doc
            .check_response(&op, 409, Some("application/json"), problem.as_bytes())
            .is_empty());
        assert!(!doc
            .check_response(&op, 503, problem_json, problem.as_bytes())
            .is_empty());
        assert!(!doc.check_response(&op, 204, None, b"x").is_empty());

        let op = doc.operation("GET", "/v1/submissions").unwrap();
        let mut broken = pickup();
        broken["submissions"][0]
            .as_object_mut()
            .unwrap()
            .remove("caseId");
        let body = broken.to_string();
        let json = Some("application/json; charset=utf-8");
        let found = doc.check_response(&op, 200, json, body.as_bytes());
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0].starts_with("response 200 to GET /v1/submissions: "),
            "{found:?}"
        );
        let body = pickup().to_string();
        assert!(doc
            .check_response(&op, 200, json, body.as_bytes())
            .is_empty());
    }

    /// The JSON copy is the YAML as published: the same paths, methods and
    /// component schemas, compared via Python's YAML parser.
    #[test]
    fn the_json_copy_names_what_the_yaml_names() {
        let yaml = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../fitconnect/spec/submission-api-1.1.3.yaml"
        );
        let script = "import json, sys, yaml\n\
                      d = yaml.safe_load(open(sys.argv[1], encoding='utf-8'))\n\
                      print(json.dumps({'paths': {p: sorted(k for k in v) for p, v in d['paths'].items()},\n\
                      'schemas': sorted(d['components']['schemas'])}))";
        let output = std::process::Command::new("python3")
            .args(["-c", script, yaml])
            .output()
            .expect("python3 runs (Debian: apt-get install python3 python3-yaml)");
        assert!(
            output.status.success(),
            "parsing {yaml} with PyYAML failed; is python3-yaml installed \
             (Debian: apt-get install python3-yaml)?\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let from_yaml: Value = serde_json::from_slice(&output.stdout).unwrap();

        let doc = &document().doc;
        let paths: Map<String, Value> = doc["paths"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(p, item)| {
                let mut keys: Vec<&String> = item.as_object().unwrap().keys().collect();
                keys.sort();
                (p.clone(), json!(keys))
            })
            .collect();
        let (_, mut schemas) = document().names();
        schemas.sort();
        assert_eq!(from_yaml["paths"], Value::Object(paths));
        assert_eq!(from_yaml["schemas"], json!(schemas));
        assert!(schemas.len() > 30, "{schemas:?}");
    }
}
