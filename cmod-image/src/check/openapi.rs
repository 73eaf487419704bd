//! The `server.openapi` label: the OpenAPI document of a module served in Foundry's server
//! mode, checked against Foundry's constraints (docs/protocol.md §4.9): OpenAPI ≥ 3.0.0;
//! exactly one server, `http://localhost:<port>` with a port Foundry allows; every operation
//! with an `operationId`; verbs limited to GET/PUT/POST/DELETE; every parameter with a `schema`
//! and none in a cookie; no `anyOf`/`oneOf`/`allOf` or multi-type schemas; exactly one response
//! code per operation, `application/json`.

use serde_json::Value;

use crate::requirements::RESERVED_PORTS;

/// Verbs Foundry accepts; any other operation of a path item is refused.
const ALLOWED_VERBS: [&str; 4] = ["get", "put", "post", "delete"];
const OTHER_VERBS: [&str; 4] = ["patch", "head", "options", "trace"];

/// Every way `document` (the label's value) breaks Foundry's constraints, each a sentence naming
/// the operation or schema involved; empty when it meets them all.
pub fn server_openapi_problems(document: &str) -> Vec<String> {
    let doc: Value = match serde_json::from_str(document) {
        Ok(doc @ Value::Object(_)) => doc,
        Ok(_) => return vec!["the document is not a JSON object".to_owned()],
        Err(e) => return vec![format!("the document is not JSON: {e}")],
    };
    let mut problems = Vec::new();
    check_version(&doc, &mut problems);
    check_servers(&doc, &mut problems);
    match doc.get("paths").and_then(Value::as_object) {
        None => problems.push("the document has no `paths`".to_owned()),
        Some(paths) => {
            for (path, item) in paths {
                check_path_item(&doc, path, item, &mut problems);
            }
        }
    }
    check_schemas(&doc, "#", false, &mut problems);
    problems
}

/// The port of the document's one `http://localhost:<port>` server, if it has exactly that.
pub fn server_port(document: &str) -> Option<u16> {
    let doc: Value = serde_json::from_str(document).ok()?;
    match doc.get("servers").and_then(Value::as_array)?.as_slice() {
        [server] => localhost_port(server.get("url")?.as_str()?),
        _ => None,
    }
}

fn localhost_port(url: &str) -> Option<u16> {
    url.trim_end_matches('/')
        .strip_prefix("http://localhost:")?
        .parse()
        .ok()
}

fn check_version(doc: &Value, problems: &mut Vec<String>) {
    let version = doc.get("openapi").and_then(Value::as_str).unwrap_or("");
    let major = version
        .split('.')
        .next()
        .and_then(|m| m.parse::<u32>().ok());
    if !matches!(major, Some(3..)) || version.split('.').count() < 2 {
        problems.push(format!(
            "`openapi` is `{version}`; Foundry needs an OpenAPI 3 document (3.0.0 or later)"
        ));
    }
}

fn check_servers(doc: &Value, problems: &mut Vec<String>) {
    let servers = doc
        .get("servers")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let [server] = servers else {
        problems.push(format!(
            "the document has {} servers; Foundry needs exactly one, `http://localhost:<port>`",
            servers.len()
        ));
        return;
    };
    let url = server.get("url").and_then(Value::as_str).unwrap_or("");
    match localhost_port(url) {
        None => problems.push(format!(
            "the server URL is `{url}`; Foundry needs `http://localhost:<port>`"
        )),
        Some(port) if RESERVED_PORTS.contains(&port) => problems.push(format!(
            "the server port {port} is reserved for Foundry's sidecars (8945 and 8946)"
        )),
        Some(port) if port < 1024 => problems.push(format!(
            "the server port {port} is outside 1024-65535, which Foundry requires"
        )),
        Some(_) => {}
    }
}

fn check_path_item(doc: &Value, path: &str, item: &Value, problems: &mut Vec<String>) {
    let Some(item) = item.as_object() else {
        problems.push(format!("path `{path}` is not an object"));
        return;
    };
    for verb in OTHER_VERBS {
        if item.contains_key(verb) {
            problems.push(format!(
                "`{} {path}`: Foundry only accepts GET, PUT, POST and DELETE operations",
                verb.to_uppercase()
            ));
        }
    }
    let shared_parameters = item.get("parameters");
    for verb in ALLOWED_VERBS {
        let Some(op) = item.get(verb) else { continue };
        let at = format!("`{} {path}`", verb.to_uppercase());
        if op
            .get("operationId")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
        {
            problems.push(format!(
                "{at} has no `operationId` (Foundry uses it as the function name)"
            ));
        }
        for parameters in [shared_parameters, op.get("parameters")]
            .into_iter()
            .flatten()
        {
            for parameter in parameters.as_array().into_iter().flatten() {
                check_parameter(doc, &at, parameter, problems);
            }
        }
        check_responses(&at, op.get("responses"), problems);
    }
}

fn check_parameter(doc: &Value, at: &str, parameter: &Value, problems: &mut Vec<String>) {
    let parameter = resolve(doc, parameter);
    let name = parameter.get("name").and_then(Value::as_str).unwrap_or("?");
    if parameter.get("in").and_then(Value::as_str) == Some("cookie") {
        problems.push(format!(
            "{at}: parameter `{name}` is a cookie parameter, which Foundry refuses"
        ));
    }
    if parameter.get("schema").is_none() {
        problems.push(format!(
            "{at}: parameter `{name}` has no `schema`, which Foundry requires"
        ));
    }
}

