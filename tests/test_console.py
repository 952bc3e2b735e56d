"""The console in a real headless Chromium (Debian's chromium and chromium-driver), through each role's main path on
the demo network, with authentication on and the SMART login of the development authorization server:

- the doctor opens the patient from a CDS card's smart link (an EHR launch), sees the recognizable chest DR and
  the refused township CT with its reasons, scrolls the CT series, uses one result and re-orders another with a
  reason;
- the administrator sees the counts move on the dashboard;
- the patient sees the doctor's look in their access list.
And once with authentication off, as `make run` serves it. Screenshots of each step go to test-artifacts/console/.
Without Chromium the tests skip with one line, except in CI (CI=true), where a missing browser fails the run.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from conftest import ISSUER, SECRET, ServerProcess, dev_token, new_server

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
DRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts" / "console"

if not (Path(CHROMIUM).exists() and Path(DRIVER).exists()):
    if os.environ.get("CI") == "true":
        raise RuntimeError("CI needs Debian's chromium and chromium-driver for the console tests (.ci/run installs "
                           "them)")
    pytest.skip("no Chromium here: install Debian's chromium and chromium-driver to run the console tests",
                allow_module_level=True)

from selenium import webdriver  # noqa: E402 (only where a browser exists)
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support import expected_conditions as seen  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402


def _demo(server: ServerProcess, **env: str) -> None:
    result = subprocess.run([sys.executable, "-m", "fhirserver", "demo", "--url", server.base], timeout=180,
                            capture_output=True, text=True, env={**os.environ, **env})
    assert result.returncode == 0, result.stderr


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    handle = new_server(tmp_path_factory.mktemp("console"))
    auth = {"FHIRSERVER_AUTH": "on", "FHIRSERVER_AUTH_ISSUER": ISSUER, "FHIRSERVER_AUTH_HS256_SECRET": SECRET,
            "FHIRSERVER_BASE_URL": f"http://127.0.0.1:{handle.port}/fhir"}
    handle.extra_env.update({**auth, "FHIRSERVER_AUTH_DEV_LOGIN": "on"})
    handle.start()
    _demo(handle, **auth)
    yield handle
    handle.stop()


@pytest.fixture(scope="module")
def open_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """The demo (authentication off, as `make run`), federated with a Sichuan node that holds a chest CT of 王芳."""
    from test_federation import _endpoint, _hospital, _load, _patient, _report

    peer = new_server(tmp_path_factory.mktemp("console-peer"), FHIRSERVER_NODE_ID="sichuan",
                      FHIRSERVER_REGION="510000").start()
    _load(peer, [*_hospital("sc-hosp", "四川省人民医院", "510100"), _patient("sc-p"),
                 _report("sc-ct", "sc-p", "sc-hosp", "CT-CHEST", 10)])
    handle = new_server(tmp_path_factory.mktemp("console-open"), FHIRSERVER_NODE_ID="chongqing",
                        FHIRSERVER_REGION="500000")
    handle.start()
    _demo(handle, FHIRSERVER_AUTH="off")
    _load(handle, [_endpoint("peer-sichuan", "四川省平台 Sichuan", peer.base, "510000")])
    yield handle
    handle.stop()
    peer.stop()


@pytest.fixture
def browser() -> Iterator[webdriver.Chrome]:
    profile = tempfile.mkdtemp(prefix="chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", "--window-size=1400,1000", f"--user-data-dir={profile}", "--lang=zh-CN"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)


def shot(driver: webdriver.Chrome, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(ARTIFACTS / f"{name}.png"))


def wait(driver: webdriver.Chrome, timeout: float = 30):
    return WebDriverWait(driver, timeout)


def text_in(driver: webdriver.Chrome, css: str, text: str, timeout: float = 30) -> None:
    wait(driver, timeout).until(seen.text_to_be_present_in_element((By.CSS_SELECTOR, css), text))


def log_in(driver: webdriver.Chrome, role: str, organization: str | None = None, practitioner: str | None = None,
           patient: str | None = None) -> None:
    """Fill the development authorization server's page, as the person at the browser would."""
    wait(driver).until(seen.presence_of_element_located((By.ID, "login")))
    driver.find_element(By.ID, f"role-{role}").click()
    if organization:
        Select(driver.find_element(By.ID, "organization")).select_by_value(organization)
    if practitioner:
        driver.find_element(By.ID, "practitioner").send_keys(practitioner)
    if patient:
        driver.find_element(By.ID, "patient").send_keys(patient)
    driver.find_element(By.ID, "login").click()


def row(driver: webdriver.Chrome, report: str):
    return wait(driver).until(seen.presence_of_element_located((By.ID, f"row-{report}")))


def kpis(driver: webdriver.Chrome) -> dict[str, str]:
    text_in(driver, "#kpis", "互认次数")
    return {k.find_element(By.TAG_NAME, "span").text: k.find_element(By.TAG_NAME, "b").text
            for k in driver.find_elements(By.CSS_SELECTOR, "#kpis .kpi")}


