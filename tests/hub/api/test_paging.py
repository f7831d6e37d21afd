"""Lists in pages, each way MessageBird's SDKs ask: page and perPage, currentPage and perPage
(Node's webhooks), limit and offset (Python's call flows and webhooks, Node's recordings)."""

from __future__ import annotations

import pytest

from .conftest import errors

FIVE = 5


@pytest.fixture(params=["/webhooks", "/call-flows"])
async def listed(api, request) -> tuple[str, list[str]]:
    """A list of five, and their ids in the order it lists them."""
    for number in range(FIVE):
        if request.param == "/webhooks":
            body = {"url": f"https://example.test/{number}", "token": "t"}
        else:
            body = {"title": str(number), "steps": [{"action": "hangup"}]}
        assert (await api.client.post(request.param, json=body)).status_code == 201
    ids = [item["id"] for item in (await api.client.get(request.param, params={"perPage": 100})).json()["data"]]
    assert len(ids) == FIVE
    return request.param, ids


# query, the items it shows (of the five), its currentPage and perPage
WAYS = [
    ({}, slice(0, 5), 1, 10),
    ({"page": 2, "perPage": 2}, slice(2, 4), 2, 2),
    ({"currentPage": 3, "perPage": 2}, slice(4, 5), 3, 2),
    ({"limit": 2, "offset": 0}, slice(0, 2), 1, 2),
    ({"limit": 2, "offset": 2}, slice(2, 4), 2, 2),
    ({"limit": 2, "offset": 3}, slice(3, 5), 2, 2),  # between two pages: counted in the earlier
    ({"offset": 4}, slice(4, 5), 1, 10),
    ({"perPage": 3, "offset": 1}, slice(1, 4), 1, 3),
    ({"limit": 2, "offset": 9}, slice(5, 5), 5, 2),
]


async def test_each_way_of_paging_shows_its_items(api, listed):
    path, ids = listed
    for params, shown, page, per_page in WAYS:
        body = (await api.client.get(path, params=params)).json()
        assert [item["id"] for item in body["data"]] == ids[shown], params
        pages = -(-FIVE // per_page)
        expected = {"totalCount": FIVE, "pageCount": pages, "currentPage": page, "perPage": per_page}
        assert body["pagination"] == expected, params


REFUSED = [
    ("page=2&currentPage=2", 400, "currentPage"),
    ("page=1&offset=0", 400, "offset"),
    ("perPage=2&limit=2", 400, "limit"),
    ("limit=2&limit=3", 400, "limit"),
    ("offset=1&offset=1", 400, "offset"),
    ("offset=-1", 422, "offset"),
    ("limit=0", 422, "limit"),
    ("limit=101", 422, "limit"),
    ("currentPage=0", 422, "currentPage"),
]


async def test_paging_that_says_two_things_or_nonsense_is_refused_naming_it(api):
    for query, status, parameter in REFUSED:
        (error,) = errors(await api.client.get(f"/webhooks?{query}"), status)
        assert error["parameter"] == parameter, query
