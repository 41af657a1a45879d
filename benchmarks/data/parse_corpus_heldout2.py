"""Second held-out part of the parse corpus, written after the second round of parser changes.

Scored once before any further change (whole spec 0.864: "keep false positives to a minimum", "sensitivity
comes first", "both errors matter equally", "into the ISIC classes", "no boxes needed", "an unnecessary chest
drain", "which is fine" later in the clause, "not sure whether to correct for them" were missed); those
classes were then fixed, so this part is development data now.
"""

CXR = {"modality": "chest_xray", "task_type": "binary_classification", "kind": "binary"}
DERM = {"modality": "dermoscopy", "task_type": "multiclass_classification", "kind": "multi"}
DERMBIN = {"modality": "dermoscopy", "task_type": "binary_classification", "kind": "binary"}
MSK = {"modality": "musculoskeletal_xray", "task_type": "binary_classification", "kind": "binary"}
DET = {"modality": "musculoskeletal_xray", "task_type": "detection", "kind": "det"}
NONE = {"kind": "full", "box_fraction": None}

TASKS = [
    {**CXR, "targets": ["pneumothorax"], "texts": [
        "Help me build a pneumothorax detector for chest x-rays",
        "ptx on frontal chest radiographs - present or absent",
        "Our A&E wants pneumothoraces picked up on chest films",
        "binary classifier: pneumothorax vs no pneumothorax, CXR",
        "spot a collapsed lung on a chest radiograph",
        "penumothorax on chest xrays"]},
    {**CXR, "targets": ["pneumonia"], "texts": [
        "Pneumonia on paediatric chest films, PneumoniaMNIST",
        "kids' CXRs - pneumonia or healthy?",
        "chest radiographs of children: flag pneumonia",
        "a pneumonia classifier trained on pediatric chest x-rays"]},
    {**DERM, "targets": ["melanoma"], "emphasis": True, "texts": [
        "Dermoscopy lesion classification across all categories, with melanoma as the key priority",
        "classify dermatoscopic images into the ISIC classes; melanoma is especially important",
        "multiclass skin lesions (dermoscopy) - it's melanoma that matters most"]},
    {**DERM, "targets": [], "texts": [
        "sort dermatoscopy images into the lesion categories",
        "classify dermoscopic skin lesions into diagnostic categories (ISIC 2019)",
        "lesion type classification for dermoscopy, all eight classes"]},
    {**DERMBIN, "targets": ["melanoma"], "texts": [
        "melanoma vs benign naevus on dermoscopic images",
        "Find the melanomas in our dermoscopy set",
        "mole or melanoma? dermatoscopy",
        "melanoma classification on dermoscopy photos"]},
    {**MSK, "targets": ["fracture"], "texts": [
        "fracture present / absent on paediatric wrist x-rays",
        "Wrist films from kids: classify fracture vs no fracture",
        "pick out fractured wrists on radiographs",
        "distal radius fracture yes or no on wrist x-rays"]},
    {**DET, "targets": ["fracture"], "texts": [
        "Draw bounding boxes around the fractures on children's wrist radiographs",
        "wrist fracture detection, boxes, GRAZPEDWRI-DX",
        "localize fractures with boxes on pediatric wrist x-rays",
        "I'd like the fractures boxed on our wrist films"]},
]

RISKS = [
    {"risk": "sensitivity", "texts": [
        "missing a case is the worst outcome", "I'd rather see extra false positives than any missed cases",
        "sensitivity comes first", "a missed diagnosis is far more costly than a false alarm",
        "don't miss any", "it's meant as a screening tool", "we need very high sensitivity",
        "prioritize recall", "an extra scan is a small price next to a missed case",
        "false negatives are unacceptable", "better a false alarm than a missed case"]},
    {"risk": "specificity", "texts": [
        "we can't cope with lots of false alarms", "specificity is what counts",
        "a false positive triggers a needless biopsy, which is worse than a missed case",
        "keep false positives to a minimum", "prioritise specificity",
        "too many unnecessary referrals already", "high specificity matters most"]},
    {"risk": "balanced", "texts": ["both errors matter equally", "balanced errors please"]},
]

