"""Third held-out part of the parse corpus, written after the third round of parser changes.

Scored once before any further change (whole spec 0.914: "X is what we need to avoid", "what I worry about
most", "the priority is recall", "ruling out", "eight lesion classes", "robust to that -", "the clinicians
will ignore it" were missed); those classes were then fixed, so this part is development data now. Two of its
labels expect a stated risk to beat the word "screening" in the task sentence, which the parser reads as a
risk too: it counts both.
"""

CXR = {"modality": "chest_xray", "task_type": "binary_classification", "kind": "binary"}
DERM = {"modality": "dermoscopy", "task_type": "multiclass_classification", "kind": "multi"}
DERMBIN = {"modality": "dermoscopy", "task_type": "binary_classification", "kind": "binary"}
MSK = {"modality": "musculoskeletal_xray", "task_type": "binary_classification", "kind": "binary"}
DET = {"modality": "musculoskeletal_xray", "task_type": "detection", "kind": "det"}
NONE = {"kind": "full", "box_fraction": None}

TASKS = [
    {**CXR, "targets": ["pneumothorax"], "texts": [
        "Pneumothorax screening on portable-free chest radiographs",
        "can you make me a pneumothorax model? chest x-rays",
        "CXR - does the patient have a pneumothorax",
        "I'm an ED consultant and want pneumothorax flagged on chest films",
        "pneumothorax classifcation, chest xray"]},
    {**CXR, "targets": ["pneumonia"], "texts": [
        "pneumonia vs no pneumonia on kids' chest radiographs",
        "PneumoniaMNIST - pneumonia detection",
        "paediatric chest x-ray pneumonia classifier",
        "flag childhood pneumonia on chest films"]},
    {**DERM, "targets": ["melanoma"], "emphasis": True, "texts": [
        "classify the dermoscopy lesions into all the categories, melanoma being the most important",
        "dermatoscopic multiclass lesion diagnosis; the crucial one is melanoma",
        "ISIC 2019 lesion categories on dermoscopy, focusing on melanoma"]},
    {**DERM, "targets": [], "texts": [
        "dermoscopy images: predict the lesion category",
        "classify dermatoscopic lesions into their types",
        "multi-class dermoscopy classification (the ISIC 2019 diagnostic classes)"]},
    {**DERMBIN, "targets": ["melanoma"], "texts": [
        "melanoma screening on dermoscopy",
        "detect melanoma in dermatoscopic images of moles",
        "melanoma versus benign nevi, dermoscopy images",
        "dermoscopy - is it melanoma?"]},
    {**MSK, "targets": ["fracture"], "texts": [
        "paediatric wrist radiographs: is there a fracture?",
        "classify wrist x-rays as fractured or normal",
        "wrist fracture classification for children's x-rays",
        "forearm films, fracture yes/no"]},
    {**DET, "targets": ["fracture"], "texts": [
        "find and box fractures on paediatric wrist radiographs",
        "wrist fracture localisation with bounding boxes",
        "fracture detection (boxes) on the GRAZPEDWRI-DX wrist x-rays",
        "put a box around each fracture on wrist films"]},
]

RISKS = [
    {"risk": "sensitivity", "texts": [
        "missed cases are what I worry about most", "we must not miss a single one",
        "sensitivity is paramount", "a missed case costs far more than a false alarm",
        "false positives are fine, false negatives are not", "it's for ruling out disease",
        "maximise sensitivity", "rather a false alarm than a missed case",
        "an extra look by a radiologist is cheap compared with a missed diagnosis",
        "the priority is recall", "never miss a positive"]},
    {"risk": "specificity", "texts": [
        "false positives are what we need to avoid", "specificity is the key metric for us",
        "too many false alarms and the clinicians will ignore it", "maximise specificity",
        "needless biopsies are worse than the odd missed case", "avoid over-calling"]},
    {"risk": "balanced", "texts": ["both mistakes are equally bad", "balanced trade-off between the errors"]},
]

METRICS = [
    {"name": "sensitivity_at_specificity", "params": {"specificity": 0.8}, "subject": "sensitivity",
     "texts": ["report sensitivity at 80% specificity", "sensitivity at eighty percent specificity"]},
    {"name": "sensitivity_at_specificity", "params": {"specificity": 0.7}, "subject": "sensitivity",
     "texts": ["sensitivity at 70% specificity"]},
    {"name": "specificity_at_sensitivity", "params": {"sensitivity": 0.95}, "subject": "specificity",
     "texts": ["specificity at 95% sensitivity", "specificity at ninety-five percent sensitivity"]},
    {"name": "specificity_at_sensitivity", "params": {"sensitivity": 0.9}, "subject": "sensitivity",
     "texts": ["we need at least 90% sensitivity"]},
    {"name": "balanced_accuracy", "params": {}, "for": "multi", "texts": ["judge it on balanced accuracy"]},
    {"name": "auroc", "params": {}, "texts": ["AUC is fine as the metric", "use AUROC"]},
    {"name": "f1", "params": {}, "texts": ["F1-score as the metric"]},
]

