"""The JavaScript generator in Chromium gives the Python generator's bytes.

The page is served by Playwright from the repository's own files (static/mapgen/ and
tests/mapgen/), so the modules run exactly as a browser loads them, with no server.
"""

from tests.browser import browser, page  # noqa: F401  (fixtures)
from tests.mapgen.cases import seeded_configs, vectors
from tests.mapgen.test_mapgen_node import FULL_TEXT, assert_same
from tests.subprocesses import REPO_ROOT

ORIGIN = "http://mapgen.test"
SERVED = ("static/mapgen/", "tests/mapgen/")


def open_page(page):  # noqa: F811
    def serve(route):
        path = route.request.url.removeprefix(ORIGIN + "/").split("?")[0]
        if path == "":
            route.fulfill(
                status=200, content_type="text/html", body="<!doctype html><title>mapgen</title>"
            )
        elif path.startswith(SERVED) and path.endswith((".js", ".mjs")) and ".." not in path:
            route.fulfill(
                status=200,
                content_type="text/javascript",
                body=(REPO_ROOT / path).read_text(),
            )
        else:
            route.fulfill(status=404, body="not served")

    page.route(ORIGIN + "/**", serve)
    page.goto(ORIGIN + "/")
    return page


def browser_run(page, request):  # noqa: F811
    return page.evaluate(
        "async (request) => (await import('/tests/mapgen/check.mjs')).run(request)", request
    )


def test_golden_vectors_and_a_thousand_seeds_in_chromium(page):  # noqa: F811
    open_page(page)
    golden = vectors()
    computed = browser_run(page, {"vectors": golden})["vectors"]
    assert computed["reference"] == golden["reference"]["outputs"]
    assert computed["mix32"] == [mixed for _, mixed in golden["mix32"]]
    assert computed["seeded"] == [v["outputs"] for v in golden["seeded"]]
    assert computed["below"] == [v["values"] for v in golden["below"]]
    assert computed["layouts"] == [v["sha256"] for v in golden["layouts"]]

    configs = seeded_configs()
    js = browser_run(page, {"configs": configs, "full": FULL_TEXT})["layouts"]
    assert_same(configs, js)
    assert page.errors == []


def test_chromium_refuses_bad_input_with_the_python_message(page):  # noqa: F811
    open_page(page)
    configs = [
        {"market_id": 1, "seed": 2**32},
        {"market_id": 1, "seed": 1, "booths": 40},
        {"market_id": 1, "seed": 1, "bounds_m": [20, 20], "booths": 9},
        {"market_id": 1, "seed": 1, "prop_sets": ["space"]},
    ]
    js = browser_run(page, {"configs": configs})["layouts"]
    assert all("error" in result for result in js)
    assert_same(configs, js)
