"""The hub serves the built web desk at /desk/: cache headers, the CSP, 404s, no way out of dist/."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import httpx
import pytest

from intercom.hub.config import HubConfig
from intercom.hub.desk_pages import KEPT, REVALIDATED, content_security_policy

from ..conftest import STEP, Hub

INDEX = """<!doctype html><html><head>
<link rel="stylesheet" href="desk.css"><link rel="manifest" href="manifest.webmanifest">
<link rel="icon" href="https://elsewhere.example/x.png"><a href="missing.css">
</head><body><script type="module" src="app.js"></script></body></html>"""
FILES = {
    "index.html": INDEX,
    "app.js": "console.log('desk');",
    "desk.css": "body { color: black; }",
    "sw.js": "self.addEventListener('fetch', () => {});",
    "manifest.webmanifest": '{"name": "Intercom"}',
    "icons/icon-192.png": "\x89PNG not really",
    "ring.wav": "RIFF....WAVE",
}


def short_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@pytest.fixture
def desk_dir(tmp_path: Path) -> Path:
    built = tmp_path / "dist" / "desk"
    for name, text in FILES.items():
        (built / name).parent.mkdir(parents=True, exist_ok=True)
        (built / name).write_text(text)
    (tmp_path / "dist" / "secret.txt").write_text("not for the web")
    (built / "api").mkdir()
    (built / "api" / "token").write_text("a file the pairing endpoints' path must not reach")
    (built / "outside.txt").symlink_to(tmp_path / "dist" / "secret.txt")
    return built


@pytest.fixture
def hub_config(hub_config: HubConfig, desk_dir: Path) -> HubConfig:
    return replace(hub_config, desk_dir=desk_dir)


@pytest.fixture
async def client(hub: Hub) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=f"http://{hub.address}", timeout=STEP) as client:
        yield client


def assert_guarded(response: httpx.Response, host: str) -> None:
    assert response.headers["content-security-policy"] == content_security_policy("http", host)
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"


async def raw_get(hub: Hub, target: str) -> tuple[int, bytes]:
    """A request line exactly as written: an HTTP client would resolve the dot segments itself."""
    host, port = hub.address.rsplit(":", 1)
    async with asyncio.timeout(STEP):
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(f"GET {target} HTTP/1.1\r\nHost: {hub.address}\r\nConnection: close\r\n\r\n".encode())
        answer = await reader.read()
        writer.close()
    status = int(answer.split(b" ", 2)[1])
    return status, answer.partition(b"\r\n\r\n")[2]


def test_the_policy_is_strict_and_names_only_the_pages_own_websocket():
    policy = dict(part.split(" ", 1) for part in content_security_policy("https", "door.home:8443").split("; "))
    assert policy["default-src"] == "'self'"
    assert policy["script-src"] == "'self'" and policy["style-src"] == "'self'"  # nothing inline
    assert policy["connect-src"] == "'self' wss://door.home:8443"
    assert policy["media-src"] == "'self' blob:"
    assert policy["frame-ancestors"] == "'none'" and policy["object-src"] == "'none'"
    assert "unsafe" not in content_security_policy("https", "door.home")
    assert content_security_policy("http", "127.0.0.1:8080").count("ws://127.0.0.1:8080") == 1


def test_a_host_header_cannot_add_directives():
    for host in ("evil; script-src *", "a b", "x'y", "", None):
        assert "connect-src 'self';" in content_security_policy("https", host)
    assert "wss://[::1]:8443" in content_security_policy("https", "[::1]:8443")


async def test_the_page_and_the_pairing_view_are_the_html_with_versioned_assets(hub, client):
    for path in ("/desk/", "/desk/pair"):
        response = await client.get(path)
        assert response.status_code == 200
        assert response.headers["content-type"] == "text/html; charset=utf-8"
        assert response.headers["cache-control"] == REVALIDATED
        assert_guarded(response, hub.address)
        html = response.text
        assert f'src="app.js?v={short_hash(FILES["app.js"])}"' in html
        assert f'href="desk.css?v={short_hash(FILES["desk.css"])}"' in html
        assert f'href="manifest.webmanifest?v={short_hash(FILES["manifest.webmanifest"])}"' in html
        # what is not one of its files is left as written
        assert 'href="https://elsewhere.example/x.png"' in html and 'href="missing.css"' in html


async def test_desk_without_its_slash_is_sent_to_the_page(client):
    response = await client.get("/desk")
    assert response.status_code == 308 and response.headers["location"] == "/desk/"


async def test_an_asset_with_its_current_hash_is_kept_a_year_any_other_is_revalidated(hub, client, desk_dir):
    current = short_hash(FILES["app.js"])
    kept = await client.get("/desk/app.js", params={"v": current})
    assert kept.status_code == 200 and kept.text == FILES["app.js"]
    assert kept.headers["cache-control"] == KEPT
    assert kept.headers["content-type"] == "text/javascript; charset=utf-8"
    assert_guarded(kept, hub.address)
    for params in ({}, {"v": "0123456789abcdef"}):
        response = await client.get("/desk/app.js", params=params)
        assert response.status_code == 200 and response.headers["cache-control"] == REVALIDATED
    # a new build: the old hash is no longer kept, and the page names the new one
    (desk_dir / "app.js").write_text("console.log('desk, built again');")
    assert (await client.get("/desk/app.js", params={"v": current})).headers["cache-control"] == REVALIDATED
    assert short_hash("console.log('desk, built again');") in (await client.get("/desk/")).text


async def test_the_service_worker_is_never_kept(client):
    response = await client.get("/desk/sw.js", params={"v": short_hash(FILES["sw.js"])})
    assert response.status_code == 200 and response.headers["cache-control"] == REVALIDATED


async def test_each_kind_of_asset_has_its_type(client):
    expected = {
        "desk.css": "text/css; charset=utf-8",
        "manifest.webmanifest": "application/manifest+json",
        "icons/icon-192.png": "image/png",
        "ring.wav": "audio/wav",
    }
    for name, content_type in expected.items():
        response = await client.get(f"/desk/{name}")
        assert response.status_code == 200 and response.headers["content-type"] == content_type, name


async def test_an_unchanged_asset_is_304(client):
    first = await client.get("/desk/desk.css")
    again = await client.get("/desk/desk.css", headers={"If-None-Match": first.headers["etag"]})
    assert again.status_code == 304 and again.content == b""


async def test_a_missing_file_is_a_plain_404_with_the_same_guard(hub, client):
    for path in ("/desk/nothing.js", "/desk/icons/", "/desk/icons/nothing.png", "/desk/index.html/x"):
        response = await client.get(path)
        assert response.status_code == 404, path
        assert response.headers["content-type"].startswith("text/plain")
        assert_guarded(response, hub.address)


async def test_only_get_and_head(client):
    for path in ("/desk/", "/desk/app.js"):
        response = await client.post(path, content=b"x")
        assert response.status_code == 405 and response.headers["allow"] == "GET, HEAD"
    assert (await client.head("/desk/app.js")).status_code == 200


async def test_the_pairing_endpoints_path_is_never_served_from_the_files(client):
    # /desk/api/token is the pairing endpoints' (POST only: 405); /desk/api nobody's
    for path, status in (("/desk/api/token", 405), ("/desk/api", 404)):
        response = await client.get(path)
        assert response.status_code == status and "a file the pairing" not in response.text


@pytest.mark.parametrize(
    "target",
    [
        "/desk/../secret.txt",
        "/desk/%2e%2e/secret.txt",
        "/desk/..%2fsecret.txt",
        "/desk/icons/../../secret.txt",
        "/desk//etc/passwd",
        "/desk/%2fetc%2fpasswd",
        "/desk/outside.txt",  # a link out of the directory is not followed
        "/desk/%00",
    ],
)
async def test_no_path_leaves_the_built_directory(hub, target):
    status, body = await raw_get(hub, target)
    assert status in (400, 404), (target, status)
    assert b"not for the web" not in body and b"root:" not in body


async def test_an_unbuilt_checkout_answers_503_and_says_how_to_build(hub, client, desk_dir, caplog):
    (desk_dir / "index.html").unlink()
    for path in ("/desk/", "/desk/app.js"):
        response = await client.get(path)
        assert response.status_code == 503
        assert "not built" in response.text and "make web" in response.text
        assert_guarded(response, hub.address)
    told = [record.getMessage() for record in caplog.records if "/desk/ answers 503" in record.getMessage()]
    assert len(told) == 1 and str(desk_dir) in told[0]
    assert "run make web" in told[0]
