"""The engine as a whole: stable case ids, corrections, policy, pathway."""

from __future__ import annotations

import pytest

from audit import policy
from audit.policy import PolicyError
from audit.rules import catalogue
from tests.rulekit import World, evaluate, of

INDEX = "2025-01-01"


@pytest.mark.unit
def test_every_rule_of_the_spec_is_in_the_catalogue():
    _, rules = catalogue()
    assert [r.id for r in rules] == [
        "BZD-PTSD", "SSRI-SHORT-TRIAL", "SSRI-LOW-DOSE", "SSRI-EARLY-STOP", "DOSE-ABOVE-MAX",
        "VEN-SEQUENCE", "PRZ-DOSE", "PRZ-NIGHTMARE-GAP", "PSY-INCOMPLETE", "PSY-DELAYED",
        "TRD-PREMATURE", "MDMA-OFF-TRIAL", "MDMA-PREMATURE",
    ]  # fmt: skip
    assert all(r.guideline and r.title for r in rules)


@pytest.mark.db
def test_same_facts_give_the_same_case_ids(conn, tmp_path):
    w = World()
    w.patient("p", ptsd_on=INDEX).fill("alprazolam", "2025-02-01", 30)
    first = w.run(conn, tmp_path)
    second = evaluate(conn)
    assert [c["case_id"] for c in first] == [c["case_id"] for c in second]
    assert len(first) == 1


@pytest.mark.db
def test_a_correction_resolves_a_case(conn, tmp_path):
    w = World(history_from="2015-01-01")
    p = w.patient("p", ptsd_on=INDEX)
    rx = p.fill("sertraline", "2025-02-01", 30, 50)
    [case] = of(w.run(conn, tmp_path), "SSRI-SHORT-TRIAL")["p"]
    # The pharmacy corrects the fill: it was a 90-day supply.
    p.fill("sertraline", "2025-02-01", 90, 50, rx_id=rx)
    assert of(w.run(conn, tmp_path), "SSRI-SHORT-TRIAL") == {}
    status = conn.execute(
        "select status from audit.cases where case_id = %s", (case["case_id"],)
    ).fetchone()[0]
    assert status == "resolved"
    reason = conn.execute(
        "select resolved_reason from audit.cases where case_id = %s", (case["case_id"],)
    ).fetchone()[0]
    assert reason == "data corrected"


@pytest.mark.db
def test_a_policy_change_resolves_cases_with_the_policy_reason(conn, tmp_path):
    """2026.1 then the default (2027.2) on the same data: the cases it no
    longer finds are resolved with the reason "policy 2027.2", none vanish,
    reviews stay."""
    w = World(history_from="2015-01-01")
    massed = w.patient("massed", ptsd_on=INDEX)  # 12 CPT sessions on 6 days
    massed.sessions("2025-02-01", 6, every=1, modality="CPT")
    massed.sessions("2025-02-01", 6, every=1, modality="CPT")
    w.patient("mri", ptsd_on=INDEX).fill("lorazepam", "2025-05-01", 2, 1)  # incidental
    w.load(conn, tmp_path)
    old = evaluate(conn, "2026.1")
    gone = {c["case_id"] for c in old if c["rule_id"] in ("PSY-INCOMPLETE", "BZD-PTSD")}
    assert len(gone) == 2
    with conn.transaction():
        conn.execute(
            "select review.add_review(%s, 'confirmed', 'seen', 'qi-lead')",
            (sorted(gone)[0],),
        )
    new = evaluate(conn)
    assert not gone & {c["case_id"] for c in new}
    rows = conn.execute(
        "select status, resolved_reason from audit.cases where case_id = any(%s)", (list(gone),)
    ).fetchall()
    assert rows == [("resolved", "policy 2027.2")] * 2
    assert conn.execute("select count(*) from review.reviews").fetchone()[0] == 1


@pytest.mark.db
def test_site_policy_changes_a_threshold(conn, tmp_path):
    site = tmp_path / "site.toml"
    site.write_text('version = "north-2027.1"\n[episodes]\nacute_days = 60\n')
    w = World(history_from="2015-01-01")
    w.patient("p", ptsd_on=INDEX).fill("sertraline", "2025-02-01", 61, 50)
    w.load(conn, tmp_path)
    assert of(evaluate(conn), "SSRI-SHORT-TRIAL")
    assert of(evaluate(conn, site), "SSRI-SHORT-TRIAL") == {}


