//! `policy test --coverage`: which rules no test case exercised.
//!
//! Oso does not say which rule answered a query, so the policy is loaded a second time
//! with every rule instrumented: its body gets one more condition, `__coverage.hit(N)`,
//! a host method that counts and succeeds. The condition is last, so it runs only when
//! the rest of the rule matched. Only characters within lines are added, so Polar's line
//! numbers stay those of the files. `role` and `topic` facts are vocabulary, read by the
//! host at load time, and are left out.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use oso::PolarClass;
use polar_core::parser::{parse_lines, Line};
use polar_core::sources::{Source, SourceInfo};

use super::{PolicyError, PolicySet};

/// Counts rule hits; registered in Polar as the constant `__coverage`.
#[derive(Clone, Default, PolarClass)]
pub struct Hits(Arc<Vec<AtomicU64>>);

impl Hits {
    fn hit(&self, rule: i64) -> bool {
        if let Some(counter) = usize::try_from(rule).ok().and_then(|i| self.0.get(i)) {
            counter.fetch_add(1, Ordering::Relaxed);
        }
        true
    }

    /// How often rule `index` matched.
    pub fn count(&self, index: usize) -> u64 {
        self.0.get(index).map_or(0, |c| c.load(Ordering::Relaxed))
    }
}

/// A rule of the policy, where it is written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleSite {
    /// The file, as given.
    pub file: String,
    /// The rule's first line (1-based).
    pub line: usize,
    /// The rule's head as written, e.g. `allow(agent: Agent, "set_status", ticket: Ticket)`.
    pub head: String,
}

/// A policy set loaded with every rule instrumented, and the rules in instrumentation order.
pub struct Instrumented {
    /// The policy set; query it as usual.
    pub set: PolicySet,
    /// Every instrumented rule.
    pub rules: Vec<RuleSite>,
    /// Their hit counters.
    pub hits: Hits,
}

/// Loads the policy of `dir` with every rule (but `role` and `topic` facts) counting its
/// matches. The instrumented files are written to a temporary directory and removed.
pub fn instrument(dir: &Path) -> Result<Instrumented, PolicyError> {
    let files = super::polar_files(dir)?;
    let mut rules = Vec::new();
    let mut rewritten = Vec::new();
    for file in &files {
        let name = file.display().to_string();
        let text = std::fs::read_to_string(file).map_err(|source| PolicyError::Read {
            dir: file.clone(),
            source,
        })?;
        let lines = parse_lines(Source::new_with_name(name.clone(), text.clone()))
            .map_err(|e| PolicyError::Polar(e.to_string()))?;
        // (offset, text to insert), applied back to front.
        let mut inserts: Vec<(usize, String)> = Vec::new();
        for line in lines {
            let Line::Rule(rule) = line else { continue };
            if matches!(rule.name.0.as_str(), "role" | "topic") {
                continue;
            }
            let SourceInfo::Parser(head) = &rule.source_info else {
                continue;
            };
            let index = rules.len();
            let marker = format!("__coverage.hit({index})");
            match body_of(&text, head.right) {
                Some(Body::Rule { start, end }) => {
                    inserts.push((start, "(".into()));
                    inserts.push((end, format!(") and {marker}")));
                }
                Some(Body::Fact { end }) => inserts.push((end, format!(" if {marker}"))),
                None => continue,
            }
            rules.push(RuleSite {
                file: name.clone(),
                line: text[..head.left.min(text.len())].matches('\n').count() + 1,
                head: text
                    .get(head.left..head.right)
                    .unwrap_or_default()
                    .trim()
                    .to_owned(),
            });
        }
        inserts.sort_by_key(|insert| std::cmp::Reverse(insert.0));
        let mut instrumented = text.clone();
        for (at, insert) in inserts {
            if instrumented.is_char_boundary(at) {
                instrumented.insert_str(at, &insert);
            }
        }
        rewritten.push((file.clone(), instrumented));
    }

    let scratch =
        std::env::temp_dir().join(format!("needtoknow-coverage-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&scratch).map_err(|source| PolicyError::Read {
        dir: scratch.clone(),
        source,
    })?;
    let loaded = load_instrumented(dir, &scratch, &rewritten, rules.len());
    let _ = std::fs::remove_dir_all(&scratch);
    let (set, hits) = loaded?;
    Ok(Instrumented { set, rules, hits })
}

