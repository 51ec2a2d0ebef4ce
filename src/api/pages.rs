//! Relay connections: the four arguments (`first`/`after` forward, `last`/`before`
//! backward), opaque cursors, and pages of lists held in memory.
//!
//! A cursor is the base64url text `kind:key`, where the key orders the list; `after` and
//! `before` select by key, not by position, so a cursor stays valid while the list changes
//! (a grant expires, a request is decided).

use async_graphql::connection::{Connection, Edge, EmptyFields};
use base64::Engine;

use crate::error::{ApiError, ApiResult};
use crate::request::RequestContext;

/// Default page size of the lists agents page through (`tickets`, `myGrants`, …).
pub const DEFAULT_PAGE_SIZE: i32 = 20;

/// A connection as this API serves it.
pub type Page<T> = Connection<String, T, EmptyFields, EmptyFields>;

/// Which way a page is read, and how many edges it holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// The first `n` edges after `after` (or from the start).
    Forward(u64),
    /// The last `n` edges before `before` (or up to the end).
    Backward(u64),
}

/// A page's arguments, checked: the direction and size, and the keys of the cursors.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Window {
    /// Which way, how many.
    pub direction: Direction,
    /// Only edges whose key sorts after this one.
    pub after: Option<String>,
    /// Only edges whose key sorts before this one.
    pub before: Option<String>,
}

impl Window {
    /// Parses the four arguments of a connection whose cursors are of `kind`: `first` and
    /// `last` are 1..=`max` (neither: the first `default`), never both.
    pub fn parse(
        kind: &str,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
        default: i32,
        max: i32,
    ) -> ApiResult<Window> {
        let size = |name: &str, n: i32| {
            if (1..=max).contains(&n) {
                Ok(n as u64)
            } else {
                Err(ApiError::BadUserInput(format!(
                    "`{name}` must be between 1 and {max}"
                )))
            }
        };
        let direction = match (first, last) {
            (Some(_), Some(_)) => {
                return Err(ApiError::BadUserInput(
                    "give `first` (with `after`) or `last` (with `before`), not both".into(),
                ))
            }
            (None, Some(n)) => Direction::Backward(size("last", n)?),
            (first, None) => Direction::Forward(size("first", first.unwrap_or(default))?),
        };
        Ok(Window {
            direction,
            after: after.map(|c| decode(kind, "after", &c)).transpose()?,
            before: before.map(|c| decode(kind, "before", &c)).transpose()?,
        })
    }

    /// The cursors' keys as database numbers (`after`, `before`), for connections keyed by
    /// an integer id; a key that is not one is `BAD_USER_INPUT`, naming the connection.
    pub fn numbers(&self, connection: &str) -> ApiResult<(Option<i32>, Option<i32>)> {
        let number = |key: &Option<String>| {
            key.as_deref()
                .map(|k| {
                    k.parse().map_err(|_| {
                        ApiError::BadUserInput(format!("not a cursor of `{connection}`"))
                    })
                })
                .transpose()
        };
        Ok((number(&self.after)?, number(&self.before)?))
    }

    /// Whether the page is read backward (`last`/`before`).
    pub fn backward(&self) -> bool {
        matches!(self.direction, Direction::Backward(_))
    }

