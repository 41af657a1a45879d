"""The offline parser: many phrasings of the same intent must give the same fields."""

from __future__ import annotations

import pytest

from clinagent_lab.errors import ClinagentError, IntentError
from clinagent_lab.intent import assess_request, parse_offline
from clinagent_lab.intent.normalize import correct_word, normalize
from clinagent_lab.intent.quantities import read_quantities
from clinagent_lab.spec import TaskSpec

SEED_DERM = ("classify dermoscopic lesions into the ISIC categories, melanoma matters most, "
             "sensitivity at 80% specificity")
SEED_PTX = "pneumothorax on chest X-rays, don't let the model cheat by looking at chest drains"


def texts(spec: TaskSpec) -> list[str]:
    return [q.text for q in spec.questions]


def confounders(spec: TaskSpec) -> dict[str, str]:
    return {c.name: c.action for c in spec.confounders}


# -- the three seed requests -------------------------------------------------------------------------------


def test_seed_dermoscopy() -> None:
    spec = parse_offline(SEED_DERM)
    assert spec.task_type == "multiclass_classification"
    assert spec.modality == "dermoscopy"
    assert spec.target_classes == ["melanoma"]
    assert spec.primary_metric.name == "sensitivity_at_specificity"
    assert spec.primary_metric.params == {"specificity": 0.8, "class": "melanoma"}
    assert spec.risk_preference == "sensitivity"
    assert spec.parsed_by == "offline" and spec.request == SEED_DERM
    assert spec.questions == []


def test_seed_pneumothorax() -> None:
    spec = parse_offline(SEED_PTX)
    assert spec.task_type == "binary_classification"
    assert spec.modality == "chest_xray"
    assert spec.target_classes == ["pneumothorax"]
    assert [(c.name, c.action, c.column) for c in spec.confounders] == [("chest_drain", "mitigate", None)]
    assert spec.primary_metric.name == "auroc" and spec.primary_metric.params == {}
    assert any("Primary metric: auroc" in a for a in spec.assumptions)


@pytest.mark.parametrize("text", [
    "wrist fractures with boxes, only 5% of images have boxes",
    "detect wrist fractures, only 5% of images have boxes",
    "Detect wrist fractures; only 5 percent of the radiographs have bounding boxes",
    "wrist fractures, boxes for 200 of 4000 images",
    "paediatric wrist radiographs, fractures, 1 in 20 images is boxed",
])
def test_seed_wrist_detection(text: str) -> None:
    spec = parse_offline(text)
    assert spec.task_type == "detection"
    assert spec.modality == "musculoskeletal_xray"
    assert spec.target_classes == ["fracture"]
    assert spec.primary_metric.name == "map50"
    assert spec.supervision.kind == "mixed"
    assert spec.supervision.box_fraction == pytest.approx(0.05)
    assert spec.output_format == "boxes"


# -- modality and finding ---------------------------------------------------------------------------------


@pytest.mark.parametrize("text, modality, targets", [
    ("PTX on CXR", "chest_xray", ["pneumothorax"]),
    ("collapsed lung on chest radiographs", "chest_xray", ["pneumothorax"]),
    ("find pneumothoraces in chest films", "chest_xray", ["pneumothorax"]),
    ("pneumonia on CXR", "chest_xray", ["pneumonia"]),
    ("children's forearm films", "musculoskeletal_xray", ["fracture"]),
    ("paediatric wrist radiographs", "musculoskeletal_xray", ["fracture"]),
    ("distal radius", "musculoskeletal_xray", ["fracture"]),
    ("broken wrists on x-ray", "musculoskeletal_xray", ["fracture"]),
    ("melanoma in skin lesions", "dermoscopy", ["melanoma"]),
    ("which moles are melanomas", "dermoscopy", ["melanoma"]),
    ("dermatoscopy: spot melanoma", "dermoscopy", ["melanoma"]),
    ("basal cell carcinoma on dermoscopic images", "dermoscopy", ["basal cell carcinoma"]),
    ("non-melanoma skin cancer on dermoscopy", "dermoscopy", ["non-melanoma skin cancer"]),
])
def test_modality_and_target(text: str, modality: str, targets: list[str]) -> None:
    spec = parse_offline(text)
    assert spec.modality == modality
    assert spec.target_classes == targets
    assert assess_request(text) == "imaging"


