"""Browser tests of prescribing and the pharmacy: a doctor prescribes from a visit (a narcotic without the
right, an unknown drug, a tier and a supply length are refused, a class allergy blocks, a duplicate-therapy
warning needs a reason), the prescription
appears live on the pharmacy queue of another node, the pharmacist reviews and dispenses it, stock goes
down, and a second dispense of the same prescription through a third node is refused. Stock receipts
refuse an expired batch.

Drug codes are read from the shipped catalogue by their WHO ATC code, not written here.
"""

from __future__ import annotations

import datetime
import pathlib
import random

from playwright.sync_api import expect

from test_record_pages import DOCTOR, call_until, register_walk_in, reload_until
from test_staff_pages import expect_message, fill_field, sign_in, status_of, submit

PHARMACIST = "N301"  # 钱芳, 内科's pharmacist (pharmacists reach every pharmacy)
CATALOGUE = pathlib.Path(__file__).resolve().parents[2] / "Sources/Services/Prescribing/drug-catalogue.tsv"


def drug_code(atc: str, form: str | None = None) -> str:
    """The first catalogue code of an oral drug with this ATC code (and form, if given)."""
    for line in CATALOGUE.read_text(encoding="utf-8").splitlines():
        if line.startswith("#") or not line.strip():
            continue
        f = line.split("\t")
        if f[19] == atc and f[11] == "oral" and (form is None or f[5] == form):
            return f[0]
    raise AssertionError(f"the catalogue has no oral drug {atc} {form or ''}")


def fill_line(page, row: int, drug: str, dose: str, frequency: str, days: str) -> None:
    page.locator(f"#rx-drug-{row}").fill(drug)
    page.locator(f"#rx-dose-{row}").fill(dose)
    page.locator(f"#rx-freq-{row}").select_option(frequency)
    page.locator(f"#rx-days-{row}").fill(days)


def available(page, base: str, drug: str) -> int:
    page.goto(base + "/staff/pharmacy/stock?pharmacy=west")
    cell = page.locator(f'#stock-table tr[data-drug="{drug}"] td.available')
    expect(cell, f"expected {drug} on the stock page").to_have_count(1)
    return int(cell.inner_text().split()[0])