def admin_dashboard(driver: webdriver.Chrome, server: ServerProcess) -> dict[str, str]:
    driver.delete_all_cookies()
    driver.get(f"{server.root}/console/")
    driver.execute_script("sessionStorage.clear()")
    driver.get(f"{server.root}/console/")
    wait(driver).until(seen.element_to_be_clickable((By.ID, "login"))).click()
    log_in(driver, "platform", "Organization/demo-network")
    text_in(driver, "#identity", "demo-network")
    return kpis(driver)


def test_each_role_main_path_with_authentication_on(secured: ServerProcess, browser: webdriver.Chrome) -> None:
    root = secured.root
    # -- the administrator, before: the counts as they are ---------------------------------------------------------
    before = admin_dashboard(browser, secured)
    shot(browser, "01-admin-before")

    # -- the doctor: the EHR's order-select call gives a card with a smart link; the EHR launches it --------------
    children = dev_token(secured, "Organization/demo-cq-children")
    cds = requests.post(f"{root}/cds-services/hr-recognition-order-select", timeout=30, headers={
        "Authorization": f"Bearer {children}", "Content-Type": "application/json"}, json={
        "hook": "order-select", "hookInstance": "c0ffee00-0000-4000-8000-000000000001",
        "context": {"userId": "PractitionerRole/demo", "patientId": "demo-xiaoming-et",
                    "selections": ["ServiceRequest/draft-dr"], "draftOrders": {
                        "resourceType": "Bundle", "type": "collection", "entry": [{"resource": {
                            "resourceType": "ServiceRequest", "id": "draft-dr", "status": "draft",
                            "intent": "order", "code": {"coding": [{"system": "http://loinc.org",
                                                                     "code": "36643-5"}]},
                            "requester": {"reference": "Organization/demo-cq-children"}}}]}}})
    assert cds.status_code == 200, cds.text
    card = next(c for c in cds.json()["cards"] if "胸部DR" in c["summary"])
    link = next(x for x in card["links"] if x["type"] == "smart")
    launch = base64.urlsafe_b64encode(json.dumps({"patient": "demo-xiaoming-et", "appContext": link["appContext"]})
                                      .encode()).decode().rstrip("=")
    browser.execute_script("sessionStorage.clear()")
    browser.get(f"{link['url']}?iss={secured.base}&launch={launch}")
    log_in(browser, "doctor", "Organization/demo-cq-children", "Practitioner/demo-doctor-children")
    text_in(browser, "#patient-name", "小明")
    dr, ct = row(browser, "demo-dr-chest"), row(browser, "demo-ct-head-xiaoming")
    cbc = row(browser, "demo-cbc-xiaoming")
    text_in(browser, "#row-demo-dr-chest", "可互认 至")
    assert "胸部DR" in dr.text and "重庆市渝北区人民医院" in dr.text
    assert "highlight" in dr.get_attribute("class")  # the card's result, from the launch's appContext
    assert "不可互认" in ct.text and "机构级别不足" in ct.text and "渝北区某镇卫生院" in ct.text
    assert "可互认" in cbc.text
    shot(browser, "02-doctor-timeline")

    # the township CT's images: 16 slices, scrolled with the keyboard, windowed
    ct.find_element(By.CSS_SELECTOR, "button.open").click()
    wait(browser).until(seen.element_to_be_clickable((By.ID, "view-images"))).click()
    frame = wait(browser).until(seen.presence_of_element_located((By.ID, "frame")))
    text_in(browser, "#slice-label", "第 1 / 16 层")
    wait(browser).until(lambda d: d.execute_script("return document.getElementById('frame').naturalWidth") == 128)
    first = frame.get_attribute("src")
    for _ in range(7):
        frame.send_keys(Keys.ARROW_DOWN)
    text_in(browser, "#slice-label", "第 8 / 16 层")
    wait(browser).until(lambda d: d.find_element(By.ID, "frame").get_attribute("data-instance") == "8")
    assert frame.get_attribute("src") != first
    browser.find_element(By.CSS_SELECTOR, "button.preset:nth-of-type(4)").click()  # bone window
    wait(browser).until(lambda d: d.find_element(By.ID, "frame").get_attribute("data-window") == "400,1800")
    shot(browser, "03-doctor-ct-viewer")

    # use the chest DR; re-order the blood count with a reason
    row(browser, "demo-dr-chest").find_element(By.CSS_SELECTOR, "button.accept").click()
    text_in(browser, "#toast", "已使用此结果")
    row(browser, "demo-cbc-xiaoming").find_element(By.CSS_SELECTOR, "button.reorder").click()
    reason = wait(browser).until(seen.presence_of_element_located((By.ID, "reason")))
    Select(reason).select_by_value("condition-changed")
    browser.find_element(By.ID, "reorder-submit").click()
    text_in(browser, "#reordered", "病情变化")
    shot(browser, "04-doctor-actions")

    # -- the administrator, after: the counts moved ---------------------------------------------------------------
    after = admin_dashboard(browser, secured)
    assert int(after["互认次数 Recognitions"]) == int(before["互认次数 Recognitions"]) + 1
    assert int(after["复查 Overrides"]) == int(before["复查 Overrides"]) + 1
    assert float(after["节省费用 Money saved (CNY)"]) > float(before["节省费用 Money saved (CNY)"])
    text_in(browser, "#reasons", "病情变化")
    text_in(browser, "#by-hospital", "重庆医科大学附属儿童医院")
    shot(browser, "05-admin-after")
    browser.find_element(By.ID, "tab-network").click()
    text_in(browser, "#network", "渝北区某镇卫生院")
    shot(browser, "06-admin-network")
    # the platform takes the Sichuan hospital out of the network, and admits it again
    browser.find_element(By.CSS_SELECTOR, "#org-demo-sc-huaxi button.exit").click()
    text_in(browser, "#toast", "已退出互认网络")
    wait(browser).until(seen.presence_of_element_located((By.CSS_SELECTOR, "#org-demo-sc-huaxi button.admit"))).click()
    text_in(browser, "#toast", "已纳入互认网络")
    wait(browser).until(seen.presence_of_element_located((By.CSS_SELECTOR, "#org-demo-sc-huaxi button.exit")))
    browser.find_element(By.ID, "tab-catalog").click()
    search = wait(browser).until(seen.presence_of_element_located((By.ID, "catalog-filter")))
    search.send_keys("MRI")
    browser.find_element(By.ID, "catalog-find").click()
    text_in(browser, "#catalog", "MR-KNEE")
    assert "CT-KNEE" not in browser.find_element(By.ID, "catalog").text
    browser.find_element(By.ID, "tab-audit").click()
    text_in(browser, "#chain", "审计链完整")

    # -- the patient: their results from every hospital, and who looked ------------------------------------------
    browser.execute_script("sessionStorage.clear()")
    browser.get(f"{root}/console/")
    wait(browser).until(seen.element_to_be_clickable((By.ID, "login"))).click()
    log_in(browser, "patient", patient="Patient/demo-xiaoming-et")
    text_in(browser, "#my-results", "胸部DR")
    text_in(browser, "#my-results", "重庆市渝北区人民医院")
    text_in(browser, "#my-access", "重庆医科大学附属儿童医院")
    assert "采用了您在其他医院的结果" in browser.find_element(By.ID, "my-access").text
    shot(browser, "07-patient")


