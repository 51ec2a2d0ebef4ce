//! The layers point one way: no top-level module of `src/` reaches, through `crate::…`
//! paths, a module that reaches it back. (docs/ARCHITECTURE.md has the intended order.)
//!
//! The check reads the source as text: every `crate::NAME` in a file of module `A` is an
//! edge `A -> NAME` (comments and doc comments skipped). `lib.rs` and `main.rs` only
//! assemble the crate and are left out.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Top-level module → (imported top-level module → first `file:line` that imports it).
type Graph = BTreeMap<String, BTreeMap<String, String>>;

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("src is readable") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The module graph of `src/`, from `crate::NAME` paths.
fn graph(src: &Path) -> Graph {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    files.sort();
    let mut graph = Graph::new();
    for file in files {
        let relative = file.strip_prefix(src).expect("under src");
        let first = relative
            .components()
            .next()
            .expect("a path")
            .as_os_str()
            .to_string_lossy()
            .trim_end_matches(".rs")
            .to_owned();
        if first == "lib" || first == "main" {
            continue;
        }
        let text = std::fs::read_to_string(&file).expect("readable");
        let node = graph.entry(first.clone()).or_default();
        for (number, line) in text.lines().enumerate() {
            let code = line.trim_start();
            if code.starts_with("//") {
                continue;
            }
            let mut rest = code;
            while let Some(at) = rest.find("crate::") {
                rest = &rest[at + "crate::".len()..];
                let name: String = rest
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                // `crate::{a, b}` groups name several modules.
                let names: Vec<String> = if name.is_empty() && rest.starts_with('{') {
                    rest[1..]
                        .split(['}', ','])
                        .map(|n| n.trim().split("::").next().unwrap_or("").to_owned())
                        .filter(|n| !n.is_empty())
                        .collect()
                } else {
                    vec![name]
                };
                for name in names {
                    if name != first && !name.is_empty() {
                        node.entry(name)
                            .or_insert_with(|| format!("{}:{}", relative.display(), number + 1));
                    }
                }
            }
        }
    }
    graph
}

/// The strongly connected components with more than one module (Tarjan).
fn cycles(graph: &Graph) -> Vec<Vec<String>> {
    struct State<'a> {
        graph: &'a Graph,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on_stack: BTreeSet<&'a str>,
        found: Vec<Vec<String>>,
    }
    fn visit<'a>(s: &mut State<'a>, node: &'a str) {
        let next = s.index.len();
        s.index.insert(node, next);
        s.low.insert(node, next);
        s.stack.push(node);
        s.on_stack.insert(node);
        let graph = s.graph;
        if let Some(edges) = graph.get(node) {
            for target in edges.keys() {
                let target = target.as_str();
                if !graph.contains_key(target) {
                    continue;
                }
                if !s.index.contains_key(target) {
                    visit(s, target);
                    let low = s.low[node].min(s.low[target]);
                    s.low.insert(node, low);
                } else if s.on_stack.contains(target) {
                    let low = s.low[node].min(s.index[target]);
                    s.low.insert(node, low);
                }
            }
        }
        if s.low[node] == s.index[node] {
            let mut component = Vec::new();
            while let Some(top) = s.stack.pop() {
                s.on_stack.remove(top);
                component.push(top.to_owned());
                if top == node {
                    break;
                }
            }
            if component.len() > 1 {
                component.sort();
                s.found.push(component);
            }
        }
    }
    let mut state = State {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        found: Vec::new(),
    };
    for node in graph.keys() {
        if !state.index.contains_key(node.as_str()) {
            visit(&mut state, node);
        }
    }
    state.found
}

/// No import cycle between top-level modules; a failure names every module of each cycle
/// and where each imports the others.
#[test]
fn top_level_modules_import_each_other_in_one_direction_only() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let graph = graph(&src);
    let found = cycles(&graph);
    let mut report = String::new();
    for component in &found {
        report.push_str(&format!("cycle: {}\n", component.join(", ")));
        for from in component {
            for (to, at) in &graph[from] {
                if component.contains(to) {
                    report.push_str(&format!("  {from} -> {to} ({at})\n"));
                }
            }
        }
    }
    assert!(
        found.is_empty(),
        "import cycles between top-level modules:\n{report}"
    );
}

/// The checker itself sees a cycle when there is one.
#[test]
fn the_cycle_check_finds_a_planted_cycle() {
    let mut graph = Graph::new();
    graph
        .entry("a".into())
        .or_default()
        .insert("b".into(), "a.rs:1".into());
    graph
        .entry("b".into())
        .or_default()
        .insert("c".into(), "b.rs:1".into());
    graph
        .entry("c".into())
        .or_default()
        .insert("a".into(), "c.rs:1".into());
    graph
        .entry("d".into())
        .or_default()
        .insert("a".into(), "d.rs:1".into());
    assert_eq!(cycles(&graph), vec![vec!["a", "b", "c"]]);
}