CONFOUNDERS = [
    {"modality": "chest_xray", "confounders": {"chest_drain": "mitigate"}, "texts": [
        "chest drains must not be what the model looks at",
        "many patients already have a chest drain, so make sure it's not using that",
        "the model should ignore chest tubes", "drains must not influence the prediction",
        "chest drains are common here. The model must not rely on them"]},
    {"modality": "chest_xray", "confounders": {"chest_drain": "report"}, "texts": [
        "chest drains don't matter to me", "just check whether chest drains affect it"]},
    {"modality": "chest_xray", "confounders": {"chest_drain": "report"}, "texts": [
        "there are chest drains in a lot of the films"]},
    {"modality": "chest_xray", "confounders": {"site": "mitigate"}, "texts": [
        "the x-rays come from several hospitals; the model must be robust to that"]},
    {"modality": "chest_xray", "confounders": {"sex": "report"}, "texts": ["report how it does by sex"]},
    {"modality": "dermoscopy", "confounders": {"ruler": "mitigate"}, "texts": [
        "rulers must not influence the prediction", "the model must not rely on rulers",
        "rulers appear in lots of the photos; make sure it ignores them"]},
    {"modality": "dermoscopy", "confounders": {"ink_marking": "mitigate"}, "texts": [
        "ink markings must not be used", "pen marks around the lesion must not matter"]},
    {"modality": "dermoscopy", "confounders": {"ruler": "report"}, "texts": ["don't worry about the rulers"]},
    {"modality": "musculoskeletal_xray", "confounders": {"cast": "mitigate"}, "texts": [
        "casts must not give it away", "a cast on the film must not matter"]},
    {"modality": "musculoskeletal_xray", "confounders": {"metal_implant": "mitigate"}, "texts": [
        "it must not rely on metal implants"]},
]

BOXES = [
    {"kind": "mixed", "fraction": 0.1, "texts": ["10% of the images have boxes", "one in ten images has boxes"]},
    {"kind": "mixed", "fraction": 0.25, "texts": ["a quarter of the images have bounding boxes",
                                                  "25 percent are boxed"]},
    {"kind": "mixed", "fraction": 0.04, "texts": ["two in fifty images are boxed"]},
    {"kind": "mixed", "fraction": 0.05, "texts": ["only five percent of the images have boxes"]},
    {"kind": "mixed", "fraction": 0.3, "texts": ["boxes on 300 of 1000 images"]},
    {"kind": "full", "fraction": 1.0, "texts": ["every image has boxes"]},
    {"kind": "mixed", "fraction": None, "texts": ["only some of the images have boxes"]},
]

BUDGETS = [
    {"texts": ["at most 5 iterations", "6 minutes per iteration", "an hour in total", "three rounds"]},
]

OPENERS = ["Hi all, ", "Good afternoon. ", "Right, ", "Hello, ", "Ask: "]
CLOSERS = [". Thanks in advance", ". Cheers", " - thank you", "."]


def _e(task_type, targets, metric="auroc", params=None, risk="balanced", confounders=None, sup=None):
    return {"task_type": task_type, "target_classes": targets, "metric": {"name": metric, "params": params or {}},
            "risk": risk, "confounders": confounders or {}, "supervision": sup or NONE}


B, M, D = "binary_classification", "multiclass_classification", "detection"