@pytest.mark.unit
@pytest.mark.parametrize(
    "text, message",
    [
        ('version = "x"\nfoo = 1\n', "foo: unknown key"),
        ('version = "x"\n[episodes]\nacute_dayz = 60\n', "episodes.acute_dayz: unknown key"),
        ('version = "x"\n[episodes]\nacute_days = "60"\n', "must be a whole number"),
        ('version = "x"\n[episodes]\nacute_days = 0\n', "must be between 1 and 3650"),
        ('version = "x"\n[ingredients.sertraline]\nmin_mg = 300\n', "min_mg is above max_mg"),
        ('version = "x"\n[ingredients.sertraline]\ncolour = "blue"\n', "colour: unknown key"),
        ("[episodes]\nacute_days = 60\n", "version: required"),
        ("version = \n", "not valid TOML"),
        (
            'version = "x"\n[fills]\norders_as_fills = "sometimes"\n',
            "fills.orders_as_fills: must be one of auto, always, never",
        ),
        ('version = "x"\n[fills]\ninpatient_antidepressant_fills = 1\n', "must be true or false"),
        (
            'version = "x"\n[fills]\nseizure_ingredients = ["sertraline"]\n',
            "'sertraline' is not a benzodiazepine ingredient",
        ),
        ('version = "x"\n[episodes]\ncaps5_response_fraction = 1.5\n', "must be between 0 and 1"),
        ('version = "x"\n[episodes]\ncaps5_min_baseline = 81\n', "must be between 0 and 80"),
        ('version = "x"\n[episodes]\nswitch_window_days = -1\n', "must be between 0 and 3650"),
        ('version = "x"\n[benzodiazepines]\nbzd_taper_fraction = "half"\n', "must be a number"),
        (
            'version = "x"\n[benzodiazepines]\nbzd_prescriber = "last"\n',
            "must be one of episode_start, index_date",
        ),
        (
            'version = "x"\n[benzodiazepines]\nchronic_snomed = ["8475 7009"]\n',
            "codes are 1-20 letters",
        ),
        ('version = "x"\n[hospice]\nhospice_lookahead_days = 4000\n', "must be between 0 and 3650"),
        (
            'version = "x"\n[prazosin]\nprazosin_very_high_mg = 15\n',
            "prazosin_high_mg: is above prazosin_very_high_mg",
        ),
        ('version = "x"\n[prazosin]\nprazosin_tried_min_mg = -1\n', "must be between 0 and 1000"),
    ],
)
def test_bad_policy_files_are_refused(tmp_path, text, message):
    path = tmp_path / "policy.toml"
    path.write_text(text)
    with pytest.raises(PolicyError) as info:
        policy.load(path)
    assert message in str(info.value)
    assert str(path) in str(info.value)


@pytest.mark.unit
def test_policy_hash_follows_content():
    default = policy.load()
    assert default.version == "2027.2"
    assert policy.load("2027.1").version == "2027.1"
    assert policy.load("2027.1").sha256 != default.sha256
    assert policy.load("2026.1").version == "2026.1"
    assert policy.load("2026.1").sha256 != default.sha256
    assert len(default.sha256) == 64
    assert policy.load().sha256 == default.sha256


#: The contract's table of ingredients and RXCUIs (rules.md, "Recognising a drug").
CONTRACT_RXCUIS = {
    "sertraline": "36437", "paroxetine": "32937", "fluoxetine": "4493", "citalopram": "2556",
    "escitalopram": "321988", "fluvoxamine": "42355", "venlafaxine": "39786",
    "duloxetine": "72625", "desvenlafaxine": "734064", "mirtazapine": "15996",
    "bupropion": "42347", "vortioxetine": "1455099", "vilazodone": "1086769",
    "levomilnacipran": "1433212", "nefazodone": "31565", "prazosin": "8629",
    "alprazolam": "596", "clobazam": "21241", "clonazepam": "2598", "diazepam": "3322",
    "lorazepam": "6470", "midazolam": "6960", "oxazepam": "7781",
}  # fmt: skip


@pytest.mark.unit
@pytest.mark.parametrize("version", ["2027.2", "2027.1"])
def test_every_rxcui_of_the_contract_is_in_the_policy(version):
    """An ingredient coded by RxNorm under a generic name is recognised only
    by its RXCUI: a missing one silently hides it (prazosin was)."""
    by_name = {i["ingredient"]: i["rxcui"] for i in policy.load(version).ingredients()}
    wanted = CONTRACT_RXCUIS if version == "2027.2" else {
        k: v for k, v in CONTRACT_RXCUIS.items() if k in by_name}  # fmt: skip
    assert {k: by_name.get(k) for k in wanted} == wanted


