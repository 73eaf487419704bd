//! No Docker engine runs here, so `docker/Dockerfile` cannot be built in tests. This checks the
//! instructions that decide Foundry's requirements instead — in the template and in the
//! distroless snippet of docs/container.md: every stage pinned to linux/amd64, a numeric
//! non-root `USER` in the final stage, no reserved or privileged `EXPOSE`, an exec-form
//! `ENTRYPOINT`, a shell with `tee` for log capture, and CA certificates.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: panics are failures

use std::path::PathBuf;

fn workspace_file(rel: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Instructions as (KEYWORD, arguments), continuation lines joined, comments dropped.
fn instructions(dockerfile: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in dockerfile.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('#') || (trimmed.is_empty() && current.is_empty()) {
            continue;
        }
        if let Some(part) = trimmed.strip_suffix('\\') {
            current.push_str(part);
            current.push(' ');
            continue;
        }
        current.push_str(trimmed);
        let (keyword, args) = current
            .split_once(char::is_whitespace)
            .unwrap_or((&current, ""));
        out.push((keyword.to_uppercase(), args.trim().to_owned()));
        current.clear();
    }
    out
}

/// Problems with respect to Foundry's container requirements; empty when it meets them.
fn problems(dockerfile: &str) -> Vec<String> {
    let all = instructions(dockerfile);
    let mut problems = Vec::new();
    for (keyword, args) in &all {
        if keyword == "FROM" && !args.contains("--platform=linux/amd64") {
            problems.push(format!("FROM {args}: not pinned to --platform=linux/amd64"));
        }
        if keyword == "EXPOSE" {
            for port in args.split_whitespace() {
                let n: u32 = port
                    .split('/')
                    .next()
                    .unwrap_or_default()
                    .parse()
                    .unwrap_or(0);
                if n == 8945 || n == 8946 || !(1024..=65535).contains(&n) {
                    problems.push(format!("EXPOSE {port}: reserved or out of 1024-65535"));
                }
            }
        }
    }
    let last_from = all.iter().rposition(|(k, _)| k == "FROM").expect("a FROM");
    let last_stage = &all[last_from..];
    let users: Vec<&String> = last_stage
        .iter()
        .filter(|(k, _)| k == "USER")
        .map(|(_, a)| a)
        .collect();
    match users.last() {
        None => problems.push("final stage has no USER (runs as root)".to_owned()),
        Some(user) => {
            let numeric_non_root = user.split(':').all(|id| {
                !id.is_empty()
                    && id.bytes().all(|b| b.is_ascii_digit())
                    && id.parse::<u32>() != Ok(0)
            });
            if !numeric_non_root {
                problems.push(format!("USER {user}: not a numeric non-root uid[:gid]"));
            }
        }
    }
    match last_stage.iter().rfind(|(k, _)| k == "ENTRYPOINT") {
        Some((_, args)) if args.starts_with('[') => {}
        Some((_, args)) => problems.push(format!(
            "ENTRYPOINT {args}: use the exec form so Foundry's arguments reach the binary"
        )),
        None => problems.push("final stage has no ENTRYPOINT".to_owned()),
    }
    let base = &last_stage[0].1;
    let shell_from_base = base.contains("debian") && base.contains("slim");
    let copies = |needle: &str| {
        last_stage
            .iter()
            .any(|(k, a)| (k == "COPY" || k == "RUN") && a.contains(needle))
    };
    let shell_copied = copies("/bin/sh") && copies("/bin/tee");
    if !(shell_from_base || shell_copied) {
        problems.push("final stage has no /bin/sh + tee for log capture".to_owned());
    }
    let ca = copies("ca-certificates") || base.contains("distroless");
    if !ca {
        problems.push("final stage does not install or copy CA certificates".to_owned());
    }
    problems
}

#[test]
fn the_dockerfile_template_meets_foundrys_requirements() {
    let dockerfile = workspace_file("docker/Dockerfile");
    let problems = problems(&dockerfile);
    assert!(problems.is_empty(), "docker/Dockerfile: {problems:#?}");
    assert!(
        workspace_file("docker/Dockerfile.dockerignore").contains("target/"),
        "the build context excludes target/"
    );
}

#[test]
fn the_documented_distroless_variant_meets_them_too() {
    let doc = workspace_file("docs/container.md");
    let snippet = doc
        .split("```dockerfile")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("a dockerfile snippet in docs/container.md");
    let problems = problems(snippet);
    assert!(
        problems.is_empty(),
        "docs/container.md snippet: {problems:#?}"
    );
}

#[test]
fn the_linter_catches_what_it_claims_to() {
    let bad = "FROM debian:bookworm-slim\nEXPOSE 8945\nUSER root\nENTRYPOINT /app/module\n";
    let p = problems(bad);
    assert!(p.iter().any(|m| m.contains("linux/amd64")), "{p:#?}");
    assert!(p.iter().any(|m| m.contains("EXPOSE 8945")), "{p:#?}");
    assert!(p.iter().any(|m| m.contains("USER root")), "{p:#?}");
    assert!(p.iter().any(|m| m.contains("exec form")), "{p:#?}");
    assert!(p.iter().any(|m| m.contains("CA certificates")), "{p:#?}");
    let no_shell = "FROM --platform=linux/amd64 scratch\nCOPY ca-certificates.crt /etc/ssl/certs/ca-certificates.crt\nUSER 5000\nENTRYPOINT [\"/app\"]\n";
    assert_eq!(
        problems(no_shell),
        ["final stage has no /bin/sh + tee for log capture"]
    );
}
