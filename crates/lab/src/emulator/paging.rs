//! Page and limit of a paginated list, as Forgejo's and PocketID's list handlers read them.

use super::Request;

/// A 1-based page and a page size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Paging {
    pub page: usize,
    pub limit: usize,
}

impl Paging {
    /// Reads `page_key` and `limit_key`: a page that is absent, not a number or below 1 is 1; a
    /// limit that is absent, not a number or below 1 is `default_limit`, and at most `max_limit`.
    pub fn from_query(
        req: &Request,
        page_key: &str,
        limit_key: &str,
        default_limit: usize,
        max_limit: usize,
    ) -> Paging {
        let num = |k: &str| req.q(k).and_then(|v| v.parse::<i64>().ok());
        let page = num(page_key).filter(|p| *p >= 1).unwrap_or(1) as usize;
        let limit = match num(limit_key) {
            Some(l) if l >= 1 => (l as usize).min(max_limit),
            _ => default_limit,
        };
        Paging { page, limit }
    }

    /// Pages needed for `total` items; 1 for an empty list.
    pub fn total_pages(&self, total: usize) -> usize {
        total.div_ceil(self.limit).max(1)
    }

    /// This page's items.
    pub fn slice<T>(&self, items: impl IntoIterator<Item = T>) -> Vec<T> {
        items
            .into_iter()
            .skip((self.page - 1) * self.limit)
            .take(self.limit)
            .collect()
    }
}
