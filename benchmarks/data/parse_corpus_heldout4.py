"""Fourth held-out part of the parse corpus: written after the last parser change, never used to tune it."""

CXR = {"modality": "chest_xray", "task_type": "binary_classification", "kind": "binary"}
DERM = {"modality": "dermoscopy", "task_type": "multiclass_classification", "kind": "multi"}
DERMBIN = {"modality": "dermoscopy", "task_type": "binary_classification", "kind": "binary"}
MSK = {"modality": "musculoskeletal_xray", "task_type": "binary_classification", "kind": "binary"}
DET = {"modality": "musculoskeletal_xray", "task_type": "detection", "kind": "det"}
NONE = {"kind": "full", "box_fraction": None}

TASKS = [
    {**CXR, "targets": ["pneumothorax"], "texts": [
        "I want a model that reads chest X-rays for pneumothorax",
        "pneumothorax present/absent, frontal CXR",
        "chest films: classify pneumothorax vs none",
        "we need pneumothorax picked up on chest radiographs",
        "Pneumothroax on chest x-rays"]},
    {**CXR, "targets": ["pneumonia"], "texts": [
        "pneumonia on pediatric chest x-rays, PneumoniaMNIST",
        "child chest radiographs - pneumonia or not",
        "a model for pneumonia on paediatric CXRs"]},
    {**DERM, "targets": ["melanoma"], "emphasis": True, "texts": [
        "dermoscopy: classify every lesion type, melanoma above all",
        "ISIC multi-class lesion classification, melanoma is the one that matters most",
        "classify dermatoscopic lesions into all classes, with melanoma the main concern"]},
    {**DERM, "targets": [], "texts": [
        "lesion categories on dermoscopy images (ISIC 2019)",
        "classify dermoscopy images into the diagnostic classes",
        "sort dermatoscopic images by lesion type"]},
    {**DERMBIN, "targets": ["melanoma"], "texts": [
        "melanoma vs nevus from dermoscopic photos",
        "dermoscopy images: melanoma or benign mole",
        "find melanoma on dermatoscopy",
        "melanoma recognition in dermoscopy"]},
    {**MSK, "targets": ["fracture"], "texts": [
        "wrist x-rays from children, fracture or not",
        "classify paediatric wrist radiographs for fracture",
        "fracture vs normal on wrist films",
        "a fracture classifier for forearm and wrist radiographs"]},
    {**DET, "targets": ["fracture"], "texts": [
        "box each wrist fracture on children's radiographs",
        "detect and localise fractures with bounding boxes on wrist x-rays",
        "wrist fracture object detection (GRAZPEDWRI-DX)",
        "bounding boxes around fractures on paediatric wrist films"]},
]

RISKS = [
    {"risk": "sensitivity", "texts": [
        "a missed case is what worries us most", "we can't let any slip through",
        "sensitivity is the priority", "a missed diagnosis is much worse than a false positive",
        "false alarms we can live with, missed cases we can't", "it's a rule-out test",
        "optimise for sensitivity", "I'd rather be called back for nothing than miss a case",
        "an unnecessary follow-up is trivial compared with a missed case", "don't miss any cases",
        "recall is key"]},
    {"risk": "specificity", "texts": [
        "false positives are the problem we need to avoid", "specificity is what matters most",
        "too many false alarms would make it useless", "optimise for specificity",
        "unnecessary biopsies cost more than an occasional missed case", "we must avoid over-calling"]},
    {"risk": "balanced", "texts": ["both errors are equally bad", "a balanced trade-off please"]},
]

METRICS = [
    {"name": "sensitivity_at_specificity", "params": {"specificity": 0.8}, "subject": "sensitivity",
     "texts": ["sensitivity at 80% specificity", "sensitivity at eighty percent specificity"]},
    {"name": "sensitivity_at_specificity", "params": {"specificity": 0.9}, "subject": "sensitivity",
     "texts": ["report sensitivity at 90 percent specificity"]},
    {"name": "specificity_at_sensitivity", "params": {"sensitivity": 0.9}, "subject": "specificity",
     "texts": ["specificity at 90% sensitivity", "specificity at ninety percent sensitivity"]},
    {"name": "specificity_at_sensitivity", "params": {"sensitivity": 0.95}, "subject": "sensitivity",
     "texts": ["it needs 95% sensitivity"]},
    {"name": "balanced_accuracy", "params": {}, "for": "multi", "texts": ["use balanced accuracy"]},
    {"name": "auroc", "params": {}, "texts": ["AUROC is the metric", "the AUC please"]},
    {"name": "f1", "params": {}, "texts": ["optimise F1"]},
]

