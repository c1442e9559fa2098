"""nginx in front of the web processes, sending readable chunks straight from the store.

A Python web process answers a few thousand small chunk GETs a second even on its fast
path (chunks/fastpath.py); nginx sends the same files with sendfile several times
faster. This front lets nginx send them while the market still decides who may read
what:

- a GET or HEAD of `/chunks/<hash>` with no session cookie, no Range or conditional
  header, and either no Authorization header or `Bearer <asset token>`, is answered by
  nginx from `<CHUNK_STORE_DIR>/ab/cd/<hash>`, once a subrequest to the market's
  `/chunk-reads/<hash>` (same credentials) has answered 200. nginx keeps each 200, by
  credentials and chunk, for `decision_seconds`; refusals are never kept;
- a refusal, a missing file, and every other request (uploads, signed-in users,
  ranges, pages, the API, websockets) go to the web processes, which answer as without
  the front.

A revoke or a visitor's departure therefore stops the front serving a chunk within
`decision_seconds` + 1 s + REBAC_INDEX_POLL_SECONDS of its commit (nginx dates what it
keeps in whole seconds, so a yes kept for 1 s may be used for up to 2 s), however many web
processes there are; with several nginx hosts, each keeps its own memory with the same
bound. The answers carry the market's ETag, Cache-Control and nosniff; nginx adds
Last-Modified and may answer If-Modified-Since with 304 (harmless: a chunk never
changes).

`manage.py chunk_front_config` prints the configuration for this site's store
(docs/chunks.md, "Behind nginx").
"""

import os
import re
from pathlib import Path

from django.conf import settings

DECISION_CACHE_ZONE = "fabric_chunk_reads"
_ADDRESS = re.compile(r"[A-Za-z0-9.\-\[\]:]+:[0-9]{1,5}|unix:/[^\s;{}]+")
_PATH = re.compile(r"/[^\s;{}\"'$]*")

SERVER = """
proxy_cache_path {cache_dir} levels=1:2 keys_zone={zone}:10m max_size=256m inactive=60s
    use_temp_path=off;

# 0: nginx may send the chunk itself once the market says yes; 1: the market answers.
map "$request_method $http_authorization|$cookie_{session_cookie}|$http_range$http_if_range$http_if_none_match" $fabric_chunk_via_market {{
    default 1;
    "~*^(GET|HEAD) (bearer [0-9a-f.]+)?\\|\\|$" 0;
}}

map $http_upgrade $fabric_connection_upgrade {{
    default upgrade;
    "" "";
}}

upstream fabric_market {{
    server {upstream};
    keepalive 32;
}}

server {{
    listen {listen};
    client_max_body_size 0;  # the market refuses what is too large, before reading it
    proxy_request_buffering off;  # uploads stream to the market as they arrive
    proxy_http_version 1.1;
    # A location that sets any header inherits none of these: each one repeats them.
    proxy_set_header Host $host;
    proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
    proxy_set_header X-Forwarded-Proto $scheme;
    proxy_set_header Connection "";  # keep-alive to the market
    sendfile on;
    tcp_nopush on;

    location ~ "^/chunks/(?<fabric_chunk>(?<fabric_ab>[0-9a-f]{{2}})(?<fabric_cd>[0-9a-f]{{2}})[0-9a-f]{{60}})$" {{
        error_page 418 = @fabric_market;
        if ($fabric_chunk_via_market) {{
            return 418;
        }}
        auth_request /_fabric_chunk_read;
        auth_request_set $fabric_cache_control $upstream_http_x_chunk_cache_control;
        # A refusal, or no file: the market words the answer (the same 403 for both).
        error_page 401 403 404 = @fabric_market;
        alias {store}/$fabric_ab/$fabric_cd/$fabric_chunk;
        types {{ }}
        default_type application/octet-stream;
        etag off;
        add_header ETag "\\"$fabric_chunk\\"";
        add_header Cache-Control $fabric_cache_control;
        add_header X-Content-Type-Options nosniff;
    }}

    location = /_fabric_chunk_read {{
        internal;
        proxy_pass http://fabric_market/chunk-reads/$fabric_chunk;
        proxy_pass_request_body off;
        proxy_set_header Host $host;
        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        proxy_set_header X-Forwarded-Proto $scheme;
        proxy_set_header Connection "";
        proxy_set_header Content-Length "";
        proxy_cache {zone};
        proxy_cache_key "$http_authorization|$fabric_chunk";
        proxy_cache_valid 200 {seconds}s;
        proxy_ignore_headers Cache-Control Expires Set-Cookie Vary X-Accel-Expires;
    }}

    location @fabric_market {{
        proxy_pass http://fabric_market;
    }}

    location / {{
        proxy_pass http://fabric_market;
        proxy_set_header Host $host;
        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        proxy_set_header X-Forwarded-Proto $scheme;
        proxy_set_header Upgrade $http_upgrade;
        proxy_set_header Connection $fabric_connection_upgrade;
        proxy_read_timeout 1h;  # websockets: the market pings every 20 s
    }}
}}
"""

STANDALONE = """
worker_processes {workers};
{user}
daemon off;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    keepalive_requests 1000000;
    client_body_temp_path {prefix}/body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
{http}
}}
"""


def chunk_front_config(
    *,
    listen: str,
    upstream: str,
    cache_dir: str | Path,
    decision_seconds: int = 1,
    store_dir: str | Path | None = None,
    session_cookie: str | None = None,
) -> str:
    """The nginx `http`-level configuration of the front (see the module docstring).

    `listen` and `upstream` are `host:port` (upstream may be `unix:/path`); `cache_dir`
    is a directory nginx may write its remembered decisions to; `store_dir` defaults to
    CHUNK_STORE_DIR, `session_cookie` to SESSION_COOKIE_NAME. A malformed value raises
    ValueError naming it.
    """
    store = Path(store_dir if store_dir is not None else settings.CHUNK_STORE_DIR).resolve()
    cache = Path(cache_dir).resolve()
    for name, value in (("listen", listen), ("upstream", upstream)):
        if not _ADDRESS.fullmatch(value):
            raise ValueError(
                f"{name} must be host:port (or unix:/path for upstream), not {value!r}"
            )
    for name, path in (("store_dir", store), ("cache_dir", cache)):
        if not _PATH.fullmatch(str(path)):
            raise ValueError(f"{name} {str(path)!r} has characters nginx would misread")
    if not isinstance(decision_seconds, int) or decision_seconds < 1:
        raise ValueError(
            f"decision_seconds must be a whole number of seconds, at least 1, not {decision_seconds!r}"
        )
    return SERVER.format(
        cache_dir=cache,
        zone=DECISION_CACHE_ZONE,
        session_cookie=session_cookie or settings.SESSION_COOKIE_NAME,
        upstream=upstream,
        listen=listen,
        store=store,
        seconds=decision_seconds,
    )


def nginx_standalone_config(*, prefix: str | Path, http: str, workers: int = 1) -> str:
    """A whole nginx.conf running in the foreground with everything under `prefix`,
    around `http` (for tests and benches, not for production)."""
    return STANDALONE.format(
        workers=workers,
        # As root, nginx would hand its workers to `nobody`, who may not enter `prefix`.
        user="user root;" if os.geteuid() == 0 else "",
        prefix=Path(prefix).resolve(),
        http=http,
    )