/// Where a rule's body is, found by reading on from the end of its head.
enum Body {
    /// `head if BODY;`: the body from `start` to `end` (where the `;` is).
    Rule { start: usize, end: usize },
    /// `head;`: the `;` is at `end`.
    Fact { end: usize },
}

/// Reads from `from` (the end of a rule's head) past blanks and comments: either `;` (a
/// fact) or `if`, then the body up to the `;` that ends the rule (outside strings and
/// comments).
fn body_of(text: &str, from: usize) -> Option<Body> {
    let bytes = text.as_bytes();
    let skip_blank = |mut at: usize| loop {
        while at < bytes.len() && bytes[at].is_ascii_whitespace() {
            at += 1;
        }
        if at < bytes.len() && bytes[at] == b'#' {
            while at < bytes.len() && bytes[at] != b'\n' {
                at += 1;
            }
            continue;
        }
        return at;
    };
    let at = skip_blank(from);
    if bytes.get(at) == Some(&b';') {
        return Some(Body::Fact { end: at });
    }
    if !text.get(at..)?.starts_with("if") {
        return None;
    }
    let start = at + 2;
    let mut i = start;
    while i < bytes.len() {
        match bytes[i] {
            b'"' => {
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' {
                    if bytes[i] == b'\\' {
                        i += 1;
                    }
                    i += 1;
                }
            }
            b'#' => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
            }
            b';' => return Some(Body::Rule { start, end: i }),
            _ => {}
        }
        i += 1;
    }
    None
}

fn load_instrumented(
    dir: &Path,
    scratch: &Path,
    rewritten: &[(PathBuf, String)],
    count: usize,
) -> Result<(PolicySet, Hits), PolicyError> {
    let mut files = Vec::new();
    let mut sources = Vec::new();
    for (original, text) in rewritten {
        let name = original.file_name().unwrap_or_default();
        let path = scratch.join(name);
        std::fs::write(&path, text).map_err(|source| PolicyError::Read {
            dir: path.clone(),
            source,
        })?;
        files.push(path);
        sources.push((original.display().to_string(), text.clone()));
    }
    let hits = Hits(Arc::new((0..count).map(|_| AtomicU64::new(0)).collect()));
    let registered = hits.clone();
    let set = PolicySet::build(dir, files, &sources, false, move |oso| {
        let class = Hits::get_polar_class_builder()
            .add_method("hit", |hits: &Hits, rule: i64| hits.hit(rule))
            .build();
        oso.register_class(class)
            .map_err(|e| PolicyError::Polar(e.to_string()))?;
        oso.register_constant(registered, "__coverage")
            .map_err(|e| PolicyError::Polar(e.to_string()))
    })?;
    Ok((set, hits))
}

/// The rules that never matched, as `file:line: head` lines, and a summary line.
pub fn report(instrumented: &Instrumented) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let missed: Vec<&RuleSite> = instrumented
        .rules
        .iter()
        .enumerate()
        .filter(|(i, _)| instrumented.hits.count(*i) == 0)
        .map(|(_, rule)| rule)
        .collect();
    for rule in &missed {
        let _ = writeln!(
            out,
            "NOT COVERED {}:{}: {}",
            rule.file, rule.line, rule.head
        );
    }
    let total = instrumented.rules.len();
    let _ = writeln!(
        out,
        "coverage: {} of {total} rules exercised by the cases ({} not covered; role and topic facts not counted)",
        total - missed.len(),
        missed.len()
    );
    out
}
