"""Browser tests of the staff pages (/staff on every node's HTTPS port), written against the page
contract in README.md. Each test uses its own browser contexts (cookie jars) and, where it changes
state (a lock, a sign-out, a new account), its own accounts, so the tests pass in any order.

Every wait is for a condition, with a generous deadline; no test asserts how long anything took.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import hmac
import html.parser
import json
import re
import struct
import time
import urllib.parse
import warnings

import pytest
from playwright.sync_api import BrowserContext, Page, Response, expect

PASSWORD = "Mesh-Demo-2026"  # every demo account's password
WRONG_PASSWORD = "Not-The-Password-1"
STAFF_COOKIE = "cm_staff"
LANG_COOKIE = "cm_lang"
NODES = ("neike", "waike", "erke")
DEPARTMENT_NAMES = {"neike": "内科", "waike": "外科", "erke": "儿科"}
CJK = re.compile(r"[\u3400-\u9fff]")
LATIN = re.compile(r"[A-Za-z]{3,}")
ERKE_IDLE_SECONDS = 20  # Cluster/pages/run sets erke's staff.session_idle_seconds to this

expect.set_options(timeout=30_000)

# Actions that only some roles have, and the page each one links to.
RESTRICTED_ACTIONS = {
    "schedule.own": ("doctor", "/staff/schedule"),
    "staff.manage": ("hospital_admin", "/staff/accounts"),
    "audit.read": ("auditor", "/staff/audit"),
    "lab.result": ("lab_technician", "/staff/lab"),
}
# How a role may be shown in #roles: a [data-role=<code>] element, the code itself, or a usual name.
ROLE_WORDS = {
    "doctor": ("医生", "医师", "doctor"),
    "nurse": ("护士", "nurse"),
    "registration_clerk": ("挂号", "registration"),
    "pharmacist": ("药师", "药剂", "pharmacist"),
    "cashier": ("收费", "cashier"),
    "lab_technician": ("检验", "lab technician", "lab_technician"),
    "department_head": ("科主任", "科室主任", "department head", "department_head"),
    "hospital_admin": ("管理员", "hospital admin", "hospital_admin"),
    "auditor": ("审计", "auditor"),
}


# --- helpers -------------------------------------------------------------------------------------


def path_of(url: str) -> str:
    return urllib.parse.urlsplit(url).path


def reason_of(url: str) -> str | None:
    return dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query)).get("reason")


def status_of(response: Response | None) -> str:
    return "no response" if response is None else str(response.status)


def poll(check, expected: str, timeout: float = 30.0, interval: float = 0.5):
    """Calls check() -> (done, seen) until done; fails saying what was expected and what was last seen."""
    deadline = time.monotonic() + timeout
    while True:
        done, seen = check()
        if done:
            return seen
        if time.monotonic() >= deadline:
            raise AssertionError(f"expected {expected} (polled for {timeout:g} s); last seen: {seen}")
        time.sleep(interval)


def redirects_of(response: Response) -> list[tuple[str, str, int | None]]:
    """(method, url, status) of each redirect that led to this response, first one first."""
    chain = []
    request = response.request.redirected_from
    while request is not None:
        answer = request.response()
        chain.append((request.method, request.url, answer.status if answer else None))
        request = request.redirected_from
    return list(reversed(chain))


def message_code(page: Page) -> str | None:
    message = page.locator("#message")
    return message.first.get_attribute("data-code") if message.count() else None


def message_text(page: Page) -> str:
    message = page.locator("#message")
    return message.first.inner_text().strip() if message.count() else ""


def expect_message(page: Page, code: str, why: str) -> None:
    expect(page.locator("#message"), f"expected #message[data-code={code}] on {page.url}: {why}").to_have_attribute(
        "data-code", code
    )


def expect_lang(page: Page, lang: str) -> None:
    expect(page.locator("html"), f'expected <html lang="{lang}"> on {page.url}').to_have_attribute("lang", lang)


class PageFacts(html.parser.HTMLParser):
    """What the tests read from a response body that is not open in a page (request API answers)."""

    def __init__(self, text: str):
        super().__init__()
        self.lang = None
        self.message_code = None
        self.has_message = False
        self.inline_scripts = 0
        self.handlers: list[str] = []
        self.has_lang_link = False
        self.feed(text)
        self.close()

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "html":
            self.lang = a.get("lang")
        if a.get("id") == "message":
            self.has_message = True
            self.message_code = a.get("data-code")
        if tag == "a" and a.get("id") == "lang":
            self.has_lang_link = True
        if tag == "script" and not a.get("src"):
            self.inline_scripts += 1
        self.handlers += [f"<{tag} {name}=...>" for name, _ in attrs if name.lower().startswith("on")]


def open_sign_in(page: Page, base: str) -> Response:
    response = page.goto(f"{base}/staff/sign-in")
    assert response is not None and response.status == 200, (
        f"expected GET {base}/staff/sign-in to answer 200, got {status_of(response)}"
    )
    expect(page.locator("form#sign-in"), f"expected form#sign-in on {page.url}").to_be_visible()
    return response


def post_sign_in(page: Page, base: str, staff: str, password: str) -> Response:
    """Opens the sign-in page, fills the form, submits it; returns the answer to the navigation."""
    open_sign_in(page, base)
    form = page.locator("form#sign-in")
    form.locator("input[name=staff_number]").fill(staff)
    form.locator("input[name=password]").fill(password)
    with page.expect_navigation() as navigation:
        form.locator("button#submit").click()
    return navigation.value


def sign_in(page: Page, base: str, staff: str, password: str = PASSWORD) -> Response:
    """Signs in through the form and checks the answer: 303 to /staff/, a home that names the person."""
    response = post_sign_in(page, base, staff, password)
    assert path_of(page.url) == "/staff/", (
        f"expected {staff} with the right password to be sent to /staff/ by {base}; "
        f"ended at {page.url} with status {response.status} and #message {message_code(page)!r}"
    )
    chain = redirects_of(response)
    assert chain and chain[0][0] == "POST" and chain[0][2] == 303, (
        f"expected POST /staff/sign-in to answer 303 to /staff/; redirects seen: {chain}"
    )
    assert response.status == 200, f"expected the home page {page.url} to answer 200, got {response.status}"
    expect(page.locator("#who"), f"expected #who on the home page to name {staff}").to_contain_text(staff)
    return response


def staff_cookie(ctx: BrowserContext) -> dict | None:
    for cookie in ctx.cookies():
        if cookie["name"] == STAFF_COOKIE:
            return cookie
    return None


def put_staff_cookie(ctx: BrowserContext, value: str, like: dict | None = None) -> None:
    """Replaces the context's cm_staff cookie with the given value (everything else as the real one)."""
    ctx.clear_cookies()
    like = like or {"domain": "127.0.0.1", "path": "/staff", "secure": True, "httpOnly": True, "sameSite": "Strict"}
    cookie = {
        "name": STAFF_COOKIE,
        "value": value,
        "domain": like["domain"],
        "path": like["path"],
        "secure": like["secure"],
        "httpOnly": like["httpOnly"],
        "sameSite": like["sameSite"],
    }
    ctx.add_cookies([cookie])