    /// [`Window::parse`] with the default page size of 20 and the configured maximum
    /// (`NEEDTOKNOW_MAX_PAGE_SIZE`): the lists agents page through.
    pub fn configured(
        request: &RequestContext,
        kind: &str,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> ApiResult<Window> {
        let max = request.settings.limits.page_size;
        Window::parse(kind, first, after, last, before, DEFAULT_PAGE_SIZE, max)
    }

    /// How many rows to read: the page and one more, which tells whether there is more.
    pub fn limit(&self) -> u64 {
        match self.direction {
            Direction::Forward(n) | Direction::Backward(n) => n + 1,
        }
    }

    /// The page of `rows` read in the window's direction (at most [`Window::limit`] of
    /// them, nearest the cursor first), in list order, each with its cursor of `kind`.
    pub fn page<T: async_graphql::OutputType>(
        &self,
        kind: &str,
        mut rows: Vec<(String, T)>,
    ) -> Page<T> {
        let (previous, next) = match self.direction {
            Direction::Forward(n) => {
                let more = rows.len() as u64 > n;
                rows.truncate(n as usize);
                (self.after.is_some(), more)
            }
            Direction::Backward(n) => {
                let more = rows.len() as u64 > n;
                rows.truncate(n as usize);
                rows.reverse();
                (more, self.before.is_some())
            }
        };
        let mut connection = Connection::new(previous, next);
        connection.edges.extend(
            rows.into_iter()
                .map(|(key, node)| Edge::new(encode(kind, &key), node)),
        );
        connection
    }

    /// The page of a whole list held in memory, ordered by each item's key.
    pub fn slice<T: async_graphql::OutputType>(
        &self,
        kind: &str,
        mut items: Vec<(String, T)>,
    ) -> Page<T> {
        items.sort_by(|a, b| a.0.cmp(&b.0));
        items.retain(|(key, _)| {
            self.after.as_ref().is_none_or(|a| key > a)
                && self.before.as_ref().is_none_or(|b| key < b)
        });
        if let Direction::Backward(_) = self.direction {
            items.reverse();
        }
        items.truncate(self.limit() as usize);
        self.page(kind, items)
    }
}

/// A key that sorts as the number does (for ids and timestamps).
pub fn numeric_key(n: i64) -> String {
    format!("{n:020}")
}

fn encode(kind: &str, key: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("{kind}:{key}"))
}

fn decode(kind: &str, argument: &str, cursor: &str) -> ApiResult<String> {
    let bad = || ApiError::BadUserInput(format!("`{argument}` is not a cursor of this connection"));
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(cursor)
        .map_err(|_| bad())?;
    let text = String::from_utf8(bytes).map_err(|_| bad())?;
    text.strip_prefix(kind)
        .and_then(|rest| rest.strip_prefix(':'))
        .map(str::to_owned)
        .ok_or_else(bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(page: &Page<i64>) -> Vec<i64> {
        page.edges.iter().map(|e| e.node).collect()
    }

    fn window(
        first: Option<i32>,
        after: Option<&Page<i64>>,
        last: Option<i32>,
        before: Option<&Page<i64>>,
    ) -> Window {
        let cursor_of = |page: Option<&Page<i64>>, at_end: bool| {
            page.map(|p| {
                let edge = if at_end {
                    p.edges.last()
                } else {
                    p.edges.first()
                };
                edge.unwrap().cursor.clone()
            })
        };
        Window::parse(
            "n",
            first,
            cursor_of(after, true),
            last,
            cursor_of(before, false),
            2,
            10,
        )
        .unwrap()
    }

    fn list() -> Vec<(String, i64)> {
        [5, 1, 4, 2, 3]
            .iter()
            .map(|n| (numeric_key(*n), *n))
            .collect()
    }

    #[test]
    fn forward_and_backward_pages_meet_in_the_middle() {
        let first = window(Some(2), None, None, None).slice("n", list());
        assert_eq!(keys(&first), [1, 2]);
        assert!(first.has_next_page && !first.has_previous_page);
        let second = window(Some(2), Some(&first), None, None).slice("n", list());
        assert_eq!(keys(&second), [3, 4]);
        let last = window(None, None, Some(2), None).slice("n", list());
        assert_eq!(keys(&last), [4, 5]);
        assert!(last.has_previous_page && !last.has_next_page);
        let before = window(None, None, Some(2), Some(&last)).slice("n", list());
        assert_eq!(keys(&before), [2, 3]);
        assert!(before.has_previous_page && before.has_next_page);
    }

    #[test]
    fn bad_arguments_are_refused_by_name() {
        let refused = |first, last, after: Option<&str>| {
            Window::parse("n", first, after.map(str::to_owned), last, None, 2, 10)
                .unwrap_err()
                .message()
        };
        assert!(refused(Some(1), Some(1), None).contains("not both"));
        assert!(refused(Some(11), None, None).contains("`first` must be between 1 and 10"));
        assert!(refused(None, Some(0), None).contains("`last`"));
        assert!(refused(None, None, Some("bm90IGl0")).contains("`after` is not a cursor"));
    }
}
