"""Development part of the parse corpus: sentences written while the offline parser was being developed."""

PTX = {"modality": "chest_xray", "task_type": "binary_classification", "kind": "binary"}
PNA = {"modality": "chest_xray", "task_type": "binary_classification", "kind": "binary"}
DERM = {"modality": "dermoscopy", "task_type": "multiclass_classification", "kind": "multi"}
DERMBIN = {"modality": "dermoscopy", "task_type": "binary_classification", "kind": "binary"}
FRX = {"modality": "musculoskeletal_xray", "task_type": "binary_classification", "kind": "binary"}
DET = {"modality": "musculoskeletal_xray", "task_type": "detection", "kind": "det"}

TASKS = [
    {**PTX, "targets": ["pneumothorax"], "texts": [
        "pneumothorax on chest X-rays", "detect pneumothorax on CXR", "PTX vs no PTX on chest radiographs",
        "I need a model that flags pneumothoraces on our chest films",
        "find collapsed lungs on chest x-rays", "pneumothroax detection, chest xrays",
        "Could you train something to spot a pneumothorax on a chest radiograph?"]},
    {**PNA, "targets": ["pneumonia"], "texts": [
        "pneumonia on paediatric chest X-rays", "PneumoniaMNIST: pneumonia vs normal",
        "classify chest x-rays of children as pneumonia or normal", "pnuemonia on pediatric CXR",
        "We want to pick out pneumonia on kids' chest radiographs"]},
    {**DERM, "targets": ["melanoma"], "emphasis": True, "texts": [
        "classify dermoscopic lesions into the ISIC categories, melanoma matters most",
        "sort dermoscopy images into the lesion types; melanoma is the priority",
        "multi-class skin lesion classification (ISIC 2019), especially melanoma",
        "categorise dermatoscopic images into all eight diagnostic classes, above all melanoma"]},
    {**DERM, "targets": [], "texts": [
        "classify skin lesions on dermoscopy into their categories",
        "lesion type classification on dermoscopic images", "ISIC 2019, all classes",
        "tell the skin lesion categories apart on dermatoscopy"]},
    {**DERMBIN, "targets": ["melanoma"], "texts": [
        "melanoma vs nevus on dermoscopy", "melanoma detection in dermoscopic images",
        "is this mole a melanoma? dermoscopy", "spot melanomas among moles (dermatoscopy photos)",
        "melanomma vs benign naevi on dermoscopy"]},
    {**FRX, "targets": ["fracture"], "texts": [
        "wrist fractures on radiographs, fracture or no fracture", "fracture vs no fracture on wrist X-rays",
        "flag broken wrists on paediatric radiographs", "fracutre classification on forearm x-rays",
        "Does this wrist film show a fracture? Yes/no per image"]},
    {**DET, "targets": ["fracture"], "texts": [
        "detect wrist fractures with bounding boxes", "draw boxes around fractures on wrist X-rays",
        "localise fractures on paediatric wrist radiographs (GRAZPEDWRI-DX), boxes please",
        "fracture detection with boxes on wrist films", "box the fractures on forearm x-rays"]},
    {"modality": "chest_xray", "task_type": "detection", "kind": "det", "targets": ["pneumothorax"], "texts": [
        "localise pneumothorax on chest X-rays with bounding boxes",
        "draw boxes around the pneumothorax on SIIM chest radiographs"]},
]

RISKS = [
    {"risk": "sensitivity", "texts": [
        "sensitivity matters", "sensitivity matters most", "we can't afford to miss one",
        "never miss a case", "missing one is far worse than a false alarm", "it's for screening",
        "prioritise sensitivity", "recall is what counts", "an unnecessary biopsy is cheap next to a late diagnosis",
        "I'd rather have a few false alarms than miss a case", "a missed case can kill",
        "false negatives are the worst", "sensitivity is key", "favour sensitivity over specificity",
        "a false alarm is acceptable, a missed diagnosis is not",
        "better an extra scan than a missed case"]},
    {"risk": "specificity", "texts": [
        "too many false alarms would swamp the clinic", "specificity matters more",
        "avoid unnecessary biopsies", "false positives are costly for us", "prioritize specificity",
        "specificity is what counts", "a missed case is ok, it will be caught at follow-up",
        "unnecessary referrals are worse than a missed case", "we need high specificity",
        "over-calling is our big problem"]},
    {"risk": "balanced", "texts": ["both errors are equally bad", "balanced trade-off please"]},
]

