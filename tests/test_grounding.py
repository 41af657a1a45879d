"""Grounding a parsed spec in hand-built dataset fingerprints."""

from __future__ import annotations

from typing import Any

import pytest

from clinagent_lab.data.base import ColumnAssociation, DatasetFingerprint
from clinagent_lab.intent import find_column, ground_spec, match_class, parse_offline, positive_class
from clinagent_lab.intent.grounding import confounder_for_column
from clinagent_lab.spec import Confounder, MetricSpec, Supervision, TaskSpec

ISIC = ["MEL", "NV", "BCC", "AK", "BKL", "DF", "VASC", "SCC"]


def texts(spec: TaskSpec) -> list[str]:
    return [q.text for q in spec.questions]


def fingerprint(classes: list[str], *, columns: tuple[str, ...] = (),
                associations: tuple[ColumnAssociation, ...] = (), task_type: str | None = None,
                **extra: Any) -> DatasetFingerprint:
    counts = {c: 10 for c in classes}
    task = task_type or ("binary_classification" if len(classes) == 2 else "multiclass_classification")
    return DatasetFingerprint(
        format="test", root="/data", task_type=task, classes=classes, n_images=10 * len(classes),
        class_counts=counts, split_counts={"train": counts}, splits_given=False, split_rule="by group",
        image_sizes={"min": [8, 8], "median": [8, 8], "max": [8, 8]}, channels=[1],
        metadata_columns=list(columns), associations=list(associations), imbalance_ratio=1.0, **extra)


def isic(**kw: Any) -> DatasetFingerprint:
    return fingerprint(ISIC, columns=("sex", "age_approx", "anatom_site_general"), **kw)


def ptx(**kw: Any) -> DatasetFingerprint:
    drain = ColumnAssociation(column="chest_drain", kind="binary", auroc=0.8612, flagged=True)
    return fingerprint(["normal", "pneumothorax"], columns=("chest_drain",), associations=(drain,), **kw)


# -- class matching ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("name, classes, expected", [
    ("melanoma", ISIC, ["MEL"]),
    ("nevus", ISIC, ["NV"]),
    ("basal cell carcinoma", ISIC, ["BCC"]),
    ("squamous cell carcinoma", ISIC, ["SCC"]),
    ("malignant", ISIC, ["MEL", "BCC", "SCC"]),
    ("non-melanoma skin cancer", ISIC, ["BCC", "SCC"]),
    ("MEL", ISIC, ["MEL"]),
    ("pneumonia", ISIC, []),
    ("pneumothorax", ["normal", "pneumothorax"], ["pneumothorax"]),
    ("pneumothorax", ["no_ptx", "PTX"], ["PTX"]),
    ("pneumothorax", ["0", "1"], ["1"]),
    ("pneumothorax", ["negative", "positive"], ["positive"]),
    ("pneumothorax", ["normal", "abnormal"], ["abnormal"]),
    ("pneumonia", ["0", "1"], ["1"]),
    ("pneumonia", ["NORMAL", "PNEUMONIA"], ["PNEUMONIA"]),
    ("fracture", ["no_fracture", "fracture"], ["fracture"]),
    ("melanoma", ["benign", "malignant"], ["malignant"]),
    ("pneumothorax", ["normal", "pneumonia"], []),
])
def test_match_class(name: str, classes: list[str], expected: list[str]) -> None:
    assert match_class(name, classes) == expected


@pytest.mark.parametrize("classes, expected", [
    (["0", "1"], "1"), (["normal", "pneumonia"], "pneumonia"), (["pneumothorax", "normal"], "pneumothorax"),
    (["a", "b"], None), (ISIC, None),
])
def test_positive_class(classes: list[str], expected: str | None) -> None:
    assert positive_class(classes) == expected