def expect_signed_in(page: Page, base: str, staff: str, why: str) -> None:
    response = page.goto(f"{base}/staff/")
    assert path_of(page.url) == "/staff/" and response is not None and response.status == 200, (
        f"expected {staff} to be signed in on {base}/staff/ ({why}); "
        f"ended at {page.url} with status {status_of(response)} and #message {message_code(page)!r}"
    )
    expect(page.locator("#who"), f"expected #who on {page.url} to name {staff} ({why})").to_contain_text(staff)


def sent_to_sign_in(page: Page, response: Response | None, code: str | None, reason: str | None = None):
    """For poll(): (done, seen) — at /staff/sign-in after a redirect, with the message code (and reason)."""
    seen = f"{page.url} status {status_of(response)} #message {message_code(page)!r}"
    if response is None or path_of(page.url) != "/staff/sign-in" or not redirects_of(response):
        return False, seen
    if reason is not None and reason_of(page.url) != reason:
        return False, seen
    if code is not None and message_code(page) != code:
        return False, seen
    return True, seen


def expect_sent_to_sign_in(page: Page, url: str, code: str | None, why: str, reason: str | None = None) -> Response:
    response = page.goto(url)
    done, seen = sent_to_sign_in(page, response, code, reason)
    wanted = "a redirect to /staff/sign-in" + (f"?reason={reason}" if reason else "")
    wanted += f" showing #message[data-code={code}]" if code else ""
    assert done, f"expected GET {url} to give {wanted} ({why}); got {seen}"
    return response


def fill_field(form, name: str, value: str) -> None:
    field = form.locator(f"[name={name}]").first
    if field.evaluate("e => e.tagName") == "SELECT":
        field.select_option(value)
    else:
        field.fill(value)


def submit(page: Page, form, button: str | None = None) -> Response:
    """Submits a form by its button (the given one, else its first submit button) and waits for the page."""
    target = form.locator(button) if button else form.locator(
        "button[type=submit], input[type=submit], button:not([type])"
    ).first
    with page.expect_navigation() as navigation:
        if button or target.count():
            target.click()
        else:  # a GET form without a button: submit it the way Enter would
            form.evaluate("f => f.requestSubmit()")
    return navigation.value


def csrf_of(page: Page, form_selector: str) -> str:
    field = page.locator(f"{form_selector} input[name=csrf]")
    expect(field, f"expected a hidden input[name=csrf] in {form_selector} on {page.url}").to_have_count(1)
    assert field.get_attribute("type") == "hidden", f"expected the csrf input in {form_selector} to be hidden"
    value = field.get_attribute("value") or ""
    assert value, f"expected the csrf input in {form_selector} on {page.url} to carry a token"
    return value


def role_shown(roles, role: str) -> bool:
    if roles.locator(f'[data-role="{role}"]').count():
        return True
    text = roles.inner_text().lower()
    return any(word.lower() in text for word in ROLE_WORDS[role])


def audit_rows(page: Page) -> list[dict]:
    return page.locator("table#audit tr.event").evaluate_all(
        """rows => rows.map(r => Object.fromEntries(['staff', 'action', 'outcome', 'patient', 'node']
               .map(k => { const c = r.querySelector('td.' + k); return [k, c ? c.textContent.trim() : null]; })))"""
    )


def node_named(cell: str | None, node: str) -> bool:
    return cell is not None and (node in cell or DEPARTMENT_NAMES[node] in cell)


def tomorrow_in_shanghai() -> str:
    now = datetime.datetime.now(datetime.timezone(datetime.timedelta(hours=8)))
    return (now + datetime.timedelta(days=1)).date().isoformat()


# --- shared state that more than one test reads ----------------------------------------------------


@pytest.fixture(scope="session")
def w401_locked(urls, session_browsing) -> str:
    """Locks W401 (used by no other test): 3 wrong passwords on neike, 2 on waike, then the right
    password on erke until erke answers auth.locked (the failures are counted across the nodes)."""
    staff = "W401"
    with session_browsing("w401-lock-fixture") as b:
        page = b.page()
        for node, count in (("neike", 3), ("waike", 2)):
            for attempt in range(1, count + 1):
                page.context.clear_cookies()
                response = post_sign_in(page, urls[node], staff, WRONG_PASSWORD)
                code = message_code(page)
                # Fewer than 5 failures so far: plainly wrong. The 5th (on waike) may already say locked.
                allowed = {"auth.wrong_credentials": 401}
                if node == "waike" and attempt == count:
                    allowed["auth.locked"] = 403
                assert code in allowed and response.status == allowed[code], (
                    f"expected wrong password #{attempt} for {staff} on {node} to answer "
                    f"{' or '.join(f'{s} with #message[data-code={c}]' for c, s in allowed.items())}; "
                    f"got status {response.status}, #message {code!r} at {page.url}"
                )

        def right_password_on_erke():
            page.context.clear_cookies()
            response = post_sign_in(page, urls["erke"], staff, PASSWORD)
            code = message_code(page)
            return response.status == 403 and code == "auth.locked", (
                f"status {response.status}, #message {code!r}, at {page.url}"
            )

        poll(
            right_password_on_erke,
            f"the right password of {staff} on erke to be refused with 403 and #message[data-code=auth.locked] "
            "after 3 failures on neike and 2 on waike (failures are counted across all nodes)",
            timeout=60,
            interval=1,
        )
    return staff