@pytest.mark.unit
def test_the_other_antidepressants_are_never_judged_for_dose():
    rows = [i for i in policy.load().ingredients() if i["drug_class"] == "OTHER_AD"]
    assert {i["ingredient"] for i in rows} == {
        "duloxetine", "desvenlafaxine", "mirtazapine", "bupropion", "vortioxetine",
        "vilazodone", "levomilnacipran", "nefazodone"}  # fmt: skip
    assert all(i["min_mg"] is None and i["max_mg"] is None and not i["first_line"] for i in rows)


@pytest.mark.db
def test_care_pathway_next_steps(conn, tmp_path):
    w = World()
    w.patient("nothing", ptsd_on=INDEX)
    bzd = w.patient("bzd", ptsd_on=INDEX)
    bzd.fill("clonazepam", "2025-12-01", 30)
    course = w.patient("in-course", ptsd_on=INDEX)
    course.sessions("2025-11-01", 4)
    low = w.patient("low-dose", ptsd_on=INDEX)
    low.sessions("2025-02-01", 9)
    low.fills("sertraline", "2025-08-01", 5, dose=25)
    nightmares = w.patient("nightmares", ptsd_on=INDEX)
    nightmares.sessions("2025-02-01", 9)
    nightmares.fills("sertraline", "2025-02-01", 5, dose=50)
    nightmares.event("2025-03-01", "NIGHTMARES")
    done = w.patient("optimised", ptsd_on=INDEX)
    done.sessions("2025-02-01", 9)
    done.fills("sertraline", "2025-02-01", 5, dose=50)
    for p in (low, nightmares, done):  # measured: step 5 does not stop them
        p.pcl5("2025-12-01", 50)
    unmeasured = w.patient("unmeasured", ptsd_on=INDEX)
    unmeasured.sessions("2025-02-01", 9)
    w.run(conn, tmp_path)
    steps = dict(conn.execute("select patient_id, next_step from core.care_pathway").fetchall())
    assert steps == {
        "nothing": "offer trauma-focused psychotherapy (PE, CPT or EMDR)",
        "bzd": "discuss a gradual, patient-centred benzodiazepine taper",
        "in-course": "complete the trauma-focused course",
        "low-dose": "raise sertraline to an effective dose",
        "nightmares": "consider prazosin or imagery rehearsal therapy for nightmares",
        "optimised": "consider venlafaxine",
        "unmeasured": "measure PTSD symptoms (PCL-5) before changing treatment",
    }


@pytest.mark.unit
def test_bundled_policies_and_a_site_file_over_2026_1(tmp_path):
    assert policy.load().params()["bzd_episode_gap_days"] == 90
    old = policy.load("2026.1")
    assert old.params()["bzd_episode_gap_days"] == 30
    assert old.params()["tf_max_per_day"] == 1
    site = tmp_path / "site.toml"
    site.write_text('version = "north-2026.1"\nbase = "2026.1"\n[episodes]\nacute_days = 60\n')
    pinned = policy.load(site)
    assert (pinned.version, pinned.params()["acute_days"]) == ("north-2026.1", 60)
    assert pinned.params()["bzd_episode_gap_days"] == 30
    assert policy.load().params()["tf_min_modalities"] == ["WET"]


@pytest.mark.unit
@pytest.mark.parametrize(
    "text, message",
    [
        ('version = "x"\nbase = "2025.9"\n', "no bundled policy '2025.9'"),
        ('version = "x"\n[psychotherapy.tf_min_sessions_by_modality]\nCBT = 5\n',
         "not a modality of the extract format"),
        ('version = "x"\n[psychotherapy.tf_min_sessions_by_modality]\nWET = 0\n',
         "must be between 1 and 100"),
        ('version = "x"\n[fills]\nparoxetine_cr_min_mg = 70\n', "is above paroxetine_cr_max_mg"),
        ('version = "x"\n[prazosin]\nprazosin_high_mg = 5\n', "is above prazosin_high_mg"),
        ('version = "x"\n[fills]\nparoxetine_cr_words = ["C;R"]\n', "drug-name words"),
        ('version = "x"\n[cohort]\nptsd_icd10cm = []\n', "non-empty list"),
    ],
)  # fmt: skip
def test_2027_1_settings_are_checked(tmp_path, text, message):
    path = tmp_path / "p.toml"
    path.write_text(text)
    with pytest.raises(PolicyError) as err:
        policy.load(path)
    assert message in str(err.value)
