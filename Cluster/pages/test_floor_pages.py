"""Browser tests of the clinic floor: the nurse registers a walk-in into one of today's 内科 sessions on
neike (报到与候诊), the waiting-room display on waike follows the queue live, the department head calls
the patient from the calling page (叫号), and the kiosk and the roles refuse what they must.

Cluster/pages/run seeds the rota from the demo's weekly templates with today's sessions in it, and keeps
today's queues open all day, so these tests find a session today at any hour. Every wait is for a condition.
"""

from __future__ import annotations

import random

from playwright.sync_api import expect

from test_staff_pages import expect_message, fill_field, path_of, sign_in, status_of, submit

WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
CHECK = "10X98765432"


def resident_id(birth: str, sequence: int) -> str:
    """An 18-digit resident ID of Shijiazhuang's 长安区 (130102) with its GB 11643 check digit."""
    body = f"130102{birth}{sequence:03d}"
    return body + CHECK[sum(int(d) * w for d, w in zip(body, WEIGHTS)) % 11]


def masked(name: str) -> str:
    return name[0] + "*" * (len(name) - 2) + name[-1] if len(name) > 2 else name[0] + "*"


def test_walk_in_shows_on_the_display_of_another_node_when_called(urls, browsing):
    nurse = browsing.page()
    sign_in(nurse, urls["neike"], "N101")  # a nurse of 内科
    link = nurse.locator('nav#actions a[data-action="floor.checkin"]')
    expect(link, "expected the nurse's home to link check-in and queues").to_have_count(1)
    with nurse.expect_navigation() as navigation:
        link.click()
    assert navigation.value.status == 200 and path_of(nurse.url) == "/staff/floor", (
        f"expected the link to open /staff/floor with 200, got {navigation.value.status} at {nurse.url}"
    )
    sessions = nurse.locator("section.session:has(form.walk-in)")
    expect(sessions.first, "expected today's 内科 sessions with walk-in slots (the demo rota has some every day)").to_be_visible()
    schedule = sessions.first.get_attribute("data-session")
    section = f'section.session[data-session="{schedule}"]'

    # A resident ID with a wrong check digit is refused by the server and registers nobody.
    good = resident_id(f"19{random.randint(60, 99)}0{random.randint(1, 9)}1{random.randint(0, 9)}", random.randint(100, 899))
    bad = good[:-1] + ("0" if good[-1] != "0" else "1")
    form = nurse.locator(f"{section} form.walk-in")
    for name, value in (("resident_id", bad), ("name", "周小川"), ("mobile", "13803119876"), ("payment", "card")):
        fill_field(form, name, value)
    refused = submit(nurse, form)
    assert refused.status == 400, f"expected a wrong check digit to be refused with 400, got {status_of(refused)}"
    expect(nurse.locator("#message"), "expected a message naming the resident ID").to_have_attribute("data-code", "resident_id.check_digit")
    expect(nurse.locator(f'{section} tr.line[data-stage="waiting"]'), "expected nobody waiting after the refusal").to_have_count(0)

    # The display on another node, open before the call: it must change by itself (server-sent events).
    display = browsing.page()
    response = display.goto(urls["waike"] + "/staff/display?dept=neike")
    assert response is not None and response.status == 200, f"expected the display to open with 200, got {status_of(response)}"
    expect(display.locator("table#display"), "expected the display's table").to_have_count(1)
    row = display.locator(f'table#display tr[data-session="{schedule}"]')
    expect(row, f"expected the display on waike to list {schedule}").to_have_count(1)

    form = nurse.locator(f"{section} form.walk-in")
    for name, value in (("resident_id", good), ("name", "周小川"), ("mobile", "13803119876"), ("payment", "card")):
        fill_field(form, name, value)
    registered = submit(nurse, form)
    assert registered.status == 200 and path_of(nurse.url) == "/staff/floor", (
        f"expected the floor page again after registering, got {status_of(registered)} at {nurse.url}"
    )
    expect(nurse.locator("#done"), "expected the page to say who was checked in").to_have_count(1)
    waiting = nurse.locator(f'{section} tr.line[data-stage="waiting"]')
    expect(waiting, "expected the walk-in waiting in the session").to_have_count(1)
    number = waiting.first.get_attribute("data-number")
    expect(waiting.first, "expected the walk-in's full name on the nurse's page").to_contain_text("周小川")

    # The department head calls from the calling page; the doctor's page and the display show number and masked name.
    head = browsing.page()
    sign_in(head, urls["neike"], "N001")
    response = head.goto(urls["neike"] + "/staff/queue?dept=neike")
    assert response is not None and response.status == 200, f"expected the calling page with 200, got {status_of(response)}"
    called = submit(head, head.locator(f"{section} form.queue-next"))
    assert called.status == 200, f"expected the calling page after calling, got {status_of(called)}"
    expect(head.locator(f"{section} .called-number"), f"expected number {number} called").to_have_text(number)
    expect(row.locator("td.now"), "expected the display on waike to show the call, masked, without a reload").to_contain_text(
        f"{number} {masked('周小川')}", timeout=60_000
    )
    assert "周小川" not in row.inner_text(), "expected no full name on the waiting-room display"

    # Calling again with the page as it was (the same press sent twice) calls nobody else.
    again = submit(head, head.locator(f"{section} form.queue-recall"))
    assert again.status == 200, f"expected the recall to answer the calling page, got {status_of(again)}"
    expect(head.locator(f"{section} .called-number"), "expected the same number still called").to_have_text(number)