@pytest.mark.parametrize("name, columns, expected", [
    ("chest_drain", ["chest_drain", "sex"], "chest_drain"),
    ("chest_drain", ["sex", "drain"], "drain"),
    ("chest_drain", ["ChestTube"], "ChestTube"),
    ("chest_drain", ["has_chest_tube"], "has_chest_tube"),
    ("chest_drain", ["tube"], "tube"),
    ("chest_drain", ["et_tube", "ng_tube"], None),
    ("ruler", ["ruler"], "ruler"),
    ("sex", ["PatientSex"], "PatientSex"),
    ("sex", ["gender"], "gender"),
    ("age", ["age_approx"], "age_approx"),
    ("site", ["anatom_site_general"], None),
    ("site", ["anatom_site_general", "hospital"], "hospital"),
    ("anatom_site", ["anatom_site_general"], "anatom_site_general"),
    ("scanner", ["Manufacturer"], "Manufacturer"),
    ("metal_implant", ["implant"], "implant"),
    ("cast", ["splint"], "splint"),
    ("contrast", ["contrast_agent"], None),
    ("contrast", ["contrast"], "contrast"),
])
def test_find_column(name: str, columns: list[str], expected: str | None) -> None:
    assert find_column(name, columns) == expected


@pytest.mark.parametrize("column, name", [
    ("drain", "chest_drain"), ("chest_tube", "chest_drain"), ("PatientSex", "sex"), ("age_approx", "age"),
    ("hospital", "site"), ("Weird Column!", "weird_column"),
])
def test_confounder_for_column(column: str, name: str) -> None:
    assert confounder_for_column(column) == name


# -- the three data shapes --------------------------------------------------------------------------------


def test_isic_seed_grounds_to_mel() -> None:
    spec = parse_offline("classify dermoscopic lesions into the ISIC categories, melanoma matters most, "
                         "sensitivity at 80% specificity")
    grounded = ground_spec(spec, isic())
    assert grounded is not spec
    assert grounded.classes == ISIC
    assert grounded.task_type == "multiclass_classification"
    assert grounded.target_classes == ["MEL"]
    assert grounded.primary_metric.params == {"specificity": 0.8, "class": "MEL"}
    assert spec.target_classes == ["melanoma"], "the input spec is not modified"
    assert any("'melanoma' is class MEL" in a for a in grounded.assumptions)


def test_binary_request_on_isic_becomes_multiclass() -> None:
    grounded = ground_spec(parse_offline("find basal cell carcinoma on dermoscopy"), isic())
    assert grounded.task_type == "multiclass_classification"
    assert grounded.target_classes == ["BCC"]
    assert any("the data has 8 classes" in a for a in grounded.assumptions)


def test_pneumothorax_seed_grounds_column_and_keeps_mitigate() -> None:
    spec = parse_offline("pneumothorax on chest X-rays, don't let the model cheat by looking at chest drains")
    grounded = ground_spec(spec, ptx())
    assert grounded.task_type == "binary_classification"
    assert grounded.classes == ["normal", "pneumothorax"]
    assert grounded.target_classes == ["pneumothorax"]
    assert [(c.name, c.column, c.action) for c in grounded.confounders] == [
        ("chest_drain", "chest_drain", "mitigate")]
    assert grounded.mitigated_confounders()[0].column == "chest_drain"
    assert not any("predicts the label" in q for q in texts(grounded)), "already a confounder: no question"


def test_flagged_column_not_asked_about_becomes_question_and_report() -> None:
    grounded = ground_spec(parse_offline("pneumothorax on chest x-rays"), ptx())
    assert "`chest_drain` predicts the label with AUROC 0.86 on its own: mitigate, report, or ignore?" in (
        texts(grounded))
    assert [(c.name, c.column, c.action) for c in grounded.confounders] == [
        ("chest_drain", "chest_drain", "report")]


def test_flagged_column_with_cramers_v_and_odd_name() -> None:
    assoc = ColumnAssociation(column="Scanner Model", kind="categorical", cramers_v=0.4237, flagged=True)
    fp = fingerprint(["0", "1"], columns=("Scanner Model",), associations=(assoc,))
    grounded = ground_spec(parse_offline("pneumonia on chest x-rays"), fp)
    expected = ("`Scanner Model` predicts the label with Cramér's V 0.42 on its own: mitigate, report, "
                "or ignore?")
    assert expected in texts(grounded)
    assert grounded.confounders[0].name == "scanner"
    assert grounded.confounders[0].column == "Scanner Model"


