"""The browser test's Airflow: a private `airflow standalone` started through the stack's own code
(`vectorlake.stack.up(..., only=True)`) with a temp AIRFLOW_HOME, free ports and ``VECTORLAKE__*``
overrides pointing at a temp lake and a unique alias, so the tasks it runs see that lake (they inherit
the environment Airflow started in). A tiny catalog is streamed into that lake first. The core servers
(OpenSearch, Kafka, moto, mlflow) are the running local stack's; only this Airflow is stopped at the end.

Also here: headless Chromium through the Debian chromedriver (Selenium Manager never runs) and a
screenshot plus page source under the test's tmp dir when a test fails.
"""

from __future__ import annotations

import json
import shutil
import time
import urllib.request
import uuid
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.test_index_e2e import drop_alias
from tests.ports import free_port
from vectorlake import stack
from vectorlake.config import Config, load_config
from vectorlake.embed import registry
from vectorlake.generate import GeneratorSpec, generate, write_landing
from vectorlake.pipeline import stream
from vectorlake.stack import airflow

# Tiny on purpose: the DAG's spark-submit dominates the run time, not the data.
SPEC = GeneratorSpec(seed=11, listings=12, sellers=3, events=80, image_rate=0.0, suppression_rate=0.0)
DAG_ID = "listing_backfill"  # the test module names it too


@dataclass(frozen=True)
class AirflowApi:
    """The REST API of the Airflow under test, with a token for the admin login."""

    url: str
    token: str

    def get(self, path: str) -> Any:
        request = urllib.request.Request(  # noqa: S310 - loopback URL from config
            self.url + path, headers={"Authorization": f"Bearer {self.token}"}
        )
        with urllib.request.urlopen(request, timeout=30) as resp:  # noqa: S310 - loopback URL
            return json.loads(resp.read())


@dataclass(frozen=True)
class BrowserAirflow:
    cfg: Config  # the settings Airflow (and so every task it runs) was started with
    login: airflow.AdminLogin
    api: AirflowApi


def _token(login: airflow.AdminLogin) -> str:
    body = json.dumps({"username": login.user, "password": login.password}).encode()
    request = urllib.request.Request(  # noqa: S310 - loopback URL from config
        login.url + "/auth/token", data=body, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as resp:  # noqa: S310 - loopback URL
        token: str = json.loads(resp.read())["access_token"]
        return token


def _wait_for_dag(api: AirflowApi, dag_id: str, timeout_s: float = 180) -> None:
    """The dag-processor parses the DAGs folder a few seconds after start; the UI lists nothing before."""
    deadline = time.monotonic() + timeout_s
    while True:
        dags = {d["dag_id"] for d in api.get("/api/v2/dags?limit=100")["dags"]}
        if dag_id in dags:
            return
        if time.monotonic() > deadline:
            pytest.fail(f"{dag_id} not parsed after {timeout_s:.0f} s (DAGs: {sorted(dags)})", pytrace=False)
        time.sleep(2)


@pytest.fixture(scope="module")  # torn down (env restored, Airflow stopped) before later modules run
def browser_airflow(spark: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrowserAirflow]:
    tmp = tmp_path_factory.mktemp("browser-airflow")
    landing = tmp / "landing"
    write_landing(generate(SPEC, image_root=str(landing / "images")), landing, files_per_kind=1)
    patch = pytest.MonkeyPatch()
    overrides = {
        "VECTORLAKE__LAKE__ROOT": str(tmp / "lake"),
        "VECTORLAKE__INDEX__ALIAS": f"t-browser-{uuid.uuid4().hex[:8]}",
        "VECTORLAKE__SOURCES__LANDING_DIR": str(landing),
        "VECTORLAKE__AIRFLOW__HOME": str(tmp / "airflow"),
        # a port of its own, and log-server ports of their own, so an Airflow someone else runs on the
        # defaults (8080, 8793, 8794) neither blocks this one nor is reused with another lake
        "VECTORLAKE__AIRFLOW__PORT": str(free_port()),
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
        "VECTORLAKE__STACK__STARTUP_TIMEOUT_S": "420",  # 33 s when quiet, 90 s and more under load
    }
    for key, value in overrides.items():
        patch.setenv(key, value)
    cfg = load_config()
    started = False
    try:
        registry.register_all(cfg)
        totals = stream.run(spark, cfg, "files", once=True, landing_dir=str(landing))
        assert totals.index is not None and totals.index.rejected == 0
        t0 = time.monotonic()
        started = True
        status = stack.up(cfg, [airflow.NAME], only=True)  # inherits the patched environment
        print(f"airflow standalone healthy after {time.monotonic() - t0:.1f} s at {airflow.base_url(cfg)}")
        login = status.airflow_login
        assert login is not None and login.password is not None, f"no admin password in {tmp / 'airflow'}"
        api = AirflowApi(login.url, _token(login))
        _wait_for_dag(api, DAG_ID)
        yield BrowserAirflow(cfg, login, api)
    finally:
        if started:
            stack.down(cfg, [airflow.NAME], only=True)  # this Airflow only; the core servers keep running
        drop_alias(cfg)
        patch.undo()


_FAILED = pytest.StashKey[bool]()  # set on the test item when its setup or call failed


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    item.stash.setdefault(_FAILED, False)
    if report.failed:
        item.stash[_FAILED] = True
    return report


@pytest.fixture
def browser(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    """Headless Chromium driven by /usr/bin/chromedriver; on failure a screenshot and the page source are
    saved under the test's tmp dir and their paths printed."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    driver_path, chromium = shutil.which("chromedriver"), shutil.which("chromium")
    if driver_path is None or chromium is None:
        pytest.fail("chromium and chromium-driver are needed (apt-get install chromium chromium-driver)")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1000"):
        options.add_argument(arg)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SE_OFFLINE", "true")  # belt and braces: given a driver path, Selenium Manager is skipped
        driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
    try:
        yield driver
    finally:
        if request.node.stash.get(_FAILED, False):
            shot, page = tmp_path / "failure.png", tmp_path / "failure.html"
            driver.save_screenshot(str(shot))
            page.write_text(driver.page_source)
            print(f"browser at {driver.current_url}: screenshot {shot}, page source {page}")
        driver.quit()
