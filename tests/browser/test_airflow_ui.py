"""The Airflow UI path in a real browser: log in to the simple auth manager's page, open `listing_backfill`,
fill its trigger form (From, To, Target, a Run ID), trigger it and wait until the run shows success; then
check what the run did (a document lost from the index is back, at its own version) and that the run's
conf in the REST API is what the form showed and what was typed.

    .venv/bin/pytest -q -p no:cacheprovider tests/browser

Needs the local stack (`vectorlake stack up`) and Debian's chromium + chromium-driver; the fixture starts
a private Airflow (see conftest.py). The DAG's spark-submit takes minutes on a loaded machine.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import pytest

from tests.e2e.test_index_e2e import index_documents

if TYPE_CHECKING:
    from tests.browser.conftest import BrowserAirflow

DAG_ID = "listing_backfill"

# What is typed into the form: the pickers take YYYY/MM/DD and HH:mm in the UI's zone (UTC by default).
FROM = ("2026/11/01", "00:00")
TO = ("2026/11/03", "00:00")  # the catalog's events all fall in the 24 h after 2026-11-01T00:00Z
TARGET = "index"  # not the default (both), so the test sees the select was used
TYPED_RANGE = (datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 11, 3, tzinfo=UTC))

UI_WAIT_S = 90  # a page or element on a loaded two-core machine
RUN_WAIT_S = 1500  # the run: scheduling plus one spark-submit of jobs/backfill.py


def _wait(driver: Any, timeout_s: float = UI_WAIT_S, poll_s: float = 0.5) -> Any:
    """An explicit wait that retries through React re-renders (an element replaced between find and use)."""
    from selenium.common.exceptions import (
        ElementClickInterceptedException,
        ElementNotInteractableException,
        NoSuchElementException,
        StaleElementReferenceException,
    )
    from selenium.webdriver.support.ui import WebDriverWait

    retry = (
        NoSuchElementException,
        StaleElementReferenceException,
        ElementClickInterceptedException,
        ElementNotInteractableException,
    )
    return WebDriverWait(driver, timeout_s, poll_frequency=poll_s, ignored_exceptions=retry)


def _click(driver: Any, xpath: str) -> None:
    from selenium.webdriver.common.by import By

    def click(d: Any) -> bool:
        d.find_element(By.XPATH, xpath).click()
        return True

    _wait(driver).until(click)


def _text(driver: Any, xpath: str) -> str:
    from selenium.webdriver.common.by import By

    text: str = driver.find_element(By.XPATH, xpath).text
    return text


def _value(driver: Any, xpath: str) -> str | None:
    from selenium.webdriver.common.by import By

    value: str | None = driver.find_element(By.XPATH, xpath).get_attribute("value")
    return value


def _log_in(driver: Any, env: BrowserAirflow) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec

    driver.get(env.login.url + "/")
    user = _wait(driver).until(ec.visibility_of_element_located((By.NAME, "username")))
    user.send_keys(env.login.user)
    driver.find_element(By.NAME, "password").send_keys(env.login.password)
    _click(driver, "//button[@type='submit'][not(@disabled)]")
    _wait(driver).until(lambda d: "/auth/login" not in d.current_url)
    _wait(driver).until(ec.visibility_of_element_located((By.CSS_SELECTOR, "[aria-label='User']")))


DIALOG = f"//*[@role='dialog'][@data-state='open'][.//*[normalize-space(.)='Trigger Dag - {DAG_ID}']]"


def _open_trigger_form(driver: Any, env: BrowserAirflow) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec

    driver.get(env.login.url + "/dags")
    _click(driver, f"//a[normalize-space(.)='{DAG_ID}']")
    _wait(driver).until(ec.url_contains(f"/dags/{DAG_ID}"))
    _click(driver, "//button[@aria-label='Trigger Dag']")
    _wait(driver).until(ec.visibility_of_element_located((By.XPATH, DIALOG)))


def _field(label: str) -> str:
    return f"{DIALOG}//*[@role='group'][.//label[starts-with(normalize-space(.), '{label}')]]"


def _fill_datetime(driver: Any, label: str, date: str, time_of_day: str) -> None:
    """The date-time Param is a popover picker with a YYYY/MM/DD and an HH:mm text box."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support import expected_conditions as ec

    field = _field(label)
    _click(driver, f"{field}//*[@data-testid='datetime-input']")
    picker = "//*[@data-scope='popover'][@data-part='content'][@data-state='open']"
    _wait(driver).until(ec.visibility_of_element_located((By.XPATH, picker)))
    for placeholder, value in (("YYYY/MM/DD", date), ("HH:mm", time_of_day)):
        box = f"{picker}//input[@placeholder='{placeholder}']"

        def typed(d: Any, box: str = box, value: str = value) -> bool:
            element = d.find_element(By.XPATH, box)
            element.send_keys(Keys.CONTROL, "a")
            element.send_keys(value)
            now: str | None = element.get_attribute("value")
            return now == value

        _wait(driver).until(typed)
    _click(driver, f"{field}//label")  # closes the picker without closing the dialog
    _wait(driver).until(ec.invisibility_of_element_located((By.XPATH, picker)))
    shown = datetime.strptime(f"{date} {time_of_day}", "%Y/%m/%d %H:%M").strftime("%b %d, %Y %H:%M")
    _wait(driver).until(lambda d: shown in _text(d, field))


