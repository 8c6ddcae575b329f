"""Browser tests of the rota page (/staff/rota): a department head adds a weekly template line,
sees the weeks it makes, publishes them, and the doctor finds the sessions on another node.

The line is a Sunday evening session, which the demo data never has, so it conflicts with nothing the
demo seeded and the test passes in any order with the others. Every wait is for a condition.
"""

from __future__ import annotations

import urllib.parse

from playwright.sync_api import expect

from test_staff_pages import expect_message, fill_field, path_of, poll, sign_in, status_of, submit

DOCTOR = "neike-zhang-wei"  # 张伟, staff number N003 in the demo
LINE = f"{DOCTOR}/7/evening"


def test_department_head_adds_a_line_sees_the_weeks_and_publishes(urls, browsing):
    base = urls["neike"]
    page = browsing.page()
    sign_in(page, base, "N001")  # 王建国, doctor and head of 内科
    link = page.locator('nav#actions a[data-action="rota.manage"]')
    expect(link, "expected the department head's home to link the rota").to_have_count(1)
    with page.expect_navigation() as navigation:
        link.click()
    assert navigation.value.status == 200 and path_of(page.url) == "/staff/rota", (
        f"expected the rota link to open /staff/rota with 200, got {navigation.value.status} at {page.url}"
    )
    expect(page.locator("table#rota tr[data-date]"), "expected two weeks of dates in table#rota").to_have_count(14)

    form = page.locator("form#add-line")
    for name, value in (("practitioner", DOCTOR), ("weekday", "7"), ("half_day", "evening"), ("room", "内科夜间诊室"),
                        ("start", ""), ("capacity", "0"), ("minutes_per_slot", "15"), ("walk_in_reserve", "2")):
        fill_field(form, name, value)
    # The server's own check, not the browser's: capacity 0 is refused and nothing is saved.
    form.evaluate("f => { f.noValidate = true }")
    refused = submit(page, form)
    assert refused.status == 400, f"expected capacity 0 to be refused with 400, got {status_of(refused)}"
    expect_message(page, "schedule.capacity", "a template line with 0 slots")
    expect(page.locator(f'tr.line[data-line="{LINE}"]'), "expected no line saved after the refusal").to_have_count(0)

    form = page.locator("form#add-line")
    for name, value in (("practitioner", DOCTOR), ("weekday", "7"), ("half_day", "evening"), ("room", "内科夜间诊室"),
                        ("capacity", "12"), ("minutes_per_slot", "15"), ("walk_in_reserve", "2")):
        fill_field(form, name, value)
    saved = submit(page, form)
    assert saved.status == 200 and path_of(page.url) == "/staff/rota", f"expected the rota again after saving, got {status_of(saved)} at {page.url}"
    expect(page.locator(f'tr.line[data-line="{LINE}"]'), "expected the saved line in the template table").to_have_count(1)
    new = page.locator(f'div.session[data-state="new"][data-session^="{DOCTOR}/"][data-session$="/evening"]')
    expect(new, "expected two new Sunday evening sessions in the two weeks shown").to_have_count(2)
    keys = [new.nth(i).get_attribute("data-session") for i in range(new.count())]

    published = submit(page, page.locator("form#publish"))
    assert published.status == 200, f"expected the rota after publishing, got {status_of(published)}"
    assert dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(page.url).query)).get("published") == "2", (
        f"expected ?published=2 after publishing, got {page.url}"
    )
    expect(page.locator("#published"), "expected the page to say what was published").to_have_count(1)
    for key in keys:
        expect(page.locator(f'div.session[data-state="published"][data-session="{key}"]'),
               f"expected {key} shown as published").to_have_count(1)

    # The doctor sees them on another node once the rows have replicated there.
    doctor = browsing.page()
    sign_in(doctor, urls["waike"], "N003")

    def listed():
        doctor.goto(urls["waike"] + "/staff/schedule")
        shown = [key for key in keys if doctor.locator(f'tr[data-session="{key}"]').count() == 1]
        return len(shown) == len(keys), shown

    poll(listed, f"N003's schedule on waike to list {keys}", timeout=60)


def test_rota_page_in_english_and_refused_to_other_roles(urls, browsing):
    page = browsing.page()
    sign_in(page, urls["erke"], "ADM01")  # the hospital administrator reaches every department
    response = page.goto(urls["erke"] + "/staff/rota?dept=waike&lang=en")
    assert response is not None and response.status == 200, f"expected the administrator to open waike's rota, got {status_of(response)}"
    expect(page.locator("h1"), "expected the English title").to_contain_text("Rota")
    expect(page.locator("html")).to_have_attribute("lang", "en")
    nurse = browsing.page()
    sign_in(nurse, urls["waike"], "N101")
    response = nurse.goto(urls["waike"] + "/staff/rota")
    assert response is not None and response.status == 403, f"expected a nurse to be refused the rota with 403, got {status_of(response)}"
    expect_message(nurse, "access.denied", "a nurse opening /staff/rota")
