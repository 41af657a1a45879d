"""First held-out part of the parse corpus, written after the first round of parser changes.

Scored once before any further change (whole spec 0.905: passive "must be ignored", "let one slip through",
"every single image has boxes", "the thing I fear", "hospital of origin", "don't correct for it" were missed);
those classes were then fixed, so this part is development data now.
"""

PTX = {"modality": "chest_xray", "task_type": "binary_classification", "kind": "binary"}
DERM = {"modality": "dermoscopy", "task_type": "multiclass_classification", "kind": "multi"}
DERMBIN = {"modality": "dermoscopy", "task_type": "binary_classification", "kind": "binary"}
MSK = {"modality": "musculoskeletal_xray", "task_type": "binary_classification", "kind": "binary"}
DET = {"modality": "musculoskeletal_xray", "task_type": "detection", "kind": "det"}
NONE = {"kind": "full", "box_fraction": None}

TASKS = [
    {**PTX, "targets": ["pneumothorax"], "texts": [
        "I'd like a pneumothorax classifier for chest radiographs",
        "Chest X-ray triage: is there a pneumothorax or not?",
        "pneumothorax yes/no on adult CXRs",
        "Build me a model for spotting pneumothoraces on chest films please",
        "We're after pneumothorax detection on chest x rays",
        "the SIIM chest x-rays - flag the ones with a pneumothorax",
        "pneumothoraxes on chest radiographs, binary"]},
    {**PTX, "targets": ["pneumonia"], "texts": [
        "pneumonia versus normal on children's chest X-rays (PneumoniaMNIST)",
        "paediatric CXR: does the child have pneumonia?",
        "train a pneumonia detector on pediatric chest films",
        "Pneumonia classification, chest radiographs from kids"]},
    {**DERM, "targets": ["melanoma"], "emphasis": True, "texts": [
        "Classify the dermoscopy images into every lesion category; melanoma is what matters most",
        "multiclass dermoscopic lesion classification where melanoma is the top priority",
        "Sort our dermatoscopic pictures into the ISIC diagnostic classes - we care most about melanoma"]},
    {**DERM, "targets": [], "texts": [
        "Categorise dermoscopic lesions into the eight ISIC 2019 classes",
        "I want the skin lesions on dermoscopy sorted into their diagnostic categories",
        "multi-class classification of dermoscopy images by lesion type"]},
    {**DERMBIN, "targets": ["melanoma"], "texts": [
        "melanoma or not, from dermoscopy photographs",
        "Tell melanomas apart from benign moles on dermatoscopic images",
        "dermoscopy: melanoma yes or no",
        "a melanoma detector for our dermatoscopy clinic"]},
    {**MSK, "targets": ["fracture"], "texts": [
        "Wrist radiographs: fractured or not?",
        "paediatric wrist trauma films, I want fracture vs normal",
        "a classifier for fractures on kids' wrist x-rays",
        "fractrue yes/no on forearm radiographs"]},
    {**DET, "targets": ["fracture"], "texts": [
        "Put bounding boxes on wrist fractures in children's radiographs",
        "fracture localisation with boxes on GRAZPEDWRI-DX",
        "I need fractures boxed on paediatric wrist x-rays",
        "object detection of fractures on wrist films"]},
]

RISKS = [
    {"risk": "sensitivity", "texts": [
        "sensitivity is what we care about", "we cannot miss these", "missing one would be a disaster",
        "I would much rather over-call than let one slip through", "a delayed diagnosis is the thing I fear",
        "an extra review is nothing next to a missed case", "high sensitivity please", "recall matters most",
        "put sensitivity first", "it's a rule-out tool", "false negatives cost far more than false positives",
        "we'd accept some false alarms rather than miss a case", "catch as many as possible"]},
    {"risk": "specificity", "texts": [
        "false alarms are the bigger problem for us", "specificity is the priority",
        "we get far too many false positives already", "keep unnecessary biopsies down",
        "a needless referral costs more than a missed case here", "we want high specificity",
        "over-diagnosis is what worries me", "specificity matters most to us"]},
    {"risk": "balanced", "texts": ["both kinds of errors are equally costly", "a balanced trade-off is fine"]},
]

METRICS = [
    {"name": "sensitivity_at_specificity", "params": {"specificity": 0.85}, "subject": "sensitivity",
     "texts": ["measure sensitivity at 85% specificity", "sensitivity at eighty-five percent specificity"]},
    {"name": "sensitivity_at_specificity", "params": {"specificity": 0.95}, "subject": "sensitivity",
     "texts": ["sensitivity at a fixed specificity of 0.95"]},
    {"name": "specificity_at_sensitivity", "params": {"sensitivity": 0.9}, "subject": "specificity",
     "texts": ["specificity at 90% sensitivity", "specificity at ninety percent sensitivity"]},
    {"name": "specificity_at_sensitivity", "params": {"sensitivity": 0.97}, "subject": "sensitivity",
     "texts": ["it has to reach 97% sensitivity"]},
    {"name": "balanced_accuracy", "params": {}, "for": "multi", "texts": ["score it on balanced accuracy"]},
    {"name": "auroc", "params": {}, "texts": ["ROC AUC is the metric", "evaluate with AUROC"]},
    {"name": "f1", "params": {}, "texts": ["F1 please"]},
]