@pytest.mark.parametrize("text, targets", [
    ("classify skin lesions, not melanoma", []),
    ("dermoscopy lesion categories, melanoma is not the focus", []),
    ("melanoma doesn't matter, classify the other lesion types", []),
    ("detect pneumothorax, not pneumonia", ["pneumothorax"]),
    ("not pneumonia but pneumothorax on chest xrays", ["pneumothorax"]),
    ("skin lesions, don't miss melanoma", ["melanoma"]),
    ("chest x-rays: pneumothorax must never be missed", ["pneumothorax"]),
    ("melanoma vs nevus on dermoscopy", ["melanoma"]),
])
def test_negation_of_findings(text: str, targets: list[str]) -> None:
    assert parse_offline(text).target_classes == targets


@pytest.mark.parametrize("text, task_type", [
    ("classify dermoscopic lesions into the ISIC categories", "multiclass_classification"),
    ("classify skin lesions", "multiclass_classification"),
    ("melanoma vs nevus vs BCC on dermoscopy", "multiclass_classification"),
    ("melanoma or not, on dermoscopy", "binary_classification"),
    ("detect pneumothorax on chest x-rays", "binary_classification"),
    ("localise wrist fractures", "detection"),
    ("draw bounding boxes around fractures on wrist x-rays", "detection"),
])
def test_task_type(text: str, task_type: str) -> None:
    assert parse_offline(text).task_type == task_type


# -- risk preference --------------------------------------------------------------------------------------


@pytest.mark.parametrize("text, risk", [
    ("pneumothorax on CXR, never overlook a positive", "sensitivity"),
    ("pneumothorax on CXR, we can't miss one", "sensitivity"),
    ("pneumothorax on CXR, missing one is worse", "sensitivity"),
    ("pneumothorax on chest x-rays, missing one is worse than a false alarm", "sensitivity"),
    ("pneumothorax, I'd rather have a few false alarms than miss one", "sensitivity"),
    ("melanoma screening on dermoscopy, false negatives are unacceptable", "sensitivity"),
    ("pneumonia on CXR, too many false positives", "specificity"),
    ("pneumonia on CXR, avoid false alarms", "specificity"),
    ("melanoma on dermoscopy, we keep overcalling", "specificity"),
    ("pneumothorax: false alarms are worse than missing one", "specificity"),
    ("melanoma, no unnecessary biopsies", "specificity"),
    ("pneumothorax on chest x-rays", "balanced"),
])
def test_risk_preference(text: str, risk: str) -> None:
    spec = parse_offline(text)
    assert spec.risk_preference == risk
    assert spec.primary_metric.name == "auroc", "no operating point stated: AUROC stays primary"


def test_conflicting_risk_becomes_a_question() -> None:
    spec = parse_offline("pneumothorax, never miss one and avoid false alarms")
    assert spec.risk_preference == "balanced"
    assert any("which mistake is worse" in q for q in texts(spec))


# -- confounders ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("text, expected", [
    (SEED_PTX, {"chest_drain": "mitigate"}),
    ("PTX on chest radiographs with thoracostomy tubes, don't let it cheat", {"chest_drain": "mitigate"}),
    ("collapsed lung on CXR, must not rely on intercostal drains", {"chest_drain": "mitigate"}),
    ("pneumothorax, make sure chest tubes don't fool it", {"chest_drain": "mitigate"}),
    ("pneumothorax, don't let it cheat with drains", {"chest_drain": "mitigate"}),
    ("pneumothorax on CXR, don't worry about chest drains", {"chest_drain": "report"}),
    ("pneumothorax, drains are fine to use", {"chest_drain": "report"}),
    ("dermatoscopy images, find melanoma, ignore the rulers", {"ruler": "mitigate"}),
    ("dermatoscopy images, find melanoma, you can safely ignore the rulers", {"ruler": "report"}),
    ("melanoma detection, the model should ignore the rulers", {"ruler": "mitigate"}),
    ("melanoma on dermoscopy, don't worry about pen/ink markings", {"ink_marking": "report"}),
    ("melanoma on dermoscopy, surgical skin markers must not be used", {"ink_marking": "mitigate"}),
    ("wrist fractures, casts and splints should not fool the model", {"cast": "mitigate"}),
    ("wrist fracture boxes, metal plates/screws/implants are a shortcut", {"metal_implant": "mitigate"}),
    ("wrist fractures, L/R markers and text labels could be a shortcut", {"text_marker": "mitigate"}),
    ("pneumothorax on CXR from different hospitals/scanners/sites, mitigate that",
     {"site": "mitigate", "scanner": "mitigate"}),
    ("pneumonia, check whether sex and age matter", {"sex": "report", "age": "report"}),
    ("pneumothorax CXR, the model must not be influenced by drains, but don't worry about age",
     {"chest_drain": "mitigate", "age": "report"}),
    ("melanoma dermoscopy, hair and dark corners are shortcuts",
     {"hair": "mitigate", "dark_corner": "mitigate"}),
    ("pneumothorax on our hospital's chest x-rays", {}),
    ("pneumothorax, make sure it works across hospitals", {"site": "mitigate"}),
    ("pneumothorax, report performance per scanner", {"scanner": "report"}),
])
def test_confounders(text: str, expected: dict[str, str]) -> None:
    assert confounders(parse_offline(text)) == expected