def test_the_console_works_with_authentication_off(open_server: ServerProcess, browser: webdriver.Chrome) -> None:
    browser.get(f"{open_server.root}/console/#doctor")
    Select(wait(browser).until(seen.presence_of_element_located((By.ID, "hospital")))).select_by_value(
        "Organization/demo-cq-children")
    browser.find_element(By.ID, "search").send_keys("50011220190501001X")
    browser.find_element(By.ID, "find").click()
    wait(browser).until(seen.element_to_be_clickable((By.LINK_TEXT, "小明"))).click()
    text_in(browser, "#row-demo-dr-chest", "可互认")
    text_in(browser, "#row-demo-ct-head-xiaoming", "不可互认")
    shot(browser, "08-open-doctor")
    # 王芳's results include the Sichuan platform's chest CT, decided for this hospital (the 川渝 agreement)
    browser.get(f"{open_server.root}/console/#doctor/demo-wangfang")
    remote = row(browser, "sc-ct")
    text_in(browser, "#row-sc-ct", "四川省平台")
    text_in(browser, "#row-sc-ct", "可互认")
    assert "胸部CT平扫" in remote.text and "四川省人民医院" in remote.text
    shot(browser, "09-open-doctor-federated")
    home = requests.get(f"{open_server.root}/", timeout=30, allow_redirects=False)
    assert home.status_code == 302 and home.headers["Location"].endswith("/console/")
    headers = requests.get(f"{open_server.root}/console/", timeout=30).headers
    assert "script-src 'self'" in headers["Content-Security-Policy"] and headers["X-Frame-Options"] == "DENY"


def test_the_development_login_refuses_what_a_real_server_would(secured: ServerProcess) -> None:
    root = secured.root
    other = requests.get(f"{root}/auth/dev/authorize", timeout=30, params={
        "response_type": "code", "client_id": "x", "redirect_uri": "https://evil.example/cb", "state": "s",
        "code_challenge": "a" * 43, "code_challenge_method": "S256"})
    assert other.status_code == 400 and "redirect_uri" in other.text
    plain = requests.get(f"{root}/auth/dev/authorize", timeout=30, params={
        "response_type": "code", "client_id": "x", "redirect_uri": f"{root}/console/", "state": "s"})
    assert plain.status_code == 400 and "PKCE" in plain.text
    token = requests.post(f"{root}/auth/dev/token", timeout=30, data={"grant_type": "authorization_code",
                                                                      "code": "nope", "code_verifier": "x" * 43})
    assert token.status_code == 400 and token.json()["error"] == "invalid_grant"
    smart = requests.get(f"{secured.base}/.well-known/smart-configuration", timeout=30).json()
    assert smart["authorization_endpoint"] == f"{root}/auth/dev/authorize" and "launch-ehr" in smart["capabilities"]
