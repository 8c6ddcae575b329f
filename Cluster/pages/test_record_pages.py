"""Browser tests of the outpatient record: a walk-in registered on neike is called by their doctor, who
opens the visit from the calling page, writes the note (a refused vital sign keeps what was typed), finds
the diagnosis by pinyin initials with the keyboard, signs, amends with a reason, and reads the versions
with their differences. The actions of a standard visit are counted (clicks and shortcut keys).

Cluster/pages/run keeps today's queues open all day, so a session of 刘洋 (N004) is there at any hour.
"""

from __future__ import annotations

import random
import re

from playwright.sync_api import expect

from test_floor_pages import resident_id
from test_staff_pages import expect_message, fill_field, sign_in, status_of, submit

DOCTOR = "N004"  # 刘洋, the resident of 内科: sessions every day in the demo rota
DOCTOR_SLUG = "neike-liu-yang"


def register_walk_in(browsing, urls, name: str) -> str:
    """The nurse registers a walk-in into one of 刘洋's sessions today; returns the session's key."""
    nurse = browsing.page()
    sign_in(nurse, urls["neike"], "N101")
    nurse.goto(urls["neike"] + "/staff/floor?dept=neike")
    sessions = nurse.locator(f'section.session[data-session^="{DOCTOR_SLUG}/"]:has(form.walk-in)')
    expect(sessions.first, "expected a session of 刘洋 today with walk-in slots").to_be_visible()
    schedule = sessions.first.get_attribute("data-session")
    form = nurse.locator(f'section.session[data-session="{schedule}"] form.walk-in')
    rid = resident_id(f"19{random.randint(60, 99)}0{random.randint(1, 9)}1{random.randint(0, 9)}", random.randint(100, 899))
    for field, value in (("resident_id", rid), ("name", name), ("mobile", "13803115566"), ("payment", "insurance")):
        fill_field(form, field, value)
    registered = submit(nurse, form)
    assert registered.status == 200, f"expected the walk-in registered, got {status_of(registered)}"
    return schedule


