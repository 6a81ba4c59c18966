//! The docs agree with the tree: every path `docs/ARCHITECTURE.md` names in its workspace map and
//! its "Where is..." table exists.

use std::path::{Path, PathBuf};

/// The workspace root (two levels above this crate).
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The paths of the map: a line at the left margin names a path from the root, and a crate's
/// own lines below it (indented by two) name paths inside that crate; wider indents are the
/// descriptions' continuation lines.
fn map_paths(doc: &str) -> Vec<PathBuf> {
    let map = doc
        .split("## Workspace")
        .nth(1)
        .and_then(|rest| rest.split("```").nth(1))
        .expect("ARCHITECTURE.md has a ``` map under ## Workspace");
    let mut base = PathBuf::new();
    let mut paths = Vec::new();
    for line in map.lines().filter(|line| !line.trim().is_empty()) {
        let indent = line.len() - line.trim_start().len();
        let name = line.split_whitespace().next().unwrap_or_default();
        match indent {
            0 => {
                paths.push(PathBuf::from(name));
                if name.starts_with("crates/") {
                    base = PathBuf::from(name);
                }
            }
            2 => paths.push(base.join(name)),
            _ => {}
        }
    }
    paths
}

/// The paths in the second column of the "Where is..." table.
fn table_paths(doc: &str) -> Vec<PathBuf> {
    let table = doc
        .split("## Where is...")
        .nth(1)
        .expect("ARCHITECTURE.md has a \"Where is...\" table");
    table
        .lines()
        .take_while(|line| line.is_empty() || line.starts_with('|'))
        .filter_map(|line| line.split('|').nth(2))
        .filter_map(|cell| cell.trim().strip_prefix('`')?.strip_suffix('`'))
        .map(PathBuf::from)
        .collect()
}

#[test]
fn every_path_the_architecture_names_exists() {
    let doc = std::fs::read_to_string(root().join("docs/ARCHITECTURE.md")).unwrap();
    let map = map_paths(&doc);
    let table = table_paths(&doc);
    assert!(map.len() > 50 && table.len() > 5, "{map:?} {table:?}");
    let missing: Vec<&PathBuf> = map
        .iter()
        .chain(&table)
        .filter(|path| !root().join(path).exists())
        .collect();
    assert!(
        missing.is_empty(),
        "ARCHITECTURE.md names paths that do not exist: {missing:?}"
    );
}

/// Every crate of the workspace and every top-level module of each (a file or folder right under
/// `src/`) appears in the map: a new one cannot be added without its line.
#[test]
fn the_architecture_names_every_crate_and_top_level_module() {
    let doc = std::fs::read_to_string(root().join("docs/ARCHITECTURE.md")).unwrap();
    let map = map_paths(&doc);
    let mut unnamed = Vec::new();
    for krate in std::fs::read_dir(root().join("crates")).unwrap() {
        let krate = krate.unwrap().path();
        let rel = krate.strip_prefix(root()).unwrap().to_path_buf();
        if !map.contains(&rel) {
            unnamed.push(rel.clone());
        }
        for entry in std::fs::read_dir(krate.join("src")).unwrap() {
            let path = rel.join("src").join(entry.unwrap().file_name());
            if !map.contains(&path) {
                unnamed.push(path);
            }
        }
    }
    assert!(
        unnamed.is_empty(),
        "ARCHITECTURE.md's map does not name: {unnamed:?}"
    );
}
