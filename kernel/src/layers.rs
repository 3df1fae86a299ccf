//! The layer check (a host test): every `crate::` path in the kernel's
//! sources, by module, against the layer table in `lib.rs` ([`LAYERS`]).
//! A module may use modules of its own layer and of the layers below it,
//! never one above: so there is no import cycle across layers. `cargo
//! test -p kernel layers` runs it (`just test` runs every host test).

use std::collections::BTreeSet;
use std::path::Path;

/// The layers, lowest first, and their modules (the top-level module a
/// source file belongs to). Keep in step with the list in `lib.rs`.
pub const LAYERS: &[(&str, &[&str])] = &[
    ("library", &["pool", "memmap", "mapdb", "sched", "kip", "boot", "types", "door"]),
    ("arch", &["arch"]),
    ("state", &["state", "console", "log"]),
    ("objects", &["thread", "umem", "access"]),
    ("operations", &["ipc", "mapping", "io", "irq", "timer", "pmc", "crash", "control"]),
    ("entry", &["syscall", "trap", "dispatch", "fastpath", "init", "task", "ktest", "invariants", "layers"]),
];

/// Macros exported at the crate root, by the module that defines them.
const MACROS: &[(&str, &str)] = &[("kprint", "console"), ("kprintln", "console")];

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|(_, ms)| ms.contains(&module))
}

/// The top-level module of a source file (relative to `src/`).
fn module_of(rel: &Path) -> String {
    let first = rel.components().next().map(|c| c.as_os_str().to_string_lossy().into_owned()).unwrap_or_default();
    first.trim_end_matches(".rs").to_string()
}

/// The top-level modules a source text names through `crate::` (in `use`
/// trees too: `use crate::{a, b::c}`), outside comments.
pub fn uses(text: &str) -> BTreeSet<String> {
    let code: String = text
        .lines()
        .map(|l| match l.find("//") {
            Some(i) => &l[..i],
            None => l,
        })
        .collect::<Vec<_>>()
        .join("\n");
    let mut out = BTreeSet::new();
    let mut rest = code.as_str();
    while let Some(i) = rest.find("crate::") {
        let before = rest[..i].chars().next_back();
        rest = &rest[i + "crate::".len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue; // e.g. `$crate::` in a macro, or `mycrate::`
        }
        if let Some(group) = rest.strip_prefix('{') {
            // The top-level names of a use tree: split at commas outside
            // nested braces.
            let (mut depth, mut item) = (0, String::new());
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        out.extend(head(&item));
                        item.clear();
                        continue;
                    }
                    _ => {}
                }
                if depth == 0 {
                    item.push(c);
                }
            }
            out.extend(head(&item));
        } else {
            out.extend(head(rest));
        }
    }
    out
}

/// The first identifier of a path (a macro name maps to its module).
fn head(path: &str) -> Option<String> {
    let name: String = path.trim_start().chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
    if name.is_empty() || name == "self" {
        return None;
    }
    Some(MACROS.iter().find(|(m, _)| *m == name).map_or(name, |(_, module)| module.to_string()))
}

/// Every use of a module of a higher layer: `(file, module, used)`.
pub fn violations(src: &Path) -> Vec<(String, String, String)> {
    let mut files = Vec::new();
    let mut dirs = vec![src.to_path_buf()];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).expect("kernel sources") {
            let p = e.expect("entry").path();
            if p.is_dir() {
                dirs.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                files.push(p);
            }
        }
    }
    files.sort();
    let mut bad = Vec::new();
    for f in files {
        let rel = f.strip_prefix(src).expect("under src").to_path_buf();
        let module = module_of(&rel);
        // (This file's own test texts are examples, not uses.)
        if module == "lib" || module == "main" || module == "layers" {
            continue;
        }
        let own = layer_of(&module).unwrap_or_else(|| panic!("{}: module `{module}` is in no layer", rel.display()));
        for used in uses(&std::fs::read_to_string(&f).expect("source")) {
            let theirs = layer_of(&used).unwrap_or_else(|| panic!("{}: uses `{used}`, in no layer", rel.display()));
            if theirs > own {
                bad.push((rel.display().to_string(), module.clone(), used));
            }
        }
    }
    bad
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn use_trees_and_paths_are_read() {
        let text = "use crate::arch::paging::{self, Rights};\nuse crate::{ipc, irq::x, kprintln};\n\
                    // crate::init is only a comment\nfn f() { crate::timer::now(); $crate::console::x }\n";
        let got: Vec<String> = uses(text).into_iter().collect();
        assert_eq!(got, ["arch", "console", "ipc", "irq", "timer"]);
        let nested = "use crate::{a::{b, c}, d};";
        assert_eq!(uses(nested).into_iter().collect::<Vec<_>>(), ["a", "d"]);
    }

    #[test]
    fn every_module_uses_only_its_layer_and_those_below() {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let bad = violations(&src);
        let list: Vec<String> = bad.iter().map(|(f, m, u)| format!("{f}: {m} uses {u}")).collect();
        assert!(bad.is_empty(), "uses of a higher layer:\n{}", list.join("\n"));
    }
}