WHOLE = [
    {"text": "Pneumothorax on chest radiographs. Chest drains show up in most treated cases; I don't want the "
             "model to use them.",
     "expect": _e(B, ["pneumothorax"], confounders={"chest_drain": "mitigate"})},
    {"text": "pneumothorax CXR, sensitivity matters, chest drains must not matter",
     "expect": _e(B, ["pneumothorax"], risk="sensitivity", confounders={"chest_drain": "mitigate"})},
    {"text": "Wrist fractures in children, boxes on about one in ten images. Missing a fracture is worse than "
             "an extra x-ray.",
     "expect": _e(D, ["fracture"], "map50", risk="sensitivity", sup={"kind": "mixed", "box_fraction": 0.1})},
    {"text": "melanoma vs benign on dermoscopy. An unnecessary excision is far better than a missed melanoma.",
     "expect": _e(B, ["melanoma"], risk="sensitivity")},
    {"text": "- images: dermoscopy\n- task: all ISIC categories\n- melanoma matters most\n- rulers must not "
             "matter",
     "expect": _e(M, ["melanoma"], risk="sensitivity", confounders={"ruler": "mitigate"})},
    {"text": "Paediatric CXR pneumonia. Specificity at 90% sensitivity.",
     "expect": _e(B, ["pneumonia"], "specificity_at_sensitivity", {"sensitivity": 0.9, "class": "pneumonia"},
                  risk="specificity")},
    {"text": "fracture detection w/ boxes on wrist radiographs; twenty percent of images are boxed",
     "expect": _e(D, ["fracture"], "map50", sup={"kind": "mixed", "box_fraction": 0.2})},
    {"text": "Pneumothorax. Chest X-rays. Drains are in lots of the images; it must not cheat with them. A "
             "missed pneumothorax is the worst outcome.",
     "expect": _e(B, ["pneumothorax"], risk="sensitivity", confounders={"chest_drain": "mitigate"})},
    {"text": "dermoscopy lesions into their categories, balanced accuracy as the metric",
     "expect": _e(M, [], "balanced_accuracy")},
    {"text": "Melanoma on dermoscopy. Hair is common in these images; make sure the model ignores it.",
     "expect": _e(B, ["melanoma"], confounders={"hair": "mitigate"})},
    {"text": "wrist fracture yes/no; casts: report only",
     "expect": _e(B, ["fracture"], confounders={"cast": "report"})},
    {"text": "Chest x-rays, pneumonia in children. False alarms are the bigger problem here.",
     "expect": _e(B, ["pneumonia"], risk="specificity")},
    {"text": "box the fractures on wrist x-rays, three in sixty images have boxes, metal plates must not "
             "matter",
     "expect": _e(D, ["fracture"], "map50", confounders={"metal_implant": "mitigate"},
                  sup={"kind": "mixed", "box_fraction": 0.05})},
    {"text": "pneumothorax on CXR; ignore the drains",
     "expect": _e(B, ["pneumothorax"], confounders={"chest_drain": "mitigate"})},
    {"text": "pneumothorax on chest x-rays, aim for a sensitivity of at least 0.95",
     "expect": _e(B, ["pneumothorax"], "specificity_at_sensitivity",
                  {"sensitivity": 0.95, "class": "pneumothorax"}, risk="sensitivity")},
    {"text": "melanoma v naevus on dermoscopy; both errors are equally costly",
     "expect": _e(B, ["melanoma"])},
    {"text": "wrist x-rays, fracture or no fracture; the laterality markers could be a shortcut",
     "expect": _e(B, ["fracture"], confounders={"text_marker": "mitigate"})},
    {"text": "pneumonia screening on children's chest x-rays, eighty-five percent sensitivity at minimum",
     "expect": _e(B, ["pneumonia"], "specificity_at_sensitivity", {"sensitivity": 0.85, "class": "pneumonia"},
                  risk="sensitivity")},
    {"text": "Pneumothorax boxes on chest radiographs; all images are annotated with boxes.",
     "expect": _e(D, ["pneumothorax"], "map50", sup={"kind": "full", "box_fraction": 1.0})},
    {"text": "melanoma on dermoscopy. Ink marks are common; the model must not rely on them.",
     "expect": _e(B, ["melanoma"], confounders={"ink_marking": "mitigate"})},
    {"text": "Chest radiographs from three hospitals, pneumothorax. Tell me whether the hospital matters, but "
             "don't adjust for it.",
     "expect": _e(B, ["pneumothorax"], confounders={"site": "report"})},
    {"text": "wrist fractures, boxes on a fifth of the images, sensitivity first",
     "expect": _e(D, ["fracture"], "map50", risk="sensitivity", sup={"kind": "mixed", "box_fraction": 0.2})},
    {"text": "We want melanomas caught on dermoscopy. A biopsy of a benign mole is a nuisance; a missed "
             "melanoma is a disaster.",
     "expect": _e(B, ["melanoma"], risk="sensitivity")},
    {"text": "pneumonia CXR, keep the false alarms down",
     "expect": _e(B, ["pneumonia"], risk="specificity")},
    {"text": "Fractures on paediatric wrist films, no bounding boxes needed. Casts are everywhere; it shouldn't "
             "rely on them.",
     "expect": _e(B, ["fracture"], confounders={"cast": "mitigate"})},
    {"text": "pneumothorax on CXR. chest tubes are frequent. not sure if we should correct for them",
     "expect": _e(B, ["pneumothorax"], confounders={"chest_drain": "report"})},
    {"text": "dermoscopy, eight lesion classes, melanoma especially; sensitivity at 90% specificity",
     "expect": _e(M, ["melanoma"], "sensitivity_at_specificity", {"specificity": 0.9, "class": "melanoma"},
                  risk="sensitivity")},
    {"text": "PneumoniaMNIST: pneumonia, AUROC, at most 3 iterations",
     "expect": _e(B, ["pneumonia"])},
    {"text": "fractures on wrist films, yes or no. False negatives are unacceptable.",
     "expect": _e(B, ["fracture"], risk="sensitivity")},
    {"text": "pneumothorax, chest x-ray. The ECG leads are in half the films; they must not matter.",
     "expect": _e(B, ["pneumothorax"], confounders={"ecg_lead": "mitigate"})},
]