fn check_responses(at: &str, responses: Option<&Value>, problems: &mut Vec<String>) {
    let codes = responses
        .and_then(Value::as_object)
        .map(|r| r.iter().collect::<Vec<_>>())
        .unwrap_or_default();
    let [(_, response)] = codes.as_slice() else {
        let names: Vec<&str> = codes.iter().map(|(c, _)| c.as_str()).collect();
        problems.push(format!(
            "{at} has {} response codes ({}); Foundry needs exactly one",
            codes.len(),
            names.join(", ")
        ));
        return;
    };
    let media: Vec<&str> = response
        .get("content")
        .and_then(Value::as_object)
        .map(|c| c.keys().map(String::as_str).collect())
        .unwrap_or_default();
    if media != ["application/json"] {
        problems.push(format!(
            "{at}: the response's content is [{}]; Foundry needs `application/json`",
            media.join(", ")
        ));
    }
}

/// A `$ref` to `#/components/…` resolved in `doc` (the value itself otherwise).
fn resolve<'a>(doc: &'a Value, value: &'a Value) -> &'a Value {
    value
        .get("$ref")
        .and_then(Value::as_str)
        .and_then(|r| r.strip_prefix('#'))
        .and_then(|pointer| doc.pointer(pointer))
        .unwrap_or(value)
}

/// No `anyOf`/`oneOf`/`allOf` and no multi-type `type` in any schema. `names` is true for
/// objects whose keys are names (a schema's `properties`), not schema keywords.
fn check_schemas(value: &Value, at: &str, names: bool, problems: &mut Vec<String>) {
    match value {
        Value::Object(o) => {
            if !names {
                for key in ["anyOf", "oneOf", "allOf"] {
                    if o.contains_key(key) {
                        problems.push(format!(
                            "the schema at `{at}` uses `{key}`, which Foundry refuses"
                        ));
                    }
                }
                if let Some(Value::Array(types)) = o.get("type") {
                    problems.push(format!(
                        "the schema at `{at}` has several types ({}), which Foundry refuses",
                        types
                            .iter()
                            .map(Value::to_string)
                            .collect::<Vec<_>>()
                            .join(", ")
                    ));
                }
            }
            for (key, v) in o {
                let child_names = !names && key == "properties";
                check_schemas(v, &format!("{at}/{}", escape(key)), child_names, problems);
            }
        }
        Value::Array(a) => {
            for (i, v) in a.iter().enumerate() {
                check_schemas(v, &format!("{at}/{i}"), false, problems);
            }
        }
        _ => {}
    }
}

/// JSON pointer escaping (`~` → `~0`, `/` → `~1`).
fn escape(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn good() -> Value {
        json!({
            "openapi": "3.0.3",
            "info": {"title": "m", "version": "0"},
            "servers": [{"url": "http://localhost:8080"}],
            "paths": {"/add": {"post": {
                "operationId": "add",
                "requestBody": {"content": {"application/json": {"schema": {
                    "type": "object",
                    "properties": {"x": {"type": "integer"}, "anyOf": {"type": "string"}}}}}},
                "responses": {"200": {"description": "r", "content": {"application/json": {
                    "schema": {"type": "integer", "nullable": true}}}}}}}}
        })
    }

    fn problems(doc: &Value) -> Vec<String> {
        server_openapi_problems(&doc.to_string())
    }

    #[test]
    fn a_document_meeting_every_constraint_passes() {
        assert_eq!(problems(&good()), Vec::<String>::new());
        assert_eq!(server_port(&good().to_string()), Some(8080));
    }

    #[test]
    fn every_broken_constraint_is_reported() {
        let mut doc = good();
        doc["openapi"] = json!("2.0");
        doc["servers"] = json!([{"url": "http://localhost:8945"}]);
        let op = &mut doc["paths"]["/add"]["post"];
        op.as_object_mut().unwrap().remove("operationId");
        op["parameters"] = json!([{"name": "s", "in": "cookie"}]);
        op["responses"]["default"] = json!({"description": "e"});
        op["requestBody"]["content"]["application/json"]["schema"]["properties"]["x"] =
            json!({"anyOf": [{"type": "integer"}, {"type": "null"}]});
        doc["paths"]["/add"]["patch"] = json!({"operationId": "p"});
        doc["components"] = json!({"schemas": {"T": {"type": ["string", "null"]}}});
        let found = problems(&doc);
        for expected in [
            "`openapi` is `2.0`",
            "port 8945 is reserved",
            "`POST /add` has no `operationId`",
            "parameter `s` is a cookie parameter",
            "parameter `s` has no `schema`",
            "`POST /add` has 2 response codes (200, default)",
            "uses `anyOf`",
            "`PATCH /add`: Foundry only accepts",
            "at `#/components/schemas/T` has several types",
        ] {
            assert!(
                found.iter().any(|p| p.contains(expected)),
                "no `{expected}` in {found:#?}"
            );
        }
        assert_eq!(found.len(), 9, "{found:#?}");
    }

    #[test]
    fn servers_and_content_types_are_checked() {
        let mut doc = good();
        doc["servers"] = json!([{"url": "https://example.com"}]);
        doc["paths"]["/add"]["post"]["responses"]["200"]["content"] =
            json!({"text/plain": {"schema": {"type": "string"}}});
        let found = problems(&doc);
        assert!(found[0].contains("`https://example.com`"), "{found:?}");
        assert!(found[1].contains("[text/plain]"), "{found:?}");
        doc["servers"] = json!([]);
        assert!(problems(&doc)[0].contains("0 servers"));
        assert!(server_openapi_problems("{")[0].contains("not JSON"));
    }
}