def test_confounder_without_cue_asks() -> None:
    spec = parse_offline("pneumothorax on CXR, chest drains present in many images")
    assert confounders(spec) == {"chest_drain": "report"}
    assert any("chest drain" in q and "mitigate" in q for q in texts(spec))


def test_cheating_without_named_confounder_asks() -> None:
    spec = parse_offline("pneumothorax on CXR, don't let the model cheat")
    assert spec.confounders == []
    assert any("cheat" in q for q in texts(spec))


# -- numbers ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("text, metric, params", [
    ("pneumothorax, 85 % spec", "sensitivity_at_specificity", {"specificity": 0.85}),
    ("pneumothorax, 85% specificity", "sensitivity_at_specificity", {"specificity": 0.85}),
    ("pneumothorax, spec of 0.85", "sensitivity_at_specificity", {"specificity": 0.85}),
    ("pneumothorax at a specificity of 85 percent", "sensitivity_at_specificity", {"specificity": 0.85}),
    ("pneumothorax, specificity 85", "sensitivity_at_specificity", {"specificity": 0.85}),
    ("pneumothorax, sens of 0.92", "specificity_at_sensitivity", {"sensitivity": 0.92}),
    ("pneumothorax, 92% sensitivity", "specificity_at_sensitivity", {"sensitivity": 0.92}),
    ("pneumothorax with sensitivity >= 92%", "specificity_at_sensitivity", {"sensitivity": 0.92}),
    ("pneumothorax, sensitivity at 90% specificity", "sensitivity_at_specificity", {"specificity": 0.9}),
    ("pneumothorax, specificity at 95% sensitivity", "specificity_at_sensitivity", {"sensitivity": 0.95}),
    ("pneumothorax 80% specifity", "sensitivity_at_specificity", {"specificity": 0.8}),
    ("pneumothorax, sensitivty at 0.9 spec", "sensitivity_at_specificity", {"specificity": 0.9}),
])
def test_operating_points(text: str, metric: str, params: dict[str, float]) -> None:
    spec = parse_offline(text)
    assert spec.primary_metric.name == metric
    assert spec.primary_metric.params == {**params, "class": "pneumothorax"}


@pytest.mark.parametrize("text, risk", [
    ("pneumothorax, sensitivity at 90% specificity", "sensitivity"),
    ("pneumothorax, 92% sensitivity", "sensitivity"),
    ("pneumothorax, specificity at 95% sensitivity", "specificity"),
    ("pneumothorax, 85% spec", "specificity"),
])
def test_operating_point_sets_risk(text: str, risk: str) -> None:
    assert parse_offline(text).risk_preference == risk


def test_two_operating_values_give_point_and_target() -> None:
    spec = parse_offline("pneumothorax, sensitivity of 0.9 at 80% specificity")
    assert spec.primary_metric.name == "sensitivity_at_specificity"
    assert spec.primary_metric.params["specificity"] == 0.8
    assert spec.target_value == 0.9


@pytest.mark.parametrize("text", [
    "pneumothorax, sensitivity at 150% specificity",
    "pneumothorax, 0% specificity",
    "pneumothorax, sens of 1.0",
    "pneumothorax, target AUROC 1.5",
])
def test_out_of_range_values_become_questions(text: str) -> None:
    spec = parse_offline(text)
    assert spec.primary_metric.name == "auroc"
    assert spec.target_value is None
    assert any("between 0 and 1" in q for q in texts(spec))