CONFOUNDERS = [
    {"modality": "chest_xray", "confounders": {"chest_drain": "mitigate"}, "texts": [
        "the model must not use chest drains as a shortcut",
        "lots of these films show chest drains; don't let the model rely on them",
        "ignore the chest tubes", "chest drains should not influence the result",
        "chest drains are common. Make sure it doesn't use them"]},
    {"modality": "chest_xray", "confounders": {"chest_drain": "report"}, "texts": [
        "don't worry about chest drains", "only report whether drains affect it"]},
    {"modality": "chest_xray", "confounders": {"chest_drain": "report"}, "texts": [
        "chest drains are present in many images"]},
    {"modality": "chest_xray", "confounders": {"site": "mitigate"}, "texts": [
        "the films come from several hospitals and it must work across them"]},
    {"modality": "chest_xray", "confounders": {"sex": "report"}, "texts": ["check whether sex matters"]},
    {"modality": "dermoscopy", "confounders": {"ruler": "mitigate"}, "texts": [
        "rulers must not influence the model", "ignore the rulers",
        "rulers are in many photos; don't let it rely on them"]},
    {"modality": "dermoscopy", "confounders": {"ink_marking": "mitigate"}, "texts": [
        "ink markings must not be used as a shortcut", "surgical skin markings must not matter"]},
    {"modality": "dermoscopy", "confounders": {"ruler": "report"}, "texts": ["rulers don't matter"]},
    {"modality": "musculoskeletal_xray", "confounders": {"cast": "mitigate"}, "texts": [
        "casts must not fool the model", "a plaster cast must not give the answer away"]},
    {"modality": "musculoskeletal_xray", "confounders": {"metal_implant": "mitigate"}, "texts": [
        "metal implants must not be a shortcut"]},
]

BOXES = [
    {"kind": "mixed", "fraction": 0.1, "texts": ["10% of the images have boxes", "one in ten images is boxed"]},
    {"kind": "mixed", "fraction": 0.25, "texts": ["a quarter of the images have boxes", "25% are boxed"]},
    {"kind": "mixed", "fraction": 0.05, "texts": ["five percent of the images have boxes"]},
    {"kind": "mixed", "fraction": 0.2, "texts": ["boxes on 200 of 1000 images"]},
    {"kind": "mixed", "fraction": 0.06, "texts": ["three in fifty images have bounding boxes"]},
    {"kind": "full", "fraction": 1.0, "texts": ["all images have bounding boxes"]},
    {"kind": "mixed", "fraction": None, "texts": ["only some images have boxes"]},
]

BUDGETS = [
    {"texts": ["at most 4 iterations", "5 minutes per iteration", "two hours overall", "three iterations"]},
]

OPENERS = ["Hi, ", "Hello team, ", "Quick request: ", "Morning, ", "Task - "]
CLOSERS = [". Thanks", ". Cheers!", " - many thanks", "."]


def _e(task_type, targets, metric="auroc", params=None, risk="balanced", confounders=None, sup=None):
    return {"task_type": task_type, "target_classes": targets, "metric": {"name": metric, "params": params or {}},
            "risk": risk, "confounders": confounders or {}, "supervision": sup or NONE}


B, M, D = "binary_classification", "multiclass_classification", "detection"