METRICS = [
    {"name": "sensitivity_at_specificity", "params": {"specificity": 0.9}, "subject": "sensitivity",
     "texts": ["report sensitivity at 90% specificity", "sensitivity at ninety percent specificity"]},
    {"name": "sensitivity_at_specificity", "params": {"specificity": 0.75}, "subject": "sensitivity",
     "texts": ["sensitivity at 75% specificity"]},
    {"name": "specificity_at_sensitivity", "params": {"sensitivity": 0.85}, "subject": "specificity",
     "texts": ["specificity at 85% sensitivity", "specificity at eighty-five percent sensitivity"]},
    {"name": "specificity_at_sensitivity", "params": {"sensitivity": 0.98}, "subject": "sensitivity",
     "texts": ["it must hit 98% sensitivity"]},
    {"name": "balanced_accuracy", "params": {}, "for": "multi", "texts": ["balanced accuracy is the metric"]},
    {"name": "auroc", "params": {}, "texts": ["use the AUC", "AUROC please"]},
    {"name": "f1", "params": {}, "texts": ["optimise the F1 score"]},
]

CONFOUNDERS = [
    {"modality": "chest_xray", "confounders": {"chest_drain": "mitigate"}, "texts": [
        "the model must not exploit chest drains",
        "lots of treated patients have a drain in; make sure it doesn't rely on that",
        "chest tubes should be ignored by the model", "chest drains shouldn't matter",
        "drains are in many of the positive films. The model must not use them"]},
    {"modality": "chest_xray", "confounders": {"chest_drain": "report"}, "texts": [
        "don't bother about chest drains", "only report whether chest tubes affect it"]},
    {"modality": "chest_xray", "confounders": {"chest_drain": "report"}, "texts": [
        "many films have chest drains"]},
    {"modality": "chest_xray", "confounders": {"site": "mitigate"}, "texts": [
        "it has to work equally across different hospitals"]},
    {"modality": "chest_xray", "confounders": {"age": "report"}, "texts": ["tell me whether age matters"]},
    {"modality": "dermoscopy", "confounders": {"ruler": "mitigate"}, "texts": [
        "rulers must not be a shortcut", "the ruler in the frame must not drive the answer",
        "some photos include rulers; don't let the model use them"]},
    {"modality": "dermoscopy", "confounders": {"ink_marking": "mitigate"}, "texts": [
        "ink marks must not influence the model", "skin markings should be ignored"]},
    {"modality": "dermoscopy", "confounders": {"ruler": "report"}, "texts": ["rulers don't worry me"]},
    {"modality": "musculoskeletal_xray", "confounders": {"cast": "mitigate"}, "texts": [
        "casts must not fool it", "a splint or cast gives it away; the model must not use that"]},
    {"modality": "musculoskeletal_xray", "confounders": {"metal_implant": "mitigate"}, "texts": [
        "metal implants must not be used as a cue"]},
]

BOXES = [
    {"kind": "mixed", "fraction": 0.15, "texts": ["15% of the images have boxes", "fifteen percent are boxed"]},
    {"kind": "mixed", "fraction": 0.25, "texts": ["one in four images has boxes", "a quarter are boxed"]},
    {"kind": "mixed", "fraction": 0.08, "texts": ["four in fifty images have bounding boxes"]},
    {"kind": "mixed", "fraction": 0.02, "texts": ["only 2 percent are annotated with boxes"]},
    {"kind": "mixed", "fraction": 0.4, "texts": ["boxes on 400 of 1000 images"]},
    {"kind": "full", "fraction": 1.0, "texts": ["all images have boxes"]},
    {"kind": "mixed", "fraction": None, "texts": ["just a few images have boxes"]},
]

BUDGETS = [
    {"texts": ["at most four iterations", "give each iteration 8 minutes", "90 minutes in total",
               "2 runs"]},
]

OPENERS = ["Hiya, ", "Dear team, ", "OK so ", "Hello - ", "Task: "]
CLOSERS = [". Ta", ". Best wishes", "!", ". Thanks a lot"]


def _e(task_type, targets, metric="auroc", params=None, risk="balanced", confounders=None, sup=None):
    return {"task_type": task_type, "target_classes": targets, "metric": {"name": metric, "params": params or {}},
            "risk": risk, "confounders": confounders or {}, "supervision": sup or NONE}


B, M, D = "binary_classification", "multiclass_classification", "detection"

