"""Browser tests of the outpatient record: a walk-in registered on neike is called by their doctor, who
opens the visit from the calling page, writes the note (a refused vital sign keeps what was typed), finds
the diagnosis by pinyin initials with the keyboard, signs, amends with a reason, and reads the versions
with their differences. The actions of a standard visit are counted (clicks and shortcut keys).

Cluster/pages/run keeps today's queues open all day, so a session of 刘洋 (N004) is there at any hour.
"""

from __future__ import annotations

import os
import pathlib
import random
import re

from playwright.sync_api import expect

from test_floor_pages import resident_id
from test_staff_pages import expect_message, fill_field, message_code, sign_in, status_of, submit

DOCTOR = "N004"  # 刘洋, the resident of 内科: sessions every day in the demo rota
DOCTOR_SLUG = "neike-liu-yang"


def register_walk_in(browsing, urls, name: str) -> str:
    """The nurse registers a walk-in into one of 刘洋's sessions today (the first whose walk-in places
    are not all taken by earlier tests); returns the session's key."""
    nurse = browsing.page()
    sign_in(nurse, urls["neike"], "N101")
    nurse.goto(urls["neike"] + "/staff/floor?dept=neike")
    sessions = nurse.locator(f'section.session[data-session^="{DOCTOR_SLUG}/"]:has(form.walk-in)')
    expect(sessions.first, "expected a session of 刘洋 today with walk-in slots").to_be_visible()
    keys = [sessions.nth(i).get_attribute("data-session") for i in range(sessions.count())]
    rid = resident_id(f"19{random.randint(60, 99)}0{random.randint(1, 9)}1{random.randint(0, 9)}", random.randint(100, 899))
    for schedule in keys:
        nurse.goto(urls["neike"] + "/staff/floor?dept=neike")
        form = nurse.locator(f'section.session[data-session="{schedule}"] form.walk-in')
        for field, value in (("resident_id", rid), ("name", name), ("mobile", "13803115566"), ("payment", "insurance")):
            fill_field(form, field, value)
        registered = submit(nurse, form)
        if registered.status == 409 and message_code(nurse) == "floor.reserve_full":
            continue
        assert registered.status == 200, f"expected the walk-in registered, got {status_of(registered)}"
        return schedule
    raise AssertionError(f"every session of 刘洋 today has its walk-in places taken: {keys}")


def reload_until(page, url: str, locator, tries: int = 90) -> None:
    """Reloads `url` until `locator` matches (a replica, the search index or the lab inbox catching up):
    a generous deadline, never an asserted duration. The caller's expect() then says what was missing."""
    for _ in range(tries):
        response = page.goto(url)
        assert response is not None and response.status == 200, f"expected {url} to load, got {status_of(response)}"
        if locator.count():
            return
        page.wait_for_timeout(1000)


def call_until(doctor, urls, schedule: str, name: str):
    """Calls the doctor's queue until `name` is the one called (earlier tests may have left others waiting)."""
    doctor.goto(urls["neike"] + "/staff/queue")
    section = doctor.locator(f'section.session[data-session="{schedule}"]')
    for _ in range(30):
        if name in (section.locator(".called-name").inner_text() if section.locator(".called-name").count() else ""):
            break
        called = submit(doctor, section.locator("form.queue-next"))
        assert called.status == 200, f"expected the calling page after calling, got {status_of(called)}"
    expect(section.locator(".called-name"), f"expected {name} called").to_have_text(name)
    return section


def order(doctor, item: str) -> str:
    """Orders an item from the visit page (choose it, press 开单); returns the new order's id."""
    before = set(doctor.locator("#visit-order-list .order").evaluate_all("els => els.map(e => e.dataset.order)"))
    doctor.locator("#order-item").select_option(value=item)
    placed = submit(doctor, doctor.locator("form#visit-note"), "#order-place")
    assert placed.status == 200, f"expected the order placed, got {status_of(placed)}"
    expect_message(doctor, "order.placed", f"ordering {item}")
    orders = doctor.locator(f'#visit-order-list .order[data-item="{item}"]')
    ids = [i for i in orders.evaluate_all("els => els.map(e => e.dataset.order)") if i not in before]
    assert len(ids) == 1, f"expected one new order of {item}, got {ids}"
    return ids[0]


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
    section = call_until(doctor, urls, schedule, "郑晓雨")

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

    # One lab order: choose the item, press 开单 (two actions); what was typed stays on the page.
    order(doctor, "L001")
    actions += 2
    expect(doctor.locator("#note-present_illness"), "expected the typed note kept after ordering").to_have_value("3 天前受凉后出现咽痛、咳嗽，无发热。")
    expect(doctor.locator("#note-diagnoses"), "expected the diagnosis kept after ordering").to_have_value("J06.900")

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
    # A standard visit: open from the queue, a template, one diagnosis, one lab order, sign (one refused try included); goal ≤ 10.
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
    reload_until(doctor, search, rows)
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