METRICS = [
    {"name": "sensitivity_at_specificity", "params": {"specificity": 0.8}, "subject": "sensitivity",
     "texts": ["sensitivity at 80% specificity", "report sensitivity at a specificity of 0.8",
               "sens at 80 percent spec", "sensitivity at eighty percent specificity"]},
    {"name": "sensitivity_at_specificity", "params": {"specificity": 0.9}, "subject": "sensitivity",
     "texts": ["sensitivity at 90% specificity", "sensitivity at ninety percent specificity"]},
    {"name": "specificity_at_sensitivity", "params": {"sensitivity": 0.95}, "subject": "specificity",
     "texts": ["specificity at 95% sensitivity", "spec at a fixed 95% sensitivity"]},
    {"name": "specificity_at_sensitivity", "params": {"sensitivity": 0.92}, "subject": "sensitivity",
     "texts": ["we need 92% sensitivity", "sensitivity of at least 92%"]},
    {"name": "balanced_accuracy", "params": {}, "for": "multi",
     "texts": ["optimise balanced accuracy", "use balanced accuracy as the metric"]},
    {"name": "auroc", "params": {}, "texts": ["AUROC as the metric", "judge it by the AUC",
                                              "area under the ROC curve please"]},
    {"name": "f1", "params": {}, "texts": ["optimise F1", "F1 score is the metric"]},
]

CONFOUNDERS = [
    {"modality": "chest_xray", "confounders": {"chest_drain": "mitigate"}, "texts": [
        "don't let the model cheat by looking at chest drains",
        "many films show chest drains; make sure the model does not rely on them",
        "chest tubes are a known shortcut", "ignore the chest drains",
        "the model must not be influenced by drains", "drains are common. Don't let it use them",
        "make sure it is not just picking up the chest tubes",
        "chest drains must not matter", "thoracostomy tubes should play no part"]},
    {"modality": "chest_xray", "confounders": {"chest_drain": "report"}, "texts": [
        "don't worry about chest drains", "just report whether chest drains matter",
        "drains are fine to use"]},
    {"modality": "chest_xray", "confounders": {"chest_drain": "report"}, "texts": [
        "some images have chest drains", "chest drains present in many images"]},
    {"modality": "chest_xray", "confounders": {"site": "mitigate"}, "texts": [
        "the images come from several hospitals; it must work across hospitals",
        "make sure it is robust across sites"]},
    {"modality": "chest_xray", "confounders": {"sex": "report", "age": "report"}, "texts": [
        "check whether sex and age matter", "report performance by sex and age"]},
    {"modality": "dermoscopy", "confounders": {"ruler": "mitigate"}, "texts": [
        "rulers must not be used as a shortcut", "ignore the rulers",
        "some photos have rulers; don't let it rely on them", "the model should ignore rulers"]},
    {"modality": "dermoscopy", "confounders": {"ruler": "mitigate", "ink_marking": "mitigate"}, "texts": [
        "rulers and ink markings are everywhere, these must not matter",
        "surgical skin markers and rulers could fool it"]},
    {"modality": "dermoscopy", "confounders": {"ink_marking": "report"}, "texts": [
        "don't worry about pen markings", "you can ignore the ink marks"]},
    {"modality": "dermoscopy", "confounders": {"hair": "mitigate"}, "texts": [
        "hair is a confounder", "it must not key on hair"]},
    {"modality": "musculoskeletal_xray", "confounders": {"cast": "mitigate"}, "texts": [
        "casts and splints should not fool the model", "a cast is a giveaway, mitigate it",
        "plaster casts are common; the model must not lean on them"]},
    {"modality": "musculoskeletal_xray", "confounders": {"metal_implant": "mitigate"}, "texts": [
        "metal implants are a shortcut", "don't let it cheat with the screws and plates"]},
    {"modality": "musculoskeletal_xray", "confounders": {"text_marker": "report"}, "texts": [
        "check whether the L/R markers matter"]},
]