# --- the harness itself ------------------------------------------------------------------------------


def test_harness_reaches_every_node_over_trusted_https(urls, browsing, tls):
    """Plumbing: chromium opens each node's patient API over HTTPS (trusting exactly the cluster's node
    keys), and Playwright's request API reaches it too; the demo data is there."""
    ctx = browsing.context()
    page = browsing.page(ctx)
    day = tomorrow_in_shanghai()
    for node, base in urls.items():
        url = f"{base}/api/v1/slots?department=neike&date={day}&limit=3"
        response = page.goto(url)
        assert response is not None and response.status == 200, (
            f"expected chromium to open {url} with status 200, got {status_of(response)}"
        )
        body = json.loads(response.text())
        assert body.get("slots"), f"expected the seeded slots of neike on {day} from {node}, got {body}"
        answer = ctx.request.get(url)
        assert answer.status == 200, f"expected the request API to get {url} with status 200, got {answer.status}"
    if tls["ignore_https_errors"]:
        warnings.warn("ran with ignore_https_errors (no CLINICMESH_PAGES_SPKI and _CA): certificates were not checked")


# --- sign-in page ------------------------------------------------------------------------------------


def test_sign_in_page_on_every_node(urls, browsing):
    page = browsing.page()
    for node, base in urls.items():
        open_sign_in(page, base)
        expect_lang(page, "zh-CN")
        expect(page.locator("a#lang"), f"expected the language link a#lang on {page.url}").to_have_count(1)
        form = page.locator("form#sign-in")
        assert (form.get_attribute("method") or "").lower() == "post", (
            f"expected form#sign-in on {node} to have method=post, got {form.get_attribute('method')!r}"
        )
        assert path_of(urllib.parse.urljoin(page.url, form.get_attribute("action") or "")) == "/staff/sign-in", (
            f"expected form#sign-in on {node} to post to /staff/sign-in, got action={form.get_attribute('action')!r}"
        )
        for selector in ("input[name=staff_number]", "input[name=password]", "button#submit"):
            expect(form.locator(selector), f"expected {selector} in form#sign-in on {node}").to_have_count(1)
        assert form.locator("input[name=password]").get_attribute("type") == "password", (
            f"expected input[name=password] on {node} to be type=password"
        )
        csrf_of(page, "form#sign-in")
        assert staff_cookie(page.context) is None, f"expected no {STAFF_COOKIE} cookie before signing in on {node}"


def test_wrong_password_and_unknown_staff_number_get_the_same_answer(urls, browsing):
    # E401 gets one failure only (an account is locked after 5); X9999 is no one's staff number.
    page = browsing.page()
    answers = {}
    for label, staff, password in (
        ("a wrong password", "E401", WRONG_PASSWORD),
        ("an unknown staff number", "X9999", PASSWORD),
    ):
        page.context.clear_cookies()
        response = post_sign_in(page, urls["neike"], staff, password)
        assert response.status == 401, f"expected status 401 for {label} ({staff}), got {response.status}"
        expect_message(page, "auth.wrong_credentials", f"{label} ({staff})")
        expect(page.locator("form#sign-in"), f"expected the sign-in form again after {label}").to_be_visible()
        assert staff_cookie(page.context) is None, f"expected no {STAFF_COOKIE} cookie after {label}"
        text = message_text(page)
        assert CJK.search(text), f"expected the message after {label} in Chinese first, got {text!r}"
        answers[label] = (response.status, message_code(page), text)
    assert answers["a wrong password"] == answers["an unknown staff number"], (
        f"expected a wrong password and an unknown staff number to get the same answer, got {answers}"
    )


def test_language_switch(urls, browsing):
    page = browsing.page()
    neike, waike = urls["neike"], urls["waike"]
    open_sign_in(page, neike)
    expect_lang(page, "zh-CN")
    with page.expect_navigation():
        page.locator("a#lang").click()
    expect_lang(page, "en")
    assert any(c["name"] == LANG_COOKIE for c in page.context.cookies()), (
        f"expected a#lang to set the {LANG_COOKIE} cookie, cookies: {[c['name'] for c in page.context.cookies()]}"
    )
    # The language follows the person to every page and node (the cookie is the browser's, for 127.0.0.1).
    post_sign_in(page, neike, "X9998", WRONG_PASSWORD)
    expect_lang(page, "en")
    expect_message(page, "auth.wrong_credentials", "an unknown staff number, in English")
    text = message_text(page)
    assert LATIN.search(text) and not CJK.search(text), f"expected the message in English after switching, got {text!r}"
    open_sign_in(page, waike)
    expect_lang(page, "en")
    with page.expect_navigation():
        page.locator("a#lang").click()
    expect_lang(page, "zh-CN")
    post_sign_in(page, neike, "X9998", WRONG_PASSWORD)
    expect_message(page, "auth.wrong_credentials", "an unknown staff number, in Chinese again")
    assert CJK.search(message_text(page)), f"expected the message in Chinese after switching back, got {message_text(page)!r}"


# --- homes by role -----------------------------------------------------------------------------------

ROLE_ACCOUNTS = [
    # staff number, node to sign in on, roles, name shown (when the demo data fixes it)
    ("N001", "neike", ("doctor", "department_head"), "王建国"),
    ("N101", "waike", ("nurse",), None),
    ("N201", "erke", ("registration_clerk",), None),
    ("N301", "neike", ("pharmacist",), None),
    ("N401", "waike", ("cashier",), None),
    ("ADM01", "erke", ("hospital_admin",), None),
    ("AUD01", "neike", ("auditor",), None),
    ("LAB01", "waike", ("lab_technician",), "周琳"),
]


