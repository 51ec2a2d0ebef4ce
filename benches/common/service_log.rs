//! Reading the service's JSON log back: what went wrong while a benchmark ran. Shared by
//! `e2e.rs` and `peer.rs` (through `common`) and `soak.rs` (on its own).

/// What a service's JSON log says went wrong: its ERROR and WARN lines counted, and each
/// distinct one with how often it came, in order of first appearance.
pub struct LogProblems {
    /// ERROR lines.
    pub errors: usize,
    /// WARN lines.
    pub warnings: usize,
    /// Each distinct line as level, target, message and error (the service logs no
    /// personal data), with its count.
    pub distinct: Vec<(Problem, usize)>,
}

/// One ERROR or WARN line of the log, reduced to what tells it from others.
#[derive(PartialEq, Eq)]
pub struct Problem {
    /// `ERROR` or `WARN`.
    pub level: String,
    /// The module that logged it.
    pub target: String,
    /// The event's message.
    pub message: String,
    /// Its `error` field, when it has one.
    pub error: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let line = format!(
            "{} {}: {} {}",
            self.level, self.target, self.message, self.error
        );
        f.write_str(line.trim_end())
    }
}

/// Reads `log` (one JSON event per line, as `NEEDTOKNOW_LOG_FORMAT=json` writes it); a
/// line that is not JSON but names a level is kept whole as its message.
pub fn log_problems(log: &str) -> LogProblems {
    let mut problems = LogProblems {
        errors: 0,
        warnings: 0,
        distinct: Vec::new(),
    };
    for line in log
        .lines()
        .filter(|l| l.contains("\"ERROR\"") || l.contains("\"WARN\""))
    {
        let problem = match serde_json::from_str::<serde_json::Value>(line) {
            Ok(event) => {
                // Flattened fields (the service's format), else under `fields`.
                let field = |name: &str| {
                    event[name]
                        .as_str()
                        .or(event["fields"][name].as_str())
                        .unwrap_or_default()
                        .to_owned()
                };
                Problem {
                    level: field("level"),
                    target: field("target"),
                    message: field("message"),
                    error: field("error"),
                }
            }
            Err(_) => Problem {
                level: if line.contains("\"ERROR\"") {
                    "ERROR"
                } else {
                    "WARN"
                }
                .to_owned(),
                target: String::new(),
                message: line.chars().take(300).collect(),
                error: String::new(),
            },
        };
        match problem.level.as_str() {
            "ERROR" => problems.errors += 1,
            "WARN" => problems.warnings += 1,
            _ => continue,
        }
        match problems.distinct.iter_mut().find(|(p, _)| *p == problem) {
            Some((_, count)) => *count += 1,
            None => problems.distinct.push((problem, 1)),
        }
    }
    problems
}
