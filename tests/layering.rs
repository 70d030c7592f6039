//! The crate's layering, checked: no module uses one that uses it back, directly or through
//! others. Read from the sources: every `crate::a::…` and `super::…` path in non-test code is an
//! edge. Checked between the crate's top-level modules, and between the files of each folder
//! module (a folder's `mod.rs` declares and re-exports its children, and the files that share a
//! type's methods name it through `super`; those edges with `mod.rs` are not counted).

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// Every `.rs` file under `dir`.
fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).expect("src readable") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The file's code before its test module, without comment lines.
fn code(path: &Path) -> String {
    let text = fs::read_to_string(path).expect("source readable");
    let end = text.find("#[cfg(test)]\nmod tests").unwrap_or(text.len());
    text[..end]
        .lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The identifiers that follow each occurrence of `prefix` (e.g. `crate::`), as paths: in
/// `crate::proto::frame::{..}` that is `["proto", "frame"]`.
fn paths_after(code: &str, prefix: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let mut rest = code;
    while let Some(i) = rest.find(prefix) {
        let boundary = rest[..i]
            .chars()
            .next_back()
            .is_none_or(|c| !(c.is_alphanumeric() || c == '_'));
        rest = &rest[i + prefix.len()..];
        if !boundary {
            continue;
        }
        let mut path = Vec::new();
        let mut s = rest;
        loop {
            let n = s
                .find(|c: char| !(c.is_alphanumeric() || c == '_'))
                .unwrap_or(s.len());
            if n == 0 {
                break;
            }
            path.push(s[..n].to_string());
            if !s[n..].starts_with("::") {
                break;
            }
            s = &s[n + 2..];
        }
        out.push(path);
    }
    out
}

/// Module path of a source file: `src/proto/frame.rs` is `["proto", "frame"]`, `src/proto/mod.rs`
/// is `["proto"]`, `src/lib.rs` is `[]`.
fn module_of(src: &Path, file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(src).expect("under src");
    let mut parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    let last = parts.pop().expect("a file name");
    let stem = last.trim_end_matches(".rs");
    if stem != "mod" && stem != "lib" {
        parts.push(stem.to_string());
    }
    parts
}

/// The longest prefix of `path` that names a module with a source file.
fn resolve(modules: &BTreeSet<Vec<String>>, path: &[String]) -> Option<Vec<String>> {
    (1..=path.len())
        .rev()
        .map(|n| path[..n].to_vec())
        .find(|p| modules.contains(p))
}

/// A cycle in `edges`, if any, as the modules along it.
fn find_cycle(edges: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        n: &str,
        edges: &BTreeMap<String, BTreeSet<String>>,
        state: &mut BTreeMap<String, u8>,
        stack: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        state.insert(n.to_string(), 1);
        stack.push(n.to_string());
        for m in edges.get(n).into_iter().flatten() {
            match state.get(m).copied().unwrap_or(0) {
                1 => {
                    let at = stack.iter().position(|x| x == m).unwrap_or(0);
                    let mut cycle = stack[at..].to_vec();
                    cycle.push(m.clone());
                    return Some(cycle);
                }
                0 => {
                    if let Some(c) = visit(m, edges, state, stack) {
                        return Some(c);
                    }
                }
                _ => {}
            }
        }
        stack.pop();
        state.insert(n.to_string(), 2);
        None
    }
    let mut state = BTreeMap::new();
    for n in edges.keys() {
        if state.get(n).copied().unwrap_or(0) == 0 {
            let mut stack = Vec::new();
            if let Some(c) = visit(n, edges, &mut state, &mut stack) {
                return Some(c);
            }
        }
    }
    None
}

#[test]
fn no_module_uses_one_that_uses_it_back() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    // The library's modules only: the binary under src/bin is a user of the library.
    files.retain(|f| !f.starts_with(src.join("bin")));
    let modules: BTreeSet<Vec<String>> = files.iter().map(|f| module_of(&src, f)).collect();
    let mut top: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut inner: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut edges_seen = 0;
    for file in &files {
        let me = module_of(&src, file);
        if me.is_empty() {
            // lib.rs declares and re-exports.
            continue;
        }
        let is_mod_rs = file.file_name().is_some_and(|n| n == "mod.rs");
        let code = code(file);
        let mut targets = Vec::new();
        for p in paths_after(&code, "crate::") {
            targets.extend(resolve(&modules, &p));
        }
        // `super` from a child file is its folder's module; from a mod.rs, the folder's parent.
        let parent: Vec<String> = me[..me.len() - 1].to_vec();
        for p in paths_after(&code, "super::") {
            let mut full = parent.clone();
            full.extend(p);
            targets.extend(resolve(&modules, &full));
        }
        for t in targets {
            if t.is_empty() || t == me {
                continue;
            }
            edges_seen += 1;
            if t[0] != me[0] {
                top.entry(me[0].clone()).or_default().insert(t[0].clone());
            } else if t.len() > 1 && me.len() > 1 && !is_mod_rs {
                // Two files of one folder: siblings (or a deeper child).
                inner.entry(me.join("::")).or_default().insert(t.join("::"));
            }
        }
    }
    assert!(edges_seen > 50, "the scan found only {edges_seen} uses");
    assert!(
        top.get("reactor").is_some_and(|s| s.contains("shard")),
        "the scan must see the reactor use the shard: {top:?}"
    );
    if let Some(c) = find_cycle(&top) {
        panic!("modules use each other in a circle: {}", c.join(" -> "));
    }
    if let Some(c) = find_cycle(&inner) {
        panic!("files use each other in a circle: {}", c.join(" -> "));
    }
}

#[test]
fn the_cycle_finder_finds_cycles() {
    let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    g.entry("a".into()).or_default().insert("b".into());
    g.entry("b".into()).or_default().insert("c".into());
    assert_eq!(find_cycle(&g), None);
    g.entry("c".into()).or_default().insert("a".into());
    assert_eq!(
        find_cycle(&g),
        Some(vec!["a".into(), "b".into(), "c".into(), "a".into()])
    );
    let paths = paths_after("use crate::proto::frame::{self, OpCode};", "crate::");
    assert_eq!(paths, vec![vec!["proto".to_string(), "frame".to_string()]]);
}