def test_a_prescription_from_the_visit_to_the_pharmacy_window(urls, browsing):
    amoxicillin, levofloxacin = drug_code("J01CA04"), drug_code("J01MA12")
    omeprazole, pantoprazole = drug_code("A02BC01"), drug_code("A02BC02")
    name = f"孙{random.choice('明华丽静雪')}{random.choice('宁安平远')}"
    schedule = register_walk_in(browsing, urls, name)

    # The pharmacist watches the queue on another node; it must update without a reload.
    pharmacist = browsing.page()
    sign_in(pharmacist, urls["waike"], PHARMACIST)
    pharmacist.goto(urls["waike"] + "/staff/pharmacy?pharmacy=west")
    expect(pharmacist.locator("#pharmacy-payment"), "expected the payment state shown as not yet known").to_be_visible()
    stock = browsing.page()
    sign_in(stock, urls["neike"], PHARMACIST)
    before = available(stock, urls["neike"], omeprazole)

    doctor = browsing.page()
    sign_in(doctor, urls["neike"], DOCTOR)
    section = call_until(doctor, urls, schedule, name)
    opened = submit(doctor, section.locator("form.visit-open"))
    assert opened.status == 200 and "/staff/visits/" in doctor.url, f"expected the visit page, got {status_of(opened)}"
    # A coded penicillin allergy, saved with the note.
    doctor.locator("#note-chief_complaint").fill("上腹痛、反酸 2 周")
    doctor.locator("#allergy-codes").select_option(value="J01C")
    saved = submit(doctor, doctor.locator("form#visit-note"), "#visit-save")
    assert saved.status == 200, f"expected the note saved, got {status_of(saved)}"

    opened = doctor.locator("#visit-prescribe")
    with doctor.expect_navigation():
        opened.click()
    expect(doctor.locator("#rx-allergies"), "expected the coded allergy on the prescribing page").to_contain_text("青霉素")

    # A narcotic by a doctor without the right, and a drug not in the catalogue: refused, said why.
    fill_line(doctor, 0, drug_code("N02AA01"), "10", "q6h", "1")
    narcotic = submit(doctor, doctor.locator("form#rx-form"), "#rx-check")
    assert narcotic.status == 403, f"expected a narcotic refused to a doctor without the right, got {status_of(narcotic)}"
    expect_message(doctor, "rx.controlled_right", "a narcotic without the right")
    fill_line(doctor, 0, "不在目录里的药", "1", "qd", "1")
    unknown = submit(doctor, doctor.locator("form#rx-form"), "#rx-check")
    assert unknown.status == 400, f"expected an unknown drug refused, got {status_of(unknown)}"
    expect_message(doctor, "rx.unknown_drug", "a drug not in the catalogue")

    # Amoxicillin to a patient allergic to penicillins: checked, the block is shown, signing is refused.
    fill_line(doctor, 0, amoxicillin, "500", "tid", "3")
    checked = submit(doctor, doctor.locator("form#rx-form"), "#rx-check")
    assert checked.status == 200, f"expected the check, got {status_of(checked)}"
    expect(doctor.locator('.rx-alert[data-kind="allergy"][data-level="block"]'), "expected the class allergy to block").to_have_count(1)
    refused = submit(doctor, doctor.locator("form#rx-form"), "#rx-sign")
    assert refused.status == 409, f"expected signing refused, got {status_of(refused)}"
    expect_message(doctor, "rx.blocked", "a blocked prescription")
    expect(doctor.locator("#rx-drug-0"), "expected what was typed kept").to_have_value(amoxicillin)

    # A restricted-tier antibiotic by a resident, and 8 days of an ordinary prescription: refused.
    fill_line(doctor, 0, levofloxacin, "500", "qd", "3")
    tier = submit(doctor, doctor.locator("form#rx-form"), "#rx-check")
    assert tier.status == 403, f"expected the tier refused, got {status_of(tier)}"
    expect_message(doctor, "rx.antibiotic_tier", "a resident prescribing a restricted antibiotic")
    fill_line(doctor, 0, omeprazole, "20", "qd", "8")
    long = submit(doctor, doctor.locator("form#rx-form"), "#rx-check")
    assert long.status == 400, f"expected 8 days refused, got {status_of(long)}"
    expect_message(doctor, "rx.days_limit", "8 days on an ordinary prescription")

    # Two proton-pump inhibitors: a duplicate-therapy warning that needs a reason.
    fill_line(doctor, 0, omeprazole, "20", "qd", "7")
    fill_line(doctor, 1, pantoprazole, "40", "qd", "7")
    checked = submit(doctor, doctor.locator("form#rx-form"), "#rx-check")
    assert checked.status == 200, f"expected the check, got {status_of(checked)}"
    # Saved as a combination (协定处方) and applied again: the rows come back from it.
    set_name = f"抑酸{random.randint(1000, 9999)}"
    doctor.locator("#rx-set-save summary").click()
    doctor.locator("#rx-set-name").fill(set_name)
    saved_set = submit(doctor, doctor.locator("form#rx-form"), "#rx-set-save-submit")
    assert saved_set.status == 200, f"expected the combination saved, got {status_of(saved_set)}"
    expect_message(doctor, "rx.set_saved", "saving a combination")
    fill_line(doctor, 0, "", "", "qd", "")
    fill_line(doctor, 1, "", "", "qd", "")
    doctor.locator("#rx-set-choice").select_option(label=set_name)
    applied = submit(doctor, doctor.locator("form#rx-form"), "#rx-set-apply")
    assert applied.status == 200, f"expected the combination applied, got {status_of(applied)}"
    expect(doctor.locator("#rx-drug-1"), "expected the combination's second drug back").to_have_value(pantoprazole)
    checked = submit(doctor, doctor.locator("form#rx-form"), "#rx-check")
    assert checked.status == 200, f"expected the check, got {status_of(checked)}"
    warning = doctor.locator('.rx-alert[data-kind="duplicate"][data-level="warning"]')
    expect(warning, "expected a duplicate-therapy warning").to_have_count(1)
    expect(doctor.locator(f'#rx-summary tr[data-drug="{omeprazole}"] .rx-stock'), "expected the stock hint").to_contain_text("库存")
    unreasoned = submit(doctor, doctor.locator("form#rx-form"), "#rx-sign")
    assert unreasoned.status == 409, f"expected signing refused without a reason, got {status_of(unreasoned)}"
    expect_message(doctor, "rx.override_needed", "a warning without a reason")
    doctor.locator(".rx-alert .rx-override").first.fill("夜间反酸明显，短期联用后复诊")
    signed = submit(doctor, doctor.locator("form#rx-form"), "#rx-sign")
    assert signed.status == 200 and "/staff/prescriptions/" in doctor.url, f"expected the signed sheet, got {status_of(signed)}"
    expect_message(doctor, "rx.signed", "signing")
    rx = doctor.locator("#rx-sheet").get_attribute("data-rx")
    expect(doctor.locator("#rx-sheet-alerts .override"), "expected the reason kept on the prescription").to_have_text("夜间反酸明显，短期联用后复诊")

    # The other node's queue shows it without a reload.
    expect(pharmacist.locator(f'#pharmacy-waiting tr[data-rx="{rx}"]'), "expected the prescription live on waike's queue").to_have_count(1, timeout=60_000)

    # A third window, on erke, opens the same prescription while waike reviews and dispenses it.
    other = browsing.page()
    sign_in(other, urls["erke"], PHARMACIST)
    with pharmacist.expect_navigation():
        pharmacist.locator(f'#pharmacy-waiting tr[data-rx="{rx}"] a.rx-open').click()
    approved = submit(pharmacist, pharmacist.locator("form#rx-review"), "#rx-approve")
    assert approved.status == 200, f"expected the queue after approving, got {status_of(approved)}"
    pharmacist.goto(urls["waike"] + f"/staff/prescriptions/{rx}")
    for _ in range(60):
        other.goto(urls["erke"] + f"/staff/prescriptions/{rx}")
        if other.locator("form#rx-dispense").count():
            break
        other.wait_for_timeout(1000)
    expect(other.locator("form#rx-dispense"), "expected erke to show the dispensing form once the review reached it").to_have_count(1)
    dispensed = submit(pharmacist, pharmacist.locator("form#rx-dispense"), "#rx-dispense-submit")
    assert dispensed.status == 200, f"expected the sheet after dispensing, got {status_of(dispensed)}"
    expect_message(pharmacist, "rx.dispensed", "dispensing")
    expect(pharmacist.locator(f'#rx-dispensed tr[data-drug="{omeprazole}"]'), "expected what was given listed").to_have_count(1)
    twice = submit(other, other.locator("form#rx-dispense"), "#rx-dispense-submit")
    assert twice.status == 409, f"expected the second dispense refused, got {status_of(twice)}"
    expect_message(other, "rx.already_dispensed", "a second dispense through another node")

    after = available(stock, urls["neike"], omeprazole)
    assert after < before, f"expected omeprazole's stock to go down from {before}, got {after}"


