"""Browser tests of session changes: a doctor of 内科 asks on neike for extra slots (加号) on one of their
later sessions, the department head decides on waike (another node), and the doctor's page shows the
new capacity. Bad requests and decisions are refused with a message and change nothing; a nurse cannot
open the approvals page.

Every wait is for a condition: the request reaches waike by replication, the capacity comes back the same way.
"""

from __future__ import annotations

from playwright.sync_api import expect

from test_staff_pages import expect_message, fill_field, path_of, sign_in, status_of, submit


def test_a_doctor_asks_for_extra_slots_and_the_head_approves_on_another_node(urls, browsing):
    doctor = browsing.page()
    sign_in(doctor, urls["neike"], "N002")  # a doctor of 内科, not its head
    link = doctor.locator('nav#actions a[data-action="schedule.own"]')
    expect(link, "expected the doctor's home to link their sessions").to_have_count(1)
    with doctor.expect_navigation() as navigation:
        link.click()
    assert navigation.value.status == 200 and path_of(doctor.url) == "/staff/schedule", (
        f"expected /staff/schedule with 200, got {navigation.value.status} at {doctor.url}"
    )
    form = doctor.locator("form#change-form")
    expect(form, "expected the request form (the demo rota gives every doctor sessions ahead)").to_have_count(1)
    options = form.locator("select[name=session] option")
    session = options.last.get_attribute("value")  # the latest: far from today's floor tests
    assert session and session.startswith("neike-"), f"expected one of the doctor's own sessions, got {session!r}"
    row = doctor.locator(f'table#schedule tr[data-session="{session}"]')
    capacity = int(row.locator("td.capacity").inner_text())

    # A move without its new date is refused by the server, and nothing is filed.
    for name, value in (("session", session), ("kind", "move"), ("reason", "参加学术会议")):
        fill_field(form, name, value)
    refused = submit(doctor, form)
    assert refused.status == 400, f"expected a move without a date to be refused with 400, got {status_of(refused)}"
    expect_message(doctor, "change.move_missing", "a move needs its new date")
    expect(doctor.locator("table#requests tr[data-change]"), "expected no request filed").to_have_count(0)

    form = doctor.locator("form#change-form")
    for name, value in (("session", session), ("kind", "add_slots"), ("reason", "复诊患者多"), ("extra_slots", "2")):
        fill_field(form, name, value)
    filed = submit(doctor, form)
    assert filed.status == 200 and path_of(doctor.url) == "/staff/schedule", f"expected the schedule page again, got {status_of(filed)} at {doctor.url}"
    expect_message(doctor, "change.requested", "the request is filed")
    request = doctor.locator('table#requests tr[data-change][data-status="pending"][data-kind="add_slots"]')
    expect(request, "expected the pending request in the doctor's list").to_have_count(1)
    change = request.get_attribute("data-change")

    # A nurse has no approvals page.
    nurse = browsing.page()
    sign_in(nurse, urls["neike"], "N101")
    denied = nurse.goto(urls["neike"] + "/staff/approvals")
    assert denied is not None and denied.status == 403, f"expected a nurse to be refused the approvals page with 403, got {status_of(denied)}"

    # The head, on waike: the request arrives by replication.
    head = browsing.page()
    sign_in(head, urls["waike"], "N001")
    link = head.locator('nav#actions a[data-action="schedule.approve"]')
    expect(link, "expected the head's home to link the approvals").to_have_count(1)
    pending = head.locator(f'table#pending tr[data-change="{change}"]')
    for _ in range(60):
        with head.expect_navigation():
            link.click() if path_of(head.url) == "/staff/" else head.reload()
        if pending.count():
            break
        head.wait_for_timeout(500)
    expect(pending, f"expected request {change} on waike's approvals page").to_have_count(1)

    # Refusing needs a reason; without one nothing is decided.
    refused = submit(head, pending.locator("form.refuse"))
    assert refused.status == 400, f"expected a refusal without a reason to be refused with 400, got {status_of(refused)}"
    expect_message(head, "note.empty", "a refusal says why")
    expect(head.locator(f'table#pending tr[data-change="{change}"]'), "expected the request still pending").to_have_count(1)

    approved = submit(head, head.locator(f'table#pending tr[data-change="{change}"] form.approve'))
    assert approved.status == 200, f"expected the approvals page after approving, got {status_of(approved)}"
    expect(head.locator(f'table#decided tr[data-change="{change}"][data-status="approved"]'), "expected the request approved").to_have_count(1)

    # Back on neike, the doctor sees the approval and the two extra slots.
    for _ in range(60):
        doctor.goto(urls["neike"] + "/staff/schedule")
        if doctor.locator(f'table#requests tr[data-change="{change}"][data-status="approved"]').count():
            break
        doctor.wait_for_timeout(500)
    expect(doctor.locator(f'table#requests tr[data-change="{change}"][data-status="approved"]'), "expected the approval on neike").to_have_count(1)
    expect(doctor.locator(f'table#schedule tr[data-session="{session}"] td.capacity'), "expected two more slots").to_have_text(str(capacity + 2))