def test_lab_results_from_the_worklist_and_from_an_hl7_file_reach_the_visit(urls, browsing):
    schedule = register_walk_in(browsing, urls, "韩梅")
    doctor = browsing.page()
    sign_in(doctor, urls["neike"], DOCTOR)
    # A saved phrase, kept on the template library page.
    phrase = f"建议 1 周后复查血常规（{random.randint(1000, 9999)}）"
    doctor.goto(urls["neike"] + "/staff/templates")
    fill_field(doctor.locator("form#phrase-add"), "text", phrase)
    added = submit(doctor, doctor.locator("form#phrase-add"))
    assert added.status == 200, f"expected the phrase saved, got {status_of(added)}"
    expect(doctor.locator("#phrases .phrase-text", has_text=phrase), "expected the phrase listed").to_have_count(1)
    section = call_until(doctor, urls, schedule, "韩梅")
    opened = submit(doctor, section.locator("form.visit-open"))
    assert opened.status == 200 and "/staff/visits/" in doctor.url, f"expected the visit page, got {status_of(opened)} at {doctor.url}"
    visit_url = doctor.url.split("?")[0]
    patient = doctor.locator("#visit-patient").get_attribute("data-patient")

    # The phrase by its shortcut, at the cursor in the plan.
    n = doctor.locator("#phrase-bar button.phrase", has_text=phrase).locator("kbd").inner_text()
    doctor.locator("#note-plan").fill("复查：")
    doctor.locator("#note-plan").press("End")
    doctor.keyboard.press(f"Alt+Digit{n}")
    expect(doctor.locator("#note-plan"), "expected the phrase put in at the cursor by Alt+number").to_have_value("复查：" + phrase)

    # Coded allergies: both "no known allergies" and a drug class is refused; the class alone is kept and shown.
    doctor.locator("#note-chief_complaint").fill("体检发现白细胞偏高")
    doctor.locator("#allergy-codes").select_option(["J01C", "F05"])
    doctor.locator("#no-known-allergies").check()
    conflict = submit(doctor, doctor.locator("form#visit-note"), "#visit-save")
    assert conflict.status == 400, f"expected no-known-allergies with coded allergies refused with 400, got {status_of(conflict)}"
    expect_message(doctor, "note.allergy_conflict", "no known allergies and a coded allergy")
    doctor.locator("#no-known-allergies").uncheck()
    saved = submit(doctor, doctor.locator("form#visit-note"), "#visit-save")
    assert saved.status == 200, f"expected the note saved with its coded allergies, got {status_of(saved)}"
    expect(doctor.locator("#visit-allergy-codes"), "expected the coded allergies in the header").to_contain_text("青霉素类")
    expect(doctor.locator("#visit-allergy-codes"), "expected the food allergy in the header").to_contain_text("花生")

    cbc = order(doctor, "L001")
    crp = order(doctor, "L005")
    doctor.locator("#order-item").select_option(value="L001")
    again = submit(doctor, doctor.locator("form#visit-note"), "#order-place")
    assert again.status == 409, f"expected the same pending item refused with 409, got {status_of(again)}"
    expect_message(doctor, "order.already", "ordering a pending item twice")

    # The lab technician (signed in on another node) enters the blood count from the worklist.
    lab = browsing.page()
    sign_in(lab, urls["waike"], "LAB01")
    row = lab.locator(f'table#lab-pending tr[data-order="{cbc}"]')
    reload_until(lab, urls["waike"] + "/staff/lab", row)
    expect(row, "expected the order on the lab's worklist on waike").to_contain_text("韩梅")
    with lab.expect_navigation():
        row.locator("a.lab-enter").click()
    wbc = lab.locator('form#lab-results tr[data-code="WBC"]')
    expect(wbc.locator('input[name^="range_"]'), "expected the adult range of WS/T 405-2012 filled in").to_have_value("3.5-9.5")
    wbc.locator('input[name^="value_"]').fill("13.4")
    lab.locator('form#lab-results tr[data-code="HGB"] input[name^="value_"]').fill("9" * 2100)
    refused = submit(lab, lab.locator("form#lab-results"), "#lab-submit")
    assert refused.status == 400, f"expected a value of 2,100 characters refused with 400, got {status_of(refused)}"
    expect_message(lab, "result.too_long", "a value too long")
    expect(lab.locator('form#lab-results tr[data-code="WBC"] input[name^="value_"]'), "expected the typed values kept").to_have_value("13.4")
    lab.locator('form#lab-results tr[data-code="HGB"] input[name^="value_"]').fill("141")
    lab.locator("#lab-conclusion").fill("白细胞升高 <b>请结合临床</b>")
    released = submit(lab, lab.locator("form#lab-results"), "#lab-submit")
    assert released.status == 200, f"expected the report released, got {status_of(released)}"
    expect_message(lab, "lab.reported", "releasing the report")

    # The lab system drops an HL7 v2 file for the CRP order in neike's inbox; a broken file beside it.
    inbox = pathlib.Path(os.environ["CLINICMESH_PAGES_LAB_INBOX"])
    inbox.mkdir(parents=True, exist_ok=True)
    control = f"PAGES{random.randint(100000, 999999)}"
    message = "\r".join([
        f"MSH|^~\\&|LIS|SJZ-LAB|CLINICMESH|NEIKE|20270301093000||ORU^R01^ORU_R01|{control}|P|2.5.1|||||CHN|UNICODE UTF-8",
        f"PID|1||{patient}^^^CLINICMESH^PI||韩梅",
        f"OBR|1|{crp}|LIS-{control}|L005^C反应蛋白^L",
        "OBX|1|NM|CRP^C反应蛋白^L||36.5|mg/L|<10|H|||F",
    ]) + "\r"
    (inbox / f"{control}.tmp").write_text(message, encoding="utf-8")
    (inbox / f"{control}.tmp").rename(inbox / f"{control}.hl7")
    broken = f"broken-{control}.hl7"
    (inbox / broken).write_text("PID|1||nobody\r", encoding="utf-8")

    # The doctor sees both results on the visit page, abnormal ones flagged (reload until the import ran).
    crp_row = doctor.locator(f'#visit-order-list .order[data-order="{crp}"] tr[data-code="CRP"]')
    reload_until(doctor, visit_url, crp_row)
    expect(crp_row, "expected the CRP result imported from the HL7 file, flagged high").to_have_attribute("data-flag", "H")
    expect(doctor.locator(f'#visit-order-list .order[data-order="{cbc}"] tr[data-code="WBC"]'), "expected the WBC flagged high").to_have_attribute("data-flag", "H")
    expect(doctor.locator(f'#visit-order-list .order[data-order="{cbc}"] .conclusion'), "expected the conclusion as text").to_contain_text("<b>请结合临床</b>")
    expect(doctor.locator(f'#visit-order-list .order[data-order="{cbc}"]'), "expected the order reported").to_have_attribute("data-status", "reported")

    # The patient's page lists the results; the broken file is on neike's worklist with its reason.
    doctor.goto(urls["neike"] + f"/staff/patients/{patient}")
    expect(doctor.locator(f'table#results tr[data-order="{crp}"]'), "expected the CRP result in the patient's results").to_have_class("abnormal")
    lab_neike = browsing.page()
    sign_in(lab_neike, urls["neike"], "LAB01")
    quarantined = lab_neike.locator(f'table#lab-quarantine tr[data-file="{broken}"]')
    reload_until(lab_neike, urls["neike"] + "/staff/lab", quarantined)
    expect(quarantined.locator(".reason"), "expected the broken file quarantined with its reason").to_contain_text("MSH")
    assert not (inbox / f"{control}.hl7").exists() and (inbox / "done" / f"{control}.hl7").exists(), "expected the imported file moved to done/"