CONFOUNDERS = [
    {"modality": "chest_xray", "confounders": {"chest_drain": "mitigate"}, "texts": [
        "chest drains must not drive the prediction",
        "a lot of the positives already have a chest tube, so don't let it learn from that",
        "intercostal drains are a giveaway; the model has to ignore them",
        "please make sure the drains play no part",
        "the model must not be looking at the chest drains"]},
    {"modality": "chest_xray", "confounders": {"chest_drain": "report"}, "texts": [
        "I'm not worried about the chest drains", "just tell me if the drains matter"]},
    {"modality": "chest_xray", "confounders": {"chest_drain": "report"}, "texts": [
        "some of the films have drains in"]},
    {"modality": "chest_xray", "confounders": {"site": "mitigate"}, "texts": [
        "the films come from three hospitals and it must generalise across them"]},
    {"modality": "chest_xray", "confounders": {"sex": "report"}, "texts": ["check whether sex makes a difference"]},
    {"modality": "dermoscopy", "confounders": {"ruler": "mitigate"}, "texts": [
        "rulers should not influence it", "a ruler next to the lesion must not matter",
        "there are rulers in many images; it must not use them"]},
    {"modality": "dermoscopy", "confounders": {"ink_marking": "mitigate"}, "texts": [
        "ink markings are a shortcut to avoid", "surgical pen marks must be ignored"]},
    {"modality": "dermoscopy", "confounders": {"ruler": "report"}, "texts": ["rulers are fine, no need to mitigate"]},
    {"modality": "musculoskeletal_xray", "confounders": {"cast": "mitigate"}, "texts": [
        "casts are a dead giveaway, it must not rely on them", "plaster casts must not matter"]},
    {"modality": "musculoskeletal_xray", "confounders": {"metal_implant": "mitigate"}, "texts": [
        "hardware like plates and screws should not sway the model"]},
]

BOXES = [
    {"kind": "mixed", "fraction": 0.1, "texts": ["only ten percent of the images carry boxes",
                                                 "one image in ten is boxed"]},
    {"kind": "mixed", "fraction": 0.2, "texts": ["boxes exist for a fifth of the images",
                                                 "20% have bounding boxes"]},
    {"kind": "mixed", "fraction": 0.06, "texts": ["three in fifty images have boxes"]},
    {"kind": "mixed", "fraction": 0.3, "texts": ["thirty percent of the radiographs are annotated with boxes"]},
    {"kind": "mixed", "fraction": 0.5, "texts": ["half of the images have boxes"]},
    {"kind": "full", "fraction": 1.0, "texts": ["every single image has bounding boxes"]},
    {"kind": "mixed", "fraction": None, "texts": ["only a subset of the images have boxes"]},
]

BUDGETS = [
    {"texts": ["no more than 3 iterations", "ten minutes each run", "an hour overall", "3 rounds max"]},
]

OPENERS = ["Hey, ", "Morning! ", "So: ", "Hi there - ", "Request - "]
CLOSERS = [". Many thanks", ", thx", ". Cheers!", " :-)"]


def _e(task_type, targets, metric="auroc", params=None, risk="balanced", confounders=None, sup=None):
    return {"task_type": task_type, "target_classes": targets, "metric": {"name": metric, "params": params or {}},
            "risk": risk, "confounders": confounders or {}, "supervision": sup or NONE}


B, M, D = "binary_classification", "multiclass_classification", "detection"