@pytest.mark.parametrize("staff,node,roles,name", ROLE_ACCOUNTS, ids=[a[0] for a in ROLE_ACCOUNTS])
def test_each_role_sees_its_home_and_actions(urls, browsing, staff, node, roles, name):
    page = browsing.page()
    sign_in(page, urls[node], staff)
    expect_lang(page, "zh-CN")
    expect(page.locator("h1").first, f"expected an h1 on {staff}'s home").to_be_visible()
    if name:
        expect(page.locator("#who"), f"expected #who to show {staff}'s name {name}").to_contain_text(name)
    roles_box = page.locator("#roles")
    expect(roles_box, f"expected #roles on {staff}'s home").to_have_count(1)
    for role in roles:
        assert role_shown(roles_box, role), (
            f"expected #roles on {staff}'s home to list the role {role}, got {roles_box.inner_text()!r}"
        )
    actions = page.locator("nav#actions a[data-action]")
    expect(page.locator("nav#actions"), f"expected nav#actions on {staff}'s home").to_have_count(1)
    shown = [actions.nth(i).get_attribute("data-action") for i in range(actions.count())]
    assert len(shown) == len(set(shown)), f"expected one link per action on {staff}'s home, got {shown}"
    home = page.url
    for action, (role, target) in RESTRICTED_ACTIONS.items():
        if role in roles:
            assert action in shown, f"expected {staff} ({', '.join(roles)}) to see the action {action}, got {shown}"
            link = page.locator(f'nav#actions a[data-action="{action}"]')
            href = urllib.parse.urljoin(home, link.get_attribute("href") or "")
            assert path_of(href) == target, f"expected the {action} link to lead to {target}, got {href}"
            with page.expect_navigation() as navigation:
                link.click()
            assert navigation.value.status == 200 and path_of(page.url) == target, (
                f"expected {staff} to open {target} through {action} with status 200, "
                f"got {navigation.value.status} at {page.url} (#message {message_code(page)!r})"
            )
            page.goto(home)
        else:
            assert action not in shown, f"expected {staff} ({', '.join(roles)}) not to see {action}, got {shown}"


def test_pages_of_other_roles_are_refused(urls, browsing):
    refusals = {
        "N001": ("/staff/accounts", "/staff/audit"),  # a doctor and department head
        "ADM01": ("/staff/audit", "/staff/schedule"),
        "AUD01": ("/staff/accounts", "/staff/schedule"),
    }
    for staff, paths in refusals.items():
        page = browsing.page()
        sign_in(page, urls["waike"], staff)
        for path in paths:
            response = page.goto(urls["waike"] + path)
            assert response is not None and response.status == 403, (
                f"expected {staff} to be refused {path} with status 403, got {status_of(response)} at {page.url}"
            )
            expect_message(page, "access.denied", f"{staff} opening {path}")


# --- lockout ---------------------------------------------------------------------------------------------


def test_account_locks_after_five_failures_across_nodes(urls, browsing, w401_locked):
    page = browsing.page()
    for node, base in urls.items():
        def right_password():
            page.context.clear_cookies()
            response = post_sign_in(page, base, w401_locked, PASSWORD)
            return response.status == 403 and message_code(page) == "auth.locked", (
                f"status {response.status}, #message {message_code(page)!r}, at {page.url}"
            )

        poll(
            right_password,
            f"the right password of the locked {w401_locked} on {node} to be refused with 403 and auth.locked",
            timeout=45,
            interval=1,
        )
        assert staff_cookie(page.context) is None, f"expected no {STAFF_COOKIE} cookie for a locked account on {node}"
        assert CJK.search(message_text(page)), f"expected the lock message in Chinese first, got {message_text(page)!r}"


# --- the session cookie ------------------------------------------------------------------------------------


def test_session_cookie_is_strict_and_accepted_by_every_node(urls, browsing):
    page = browsing.page()
    sign_in(page, urls["neike"], "N002")
    cookie = staff_cookie(page.context)
    assert cookie is not None, f"expected a {STAFF_COOKIE} cookie after signing in"
    flags = {k: cookie[k] for k in ("httpOnly", "secure", "sameSite", "path")}
    assert flags == {"httpOnly": True, "secure": True, "sameSite": "Strict", "path": "/staff"}, (
        f"expected {STAFF_COOKIE} to be HttpOnly, Secure, SameSite=Strict, Path=/staff, got {flags}"
    )
    # The browser keeps one cookie jar for 127.0.0.1, so the same cookie goes to every node's port.
    for node in ("waike", "erke", "neike"):
        expect_signed_in(page, urls[node], "N002", f"the cookie issued by neike, presented to {node}")
    assert staff_cookie(page.context) is not None, f"expected {STAFF_COOKIE} to still be there"


def test_forged_cookie_is_refused(urls, browsing):
    ctx = browsing.context()
    page = browsing.page(ctx)
    sign_in(page, urls["waike"], "N003")
    real = staff_cookie(ctx)
    assert real is not None, f"expected a {STAFF_COOKIE} cookie after signing in"
    value = real["value"]
    # Control: the real value, put back the way the forgeries are, is accepted.
    put_staff_cookie(ctx, value, real)
    expect_signed_in(page, urls["neike"], "N003", "the real cookie value, set again")
    # One character changed in the middle (a letter for another letter of the same case, a digit for
    # another digit), so that any encoding still decodes, only to other bytes.
    middle = len(value) // 2
    i = next((j for j in list(range(middle, len(value))) + list(range(middle)) if value[j].isalnum()), None)
    assert i is not None, f"expected an alphanumeric character in the cookie value {value!r}"
    c = value[i]
    swap = ("b" if c == "a" else "a") if c.islower() else ("B" if c == "A" else "A") if c.isupper() else (
        "1" if c == "0" else "0"
    )
    forgeries = {
        "one character changed": value[:i] + swap + value[i + 1:],
        "garbage": "garbage",
        "garbage with dots": "eyJhbGciOiJub25lIn0.eyJzdGFmZiI6IkFETTAxIn0.",
    }
    for label, forged in forgeries.items():
        for node, base in urls.items():
            put_staff_cookie(ctx, forged, real)
            expect_sent_to_sign_in(page, f"{base}/staff/", "session.invalid", f"a forged {STAFF_COOKIE} ({label}) on {node}")