def test_a_follow_up_visit_from_the_queue_to_a_signed_and_amended_note(urls, browsing):
    schedule = register_walk_in(browsing, urls, "郑晓雨")
    doctor = browsing.page()
    sign_in(doctor, urls["neike"], DOCTOR)

    # A personal template with placeholders, from the template library.
    template_name = f"上感复诊{random.randint(1000, 9999)}"
    doctor.goto(urls["neike"] + "/staff/templates")
    add = doctor.locator("form#template-add")
    fill_field(add, "name", template_name)
    doctor.locator('form#template-add textarea[name="chief_complaint"]').fill("【姓名】，【年龄】，咽痛、咳嗽 3 天")
    doctor.locator('form#template-add textarea[name="examination"]').fill("咽部充血，双肺呼吸音清。")
    added = submit(doctor, add)
    assert added.status == 200, f"expected the template library after adding, got {status_of(added)}"
    expect(doctor.locator("section.template", has_text=template_name), "expected the new template listed").to_have_count(1)
    doctor.goto(urls["neike"] + "/staff/queue")
    section = doctor.locator(f'section.session[data-session="{schedule}"]')
    # Call until the walk-in is the one called (earlier tests may have left others waiting).
    for _ in range(30):
        if "郑晓雨" in (section.locator(".called-name").inner_text() if section.locator(".called-name").count() else ""):
            break
        called = submit(doctor, section.locator("form.queue-next"))
        assert called.status == 200, f"expected the calling page after calling, got {status_of(called)}"
    expect(section.locator(".called-name"), "expected the walk-in called").to_have_text("郑晓雨")

    actions = 0
    opened = submit(doctor, section.locator("form.visit-open"))
    actions += 1
    assert opened.status == 200 and "/staff/visits/" in doctor.url, f"expected the visit page, got {status_of(opened)} at {doctor.url}"
    visit = doctor.locator("#visit-patient").get_attribute("data-visit")
    expect(doctor.locator("#visit-patient-name"), "expected the patient's name filled in").to_contain_text("郑晓雨")
    expect(doctor.locator("#visit-age"), "expected the age from the resident ID's birth date").to_contain_text("岁")
    expect(doctor.locator("#visit-status"), "expected a new note").to_contain_text("尚未保存")

    # The template: choose it and apply it (two actions); its placeholders take the patient's details.
    doctor.locator("#template-choice").select_option(label=f"{template_name}（个人）")
    actions += 1
    applied = submit(doctor, doctor.locator("form#visit-note"), "#template-apply")
    actions += 1
    assert applied.status == 200, f"expected the template applied, got {status_of(applied)}"
    expect_message(doctor, "template.applied", "applying a template")
    expect(doctor.locator("#note-chief_complaint"), "expected the name filled in").to_have_value(re.compile("^郑晓雨，\\d+岁，咽痛"))
    expect(doctor.locator("#note-examination"), "expected the examination from the template").to_have_value("咽部充血，双肺呼吸音清。")

    # Typing is not counted; the markup must come back as text, never as a tag.
    doctor.locator("#note-chief_complaint").fill("咳嗽、咽痛 3 天 <script>window.injected=1</script>")
    doctor.locator("#note-present_illness").fill("3 天前受凉后出现咽痛、咳嗽，无发热。")
    doctor.locator("#vital-temperature").fill("60")
    doctor.locator("#note-plan").fill("多饮水，休息；如发热随诊。")

    # The diagnosis by pinyin initials: focus the search (a click), type, Enter takes the first result.
    doctor.locator("#diagnosis-search").click()
    actions += 1
    doctor.locator("#diagnosis-search").type("shxdgr")
    expect(doctor.locator("#diagnosis-results li").first, "expected 上呼吸道感染 among the results").to_contain_text("上呼吸道感染")
    doctor.locator("#diagnosis-search").press("Enter")
    actions += 1
    expect(doctor.locator("#note-diagnoses"), "expected the code added to the diagnoses").to_have_value("J06.900")

    refused = submit(doctor, doctor.locator("form#visit-note"), "#visit-sign")
    actions += 1
    assert refused.status == 400, f"expected a temperature of 60 °C to be refused with 400, got {status_of(refused)}"
    expect_message(doctor, "vitals.out_of_range", "a temperature of 60 °C")
    expect(doctor.locator("#note-present_illness"), "expected what was typed kept after the refusal").to_have_value("3 天前受凉后出现咽痛、咳嗽，无发热。")
    assert doctor.evaluate("window.injected") is None, "expected the markup in the complaint never to run"

    doctor.locator("#vital-temperature").fill("36.8")
    signed = submit(doctor, doctor.locator("form#visit-note"), "#visit-sign")
    actions += 1
    assert signed.status == 200, f"expected the signed note, got {status_of(signed)}"
    expect(doctor.locator("#visit-kind"), "expected the note signed").to_have_text("已签名")
    expect(doctor.locator("#note-chief_complaint"), "expected the markup stored as text").to_have_value(
        "咳嗽、咽痛 3 天 <script>window.injected=1</script>"
    )
    # A standard visit: open from the queue, a template, one diagnosis, sign (one refused try included); goal ≤ 10.
    print(f"actions for the visit: {actions}")
    assert actions <= 10, f"expected at most 10 actions for a standard visit, counted {actions}"

    # After signing, a change is an amendment and needs a reason.
    doctor.locator("#note-plan").fill("多饮水，休息；3 天后复诊。")
    refused = submit(doctor, doctor.locator("form#visit-note"), "#visit-amend")
    assert refused.status == 400, f"expected an amendment without a reason refused with 400, got {status_of(refused)}"
    expect_message(doctor, "record.reason", "an amendment without a reason")
    doctor.locator("#note-reason").fill("补充复诊时间")
    amended = submit(doctor, doctor.locator("form#visit-note"), "#visit-amend")
    assert amended.status == 200, f"expected the amendment saved, got {status_of(amended)}"
    expect(doctor.locator("#visit-kind"), "expected the amendment").to_have_text("修改（已签名）")

    # The versions, and the difference between the signed one and the amendment.
    versions = doctor.locator("#visit-versions")
    with doctor.expect_navigation():
        versions.click()
    rows = doctor.locator("table#versions tbody tr")
    expect(rows, "expected two versions: signed, amended").to_have_count(2)
    expect(rows.nth(1).locator("td").last, "expected the amendment's reason").to_have_text("补充复诊时间")
    rows.nth(0).locator('input[name="a"]').check()
    rows.nth(1).locator('input[name="b"]').check()
    compared = submit(doctor, doctor.locator("form#versions-compare"))
    assert compared.status == 200, f"expected the differences, got {status_of(compared)}"
    expect(doctor.locator(".diff .removed"), "expected the old plan struck").to_contain_text("如发热随诊")
    expect(doctor.locator(".diff .added"), "expected the new plan").to_contain_text("3 天后复诊")

    # The department's note search finds the visit by a two-character word, highlighted (the index
    # follows the replica within a round: reload until it has it).
    search = urls["neike"] + "/staff/records/search?q=" + "咽痛" + "&diagnosis=J06.900"
    rows = doctor.locator(f'table#search-results tr[data-visit="{visit}"]')
    for _ in range(60):
        response = doctor.goto(search)
        assert response is not None and response.status == 200, f"expected the search page, got {status_of(response)}"
        if rows.count():
            break
        doctor.wait_for_timeout(500)
    expect(rows, "expected the signed visit found by 咽痛 and its diagnosis").to_have_count(1)
    expect(rows.locator("mark").first, "expected the word highlighted").to_have_text("咽痛")
    expect(rows, "expected the patient's name").to_contain_text("郑晓雨")

    # From the patient's page: the visit in the timeline, the printable record, the FHIR export.
    with doctor.expect_navigation():
        rows.locator("a", has_text="郑晓雨").click()
    expect(doctor.locator(f'table#visits tr[data-visit="{visit}"]'), "expected the visit in the patient's timeline").to_contain_text("急性上呼吸道感染")
    export_url = doctor.locator("#patient-export").get_attribute("href")
    with doctor.expect_navigation():
        doctor.locator("#patient-print").click()
    expect(doctor.locator("#print-record"), "expected the printable record with the note").to_contain_text("咽部充血")
    exported = doctor.request.get(urls["neike"] + export_url)
    assert exported.status == 200, f"expected the FHIR export, got {exported.status}"
    bundle = exported.json()
    kinds = [e["resource"]["resourceType"] for e in bundle["entry"]]
    assert bundle["resourceType"] == "Bundle" and kinds[0] == "Patient" and "Composition" in kinds, f"expected a Patient/$everything bundle, got {kinds}"
    codes = [c["code"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Condition" for c in e["resource"]["code"]["coding"]]
    assert "J06.900" in codes, f"expected the diagnosis as a Condition, got {codes}"


def test_a_visit_is_refused_for_another_doctor_and_codes_outside_the_catalogue(urls, browsing):
    other = browsing.page()
    sign_in(other, urls["neike"], "N003")  # another 内科 doctor, not a department head
    response = other.goto(urls["neike"] + "/staff/diagnoses?q=jxzqgy")
    assert response is not None and response.status == 200, f"expected the diagnosis search page, got {status_of(response)}"
    expect(other.locator("table#diagnosis-table tbody tr").first, "expected 急性支气管炎 by its initials").to_contain_text("急性支气管炎")
    response = other.goto(urls["neike"] + "/staff/visits/h000000000000000000000000")
    assert response is not None and response.status == 404, f"expected an unknown visit to be 404, got {status_of(response)}"
    expect_message(other, "record.no_visit", "an unknown visit")
    nurse = browsing.page()
    sign_in(nurse, urls["neike"], "N101")
    response = nurse.goto(urls["neike"] + "/staff/diagnoses?q=J06")
    assert response is not None and response.status == 403, f"expected a nurse refused the doctors' diagnosis search, got {status_of(response)}"
