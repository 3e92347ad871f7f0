//! Paginated lists as `utils/list_request_util.go` answers them, and the hostile answers a test
//! can ask for instead.

use super::{HostileLists, PocketId, State};
use crate::emulator::{Paging, Request, Response};
use serde_json::{json, Value};

impl PocketId {
    /// Makes every paginated list (`/api/oidc/clients`, `/api/user-groups`, `/api/api-keys`)
    /// answer in a hostile way; `None` restores the real answers.
    pub fn hostile_lists(&self, mode: Option<HostileLists>) {
        self.st().hostile_lists = mode;
    }
}

/// Pagination as `utils/list_request_util.go`: page defaults to 1 and is clamped to the last page,
/// limit defaults to 20 and is clamped to 100, `totalPages` is 1 for an empty list.
pub(super) fn paginate(
    st: &mut State,
    req: &Request,
    mut items: Vec<(Value, String, u64)>,
) -> Response {
    match req.q("sort[column]") {
        Some("name") => items.sort_by(|a, b| a.1.cmp(&b.1).then(a.2.cmp(&b.2))),
        Some(_) => items.sort_by_key(|a| a.2),
        None => {
            // No ORDER BY: the database returns rows in whatever order it likes.
            for i in (1..items.len()).rev() {
                let j = (st.next_rand() % (i as u64 + 1)) as usize;
                items.swap(i, j);
            }
        }
    }
    if req.q("sort[column]").is_some()
        && req
            .q("sort[direction]")
            .is_some_and(|d| d.eq_ignore_ascii_case("desc"))
    {
        items.reverse();
    }
    let paging = Paging::from_query(req, "pagination[page]", "pagination[limit]", 20, 100);
    let limit = paging.limit;
    let total = items.len();
    let total_pages = paging.total_pages(total);
    // Past the last page is the last page.
    let page = paging.page.min(total_pages);
    let asked_page = req
        .q("pagination[page]")
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(1);
    let made_up = |page: usize, n: usize| -> Vec<Value> {
        (0..n)
            .map(|i| json!({"id": format!("hostile-{page}-{i}"), "name": format!("hostile {page}-{i}")}))
            .collect()
    };
    match st.hostile_lists {
        Some(HostileLists::EndlessPages) => {
            return Response::json(
                200,
                json!({"data": made_up(asked_page, limit), "pagination": {"totalPages": asked_page + 1,
                        "totalItems": (asked_page + 1) * limit, "currentPage": asked_page, "itemsPerPage": limit}}),
            )
        }
        Some(HostileLists::OversizedPages(n)) => {
            return Response::json(
                200,
                json!({"data": made_up(asked_page, n), "pagination": {"totalPages": 1,
                        "totalItems": n, "currentPage": 1, "itemsPerPage": limit}}),
            )
        }
        Some(HostileLists::SlowPages(delay)) => std::thread::sleep(delay),
        None => {}
    }
    let claimed_pages = match st.hostile_lists {
        Some(HostileLists::SlowPages(_)) => 100,
        _ => total_pages,
    };
    let data: Vec<Value> = Paging { page, limit }
        .slice(items)
        .into_iter()
        .map(|i| i.0)
        .collect();
    Response::json(
        200,
        json!({"data": data, "pagination": {"totalPages": claimed_pages, "totalItems": total,
                "currentPage": page, "itemsPerPage": limit}}),
    )
}