def test_medmnist_like_binary_zero_one() -> None:
    fp = fingerprint(["0", "1"])
    grounded = ground_spec(parse_offline("pneumonia on chest x-rays, 90% sensitivity"), fp)
    assert grounded.target_classes == ["1"]
    assert grounded.primary_metric.params == {"sensitivity": 0.9, "class": "1"}
    assert grounded.task_type == "binary_classification"


def test_no_target_in_binary_data_takes_positive_class() -> None:
    grounded = ground_spec(parse_offline("make me an AI for my X-rays"), fingerprint(["0", "1"]))
    assert grounded.target_classes == ["1"]
    assert any("positive class is '1'" in a for a in grounded.assumptions)


def test_missing_column_becomes_question() -> None:
    spec = parse_offline("pneumothorax, don't let it cheat with chest drains")
    grounded = ground_spec(spec, fingerprint(["normal", "pneumothorax"], columns=("sex", "age")))
    assert grounded.confounders[0].column is None
    assert grounded.mitigated_confounders() == []
    assert ("You asked about chest_drain but the data has no column for it (columns: sex, age). Add a column "
            "or drop the confounder.") in texts(grounded)


def test_target_not_in_data_becomes_question() -> None:
    grounded = ground_spec(parse_offline("pneumothorax on chest x-rays"),
                           fingerprint(["normal", "pneumonia"]))
    assert grounded.target_classes == []
    assert any("'pneumothorax' matches no class" in q for q in texts(grounded))


def test_weak_association_keeps_action_and_notes_it() -> None:
    weak = ColumnAssociation(column="ruler", kind="binary", auroc=0.53, flagged=False)
    fp = fingerprint(ISIC, columns=("ruler",), associations=(weak,))
    grounded = ground_spec(parse_offline("melanoma on dermoscopy, don't let it rely on rulers"), fp)
    assert [(c.name, c.column, c.action) for c in grounded.confounders] == [("ruler", "ruler", "mitigate")]
    assert any("only weakly" in a and "0.53" in a for a in grounded.assumptions)


def test_constant_column_nothing_to_mitigate() -> None:
    const = ColumnAssociation(column="chest_drain", kind="binary", n_levels=1, note="constant column")
    fp = fingerprint(["normal", "pneumothorax"], columns=("chest_drain",), associations=(const,))
    grounded = ground_spec(parse_offline("pneumothorax, don't let it cheat with chest drains"), fp)
    assert grounded.confounders[0].action == "report"
    assert any("nothing to mitigate" in a for a in grounded.assumptions)


def test_site_confounder_does_not_take_anatomical_site() -> None:
    spec = parse_offline("melanoma on dermoscopy from different hospitals, mitigate that")
    grounded = ground_spec(spec, isic())
    assert grounded.confounders[0].name == "site"
    assert grounded.confounders[0].column is None
    assert any("no column for it" in q for q in texts(grounded))


def test_sex_and_age_map_to_isic_columns() -> None:
    grounded = ground_spec(parse_offline("melanoma, check whether sex and age matter"), isic())
    assert {c.name: c.column for c in grounded.confounders} == {"sex": "sex", "age": "age_approx"}


# -- detection --------------------------------------------------------------------------------------------


def wrist(box_fraction: float, **kw: Any) -> DatasetFingerprint:
    return fingerprint(["no_fracture", "fracture"], task_type="detection", n_boxes=40,
                       box_fraction=box_fraction, box_classes=["fracture"], **kw)


def test_detection_box_fraction_agrees() -> None:
    grounded = ground_spec(parse_offline("detect wrist fractures, only 5% of images have boxes"), wrist(0.05))
    assert grounded.task_type == "detection"
    assert grounded.supervision == Supervision(kind="mixed", box_fraction=0.05)
    assert grounded.target_classes == ["fracture"]
    assert not any("using the data's value" in a for a in grounded.assumptions)