BOXES = [
    {"kind": "mixed", "fraction": 0.05, "texts": ["only 5% of images have boxes",
                                                  "boxes on one in twenty images", "5 percent are boxed"]},
    {"kind": "mixed", "fraction": 0.25, "texts": ["a quarter of the images have boxes",
                                                  "only a quarter of the images are annotated",
                                                  "boxes for 25% of the images"]},
    {"kind": "mixed", "fraction": 0.04, "texts": ["two in fifty images have bounding boxes"]},
    {"kind": "mixed", "fraction": 0.12, "texts": ["twelve percent of the images are boxed"]},
    {"kind": "mixed", "fraction": 0.1, "texts": ["boxes on 200 of 2000 images", "one in ten has a box"]},
    {"kind": "full", "fraction": 1.0, "texts": ["every image has boxes", "all images are fully annotated with boxes"]},
    {"kind": "mixed", "fraction": None, "texts": ["only some images have boxes",
                                                  "the boxes are partial, not every image has them"]},
]

BUDGETS = [
    {"texts": ["at most 3 iterations", "5 minutes per iteration", "two hours in total",
               "keep it to four rounds"]},
]

OPENERS = ["Hi, ", "Hello! ", "Quick one: ", "Please: ", "Could you help? ", "Request: "]
CLOSERS = [". Thanks!", " - cheers", ". Thank you.", " :)"]

WHOLE = [
    {"text": "classify dermoscopic lesions into the ISIC categories, melanoma matters most, sensitivity at 80% "
             "specificity",
     "expect": {"task_type": "multiclass_classification", "target_classes": ["melanoma"],
                "metric": {"name": "sensitivity_at_specificity", "params": {"specificity": 0.8, "class": "melanoma"}},
                "risk": "sensitivity", "confounders": {}, "supervision": {"kind": "full", "box_fraction": None}}},
    {"text": "pneumothorax on chest X-rays, don't let the model cheat by looking at chest drains",
     "expect": {"task_type": "binary_classification", "target_classes": ["pneumothorax"],
                "metric": {"name": "auroc", "params": {}}, "risk": "balanced",
                "confounders": {"chest_drain": "mitigate"}, "supervision": {"kind": "full", "box_fraction": None}}},
    {"text": "wrist fractures with boxes, only 5% of images have boxes",
     "expect": {"task_type": "detection", "target_classes": ["fracture"], "metric": {"name": "map50", "params": {}},
                "risk": "balanced", "confounders": {},
                "supervision": {"kind": "mixed", "box_fraction": 0.05}}},
    {"text": "pneumothorax on chest X-rays; don't let the model cheat by looking at chest drains; sensitivity "
             "matters",
     "expect": {"task_type": "binary_classification", "target_classes": ["pneumothorax"],
                "metric": {"name": "auroc", "params": {}}, "risk": "sensitivity",
                "confounders": {"chest_drain": "mitigate"}, "supervision": {"kind": "full", "box_fraction": None}}},
    {"text": "Pneumothorax on chest X-rays. A lot of these patients already have chest drains in. Please don't "
             "let the model rely on them.",
     "expect": {"task_type": "binary_classification", "target_classes": ["pneumothorax"],
                "metric": {"name": "auroc", "params": {}}, "risk": "balanced",
                "confounders": {"chest_drain": "mitigate"}, "supervision": {"kind": "full", "box_fraction": None}}},
    {"text": "Skin lesions, dermoscopy, not melanoma - I only want basal cell carcinoma vs the rest.",
     "expect": {"task_type": "binary_classification", "target_classes": ["basal cell carcinoma"],
                "metric": {"name": "auroc", "params": {}}, "risk": "balanced", "confounders": {},
                "supervision": {"kind": "full", "box_fraction": None}}},
]
