"""The UI in Debian's Chromium (Playwright, no browser download): a mediator searches, filters, opens a case,
pins it to a session and shares it; a party opens the masked packet on a phone until the link is revoked;
a trainer marks an exemplar. Screenshots of every page go to test-artifacts/screenshots/."""
from __future__ import annotations

import re
import shutil
import threading
from pathlib import Path

import pytest
from logins import PASSWORD
from test_roles import world  # noqa: F401  (the same library and users)
from test_web import SECRETS
from werkzeug.serving import make_server

CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOTS = Path(__file__).resolve().parent.parent / "test-artifacts" / "screenshots"
PHONE = {"width": 390, "height": 844}

if not CHROMIUM.exists() or shutil.which("chromium") is None:
    pytest.skip("Debian's chromium is not installed (scripts/setup-env installs it: apt-get install chromium)",
                allow_module_level=True)
sync_playwright = pytest.importorskip("playwright.sync_api").sync_playwright


@pytest.fixture(scope="module")
def server(world):  # noqa: F811
    """The app on a free local port, served by werkzeug in a thread."""
    httpd = make_server("127.0.0.1", 0, world[0], threaded=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_port}"
    httpd.shutdown()


@pytest.fixture(scope="module")
def browser():
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        yield chromium
        chromium.close()


def shot(page, name: str) -> None:
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def sign_in(page, base: str, username: str) -> None:
    page.goto(f"{base}/")
    assert "/login" in page.url
    page.get_by_label("用户名").fill(username)
    page.get_by_label("密码").fill(PASSWORD)
    page.get_by_role("button", name="登录").click()
    page.wait_for_url(f"{base}/")


def test_mediator_pins_a_precedent_and_shares_it_with_a_party(browser, server):
    mediator = browser.new_context(viewport={"width": 1280, "height": 900})
    page = mediator.new_page()
    page.goto(f"{server}/")
    shot(page, "01-login")
    sign_in(page, server, "mediator-lucheng")

    page.goto(f"{server}/sessions")
    page.get_by_label("会话名称").fill("借款分期还款调解")
    page.get_by_label("纠纷概要").fill("借款到期未还，双方同意协商分期。")
    page.get_by_role("button", name="建立会话").click()
    page.wait_for_url(re.compile(r"/sessions/\d+$"))

    page.goto(f"{server}/")
    page.get_by_label("输入关键词").fill("借款")
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"q=%E5%80%9F%E6%AC%BE"))
    assert page.locator("li.hit").count() == 2
    chip = page.locator("li.hit .why mark.term").first
    assert chip.inner_text() == "借款" and chip.evaluate("e => getComputedStyle(e).marginRight") != "0px"
    # A word marked inside a passage ("why it matched" of a semantic hit) keeps to the text, no gap after it.
    gap = page.evaluate("""() => {
        const p = document.createElement("p"); p.className = "why passage"; p.innerHTML = "<mark>摔倒</mark>受伤";
        document.querySelector("li.hit").append(p);
        const margin = getComputedStyle(p.querySelector("mark")).marginRight; p.remove(); return margin; }""")
    assert gap == "0px"
    shot(page, "02-search")
    page.locator(".facet a", has_text="鹿城区").click()
    page.wait_for_url(re.compile(r"region="))
    assert page.locator("li.hit").count() == 1
    assert page.locator(".chips").get_by_text("地区：鹿城区").is_visible()
    shot(page, "03-search-filtered")

    page.locator("li.hit h2 a").first.click()
    page.wait_for_url(re.compile(r"/cases/\d+$"))
    assert page.get_by_role("heading", level=1).inner_text() == "张伟明与李建国民间借贷纠纷", "own county: unmasked"
    assert "330302198503127716" in page.content()
    shot(page, "04-case-mediator")
    page.get_by_label("说明（为什么参考这个案例）").fill("同为借款纠纷，分期归还的方案可参考")
    page.get_by_role("button", name="加入会话").click()
    page.wait_for_url(re.compile(r"/sessions/\d+$"))
    assert page.locator("li.pin").count() == 1
    page.get_by_role("button", name="生成分享链接").click()
    link = page.locator("input.share-url").first.input_value()
    assert "/share/" in link
    shot(page, "05-session")

    party = browser.new_context(viewport=PHONE, is_mobile=True, device_scale_factor=2)
    phone = party.new_page()
    phone.goto(link)
    text = phone.content()
    assert "张某与李某民间借贷纠纷" in text and "分期归还的方案可参考" in text
    assert not {secret for secret in SECRETS if secret in text}, "the party sees the masked packet"
    assert phone.evaluate("document.documentElement.scrollWidth") <= PHONE["width"], "no sideways scrolling"
    assert phone.locator("header.site").evaluate("e => getComputedStyle(e).display") == "flex", "styled"
    shot(phone, "06-shared-packet-phone")

    page.get_by_role("button", name="撤销").click()
    page.wait_for_load_state()
    assert page.locator("input.share-url").count() == 0
    response = phone.goto(link)
    assert response.status == 410 and phone.get_by_role("heading", name="分享链接已撤销").is_visible()
    shot(phone, "07-shared-link-revoked")
    party.close()
    mediator.close()


def test_trainer_marks_an_exemplar(browser, server, world):  # noqa: F811
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    sign_in(page, server, "trainer")
    page.goto(f"{server}/exemplars")
    shot(page, "08-exemplars")
    case_id = world[1][6]  # the traffic accident, not an exemplar yet
    page.goto(f"{server}/cases/{case_id}")
    page.get_by_label("点评（为什么是优秀案例）").fill("分项核算损失，双方当场达成协议。")
    page.get_by_label("调解技巧").fill("分项核算、背靠背调解")
    page.get_by_role("button", name="标记优秀案例").click()
    page.wait_for_url(re.compile(rf"/cases/{case_id}$"))
    assert page.get_by_text("已标记为优秀案例。").is_visible()
    shot(page, "09-case-marked-exemplar")
    page.goto(f"{server}/exemplars?technique=背靠背调解")
    assert page.locator("li.hit h2").inner_text() == "电动车与轿车交通事故赔偿"
    shot(page, "10-exemplars-by-technique")
    context.close()
