//! A rule that is written but not listed in `conformance_tests!` compiles
//! and never runs. This test reads the conformance sources as written and
//! takes every `pub async fn` outside `fixture.rs` for a rule, so it also
//! sees rules in a new subject file that nobody has listed yet.

use std::collections::BTreeSet;
use std::path::Path;

use super::RULES;

/// The file of the shared helpers, whose `pub async fn`s are not rules.
const FIXTURE: &str = "fixture.rs";

/// Rule names written in the conformance sources, with their files.
fn written_rules() -> Vec<(String, String)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/conformance");
    let mut rules = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("read {}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        let file = path.file_name().unwrap().to_string_lossy().into_owned();
        if !file.ends_with(".rs") || file == FIXTURE {
            continue;
        }
        let source = std::fs::read_to_string(&path).unwrap();
        for line in source.lines() {
            if let Some(rest) = line.trim_start().strip_prefix("pub async fn ") {
                let name: String = rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
                rules.push((name, file.clone()));
            }
        }
    }
    rules
}

#[test]
fn every_written_rule_is_listed_once() {
    let written = written_rules();
    let listed: BTreeSet<&str> = RULES.iter().copied().collect();
    assert_eq!(listed.len(), RULES.len(), "a rule is listed twice in conformance_tests!");
    let unlisted: Vec<String> =
        written.iter().filter(|(name, _)| !listed.contains(name.as_str())).map(|(n, f)| format!("{n} ({f})")).collect();
    assert!(unlisted.is_empty(), "written but not listed in conformance_tests!, so never run: {unlisted:?}");
    let names: BTreeSet<&str> = written.iter().map(|(n, _)| n.as_str()).collect();
    let missing: Vec<&str> = RULES.iter().copied().filter(|r| !names.contains(r)).collect();
    assert!(missing.is_empty(), "listed but not written as a `pub async fn` of a subject file: {missing:?}");
}