def test_stock_receipts_refuse_an_expired_batch_and_bad_input(urls, browsing):
    page = browsing.page()
    sign_in(page, urls["erke"], "E301")
    page.goto(urls["erke"] + "/staff/pharmacy/stock?pharmacy=west")
    form = page.locator("form#stock-receive")
    drug = drug_code("M01AE01")
    yesterday = (datetime.date.today() - datetime.timedelta(days=2)).isoformat()
    for field, value in (("drug", drug), ("batch", "OLD-1"), ("expiry", yesterday), ("quantity", "5")):
        fill_field(form, field, value)
    expired = submit(page, form)
    assert expired.status == 409, f"expected an expired batch refused, got {status_of(expired)}"
    expect_message(page, "stock.expired", "receiving an expired batch")
    batch = f"T{random.randint(100000, 999999)}"
    next_year = (datetime.date.today() + datetime.timedelta(days=365)).isoformat()
    for field, value in (("drug", drug), ("batch", "批号/1"), ("expiry", next_year), ("quantity", "5")):
        fill_field(page.locator("form#stock-receive"), field, value)
    bad = submit(page, page.locator("form#stock-receive"))
    assert bad.status == 400, f"expected a bad batch number refused, got {status_of(bad)}"
    expect_message(page, "stock.batch_format", "a batch number with a slash")
    for field, value in (("drug", drug), ("batch", batch), ("expiry", next_year), ("quantity", "5")):
        fill_field(page.locator("form#stock-receive"), field, value)
    received = submit(page, page.locator("form#stock-receive"))
    assert received.status == 200, f"expected the receipt, got {status_of(received)}"
    expect_message(page, "stock.received", "a good receipt")
    expect(page.locator("#message"), "expected the receipt's batch named").to_contain_text(batch)
    # erke is not the holder: it lists the batch once the holder's record reaches it.
    listed = page.locator(f'#stock-table tr[data-drug="{drug}"] .batch[data-batch="{batch}"]')
    reload_until(page, urls["erke"] + "/staff/pharmacy/stock?pharmacy=west", listed)
    expect(listed, "expected the new batch listed").to_have_count(1)


def test_the_administrator_grants_a_prescribing_right(urls, browsing):
    page = browsing.page()
    sign_in(page, urls["waike"], "ADM01")
    page.goto(urls["waike"] + "/staff/accounts")
    row = page.locator('tr[data-staff="W003"]')
    box = row.locator('form.rights input[value="antibiotic_special"]')
    expect(box, "expected the rights form on a doctor's account").to_have_count(1)
    wanted = not box.is_checked()
    box.set_checked(wanted)
    saved = submit(page, row.locator("form.rights"))
    assert saved.status == 200, f"expected the accounts page after saving rights, got {status_of(saved)}"
    expect(page.locator('tr[data-staff="W003"] form.rights input[value="antibiotic_special"]'), "expected the right saved").to_be_checked(checked=wanted)
    expect(page.locator('tr[data-staff="W101"] form.rights'), "expected no rights form on a nurse's account").to_have_count(0)