WHOLE = [
    {"text": "Pneumothorax on chest X-rays. A lot of these patients already have chest drains in, so please "
             "don't let the model lean on them.",
     "expect": _e(B, ["pneumothorax"], confounders={"chest_drain": "mitigate"})},
    {"text": "CXR, pneumothorax. Chest tubes are common in our ICU films - it shouldn't rely on them. "
             "A missed pneumothorax can kill.",
     "expect": _e(B, ["pneumothorax"], risk="sensitivity", confounders={"chest_drain": "mitigate"})},
    {"text": "pneumothorax on chest x-rays\n- chest drains are a shortcut\n- sensitivity matters\n- 3 iterations",
     "expect": _e(B, ["pneumothorax"], risk="sensitivity", confounders={"chest_drain": "mitigate"})},
    {"text": "For our paediatric ED: wrist radiographs, find fractures and box them. Only about one in twenty "
             "images has boxes drawn. A missed fracture is worse than an extra x-ray.",
     "expect": _e(D, ["fracture"], "map50", risk="sensitivity", sup={"kind": "mixed", "box_fraction": 0.05})},
    {"text": "melanoma vs everything else on dermoscopy; an unnecessary excision is a small price compared to a "
             "missed melanoma",
     "expect": _e(B, ["melanoma"], risk="sensitivity")},
    {"text": "Dermoscopy. Classify into all the ISIC categories. Melanoma above all. Report sensitivity at 80% "
             "specificity. Rulers and ink should not matter.",
     "expect": _e(M, ["melanoma"], "sensitivity_at_specificity", {"specificity": 0.8, "class": "melanoma"},
                  risk="sensitivity", confounders={"ruler": "mitigate", "ink_marking": "mitigate"})},
    {"text": "pediatric pneumonia CXRs (PneumoniaMNIST) - specificity at 95% sensitivity",
     "expect": _e(B, ["pneumonia"], "specificity_at_sensitivity", {"sensitivity": 0.95, "class": "pneumonia"},
                  risk="specificity")},
    {"text": "Fracture detection w/ bounding boxes on wrist films, twenty five percent of them boxed",
     "expect": _e(D, ["fracture"], "map50", sup={"kind": "mixed", "box_fraction": 0.25})},
    {"text": "chest xray pnuemothorax. hospital of origin must not matter. over-calling is tolerable, missing "
             "one is not",
     "expect": _e(B, ["pneumothorax"], risk="sensitivity", confounders={"site": "mitigate"})},
    {"text": "Skin lesion classification on dermoscopy into types. Not interested in melanoma particularly; "
             "balanced accuracy as the metric.",
     "expect": _e(M, [], "balanced_accuracy")},
    {"text": "melanoma on dermatoscopy images. Hair is everywhere in these photos. Make sure it isn't just "
             "picking up on it.",
     "expect": _e(B, ["melanoma"], confounders={"hair": "mitigate"})},
    {"text": "Wrist fractures, yes or no. Casts: just report them, don't fight them.",
     "expect": _e(B, ["fracture"], confounders={"cast": "report"})},
    {"text": "Chest radiographs. Target: pneumonia. Specificity is king - the wards are full of false alarms.",
     "expect": _e(B, ["pneumonia"], risk="specificity")},
    {"text": "detect fractures on forearm x-rays with boxes. two in forty images have boxes. metal implants "
             "shouldn't fool it.",
     "expect": _e(D, ["fracture"], "map50", confounders={"metal_implant": "mitigate"},
                  sup={"kind": "mixed", "box_fraction": 0.05})},
    {"text": "Pneumothorax, CXR. I don't want it to use the drains.",
     "expect": _e(B, ["pneumothorax"], confounders={"chest_drain": "mitigate"})},
    {"text": "pneumothorax classification on chest x-rays, aim for sensitivity of 0.9 at least",
     "expect": _e(B, ["pneumothorax"], "specificity_at_sensitivity", {"sensitivity": 0.9,
                                                                        "class": "pneumothorax"},
                  risk="sensitivity")},
    {"text": "Dermoscopy, melanoma v naevus. Both mistakes are equally bad.",
     "expect": _e(B, ["melanoma"])},
    {"text": "paediatric wrist x-rays - fracture or not - the L/R markers could be a shortcut, get rid of "
             "that",
     "expect": _e(B, ["fracture"], confounders={"text_marker": "mitigate"})},
    {"text": "I run a screening service: pneumonia on children's chest x-rays. Ninety percent sensitivity is "
             "the minimum.",
     "expect": _e(B, ["pneumonia"], "specificity_at_sensitivity", {"sensitivity": 0.9, "class": "pneumonia"},
                  risk="sensitivity")},
    {"text": "Box pneumothoraces on chest films; every image is annotated.",
     "expect": _e(D, ["pneumothorax"], "map50", sup={"kind": "full", "box_fraction": 1.0})},
    {"text": "melanoma detection (dermoscopy). Ink marks are common; ignore them.",
     "expect": _e(B, ["melanoma"], confounders={"ink_marking": "mitigate"})},
    {"text": "Chest x-rays from two sites, pneumothorax. Please check whether the site matters but don't "
             "correct for it.",
     "expect": _e(B, ["pneumothorax"], confounders={"site": "report"})},
    {"text": "wrist fractures with bounding boxes; a third of images labelled with boxes; sensitivity first",
     "expect": _e(D, ["fracture"], "map50", risk="sensitivity", sup={"kind": "mixed", "box_fraction": 1 / 3})},
    {"text": "Our derm clinic wants melanoma flagged on dermoscopy. Sending a benign mole for biopsy is "
             "annoying; missing a melanoma is unforgivable.",
     "expect": _e(B, ["melanoma"], risk="sensitivity")},
    {"text": "pneumonia on CXR (kids). 12 percent false positives at most.",
     "expect": _e(B, ["pneumonia"], risk="specificity")},
]