@pytest.mark.parametrize("text, fraction", [
    ("detect wrist fractures, a tenth of the images are annotated with boxes", 0.1),
    ("wrist fractures with boxes, only 5% of images have boxes", 0.05),
    ("wrist fractures, boxes for 200 of 4000 images", 0.05),
    ("wrist fractures, boxes on half of the images", 0.5),
    ("wrist fracture detection, 12.5 % of radiographs carry a bounding box", 0.125),
    ("wrist fractures, boxes on 0.2 of the images", 0.2),
])
def test_box_fraction(text: str, fraction: float) -> None:
    spec = parse_offline(text)
    assert spec.task_type == "detection"
    assert spec.supervision.kind == "mixed"
    assert spec.supervision.box_fraction == pytest.approx(fraction)


@pytest.mark.parametrize("text, kind, fraction", [
    ("wrist fractures with bounding boxes for every image", "full", 1.0),
    ("wrist fractures, some images have boxes", "mixed", None),
    ("localise wrist fractures", "full", None),
])
def test_supervision_without_numbers(text: str, kind: str, fraction: float | None) -> None:
    sup = parse_offline(text).supervision
    assert (sup.kind, sup.box_fraction) == (kind, fraction)


def test_box_share_over_100_percent_is_a_question() -> None:
    spec = parse_offline("wrist fractures, 150% of images have boxes")
    assert spec.supervision.box_fraction is None
    assert any("boxes" in q and "100%" in q for q in texts(spec))


@pytest.mark.parametrize("text, iterations, iteration_minutes, total", [
    ("pneumothorax in 10 minutes", 4, 5.0, 10.0),
    ("pneumothorax, in 3 minutes", 4, 3.0, 3.0),
    ("pneumothorax, budget of 2 hours", 4, 5.0, 120.0),
    ("pneumothorax, at most 3 iterations", 3, 5.0, None),
    ("pneumothorax, 10-minute runs, 3 rounds", 3, 10.0, None),
    ("pneumothorax, 3 runs of 10 minutes", 3, 10.0, None),
    ("pneumothorax, give it a try within half an hour", 4, 5.0, 30.0),
    ("pneumothorax, each run should take about 2 minutes, total budget 1 hour", 4, 2.0, 60.0),
    ("pneumothorax, five iterations", 5, 5.0, None),
])
def test_budget(text: str, iterations: int, iteration_minutes: float, total: float | None) -> None:
    budget = parse_offline(text).budget
    assert (budget.max_iterations, budget.iteration_minutes, budget.total_minutes) == (
        iterations, iteration_minutes, total)


def test_too_many_iterations_is_a_question() -> None:
    spec = parse_offline("pneumothorax, 500 iterations")
    assert spec.budget.max_iterations == 4
    assert any("iterations" in q for q in texts(spec))


@pytest.mark.parametrize("text, metric, target", [
    ("pneumothorax, target AUROC 0.9", "auroc", 0.9),
    ("pneumothorax, aim for an AUC of 90%", "auroc", 0.9),
    ("pneumonia on CXR, balanced accuracy of at least 0.8", "balanced_accuracy", 0.8),
    ("pneumonia, target 0.85", "auroc", 0.85),
    ("wrist fractures with boxes, mAP@0.5 of 0.6", "map50", 0.6),
])
def test_target_value(text: str, metric: str, target: float) -> None:
    spec = parse_offline(text)
    assert spec.primary_metric.name == metric
    assert spec.target_value == pytest.approx(target)


@pytest.mark.parametrize("text, metric", [
    ("pneumonia on CXR, balanced accuracy", "balanced_accuracy"),
    ("pneumonia on CXR, optimise F1", "f1"),
    ("pneumonia on CXR, F1 score please", "f1"),
    ("pneumonia on CXR, optimise the AUC", "auroc"),
    ("pneumonia on CXR, AUROC", "auroc"),
    ("pneumonia on CXR, look at the ROC", "auroc"),
    ("pneumonia on CXR, report the area under the curve", "auroc"),
])
def test_named_metric(text: str, metric: str) -> None:
    assert parse_offline(text).primary_metric.name == metric


def test_other_named_metrics_are_secondary() -> None:
    spec = parse_offline("pneumonia on CXR, balanced accuracy, also show F1 and AUC")
    assert spec.primary_metric.name == "balanced_accuracy"
    assert spec.secondary_metrics == ["f1", "auroc"]