def _choose(driver: Any, name: str, option: str) -> None:
    _click(driver, f"{DIALOG}//*[@id='element_{name}']")
    _click(driver, f"//*[starts-with(@id, 'react-select')][contains(@id, 'option')][.='{option}']")
    hidden = f"{DIALOG}//input[@name='element_{name}']"
    _wait(driver).until(lambda d: _value(d, hidden) == option)


def _advanced_options(driver: Any, run_id: str) -> dict[str, Any]:
    """Types the Run ID and returns the Configuration JSON the form will send."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec

    _click(driver, f"{DIALOG}//button[normalize-space(.)='Advanced Options']")
    box = f"{DIALOG}//input[@name='dagRunId']"
    _wait(driver).until(ec.visibility_of_element_located((By.XPATH, box))).send_keys(run_id)
    _wait(driver).until(lambda d: _value(d, box) == run_id)
    region = f"{DIALOG}//*[@role='region'][contains(@id, 'advancedOptions')]"
    _wait(driver).until(lambda d: "Configuration JSON" in _text(d, region) and "}" in _text(d, region))
    text = _text(driver, region)  # "... Configuration JSON\n1\n2\n...\n{ ... }": line numbers, then the JSON
    conf: dict[str, Any] = json.loads(text[text.index("{") : text.rindex("}") + 1])
    return conf


def _lose_one_document(env: BrowserAirflow) -> tuple[str, dict[str, Any], dict[str, int]]:
    """Delete one listing's document at its own external version, as if its write had never arrived."""
    from vectorlake.index.client import make_client

    docs, versions = index_documents(env.cfg)
    assert len(docs) >= 5, sorted(docs)
    lost = sorted(docs)[0]
    client = make_client(env.cfg)
    try:
        client.delete(
            index=env.cfg.index.alias,
            id=lost,
            params={"version": versions[lost], "version_type": "external_gte", "refresh": "true"},
        )
    finally:
        client.close()
    assert lost not in index_documents(env.cfg)[0]
    return lost, docs, versions


def _without_indexed_at(docs: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {lid: {k: v for k, v in doc.items() if k != "indexed_at"} for lid, doc in docs.items()}


@pytest.mark.timeout(2400)  # Airflow start + the streamed fixture + a spark-submit, on two shared cores
def test_triggering_listing_backfill_from_the_ui_restores_a_lost_document(
    browser_airflow: BrowserAirflow, browser: Any
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec

    env, driver = browser_airflow, browser
    lost, docs_before, versions_before = _lose_one_document(env)
    run_id = f"browser-{uuid.uuid4().hex[:8]}"

    _log_in(driver, env)
    _open_trigger_form(driver, env)
    _fill_datetime(driver, "From", *FROM)
    _fill_datetime(driver, "To", *TO)
    _choose(driver, "target", TARGET)
    form_conf = _advanced_options(driver, run_id)
    _click(driver, f"{DIALOG}//button[@data-testid='trigger-dag-submit'][not(@disabled)]")
    # the dialog closes once the API accepted the run
    _wait(driver).until(ec.invisibility_of_element_located((By.XPATH, DIALOG)))

    runs = f"/api/v2/dags/{DAG_ID}/dagRuns"

    def finished(_: Any) -> str | None:
        try:
            state: str = env.api.get(f"{runs}/{run_id}")["state"]
        except OSError:  # a slow answer from a loaded api-server (timeout): ask again at the next poll
            return None
        return state if state in ("success", "failed") else None

    state = _wait(driver, RUN_WAIT_S, poll_s=5).until(finished)
    tasks = {
        t["task_id"]: t["state"] for t in env.api.get(f"{runs}/{run_id}/taskInstances")["task_instances"]
    }
    assert (state, tasks) == ("success", {"backfill": "success"}), f"see {env.cfg.airflow_home}/logs"

    # the UI shows the run as successful
    driver.get(f"{env.login.url}/dags/{DAG_ID}/runs/{run_id}")
    success = "//*[text()[translate(normalize-space(.), 'SUCE', 'suce')='success']]"  # the state badge
    _wait(driver).until(ec.visibility_of_element_located((By.XPATH, success)))
    assert run_id in driver.page_source

    # the run's conf is what the form showed, and that is what was typed
    conf = env.api.get(f"{runs}/{run_id}")["conf"]
    assert conf == form_conf
    assert set(conf) == {"start", "end", "target"} and conf["target"] == TARGET
    parsed = tuple(datetime.fromisoformat(conf[k]) for k in ("start", "end"))
    assert parsed == TYPED_RANGE, conf

    # the backfill wrote the lost listing again, at the same version; nothing else changed
    docs_after, versions_after = index_documents(env.cfg)
    assert lost in docs_after
    assert versions_after == versions_before
    assert _without_indexed_at(docs_after) == _without_indexed_at(docs_before)