WHOLE = [
    {"text": "Chest X-rays, pneumothorax. Half of our positives have chest drains - they mustn't count.",
     "expect": _e(B, ["pneumothorax"], confounders={"chest_drain": "mitigate"})},
    {"text": "pneumothorax on CXR. drains are common in this set and I don't want the model leaning on them. "
             "sensitivity matters.",
     "expect": _e(B, ["pneumothorax"], risk="sensitivity", confounders={"chest_drain": "mitigate"})},
    {"text": "Wrist fractures with boxes please; only one in five radiographs has boxes. Casts must not matter.",
     "expect": _e(D, ["fracture"], "map50", confounders={"cast": "mitigate"},
                  sup={"kind": "mixed", "box_fraction": 0.2})},
    {"text": "Dermoscopy - melanoma vs the rest. A benign biopsy is an inconvenience; a missed melanoma can be "
             "fatal.",
     "expect": _e(B, ["melanoma"], risk="sensitivity")},
    {"text": "- modality: chest x-ray\n- finding: pneumonia (children)\n- metric: sensitivity at 80% "
             "specificity",
     "expect": _e(B, ["pneumonia"], "sensitivity_at_specificity", {"specificity": 0.8, "class": "pneumonia"},
                  risk="sensitivity")},
    {"text": "ISIC categories on dermoscopy, every class counts the same, balanced accuracy",
     "expect": _e(M, [], "balanced_accuracy")},
    {"text": "pneumothorax, chest radiographs. Pacemakers are common in the older patients; don't let it cheat "
             "with them.",
     "expect": _e(B, ["pneumothorax"], confounders={"pacemaker": "mitigate"})},
    {"text": "fracture detection on wrist x-rays with bounding boxes, 3 out of 60 images annotated",
     "expect": _e(D, ["fracture"], "map50", sup={"kind": "mixed", "box_fraction": 0.05})},
    {"text": "Melanoma on dermatoscopy. The rulers: ignore them.",
     "expect": _e(B, ["melanoma"], confounders={"ruler": "mitigate"})},
    {"text": "pneumonia CXR kids - we'd rather over-call than miss one",
     "expect": _e(B, ["pneumonia"], risk="sensitivity")},
    {"text": "wrist fracture, yes/no. Check if the casts matter, but only report it.",
     "expect": _e(B, ["fracture"], confounders={"cast": "report"})},
    {"text": "pneumothorax chest x-rays, specificity at 95% sensitivity, drains must be ignored",
     "expect": _e(B, ["pneumothorax"], "specificity_at_sensitivity",
                  {"sensitivity": 0.95, "class": "pneumothorax"}, risk="specificity",
                  confounders={"chest_drain": "mitigate"})},
    {"text": "Dermoscopic images. I need melanoma picked up - a false alarm just means a second look, which is "
             "fine.",
     "expect": _e(B, ["melanoma"], risk="sensitivity")},
    {"text": "Pediatric chest x-rays, pneumonia vs normal. False positives send kids for needless antibiotics, "
             "which is the bigger harm here.",
     "expect": _e(B, ["pneumonia"], risk="specificity")},
    {"text": "Box the fractures (wrist radiographs). Every radiograph has boxes. 2 iterations.",
     "expect": _e(D, ["fracture"], "map50", sup={"kind": "full", "box_fraction": 1.0})},
    {"text": "melanoma vs nevus, dermoscopy; hair and dark corners are shortcuts to avoid",
     "expect": _e(B, ["melanoma"], confounders={"hair": "mitigate", "dark_corner": "mitigate"})},
    {"text": "classify pneumothorax on chest xray. the scanners differ between sites; check if that matters",
     "expect": _e(B, ["pneumothorax"], confounders={"scanner": "report"})},
    {"text": "pnuemonia in children, chest films. Ninety-two percent sensitivity needed.",
     "expect": _e(B, ["pneumonia"], "specificity_at_sensitivity", {"sensitivity": 0.92, "class": "pneumonia"},
                  risk="sensitivity")},
    {"text": "wrist x-rays: fractures, with boxes; a tenth of the images are boxed; it's a rule-out tool",
     "expect": _e(D, ["fracture"], "map50", risk="sensitivity", sup={"kind": "mixed", "box_fraction": 0.1})},
    {"text": "Chest radiographs - pneumothorax. Chest drains present in lots of images. Not sure whether to "
             "correct for them.",
     "expect": _e(B, ["pneumothorax"], confounders={"chest_drain": "report"})},
    {"text": "dermoscopy: all lesion types, melanoma matters most; ink markings mustn't matter; sensitivity at "
             "85% specificity",
     "expect": _e(M, ["melanoma"], "sensitivity_at_specificity", {"specificity": 0.85, "class": "melanoma"},
                  risk="sensitivity", confounders={"ink_marking": "mitigate"})},
    {"text": "fractures on wrist films (no boxes needed). Metalwork from old surgery must not be what it "
             "looks at.",
     "expect": _e(B, ["fracture"], confounders={"metal_implant": "mitigate"})},
    {"text": "Pneumothorax on CXR. An unnecessary chest drain is bad, but a missed tension pneumothorax is far "
             "worse.",
     "expect": _e(B, ["pneumothorax"], risk="sensitivity")},
    {"text": "PneumoniaMNIST pneumonia, AUROC, 3 iterations of 5 minutes",
     "expect": _e(B, ["pneumonia"])},
]