def test_detection_box_fraction_mismatch_uses_data() -> None:
    grounded = ground_spec(parse_offline("detect wrist fractures, only 5% of images have boxes"), wrist(0.2))
    assert grounded.supervision == Supervision(kind="mixed", box_fraction=0.2)
    assert any("You said 5%" in a and "20.0%" in a for a in grounded.assumptions)


def test_detection_full_said_but_data_mixed() -> None:
    grounded = ground_spec(parse_offline("localise wrist fractures with boxes"), wrist(0.25))
    assert grounded.supervision == Supervision(kind="mixed", box_fraction=0.25)
    assert any("set to mixed" in a for a in grounded.assumptions)


def test_detection_mixed_said_but_data_fully_boxed() -> None:
    grounded = ground_spec(parse_offline("wrist fractures, some images have boxes"), wrist(1.0))
    assert grounded.supervision == Supervision(kind="full", box_fraction=1.0)


def test_detection_on_data_without_boxes_falls_back_to_classification() -> None:
    grounded = ground_spec(parse_offline("detect wrist fractures with boxes"),
                           fingerprint(["no_fracture", "fracture"]))
    assert grounded.task_type == "binary_classification"
    assert grounded.primary_metric.name == "auroc"
    assert grounded.output_format == "probabilities"
    assert any("no box annotations" in q for q in texts(grounded))


def test_parse_offline_with_fingerprint_grounds() -> None:
    assert parse_offline("pneumonia on chest x-rays", fingerprint(["0", "1"])).target_classes == ["1"]


def test_hand_written_spec_metric_class_unknown() -> None:
    spec = TaskSpec(task_type="multiclass_classification", target_classes=["melanoma"],
                    primary_metric=MetricSpec(name="sensitivity_at_specificity",
                                              params={"specificity": 0.9, "class": "pneumonia"}),
                    confounders=[Confounder(name="ruler", action="mitigate")])
    grounded = ground_spec(spec, isic())
    assert grounded.primary_metric.params["class"] == "pneumonia"
    assert any("metric's class 'pneumonia'" in q for q in texts(grounded))
    assert any("You asked about ruler" in q for q in texts(grounded))


def test_grounding_is_deterministic() -> None:
    spec = parse_offline("pneumothorax on chest x-rays")
    assert ground_spec(spec, ptx()).model_dump_json() == ground_spec(spec, ptx()).model_dump_json()


@pytest.mark.parametrize("text, fp", [
    ("classify dermoscopic lesions into the ISIC categories, melanoma matters most, sensitivity at 80% "
     "specificity", isic()),
    ("pneumothorax on chest x-rays", ptx()),
    ("pneumothorax, don't let it cheat with chest drains", fingerprint(["normal", "pneumothorax"])),
    ("detect wrist fractures, only 5% of images have boxes", wrist(0.2)),
    ("detect wrist fractures with boxes", fingerprint(["no_fracture", "fracture"])),
])
def test_grounding_twice_changes_nothing(text: str, fp: DatasetFingerprint) -> None:
    once = ground_spec(parse_offline(text), fp)
    assert ground_spec(once, fp).model_dump_json() == once.model_dump_json()


def test_removed_suggested_confounder_stays_removed() -> None:
    grounded = ground_spec(parse_offline("pneumothorax on chest x-rays"), ptx())
    edited = grounded.model_copy(update={"confounders": []})
    assert ground_spec(edited, ptx()).confounders == []


def test_flagged_columns_get_distinct_confounder_names() -> None:
    assocs = tuple(ColumnAssociation(column=c, kind="binary", auroc=0.9, flagged=True)
                   for c in ("drain", "chest_tube", "???"))
    fp = fingerprint(["0", "1"], columns=("drain", "chest_tube", "???"), associations=assocs)
    grounded = ground_spec(parse_offline("pneumothorax on chest x-rays"), fp)
    assert [(c.name, c.column) for c in grounded.confounders] == [
        ("chest_drain", "drain"), ("chest_tube", "chest_tube"), ("column", "???")]
    assert sum("predicts the label" in q for q in texts(grounded)) == 3
