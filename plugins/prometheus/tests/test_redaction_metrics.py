"""``metrics serve`` never prints the store's password (issue 15, item 4).

The test server trusts its clients: the password in the URL is ignored by
it, and must not appear in the startup line.
"""

from __future__ import annotations

import os
import subprocess
import sys

from localqueue import PersistentQueue

PASSWORD = "s3cr3t-pw"


def with_password(url: str) -> str:
    scheme, _, rest = url.partition("://")
    authority = rest.split("/", 1)[0].split("?", 1)[0]
    if "@" in authority:
        user, _, tail = rest.partition("@")
        return f"{scheme}://{user.split(':', 1)[0]}:{PASSWORD}@{tail}"
    return f"{scheme}://postgres:{PASSWORD}@{rest}"


def test_serve_startup_line_hides_the_password(postgres_store_url: str) -> None:
    url = with_password(postgres_store_url)
    with PersistentQueue("jobs", store=url) as q:
        q.put(1)  # the store exists: serve opens only an existing store
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LOCALQUEUE_", "PROMETHEUS_"))}
    env["LOCALQUEUE_STORE"] = url
    server = subprocess.Popen(
        [sys.executable, "-m", "localqueue", "metrics", "serve", "--port", "0"],
        env=env, stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert server.stderr is not None
        banner = server.stderr.readline()
    finally:
        server.terminate()
        out, err = server.communicate(timeout=10)
    assert banner.startswith("serving metrics of postgresql://"), banner + err
    assert ":***@" in banner
    for text in (banner, out, err):
        assert PASSWORD not in text, text