def test_no_cookie_goes_to_sign_in(urls, browsing):
    page = browsing.page()
    for path in ("/staff/", "/staff/schedule", "/staff/accounts", "/staff/audit"):
        expect_sent_to_sign_in(page, urls["neike"] + path, None, f"no {STAFF_COOKIE} cookie")
    for node in ("waike", "erke"):
        expect_sent_to_sign_in(page, urls[node] + "/staff/", None, f"no {STAFF_COOKIE} cookie on {node}")


def test_idle_session_expires_by_the_issuing_nodes_setting(urls, browsing):
    # E002 signs in on erke (idle limit 20 s) and does nothing; E003 signs in on erke and stays busy;
    # N004 signs in on neike (default limit, 1800 s) and does nothing.
    idle, busy, control = browsing.page(), browsing.page(), browsing.page()
    sign_in(idle, urls["erke"], "E002")
    idle_since = time.monotonic()
    sign_in(busy, urls["erke"], "E003")
    sign_in(control, urls["neike"], "N004")
    wait = ERKE_IDLE_SECONDS + 5
    while time.monotonic() - idle_since < wait:
        time.sleep(min(5.0, max(0.0, wait - (time.monotonic() - idle_since))))
        expect_signed_in(busy, urls["erke"], "E003", f"a page opened at least every 5 s, well within erke's {ERKE_IDLE_SECONDS} s")
    response = expect_sent_to_sign_in(
        idle,
        urls["erke"] + "/staff/",
        "session.expired",
        f"E002 idle for more than erke's {ERKE_IDLE_SECONDS} s",
        reason="expired",
    )
    chain = redirects_of(response)
    assert chain[0][2] == 303, f"expected an expired session's GET /staff/ to answer 303, redirects seen: {chain}"
    expect_signed_in(control, urls["neike"], "N004", "a session issued by neike, whose idle limit is the default 1800 s")
    expect_signed_in(busy, urls["erke"], "E003", "a busy session on erke")


# --- CSRF ---------------------------------------------------------------------------------------------------


def test_post_without_the_right_csrf_is_refused_and_changes_nothing(urls, browsing):
    waike = urls["waike"]
    ctx = browsing.context()
    page = browsing.page(ctx)
    sign_in(page, waike, "W003")
    csrf_of(page, "form#sign-out")
    check = ctx.request.get(f"{waike}/staff/", max_redirects=0)
    assert check.status == 200, (
        f"expected the request API to carry {STAFF_COOKIE} (GET /staff/ answering 200), got {check.status}"
    )
    # Another session's token is not the right one either.
    other = browsing.page()
    open_sign_in(other, urls["neike"])
    foreign = csrf_of(other, "form#sign-in")
    for label, form in (
        ("no csrf field", {"note": "x"}),
        ("an empty csrf", {"csrf": ""}),
        ("a made-up csrf", {"csrf": "A" * 43}),
        ("another session's csrf", {"csrf": foreign}),
    ):
        answer = ctx.request.post(f"{waike}/staff/sign-out", form=form, max_redirects=0)
        facts = PageFacts(answer.text())
        assert answer.status == 403 and facts.message_code == "csrf.invalid", (
            f"expected POST /staff/sign-out with {label} to answer 403 with #message[data-code=csrf.invalid], "
            f"got {answer.status} with #message {facts.message_code!r}"
        )
    for node in ("waike", "neike"):
        expect_signed_in(page, urls[node], "W003", "the sign-out posts without the right csrf changed nothing")
    # Signing in without a csrf token is refused too, and gives no session.
    fresh = browsing.context()
    answer = fresh.request.post(
        f"{waike}/staff/sign-in", form={"staff_number": "W003", "password": PASSWORD}, max_redirects=0
    )
    facts = PageFacts(answer.text())
    assert answer.status == 403 and facts.message_code == "csrf.invalid", (
        f"expected POST /staff/sign-in without csrf to answer 403 with #message[data-code=csrf.invalid], "
        f"got {answer.status} with #message {facts.message_code!r}"
    )
    assert staff_cookie(fresh) is None, f"expected no {STAFF_COOKIE} cookie from a sign-in without csrf"


# --- schedule ------------------------------------------------------------------------------------------------


def test_nurse_is_refused_the_schedule_and_a_doctor_sees_it(urls, browsing):
    nurse = browsing.page()
    sign_in(nurse, urls["neike"], "N101")
    response = nurse.goto(urls["neike"] + "/staff/schedule")
    assert response is not None and response.status == 403, (
        f"expected a nurse to be refused /staff/schedule with 403, got {status_of(response)} at {nurse.url}"
    )
    expect_message(nurse, "access.denied", "a nurse opening /staff/schedule")
    expect(nurse.locator("table#schedule"), "expected no schedule table for a nurse").to_have_count(0)
    doctor = browsing.page()
    sign_in(doctor, urls["neike"], "N002")
    response = doctor.goto(urls["neike"] + "/staff/schedule")
    assert response is not None and response.status == 200, (
        f"expected the doctor N002 to open /staff/schedule with 200, got {status_of(response)}"
    )
    expect(doctor.locator("table#schedule"), "expected table#schedule on a doctor's /staff/schedule").to_have_count(1)


# --- sign-out --------------------------------------------------------------------------------------------------


def test_sign_out_revokes_the_cookie_on_every_node(urls, browsing):
    ctx = browsing.context()
    page = browsing.page(ctx)
    sign_in(page, urls["waike"], "W002")
    old = staff_cookie(ctx)
    assert old is not None, f"expected a {STAFF_COOKIE} cookie after signing in"
    with page.expect_navigation() as navigation:
        page.locator("form#sign-out button#sign-out-submit").click()
    response = navigation.value
    chain = redirects_of(response)
    assert chain and chain[0][0] == "POST" and chain[0][2] == 303, (
        f"expected POST /staff/sign-out to answer 303, redirects seen: {chain}"
    )
    assert path_of(page.url) == "/staff/sign-in" and reason_of(page.url) == "signed_out", (
        f"expected sign-out to lead to /staff/sign-in?reason=signed_out, got {page.url}"
    )
    expect_message(page, "session.signed_out", "after signing out")
    # The old value, presented again (as someone who copied it would), is refused by every node.
    replay_ctx = browsing.context()
    replay = browsing.page(replay_ctx)
    for node, base in urls.items():
        def refused():
            put_staff_cookie(replay_ctx, old["value"], old)
            answer = replay.goto(f"{base}/staff/")
            return sent_to_sign_in(replay, answer, "session.revoked")

        poll(
            refused,
            f"W002's signed-out cookie to be refused on {node} with a redirect to sign-in and session.revoked",
            timeout=30,
            interval=0.5,
        )


