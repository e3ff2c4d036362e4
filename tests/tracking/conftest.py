"""A real ``mlflow server`` on 127.0.0.1 for the whole session, stopped by its PID at the end."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from microtune.tracking.server import ensure_local_server, find_local_server


@dataclass
class ServerHandle:
    """The session's server; a test that kills it restarts it on the same port (same URI)."""

    project: Path
    port: int
    uri: str


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory) -> ServerHandle:
    project = tmp_path_factory.mktemp("project")
    first = ensure_local_server(project)
    assert first.started and first.uri.startswith("http://127.0.0.1:")
    yield ServerHandle(project=project, port=first.port, uri=first.uri)
    current = find_local_server(project)  # a test may have replaced the first process
    for server in {first.pid: first, **({current.pid: current} if current else {})}.values():
        if server.is_alive():
            server.stop()
        assert not server.is_alive()