WHOLE = [
    {"text": "Pneumothorax on chest X-rays. Many of the positive films have chest drains in; they must not "
             "count.",
     "expect": _e(B, ["pneumothorax"], confounders={"chest_drain": "mitigate"})},
    {"text": "pneumothorax, CXR; drains are common, don't let it lean on them; sensitivity matters most",
     "expect": _e(B, ["pneumothorax"], risk="sensitivity", confounders={"chest_drain": "mitigate"})},
    {"text": "Wrist fractures with boxes; boxes exist for one image in twenty. A missed fracture is worse than "
             "a false alarm.",
     "expect": _e(D, ["fracture"], "map50", risk="sensitivity", sup={"kind": "mixed", "box_fraction": 0.05})},
    {"text": "melanoma on dermoscopy - an unnecessary biopsy is cheap next to a missed melanoma",
     "expect": _e(B, ["melanoma"], risk="sensitivity")},
    {"text": "- dermoscopy\n- all the ISIC categories\n- melanoma matters most\n- sensitivity at 85% "
             "specificity",
     "expect": _e(M, ["melanoma"], "sensitivity_at_specificity", {"specificity": 0.85, "class": "melanoma"},
                  risk="sensitivity")},
    {"text": "Paediatric chest x-rays, pneumonia. Specificity at 95% sensitivity please.",
     "expect": _e(B, ["pneumonia"], "specificity_at_sensitivity", {"sensitivity": 0.95, "class": "pneumonia"},
                  risk="specificity")},
    {"text": "fracture detection with bounding boxes on wrist films; fifteen percent are boxed",
     "expect": _e(D, ["fracture"], "map50", sup={"kind": "mixed", "box_fraction": 0.15})},
    {"text": "Chest X-rays. Pneumothorax. Chest tubes are in a lot of them; it must not use them. A missed "
             "pneumothorax can be fatal.",
     "expect": _e(B, ["pneumothorax"], risk="sensitivity", confounders={"chest_drain": "mitigate"})},
    {"text": "dermoscopy lesion types, all classes equal, balanced accuracy",
     "expect": _e(M, [], "balanced_accuracy")},
    {"text": "Melanoma on dermatoscopy. Hairs are everywhere; it must not be picking up on them.",
     "expect": _e(B, ["melanoma"], confounders={"hair": "mitigate"})},
    {"text": "wrist fracture yes/no; please just report on casts",
     "expect": _e(B, ["fracture"], confounders={"cast": "report"})},
    {"text": "Chest radiographs of children, pneumonia. False positives are the bigger worry for us.",
     "expect": _e(B, ["pneumonia"], risk="specificity")},
    {"text": "detect fractures with boxes on wrist films, four in forty images boxed, implants must not matter",
     "expect": _e(D, ["fracture"], "map50", confounders={"metal_implant": "mitigate"},
                  sup={"kind": "mixed", "box_fraction": 0.1})},
    {"text": "pneumothorax CXR. Ignore chest drains.",
     "expect": _e(B, ["pneumothorax"], confounders={"chest_drain": "mitigate"})},
    {"text": "pneumothorax on chest x-rays, target a sensitivity of 0.9",
     "expect": _e(B, ["pneumothorax"], "specificity_at_sensitivity",
                  {"sensitivity": 0.9, "class": "pneumothorax"}, risk="sensitivity")},
    {"text": "melanoma vs nevus, dermoscopy; both kinds of mistake are equally bad",
     "expect": _e(B, ["melanoma"])},
    {"text": "wrist radiographs, fracture or no fracture; text labels on the film could be a shortcut",
     "expect": _e(B, ["fracture"], confounders={"text_marker": "mitigate"})},
    {"text": "pneumonia in children's chest x-rays, ninety percent sensitivity minimum",
     "expect": _e(B, ["pneumonia"], "specificity_at_sensitivity", {"sensitivity": 0.9, "class": "pneumonia"},
                  risk="sensitivity")},
    {"text": "Box the pneumothorax on chest radiographs; every image has boxes.",
     "expect": _e(D, ["pneumothorax"], "map50", sup={"kind": "full", "box_fraction": 1.0})},
    {"text": "melanoma, dermoscopy. Ink markings are common; don't let the model use them.",
     "expect": _e(B, ["melanoma"], confounders={"ink_marking": "mitigate"})},
    {"text": "Chest x-rays from two hospitals, pneumothorax. Report whether the hospital matters; no need to "
             "correct for it.",
     "expect": _e(B, ["pneumothorax"], confounders={"site": "report"})},
    {"text": "wrist fractures, boxes on a third of the images, prioritise sensitivity",
     "expect": _e(D, ["fracture"], "map50", risk="sensitivity", sup={"kind": "mixed", "box_fraction": 1 / 3})},
    {"text": "Melanoma on dermoscopy. Removing a benign mole is a minor harm; missing a melanoma is "
             "catastrophic.",
     "expect": _e(B, ["melanoma"], risk="sensitivity")},
    {"text": "pneumonia CXR, minimise false positives",
     "expect": _e(B, ["pneumonia"], risk="specificity")},
    {"text": "Fractures on wrist films, no boxes needed. Splints are common; the model must ignore them.",
     "expect": _e(B, ["fracture"], confounders={"cast": "mitigate"})},
    {"text": "pneumothorax on CXR. chest drains are common. unsure whether to adjust for them",
     "expect": _e(B, ["pneumothorax"], confounders={"chest_drain": "report"})},
    {"text": "dermoscopy, all eight classes, melanoma especially, sensitivity at 80% specificity",
     "expect": _e(M, ["melanoma"], "sensitivity_at_specificity", {"specificity": 0.8, "class": "melanoma"},
                  risk="sensitivity")},
    {"text": "PneumoniaMNIST: pneumonia vs normal, AUC, 2 iterations",
     "expect": _e(B, ["pneumonia"])},
    {"text": "wrist fractures, yes or no. Missed fractures are unacceptable.",
     "expect": _e(B, ["fracture"], risk="sensitivity")},
    {"text": "pneumothorax on chest x-ray. Pacemakers appear in many films; they must not matter.",
     "expect": _e(B, ["pneumothorax"], confounders={"pacemaker": "mitigate"})},
]