# --- accounts ------------------------------------------------------------------------------------------------


def test_admin_adds_an_account_that_signs_in_on_another_node(urls, browsing):
    neike, waike = urls["neike"], urls["waike"]
    ctx = browsing.context()
    page = browsing.page(ctx)
    sign_in(page, neike, "ADM01")
    response = page.goto(neike + "/staff/accounts")
    assert response is not None and response.status == 200, (
        f"expected the hospital admin to open /staff/accounts with 200, got {status_of(response)}"
    )
    for seeded in ("ADM01", "AUD01", "N001", "W401", "E401"):
        expect(
            page.locator(f'table#accounts tr[data-staff="{seeded}"]'), f"expected a row for the demo account {seeded}"
        ).to_have_count(1)
    taken = set(page.locator("table#accounts tr[data-staff]").evaluate_all("rs => rs.map(r => r.dataset.staff)"))
    number = next(f"N{n}" for n in range(901, 1000) if f"N{n}" not in taken)
    new_password = "Pages-Test-2026-" + number
    fields = {
        "staff_number": number,
        "name": "测试护士",
        "roles": "nurse",
        "departments": "neike",
        "password": new_password,
    }
    # Without the csrf token: refused, and no account appears.
    answer = ctx.request.post(neike + "/staff/accounts", form=fields, max_redirects=0)
    facts = PageFacts(answer.text())
    assert answer.status == 403 and facts.message_code == "csrf.invalid", (
        f"expected POST /staff/accounts without csrf to answer 403 with csrf.invalid, "
        f"got {answer.status} with #message {facts.message_code!r}"
    )
    page.goto(neike + "/staff/accounts")
    expect(page.locator(f'tr[data-staff="{number}"]'), f"expected no account {number} after a post without csrf").to_have_count(0)
    # Through the form.
    form = page.locator("form#add-account")
    expect(form, "expected form#add-account on /staff/accounts").to_be_visible()
    csrf_of(page, "form#add-account")
    form.locator("input[name=staff_number]").fill(number)
    form.locator("input[name=name]").fill("测试护士")
    form.locator("input[name=roles][value=nurse]").check()
    form.locator("input[name=departments]").fill("neike")
    form.locator("input[name=password]").fill(new_password)
    response = submit(page, form, "button#add-account-submit")
    chain = redirects_of(response)
    assert chain and chain[0][0] == "POST" and chain[0][2] == 303 and path_of(page.url) == "/staff/accounts", (
        f"expected adding {number} to answer 303 back to /staff/accounts; redirects {chain}, at {page.url}, "
        f"status {response.status}, #message {message_code(page)!r}"
    )
    expect(page.locator(f'table#accounts tr[data-staff="{number}"]'), f"expected a row for the new account {number}").to_have_count(1)

    # Wait until the account has reached waike (the admin's cookie works there too), so that the new
    # account's first sign-in there is the one attempt: failed attempts would count towards a lock.
    def on_waike():
        page.goto(waike + "/staff/accounts")
        rows = page.locator(f'table#accounts tr[data-staff="{number}"]').count()
        return rows == 1, f"{rows} rows for {number} on {page.url}"

    poll(on_waike, f"the new account {number} to show on waike's /staff/accounts", timeout=30)
    # A new account must change its initial password before anything else.
    newcomer = browsing.page()
    post_sign_in(newcomer, waike, number, new_password)
    assert path_of(newcomer.url) == "/staff/password", (
        f"expected the new account {number} to be sent to /staff/password at its first sign-in, ended at {newcomer.url}"
    )
    newcomer.goto(waike + "/staff/")
    assert path_of(newcomer.url) == "/staff/password", (
        f"expected /staff/ to send {number} back to /staff/password until the password is changed, ended at {newcomer.url}"
    )
    change = newcomer.locator("form#change-password")
    change.locator("input[name=current]").fill(new_password)
    change.locator("input[name=new]").fill(new_password + "-changed")
    submit(newcomer, change, "button#change-password-submit")
    assert path_of(newcomer.url) == "/staff/", (
        f"expected a changed password to lead to /staff/, ended at {newcomer.url} with #message {message_code(newcomer)!r}"
    )
    assert role_shown(newcomer.locator("#roles"), "nurse"), (
        f"expected the new account's home to list the role nurse, got {newcomer.locator('#roles').inner_text()!r}"
    )


# --- audit ---------------------------------------------------------------------------------------------------