def test_kiosk_and_roles_refuse_what_they_must(urls, browsing):
    kiosk = browsing.page()
    response = kiosk.goto(urls["erke"] + "/staff/kiosk?dept=neike")
    assert response is not None and response.status == 200, f"expected the kiosk with 200, got {status_of(response)}"
    fill_field(kiosk.locator("form#kiosk"), "resident_id", resident_id("19700101", 951))
    answer = submit(kiosk, kiosk.locator("form#kiosk"))
    assert answer.status == 404, f"expected a resident ID with no booking today to get 404, got {status_of(answer)}"
    expect_message(kiosk, "floor.no_booking_today", "a kiosk check-in without a booking")

    # A nurse does not call patients; a doctor calls only in their own sessions.
    nurse = browsing.page()
    sign_in(nurse, urls["neike"], "N101")
    response = nurse.goto(urls["neike"] + "/staff/queue")
    assert response is not None and response.status == 403, f"expected a nurse to be refused the calling page, got {status_of(response)}"
    expect_message(nurse, "access.denied", "a nurse opening /staff/queue")

    # The display in English, and without a department it offers the departments.
    display = browsing.page()
    display.goto(urls["neike"] + "/staff/display?lang=en")
    expect(display.locator("a.department"), "expected the three departments to choose from").to_have_count(3)
    display.goto(urls["neike"] + "/staff/display?dept=waike&lang=en")
    expect(display.locator("h1"), "expected the English title").to_contain_text("Now calling")


def test_doctor_sees_attendance_and_the_head_sees_the_week(urls, browsing):
    doctor = browsing.page()
    sign_in(doctor, urls["neike"], "N004")  # 刘洋, the resident: sessions every day in the demo rota
    response = doctor.goto(urls["neike"] + "/staff/queue")
    assert response is not None and response.status == 200, f"expected the doctor's calling page, got {status_of(response)}"
    own = doctor.locator("section.session")
    expect(own.first, "expected 刘洋's sessions of today").to_be_visible()
    assert own.count() == own.locator("div.attendance").count(), "expected the attendance line on each of the doctor's own sessions"

    head = browsing.page()
    sign_in(head, urls["neike"], "N001")
    link = head.locator('nav#actions a[data-action="attendance.read"]')
    expect(link, "expected the head's home to link attendance").to_have_count(1)
    with head.expect_navigation() as navigation:
        link.click()
    assert navigation.value.status == 200 and path_of(head.url) == "/staff/attendance", (
        f"expected /staff/attendance with 200, got {navigation.value.status} at {head.url}"
    )
    rows = head.locator('table#attendance tr.week[data-doctor="neike-liu-yang"]')
    expect(rows.first, "expected 刘洋's weeks in the attendance table").to_be_visible()
    assert int(rows.first.locator("td.planned").inner_text()) > 0, "expected planned sessions for 刘洋"

    nurse = browsing.page()
    sign_in(nurse, urls["neike"], "N101")
    response = nurse.goto(urls["neike"] + "/staff/attendance")
    assert response is not None and response.status == 403, f"expected a nurse to be refused attendance, got {status_of(response)}"