# -- typos ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("text, field, value", [
    ("pnuemothorax on chest xray", "target_classes", ["pneumothorax"]),
    ("melanomma on dermoscopy", "target_classes", ["melanoma"]),
    ("melanoma on dermoscpy", "modality", "dermoscopy"),
    ("wrist fractrue", "target_classes", ["fracture"]),
])
def test_typos(text: str, field: str, value: object) -> None:
    spec = parse_offline(text)
    assert getattr(spec, field) == value
    assert any(a.startswith("Read '") for a in spec.assumptions)


@pytest.mark.parametrize("word, expected", [
    ("pnuemothorax", "pneumothorax"), ("melanomma", "melanoma"), ("dermoscpy", "dermoscopy"),
    ("fractrue", "fracture"), ("specifity", "specificity"), ("sensitivty", "sensitivity"),
    ("features", "features"), ("fraction", "fraction"), ("specific", "specific"), ("sensitive", "sensitive"),
])
def test_correct_word(word: str, expected: str) -> None:
    assert correct_word(word) == expected


def test_normalize_records_corrections() -> None:
    norm = normalize("Pnuemothorax, 80% Specifity")
    assert norm.text == "pneumothorax, 80% specificity"
    assert norm.corrections == (("pnuemothorax", "pneumothorax"), ("specifity", "specificity"))


# -- request kinds ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("text, kind", [
    ("", "empty"),
    ("   \n\t", "empty"),
    ("book me a table for two", "non_imaging"),
    ("what's the weather", "non_imaging"),
    ("predict sepsis from lab values", "non_imaging"),
    ("make me an AI for my X-rays", "vague"),
    ("build something for chest x-rays", "vague"),
    ("help me with my scans", "vague"),
    ("I want a model for my dermoscopy images", "vague"),
    (SEED_DERM, "imaging"),
    (SEED_PTX, "imaging"),
    ("detect wrist fractures, only 5% of images have boxes", "imaging"),
    ("pneumothorax", "imaging"),
])
def test_assess_request(text: str, kind: str) -> None:
    assert assess_request(text) == kind


@pytest.mark.parametrize("text", ["", "   ", "\n"])
def test_empty_request_raises(text: str) -> None:
    with pytest.raises(IntentError) as info:
        parse_offline(text)
    assert isinstance(info.value, ClinagentError)
    assert info.value.fix and info.value.where


@pytest.mark.parametrize("text", ["book me a table for two", "what's the weather"])
def test_non_imaging_spec_says_so(text: str) -> None:
    spec = parse_offline(text)
    assert spec.request == text
    assert spec.parsed_by == "offline"
    assert len(spec.questions) == 1 and "does not look like a medical-imaging task" in spec.questions[0].text
    assert spec.target_classes == [] and spec.confounders == []


def test_vague_request_asks_and_assumes() -> None:
    spec = parse_offline("make me an AI for my X-rays")
    assert spec.questions[0].text.startswith("What should the model find")
    assert any("missing a case" in q for q in texts(spec))
    assert any("Which images" in q for q in texts(spec))
    assert any("(default" in a for a in spec.assumptions)
    assert spec.target_classes == [] and spec.modality == "other"


# -- output and determinism -------------------------------------------------------------------------------


@pytest.mark.parametrize("text, output", [
    ("pneumothorax, show me heatmaps of where it looks", "heatmap"),
    ("pneumothorax with grad-cam", "heatmap"),
    ("pneumothorax, just labels", "labels"),
    ("pneumothorax", "probabilities"),
    ("wrist fractures with boxes", "boxes"),
])
def test_output_format(text: str, output: str) -> None:
    assert parse_offline(text).output_format == output


@pytest.mark.parametrize("text", [SEED_DERM, SEED_PTX, "make me an AI for my X-rays",
                                  "detect wrist fractures, only 5% of images have boxes"])
def test_deterministic(text: str) -> None:
    first = parse_offline(text).model_dump_json()
    assert all(parse_offline(text).model_dump_json() == first for _ in range(3))
    assert TaskSpec.model_validate_json(first).model_dump_json() == first


def test_read_quantities_does_not_reuse_a_number() -> None:
    q = read_quantities("sensitivity at 90% specificity, boxes on 10% of images, 3 iterations")
    assert q.operating_point == ("specificity", 0.9)
    assert q.box_fraction == pytest.approx(0.1)
    assert q.budget.max_iterations == 3
    assert q.target_value is None