def test_auditor_sees_lockouts_and_refusals(urls, browsing, w401_locked):
    # A refusal of its own for this test: the nurse W101 opens the schedule on waike.
    nurse = browsing.page()
    sign_in(nurse, urls["waike"], "W101")
    response = nurse.goto(urls["waike"] + "/staff/schedule")
    assert response is not None and response.status == 403, (
        f"expected the nurse W101 to be refused /staff/schedule with 403, got {status_of(response)}"
    )

    ctx = browsing.context()
    page = browsing.page(ctx)
    sign_in(page, urls["neike"], "AUD01")
    response = page.goto(urls["neike"] + "/staff/audit")
    assert response is not None and response.status == 200, (
        f"expected the auditor to open /staff/audit with 200, got {status_of(response)}"
    )
    expect(page.locator("table#audit"), "expected table#audit on /staff/audit").to_have_count(1)
    form = page.locator("form#audit-filter")
    expect(form, "expected form#audit-filter on /staff/audit").to_have_count(1)
    assert (form.get_attribute("method") or "get").lower() == "get", "expected form#audit-filter to use GET"
    for name in ("staff", "patient", "action", "from", "to"):
        expect(form.locator(f"[name={name}]"), f"expected a filter field named {name} in form#audit-filter").to_have_count(1)

    def filtered(staff: str, action: str):
        page.goto(urls["neike"] + "/staff/audit")
        fill_field(form, "staff", staff)
        fill_field(form, "action", action)
        answer = submit(page, form)
        assert answer.status == 200, f"expected the filtered audit page to answer 200, got {answer.status}"
        return page.url

    # W401's sign-ins: the wrong passwords and the refusals because of the lock, from every node.
    url = filtered(w401_locked, "staff.sign_in")

    def lock_seen():
        page.goto(url)
        rows = audit_rows(page)
        locked = [r for r in rows if r["outcome"] and "locked" in r["outcome"]]
        wrong = [r for r in rows if r["outcome"] and "wrong_credentials" in r["outcome"]]
        return len(locked) >= 1 and len(wrong) >= 3 and any(node_named(r["node"], "erke") for r in locked), rows

    rows = poll(
        lock_seen,
        f"/staff/audit filtered by staff={w401_locked}, action=staff.sign_in to list at least 3 wrong_credentials "
        "(neike) and a locked sign-in on erke (replicated to neike)",
        timeout=60,
        interval=1,
    )
    strays = [r for r in rows if not (r["staff"] and w401_locked in r["staff"] and r["action"] and "staff.sign_in" in r["action"])]
    assert not strays, f"expected only {w401_locked}'s staff.sign_in rows under the filter, also got {strays[:5]}"

    link = page.locator("a#export-csv")
    expect(link, "expected the CSV export link a#export-csv").to_have_count(1)
    csv_url = urllib.parse.urljoin(page.url, link.get_attribute("href") or "")
    assert path_of(csv_url) == "/staff/audit.csv", f"expected a#export-csv to lead to /staff/audit.csv, got {csv_url}"
    answer = ctx.request.get(csv_url)
    kind = answer.headers.get("content-type", "")
    assert answer.status == 200 and kind.startswith("text/csv"), (
        f"expected {csv_url} to answer 200 with Content-Type text/csv, got {answer.status} {kind!r}"
    )
    body = answer.text()
    assert w401_locked in body and "locked" in body, f"expected the CSV to hold {w401_locked}'s locked sign-ins, got {body[:500]!r}"

    # The nurse's refusal, made on waike, seen on neike.
    url = filtered("W101", "access.denied")

    def refusal_seen():
        page.goto(url)
        rows = audit_rows(page)
        hits = [r for r in rows if r["staff"] and "W101" in r["staff"] and r["action"] and "access.denied" in r["action"]]
        return bool(hits), rows

    poll(refusal_seen, "/staff/audit filtered by staff=W101, action=access.denied to list the nurse's refusal", timeout=60, interval=1)


# --- headers and markup of every page --------------------------------------------------------------------------


def test_every_staff_page_has_a_strict_csp_and_no_inline_script(urls, browsing):
    neike = urls["neike"]
    seen: list[tuple[str, int, dict, str]] = []  # (what, status, headers, body)

    def keep(what: str, response: Response | None):
        assert response is not None, f"expected a response for {what}"
        seen.append((what, response.status, response.all_headers(), response.text()))

    page = browsing.page()
    keep("GET /staff/sign-in", page.goto(neike + "/staff/sign-in"))
    keep("POST /staff/sign-in (unknown staff number, 401)", post_sign_in(page, neike, "X9997", WRONG_PASSWORD))
    keep("redirect target without a cookie", page.goto(neike + "/staff/"))
    for staff, paths in (
        ("AUD01", ("/staff/", "/staff/audit")),
        ("ADM01", ("/staff/", "/staff/accounts")),
        ("N002", ("/staff/", "/staff/schedule")),
        ("N101", ("/staff/", "/staff/schedule")),  # 403 access.denied
    ):
        page = browsing.page()
        keep(f"{staff} home after sign-in", sign_in(page, neike, staff))
        for path in paths:
            keep(f"{staff} GET {path}", page.goto(neike + path))
    # Signed in (as N101), a post without csrf: the 403 page.
    answer = page.context.request.post(neike + "/staff/sign-out", form={"note": "x"}, max_redirects=0)
    seen.append(("POST /staff/sign-out without csrf (403)", answer.status, answer.headers, answer.text()))

    problems = []
    for what, status, headers, body in seen:
        csp = headers.get("content-security-policy", "")
        if not re.search(r"(^|;)\s*default-src\s[^;]*'self'", csp):
            problems.append(f"{what} ({status}): expected Content-Security-Policy with default-src 'self', got {csp!r}")
        if "unsafe-inline" in csp:
            problems.append(f"{what} ({status}): expected no 'unsafe-inline' in the CSP, got {csp!r}")
        facts = PageFacts(body)
        if facts.inline_scripts:
            problems.append(f"{what} ({status}): expected no inline <script>, found {facts.inline_scripts}")
        if facts.handlers:
            problems.append(f"{what} ({status}): expected no inline event handlers, found {facts.handlers[:5]}")
        if facts.lang != "zh-CN":
            problems.append(f'{what} ({status}): expected <html lang="zh-CN">, got {facts.lang!r}')
        if not facts.has_lang_link:
            problems.append(f"{what} ({status}): expected the language link a#lang")
    assert not problems, "expected every staff page to be strict:\n" + "\n".join(problems)


# --- patients and break-glass --------------------------------------------------------------------------------

# 赵一鸣, a demo patient (registered on neike) with no appointment: outside every doctor's care.
DEMO_RESIDENT_ID = "130102195001011001"


