"""A controller serving the UI, on the local cluster, following a repository of sample DAGs.

Each test gets its own: a bare repository holding this project's `sample-dags/` (and
whatever DAGs the test pushes beside them), a SQLite database, a namespace for worker
pods and an API token file. The controller is the production one, started in process
as `kubedag dev` starts it; worker pods run as local processes under the node agent.
"""

from __future__ import annotations

import json
import secrets
import shutil
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from controller.process.controller import Controller
from controller.settings.loading import load_config
from controller.store import DagRecord
from tests.gitsync.conftest import Remote, git, make_remote
from tests.process.controllers import wait_for

SAMPLES = Path(__file__).resolve().parents[2] / "sample-dags"
DAGS_PATH = "sample-dags"
SYNC_WITHIN = 30.0


@dataclass
class Site:
    controller: Controller
    remote: Remote
    token: str

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.controller.http.port}"

    def push(self, files: dict[str, str]) -> str:
        """Commit files under the DAGs folder and wait until the controller has read them."""
        revision = self.remote.commit({f"{DAGS_PATH}/{name}": text for name, text in files.items()})
        wait_for(
            lambda: all(r.revision == revision for r in self.dags() if not r.deleted) or None,
            timeout=SYNC_WITHIN,
            what=f"the controller to read {revision[:12]}",
        )
        return revision

    def dags(self) -> list[DagRecord]:
        with self.controller.store.transaction() as uow:
            return uow.list_dags()


def start_site(*, root: Path, kubeconfig: Path, namespace: str) -> Site:
    remote = make_remote(root)
    shutil.copytree(SAMPLES, remote.work / DAGS_PATH)
    git(remote.work, "add", "-A")
    revision = remote.commit({})
    token = secrets.token_urlsafe(24)
    token_file = root / "api-token"
    token_file.write_text(token + "\n")
    config = load_config(
        path=None,
        environ={},
        overrides={
            "kubeconfig": str(kubeconfig),
            "dataDir": str(root / "data"),
            "databaseUrl": f"sqlite:///{root / 'kubedag.db'}",
            "instance": f"ui-{uuid.uuid4().hex[:8]}",
            "logStore": str(root / "logs"),
            "http.bind": "127.0.0.1",
            "http.port": 0,
            "api.tokenFile": str(token_file),
            "git.url": remote.url,
            "git.dagsPath": DAGS_PATH,
            "git.interval": "1s",
            "executor.namespaces": [namespace],
            "leaderElection.enabled": False,
        },
    )
    controller = Controller(config, migrate=True)
    controller.start()
    site = Site(controller=controller, remote=remote, token=token)
    try:
        assert controller.leadership.wait_started(30)
        wait_for(
            lambda: (
                len([r for r in site.dags() if r.valid and r.revision == revision]) >= 5 or None
            ),
            timeout=SYNC_WITHIN,
            what="the sample DAGs to be synced",
        )
    except BaseException:
        controller.stop()
        raise
    return site


def api(site: Site, method: str, path: str, body: object = None, *, token: bool = True) -> Any:
    """Call the controller's API as a script would; returns the decoded JSON answer."""
    request = urllib.request.Request(  # noqa: S310 - the controller on loopback
        f"{site.url}/api/v1{path}",
        method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Content-Type": "application/json"}
        | ({"Authorization": f"Bearer {site.token}"} if token else {}),
    )
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - loopback
        return json.loads(response.read())


def wait_run(site: Site, run_id: int, *, timeout: float = 90.0) -> str:
    """The run's final state, once it has one."""
    finished = ("succeeded", "failed", "cancelled")
    return str(
        wait_for(
            lambda: (
                state
                if (state := api(site, "GET", f"/runs/{run_id}")["state"]) in finished
                else None
            ),
            timeout=timeout,
            what=f"run {run_id} to finish",
        )
    )