def test_a_doctor_is_refused_another_departments_patient_until_break_glass_which_the_auditor_sees(urls, browsing):
    waike, neike = urls["waike"], urls["neike"]
    doctor = browsing.page()
    sign_in(doctor, waike, "W004")

    def found():
        doctor.goto(waike + "/staff/patients")
        form = doctor.locator("form#patient-search")
        form.locator("input[name=resident_id]").fill(DEMO_RESIDENT_ID)
        answer = submit(doctor, form)
        return path_of(doctor.url).startswith("/staff/patients/"), f"{answer.status} at {doctor.url}, #message {message_code(doctor)!r}"

    # The patient row was written on neike: wait for it to reach waike.
    poll(found, f"the search for {DEMO_RESIDENT_ID} on waike to lead to the patient's page", timeout=30)
    patient_url = doctor.url
    key = path_of(patient_url).rsplit("/", 1)[-1]
    assert doctor.locator("#message").get_attribute("data-code") == "access.break_glass_required", (
        f"expected a doctor of waike to be refused a patient with no waike appointment (access.break_glass_required), got {message_code(doctor)!r}"
    )
    assert "赵一鸣" not in doctor.content(), "expected nothing of the patient on the refusal page"
    form = doctor.locator("form#break-glass")
    expect(form, "expected form#break-glass on the refusal page").to_be_visible()
    csrf_of(doctor, "form#break-glass")

    # A reason too short is refused, and changes nothing.
    form.locator("textarea[name=reason]").evaluate("t => t.removeAttribute('minlength')")
    form.locator("textarea[name=reason]").fill("太短")
    response = submit(doctor, form, "button#break-glass-submit")
    assert response.status == 400 and message_code(doctor) == "break_glass.reason", (
        f"expected a short reason to answer 400 with break_glass.reason, got {response.status} {message_code(doctor)!r}"
    )
    reason = "夜间急诊会诊，需核对既往用药史"
    doctor.locator("form#break-glass textarea[name=reason]").fill(reason)
    submit(doctor, doctor.locator("form#break-glass"), "button#break-glass-submit")
    assert doctor.url == patient_url, f"expected break-glass to lead back to {patient_url}, ended at {doctor.url}"
    expect(doctor.locator("#patient-name"), "expected the patient's name after break-glass").to_contain_text("赵一鸣")
    expect(doctor.locator("#break-glass-note"), "expected the page to say it was opened by break-glass").to_contain_text(reason)
    assert DEMO_RESIDENT_ID not in doctor.content(), "expected the resident ID to be masked on the patient page"

    # The auditor, on another node, sees the break-glass with its reason's staff and patient.
    auditor = browsing.page(browsing.context())
    sign_in(auditor, neike, "AUD01")
    url = neike + "/staff/audit?action=patient.break_glass&staff=W004"

    def seen():
        auditor.goto(url)
        rows = audit_rows(auditor)
        return any(r["patient"] == key and r["staff"] == "W004" for r in rows), rows

    poll(seen, f"the auditor's page on neike to list W004's break-glass of patient {key}", timeout=30, interval=1)


# --- two-step sign-in -----------------------------------------------------------------------------------------


def totp(setup_key: str, at: float) -> str:
    """RFC 6238 (HMAC-SHA1, 6 digits, 30 s) from the key an authenticator app is given, as an app computes it."""
    key_text = setup_key.replace(" ", "").upper()
    key = base64.b32decode(key_text + "=" * (-len(key_text) % 8))
    digest = hmac.new(key, struct.pack(">Q", int(at // 30)), hashlib.sha1).digest()
    offset = digest[-1] & 0x0F
    value = struct.unpack(">I", digest[offset:offset + 4])[0] & 0x7FFFFFFF
    return f"{value % 1_000_000:06d}"


def test_two_step_sign_in_with_an_authenticator_code_on_another_node(urls, browsing):
    waike, neike = urls["waike"], urls["neike"]
    staff = "W301"  # waike's pharmacist: no other test signs in as it
    page = browsing.page()
    sign_in(page, waike, staff)
    page.goto(waike + "/staff/password")
    with page.expect_navigation():
        page.locator("a#two-step-link").click()
    expect(page.locator("#two-step-state"), "expected two-step sign-in to start off").to_have_attribute("data-state", "off")
    setup_key = page.locator("code#setup-key").inner_text()
    url = page.locator("code#authenticator-url").inner_text()
    assert url.startswith("otpauth://totp/") and "secret=" + setup_key.replace(" ", "") in url, (
        f"expected an otpauth://totp/ address carrying the setup key {setup_key!r}, got {url!r}"
    )
    form = page.locator("form#two-step-on")
    form.locator("input[name=code]").fill("000000" if totp(setup_key, time.time()) != "000000" else "111111")
    form.locator("input[name=password]").fill(PASSWORD)
    submit(page, form, "button#two-step-on-submit")
    expect_message(page, "two_step.code_wrong", "a wrong code must not turn two-step sign-in on")
    expect(page.locator("code#setup-key"), "expected the same key back after a wrong code").to_have_text(setup_key)
    form = page.locator("form#two-step-on")
    form.locator("input[name=code]").fill(totp(setup_key, time.time()))
    form.locator("input[name=password]").fill(PASSWORD)
    submit(page, form, "button#two-step-on-submit")
    expect(page.locator("#two-step-state"), "expected two-step sign-in to be on after the app's code").to_have_attribute("data-state", "on")

    # The admin's accounts page on neike shows it on once the row has replicated.
    admin = browsing.page()
    sign_in(admin, neike, "ADM01")

    def on_at_neike():
        admin.goto(neike + "/staff/accounts")
        state = admin.locator(f'tr[data-staff="{staff}"] td.two-step').get_attribute("data-state")
        return state == "on", f"two-step {state!r} for {staff} on {admin.url}"

    poll(on_at_neike, f"{staff}'s two-step sign-in to show on at neike", timeout=30)
    without = browsing.page()
    post_sign_in(without, neike, staff, PASSWORD)
    expect_message(without, "auth.wrong_credentials", "the password alone must not sign in an account with two-step on")
    # The code that turned it on is spent; the next step's code is within the accepted drift.
    with_code = browsing.page()
    open_sign_in(with_code, neike)
    form = with_code.locator("form#sign-in")
    form.locator("input[name=staff_number]").fill(staff)
    form.locator("input[name=password]").fill(PASSWORD)
    form.locator("input[name=code]").fill(totp(setup_key, time.time() + 30))
    submit(with_code, form, "button#submit")
    assert path_of(with_code.url) == "/staff/", (
        f"expected {staff} with password and code to reach /staff/, ended at {with_code.url} with #message {message_code(with_code)!r}"
    )
    with_code.goto(neike + "/staff/two-step")
    off = with_code.locator("form#two-step-off")
    off.locator("input[name=password]").fill(PASSWORD)
    submit(with_code, off, "button#two-step-off-submit")
    expect(with_code.locator("#two-step-state"), "expected two-step sign-in off again").to_have_attribute("data-state", "off")
