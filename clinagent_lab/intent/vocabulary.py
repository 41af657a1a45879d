"""What the offline parser knows about clinical language, as data.

Every table maps a canonical name to regular-expression fragments. The fragments are matched against the
lower-cased, typo-corrected request as whole words (``(?<!\\w)`` ... ``(?!\\w)`` is added around them), so
``r"drains?"`` matches "drain" and "drains" but not "drainage". Longer matches win over shorter ones that
overlap them ("chest drains" beats "drains", "surgical skin markers" beats "markers").

Adding a synonym is a one-line change here; the matching logic lives in :mod:`.matching` and
:mod:`.reading`, the decisions in :mod:`.offline` and :mod:`.grounding`.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "Condition",
    "ColumnRule",
    "CONDITIONS",
    "MODALITY_TERMS",
    "IMAGING_TERMS",
    "CONFOUNDER_TERMS",
    "CONTEXT_CONFOUNDER_TERMS",
    "CONFOUNDER_MODALITY",
    "MITIGATE_STRONG_CUES",
    "REPORT_CUES",
    "MITIGATE_CUES",
    "RISK_TERMS",
    "METRIC_TERMS",
    "DETECTION_TERMS",
    "MULTICLASS_TERMS",
    "CLASSIFY_VERBS",
    "BOX_TERMS",
    "MIXED_SUPERVISION_TERMS",
    "FULL_SUPERVISION_TERMS",
    "OUTPUT_TERMS",
    "EMPHASIS_CUES",
    "NEGATION_CUES",
    "NEGATION_BREAKERS",
    "POSTFIX_NEGATION",
    "SHORTCUT_WORDS",
    "SENSITIVITY_WORDS",
    "SPECIFICITY_WORDS",
    "TARGET_CUES",
    "NUMBER_WORDS",
    "FRACTION_WORDS",
    "KNOWN_WORDS",
    "DECOY_WORDS",
    "CLASS_SYNONYMS",
    "CLASS_GROUPS",
    "GENERIC_CONDITIONS",
    "POSITIVE_CLASS_NAMES",
    "NORMAL_CLASS_NAMES",
    "COLUMN_RULES",
    "MODALITY_LABELS",
]


@dataclass(frozen=True)
class Condition:
    """A finding the clinician can name.

    Attributes:
        name: canonical clinical name, used in ``TaskSpec.target_classes`` before grounding.
        patterns: regular-expression fragments that name it.
        modality: the modality it suggests, or None.
        benign: True for findings that are rarely the class that is costly to miss (nevus).
    """

    name: str
    patterns: tuple[str, ...]
    modality: str | None = None
    benign: bool = False


CONDITIONS: tuple[Condition, ...] = (
    Condition("melanoma", (r"malignant melanomas?", r"melanomas?", r"melanomata"), "dermoscopy"),
    Condition("nevus", (r"melanocytic n(?:a)?ev(?:us|i)", r"n(?:a)?ev(?:us|i)", r"nvs?"), "dermoscopy",
              benign=True),
    Condition("basal cell carcinoma", (r"basal[\s-]cell carcinomas?", r"basal[\s-]cell", r"bccs?"),
              "dermoscopy"),
    Condition("squamous cell carcinoma", (r"squamous[\s-]cell carcinomas?", r"squamous[\s-]cell", r"sccs?"),
              "dermoscopy"),
    Condition("actinic keratosis", (r"actinic keratos[ie]s", r"akiec", r"aks?"), "dermoscopy"),
    Condition("benign keratosis", (r"benign keratos[ie]s", r"seborrh?o?eic keratos[ie]s", r"bkl"),
              "dermoscopy", benign=True),
    Condition("dermatofibroma", (r"dermatofibromas?",), "dermoscopy", benign=True),
    Condition("vascular lesion", (r"vascular lesions?",), "dermoscopy", benign=True),
    Condition("pneumothorax", (r"pneumothora(?:x|ces|xes)", r"ptx", r"collapsed lungs?", r"lung collapse"),
              "chest_xray"),
    Condition("pneumonia", (r"pneumonias?",), "chest_xray"),
    Condition("cardiomegaly", (r"cardiomegaly", r"enlarged hearts?"), "chest_xray"),
    Condition("pleural effusion", (r"(?:pleural )?effusions?",), "chest_xray"),
    Condition("nodule", (r"(?:lung |pulmonary )?nodules?",), "chest_xray"),
    Condition("fracture", (r"fractur(?:e|es|ed)", r"broken (?:bones?|wrists?|arms?|forearms?)", r"fxs?"),
              "musculoskeletal_xray"),
    Condition("non-melanoma skin cancer", (r"non[\s-]?melanoma(?:tous)? skin cancers?", r"nmscs?",
                                           r"keratinocyte (?:carcinomas?|cancers?)"), "dermoscopy"),
    Condition("malignant", (r"malignan(?:t|cy|cies)", r"skin cancers?", r"cancers?"), None),
    Condition("abnormal", (r"abnormal(?:ity|ities)?",), None),
)

MODALITY_TERMS: dict[str, tuple[str, ...]] = {
    "dermoscopy": (
        r"dermoscop\w*", r"dermatoscop\w*", r"epiluminescence\w*", r"skin lesions?", r"skin spots?",
        r"pigmented lesions?", r"moles?", r"isic", r"skin cancers?", r"ham10000",
        r"skin (?:images|photos|pictures)",
        r"dermatolog\w*",
    ),
    "chest_xray": (
        r"chest x[\s-]?rays?", r"chest xrays?", r"chest radiograph\w*", r"chest films?", r"chest images?",
        r"cxrs?", r"thoracic (?:x[\s-]?rays?|radiograph\w*)", r"lung x[\s-]?rays?", r"siim\w*",
        r"chexpert", r"mimic[\s-]cxr", r"chest radiology",
    ),
    "musculoskeletal_xray": (
        r"wrists?", r"forearms?", r"distal radius", r"radius", r"ulnar?", r"elbows?", r"ankles?",
        r"scaphoid", r"musculoskeletal", r"msk", r"bones?", r"skeletal", r"grazpedwri\w*", r"mura",
        r"orthop(?:a)?edic", r"limbs?", r"fingers?", r"extremit(?:y|ies)",
    ),
}

#: Words that make a request about images at all (used to tell "vague" from "non_imaging").
IMAGING_TERMS: tuple[str, ...] = (
    r"x[\s-]?rays?", r"xrays?", r"radiograph\w*", r"radiolog\w*", r"images?", r"imaging", r"scans?", r"ct",
    r"mri", r"ultrasounds?", r"mammogra\w*", r"films?", r"dicoms?", r"photos?", r"pictures?", r"lesions?",
    r"slides?", r"patholog\w*", r"histolog\w*", r"fundus", r"retina\w*", r"pixels?", r"studies",
    r"dermoscop\w*",
)

#: Confounder vocabulary: canonical snake_case name -> phrases.
CONFOUNDER_TERMS: dict[str, tuple[str, ...]] = {
    "chest_drain": (
        r"chest[\s-]?drains?", r"chest[\s-]?tubes?", r"thoracostomy(?: tubes?| drains?)?",
        r"intercostal (?:chest )?(?:drains?|tubes?)", r"pleural (?:drains?|tubes?|catheters?)", r"drains?",
    ),
    "ruler": (r"rulers?", r"scale bars?", r"measuring (?:tapes?|scales?)", r"measurement scales?"),
    "ink_marking": (
        r"(?:pen|ink)(?:\s*/\s*(?:pen|ink))?[\s-]*mark(?:ing|er)?s?", r"surgical (?:skin )?mark(?:er|ing)s?",
        r"skin mark(?:er|ing)s?", r"marker pens?", r"inks?", r"gentian violet",
        r"purple (?:marks|markings|ink)",
    ),
    "metal_implant": (
        r"metal(?:lic)?(?:\s*/\s*\w+)*\s*(?:plates?|screws?|implants?|hardware|work|wires?|pins?|rods?)",
        r"metalwork", r"plates? and screws?", r"screws?", r"implants?",
        r"orthop(?:a)?edic (?:hardware|implants?)",
        r"surgical hardware", r"k[\s-]?wires?", r"osteosynthes[ie]s",
    ),
    "cast": (r"(?:plaster |fib(?:re|er)glass )?casts?", r"plaster", r"splints?", r"splinting"),
    "text_marker": (
        r"l\s*/\s*r (?:markers?|labels?)", r"left[\s/-]+right markers?", r"laterality (?:markers?|labels?)",
        r"side markers?", r"lead markers?", r"text labels?", r"text (?:overlays?|annotations?|markers?)",
        r"burn(?:ed|t)[\s-]in (?:text|labels?|annotations?)", r"radiographer'?s? markers?",
    ),
    "anatom_site": (
        r"body sites?", r"anatomic(?:al)? (?:sites?|locations?)", r"lesion locations?",
        r"locations? on the body",
    ),
    "site": (
        r"(?:different|multiple|several|other|two|three|various|many|the) (?:hospitals|sites|centres|centers|"
        r"institutions|clinics)",
        r"(?:per|by|across|between|each|every|which) (?:hospital|site|centre|center|institution|clinic)s?",
        r"hospitals", r"acquisition sites?", r"site effects?", r"sites", r"centres", r"centers",
        r"institutions",
    ),
    "scanner": (
        r"(?:different|multiple|several|other|various|the) "
        r"(?:scanners|machines|vendors|manufacturers|devices)",
        r"(?:per|by|across|between|each|every|which) (?:scanner|machine|vendor|manufacturer)s?",
        r"scanners", r"vendors", r"manufacturers", r"x[\s-]?ray machines",
    ),
    "sex": (
        r"sex(?:es)?", r"genders?", r"(?:male|men) (?:and|vs\.?|versus|or|/) (?:female|women)",
        r"(?:female|women) (?:and|vs\.?|versus|or|/) (?:male|men)",
    ),
    "age": (r"age(?:s| groups?)?", r"patient age", r"older patients", r"younger patients"),
    "view_position": (
        r"view positions?", r"ap (?:vs\.?|versus|or|/|and) pa", r"pa (?:vs\.?|versus|or|/|and) ap", r"ap/pa",
        r"portable (?:films?|x[\s-]?rays?|radiographs?)", r"supine (?:films?|x[\s-]?rays?)", r"projections?",
    ),
    "hair": (r"hairs?", r"hairy"),
    "dark_corner": (r"dark corners?", r"black corners?", r"vignett\w*", r"dark frames?"),
    "ecg_lead": (r"ecg (?:leads?|wires?|electrodes?|stickers?)", r"ekg (?:leads?|wires?)", r"electrodes?",
                 r"monitoring leads?"),
    "pacemaker": (r"pacemakers?", r"pacing (?:wires?|leads?)", r"cardiac devices?", r"defibrillators?"),
}

#: The modality a confounder hints at (a weak hint, outweighed by any modality word).
CONFOUNDER_MODALITY: dict[str, str] = {
    "chest_drain": "chest_xray", "pacemaker": "chest_xray", "ecg_lead": "chest_xray",
    "view_position": "chest_xray", "ruler": "dermoscopy", "ink_marking": "dermoscopy", "hair": "dermoscopy",
    "dark_corner": "dermoscopy", "cast": "musculoskeletal_xray", "metal_implant": "musculoskeletal_xray",
}

#: Bare words whose confounder depends on the modality: phrase -> {modality or "default": confounder}.
CONTEXT_CONFOUNDER_TERMS: dict[str, dict[str, str]] = {
    r"mark(?:er|ing)s?": {"dermoscopy": "ink_marking", "default": "text_marker"},
    r"tubes?": {"chest_xray": "chest_drain"},
}

#: "make the model ignore X" means: keep it from using X.
MITIGATE_STRONG_CUES: tuple[str, ...] = (
    r"(?:make|let|have|force|teach|train|get)\s+(?:the\s+)?"
    r"(?:model|it|network|classifier|algorithm|ai|system)\s+(?:to\s+)?(?:learn to\s+)?ignore",
    r"(?:model|it|network|classifier|algorithm|ai|system)\s+(?:should|must|has to|needs? to|will|to|shall)"
    r"\s+(?:always\s+)?ignore",
    r"(?:should|must) ignore",
)

#: Phrases that say: look at it, but do not fight it.
REPORT_CUES: tuple[str, ...] = (
    r"don'?t worry", r"do not worry", r"(?:i'?m |we'?re )?not worried", r"no need to worry",
    r"not (?:concerned|bothered|an issue|a problem|important|relevant)", r"ignor(?:e|ing)",
    r"(?:doesn'?t|does not|don'?t|do not) matter", r"don'?t care", r"do not care", r"irrelevant",
    r"(?:just|only|simply) (?:report|check|tell|show|flag|monitor|audit|look at)", r"report\w*", r"audit\w*",
    r"monitor\w*", r"check (?:whether|if|for)", r"see (?:whether|if)", r"tell me (?:whether|if)",
    r"fine (?:to use|if it uses)", r"(?:can|may) use", r"allowed to use", r"no matter",
)

#: Phrases that say: the model must not use it.
MITIGATE_CUES: tuple[str, ...] = (
    r"cheat\w*", r"shortcut\w*", r"rel(?:y|ies|ying) on", r"fool\w*", r"exploit\w*", r"look(?:ing|s)? at",
    r"learn(?:ing|s|t|ed)?", r"confound\w*", r"bias\w*", r"mitigat\w*", r"robust\w*", r"invarian\w*",
    r"debias\w*", r"don'?t let", r"do not let", r"must not", r"mustn'?t", r"should not", r"shouldn'?t",
    r"make sure", r"ensure", r"without using", r"not use", r"avoid\w*", r"control(?:ling)? for",
    r"adjust(?:ing)? for", r"account(?:ing)? for", r"regardless of", r"independent(?:ly)? of", r"beware",
    r"watch out", r"careful", r"spurious\w*", r"trick\w*", r"pick(?:s|ing)? up on", r"based on",
    r"equally", r"fair\w*", r"remov\w*", r"correct(?:ing)? for", r"latch\w* on(?:to)?", r"gam(?:e|ing)",
    r"not (?:be )?(?:driven|influenced|affected) by", r"(?:driven|influenced|affected) by", r"depend\w* on",
)

RISK_TERMS: dict[str, tuple[str, ...]] = {
    "sensitivity": (
        r"never (?:overlook|miss)\w*",
        r"(?:can'?t|cannot|can not|must not|mustn'?t|shouldn'?t|should not|don'?t|do not|never|won'?t|not)"
        r" (?:afford to )?(?:want to )?(?:miss|overlook)\w*",
        r"missing(?: \w+){0,3} (?:is|are|would be|'s) (?:much |far |a lot )?(?:worse|bad|costly|dangerous|"
        r"unacceptable|catastrophic|the worst|not an option)",
        r"miss(?:es|ed)?(?: \w+){0,2} (?:is|are|would be) (?:much |far )?"
        r"(?:worse|costly|dangerous|unacceptable)",
        r"false negatives? (?:is|are|would be|cost) (?:much |far )?"
        r"(?:worse|bad|costly|dangerous|unacceptable|the worst|more)",
        r"(?:avoid|minimi[sz]e|reduce|fewer|no) false negatives?", r"high(?:ly)? sensitiv\w*",
        r"(?:maximi[sz]e|prioriti[sz]e|favou?r|optimi[sz]e for) sensitivity",
        r"catch (?:all|every|them all|as many)",
        r"rule[\s-]out", r"screening", r"err on the side of caution", r"better safe than sorry",
        r"overlook\w*",
        r"(?:would )?rather (?:have|get|accept|see|tolerate) (?:a few |some |an? |more )?"
        r"(?:false (?:positives?|alarms?)|over[\s-]?calls?)",
    ),
    "specificity": (
        r"too many false (?:positives?|alarms?)",
        r"false (?:positives?|alarms?) (?:is|are|would be|cost) (?:much |far )?"
        r"(?:worse|bad|costly|a problem|the problem|unacceptable|the worst|more)",
        r"(?:avoid|minimi[sz]e|reduce|fewer|no|limit|cut)(?: down)?(?: on)? (?:the )?(?:number of )?false "
        r"(?:positives?|alarms?)",
        r"false alarms?", r"(?:wrong|needless|unneeded) (?:alarms?|alerts?)", r"over[\s-]?call\w*",
        r"over[\s-]?diagnos\w*",
        r"unnecessary (?:biops\w+|referrals?|excisions?|recalls?|interventions?|callbacks?|surger(?:y|ies))",
        r"high(?:ly)? specific\w*", r"(?:maximi[sz]e|prioriti[sz]e|favou?r|optimi[sz]e for) specificity",
        r"rule[\s-]in", r"alarm fatigue", r"cry(?:ing)? wolf",
    ),
    "balanced": (
        r"balanced (?:errors?|trade[\s-]?off)", r"both (?:errors|kinds of errors?|mistakes) (?:are )?equally",
        r"equally (?:bad|costly)",
    ),
}

#: Metric names. Longer alternatives first ("map@0.5" before "map").
METRIC_TERMS: dict[str, tuple[str, ...]] = {
    "map50": (r"map[\s@_-]?(?:0?\.5|50)", r"mean average precision", r"(?<!heat )map"),
    "balanced_accuracy": (r"balanced[\s-]accuracy", r"bal(?:anced)?[\s._-]?acc",
                          r"mean (?:per[\s-]class )?recall", r"mean per[\s-]class accuracy"),
    "f1": (r"f1(?:[\s-]score)?", r"f[\s-]?score", r"f[\s-]measure"),
    "auroc": (r"auroc", r"au[\s-]?roc", r"roc[\s-]?auc", r"auc", r"area under (?:the )?(?:roc )?curve",
              r"roc(?: curve)?", r"c[\s-]statistic"),
}

DETECTION_TERMS: tuple[str, ...] = (
    r"bounding[\s-]?box\w*", r"bbox\w*", r"box(?:es|ed)?", r"locali[sz]\w*", r"object detection",
    r"detection boxes", r"draw (?:a )?box\w*", r"map[\s@_-]?(?:0?\.5|50)", r"mean average precision",
    r"yolo\w*", r"faster[\s-]?r[\s-]?cnn", r"retinanet",
)

MULTICLASS_TERMS: tuple[str, ...] = (
    r"categor(?:y|ies)", r"multi[\s-]?class", r"multiple classes", r"(?:\d+|three|four|five|six|seven|eight|"
    r"nine|ten|all|several|many) (?:classes|categories|types|diagnoses|diagnostic classes|lesion types)",
    r"types of", r"which (?:type|kind)", r"differential(?: diagnosis)?", r"subtypes?", r"lesion types?",
    r"diagnostic classes",
)

CLASSIFY_VERBS: tuple[str, ...] = (
    r"classif\w*", r"categori[sz]\w*", r"tell apart", r"distinguish\w*", r"differentiat\w*", r"sort\w*",
    r"triag\w*", r"diagnos\w*", r"grade", r"grading",
)

BOX_TERMS: tuple[str, ...] = (r"bounding[\s-]?box\w*", r"bbox\w*", r"box(?:es|ed)?")

MIXED_SUPERVISION_TERMS: tuple[str, ...] = (
    r"(?:only|just) (?:a )?"
    r"(?:few|some|subset|handful|fraction|minority|small (?:number|fraction|part|subset))",
    r"partial(?:ly)? (?:annotated|labell?ed|boxed)", r"weak(?:ly)?[\s-]supervis\w*", r"semi[\s-]supervis\w*",
    r"mixed supervision", r"(?:some|few|most) (?:of the )?(?:images )?(?:have|with|without|lack)",
    r"not (?:all|every)", r"(?:sparse|incomplete|limited) (?:boxes|annotations?|labels?)",
)

FULL_SUPERVISION_TERMS: tuple[str, ...] = (
    r"(?:all|every|each) (?:of the )?(?:images?|x[\s-]?rays?|radiographs?|cases?|films?) (?:\w+ ){0,3}box\w*",
    r"fully (?:annotated|boxed|labell?ed|supervised)", r"boxes (?:for|on) (?:all|every|each)",
)

OUTPUT_TERMS: dict[str, tuple[str, ...]] = {
    "heatmap": (r"heat[\s-]?maps?", r"saliency(?: maps?)?", r"grad[\s-]?cam", r"attention maps?",
                r"where (?:the model|it) (?:is )?look\w*", r"highlight\w*"),
    "labels": (r"(?:hard |just |only )labels?", r"labels? only",
               r"yes[\s/-]+(?:or[\s-]+)?no (?:answers?|outputs?)", r"just (?:a )?(?:yes or no|label|class)"),
}

#: A condition named in the same phrase as one of these is the one that matters most.
EMPHASIS_CUES: tuple[str, ...] = (
    r"matters? (?:the )?most", r"most important", r"(?:top|highest|main|first|key) priority", r"priorit\w*",
    r"focus(?:ing|ed)? on", r"especially", r"particularly", r"above all", r"critical", r"crucial",
    r"main concern", r"care (?:most |mostly )?about", r"important", r"worried about", r"concerned about",
    r"mainly", r"primarily", r"matters?",
    r"(?:can'?t|cannot|can not|must not|mustn'?t|don'?t|do not|never|shouldn'?t) (?:afford to )?"
    r"(?:miss|overlook)",
)

#: Words that, in the few words before a finding, negate it ("not melanoma", "non-melanoma").
NEGATION_CUES: tuple[str, ...] = (
    r"not", r"no", r"non", r"never", r"without", r"except", r"excluding", r"exclude", r"other than",
    r"rather than", r"apart from", r"besides", r"ignor(?:e|ing)", r"don'?t care about", r"do not care about",
    r"isn'?t", r"aren'?t", r"nor", r"neither", r"don'?t", r"do not", r"leave out", r"drop",
)

#: Between a negation cue and the finding these words undo the negation ("don't miss melanoma").
NEGATION_BREAKERS: tuple[str, ...] = (r"miss\w*", r"overlook\w*", r"fail\w*", r"lose", r"skip\w*", r"only")

#: Right after a finding: "melanoma is not the focus", "melanoma doesn't matter".
POSTFIX_NEGATION: str = (
    r"^\s*(?:is|are|'s)?\s*(?:not|isn'?t|aren'?t|doesn'?t|don'?t|does not|do not)\s+(?:really\s+)?"
    r"(?:the |a |an |my |our |of )?"
    r"(?:focus|target|priority|important|matter|concern|interest|relevant|needed|required|what)"
)

#: Phrases that show a concern about shortcuts even when no confounder is named.
SHORTCUT_WORDS: tuple[str, ...] = (
    r"cheat\w*", r"shortcut\w*", r"spurious\w*", r"confound\w*", r"clever hans",
)

SENSITIVITY_WORDS: str = r"(?:sensitivity|sensitivities|sens|recall|tpr|true positive rate)"
SPECIFICITY_WORDS: str = r"(?:specificity|specificities|spec|tnr|true negative rate)"
TARGET_CUES: str = (
    r"(?:target|goal|aim(?:ing)?(?: for)?|reach|achieve|hit|get to|beat|exceed|at least)"
)

NUMBER_WORDS: dict[str, int] = {
    "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9,
    "ten": 10, "eleven": 11, "twelve": 12, "fifteen": 15, "twenty": 20, "thirty": 30, "forty": 40,
    "forty-five": 45, "fifty": 50, "sixty": 60, "ninety": 90, "a": 1, "an": 1, "a couple of": 2,
    "a few": 3,
}

FRACTION_WORDS: dict[str, float] = {
    "a hundredth": 0.01, "one hundredth": 0.01, "a fiftieth": 0.02, "one fiftieth": 0.02,
    "a twentieth": 0.05, "one twentieth": 0.05, "a tenth": 0.1, "one tenth": 0.1, "a fifth": 0.2,
    "one fifth": 0.2, "a quarter": 0.25, "one quarter": 0.25, "a third": 1 / 3, "one third": 1 / 3,
    "half": 0.5, "two thirds": 2 / 3, "three quarters": 0.75, "one in ten": 0.1, "one in twenty": 0.05,
    "one in five": 0.2, "one in four": 0.25, "one in a hundred": 0.01, "one in fifty": 0.02,
}

#: Correctly spelled words a typo is corrected towards (difflib, cutoff 0.85).
KNOWN_WORDS: tuple[str, ...] = (
    "pneumothorax", "pneumothoraces", "pneumonia", "melanoma", "melanomas", "dermoscopy", "dermoscopic",
    "dermatoscopy", "dermatoscopic", "fracture", "fractures", "fractured", "specificity", "sensitivity",
    "radiograph", "radiographs", "carcinoma", "keratosis", "dermatofibroma", "thoracostomy", "intercostal",
    "musculoskeletal", "paediatric", "pediatric", "balanced", "accuracy", "iterations", "iteration",
    "minutes", "bounding", "annotated", "cardiomegaly", "effusion", "lesions", "scanners", "hospitals",
    "implants", "splints", "rulers", "markings", "forearm", "forearms", "nevus", "naevus", "negatives",
    "positives", "overlook", "sensitivities", "specificities", "classify", "detect", "scaphoid",
    "radiology", "malignant", "melanocytic", "vascular", "actinic", "seborrheic", "chest", "wrist", "wrists",
    "drains", "tubes",
)

#: Ordinary words close to a known word; a token nearest to one of these is left alone.
DECOY_WORDS: tuple[str, ...] = (
    "features", "feature", "fraction", "fractions", "sensitive", "specific", "specifically", "specified",
    "structure", "structures", "practice", "fractal", "reaction", "sensible", "detection", "detected",
    "classified", "classes", "accurate", "balance", "minute", "bounded", "annotation", "annotations",
    "lessons", "scanner", "hospital", "implant", "splint", "ruler", "marking", "negative", "positive",
    "pediatrics", "iterate", "vascularity", "radiologist", "radiologists", "melanin", "pneumatic",
    "overlooked", "overlooking", "sensitivity's", "chests", "twist", "drained", "tubed", "denote",
)

#: Clinical name -> dataset class names that mean it (compared case-insensitively, non-alphanumerics -> _).
CLASS_SYNONYMS: dict[str, tuple[str, ...]] = {
    "melanoma": ("mel", "melanoma", "malignant_melanoma"),
    "nevus": ("nv", "nevus", "naevus", "nevi", "melanocytic_nevus", "melanocytic_nevi"),
    "basal cell carcinoma": ("bcc", "basal_cell_carcinoma"),
    "squamous cell carcinoma": ("scc", "squamous_cell_carcinoma"),
    "actinic keratosis": ("ak", "akiec", "actinic_keratosis", "actinic_keratoses"),
    "benign keratosis": ("bkl", "benign_keratosis", "seborrheic_keratosis", "seborrhoeic_keratosis"),
    "dermatofibroma": ("df", "dermatofibroma"),
    "vascular lesion": ("vasc", "vascular_lesion", "vascular_lesions", "vascular"),
    "pneumothorax": ("pneumothorax", "ptx"),
    "pneumonia": ("pneumonia",),
    "cardiomegaly": ("cardiomegaly",),
    "pleural effusion": ("pleural_effusion", "effusion"),
    "nodule": ("nodule", "nodules"),
    "fracture": ("fracture", "fractured", "fractures", "fx"),
    "malignant": ("malignant", "malignancy", "cancer"),
    "non-melanoma skin cancer": ("nmsc", "non_melanoma_skin_cancer", "keratinocyte_carcinoma"),
    "abnormal": ("abnormal", "abnormality"),
}

#: A clinical name that stands for several dataset classes when the data has no single class for it.
CLASS_GROUPS: dict[str, tuple[str, ...]] = {
    "malignant": ("mel", "bcc", "scc"),
    "non-melanoma skin cancer": ("bcc", "scc"),
}

#: Conditions that can stand for "the positive class" in a binary dataset whatever it is called.
GENERIC_CONDITIONS: tuple[str, ...] = ("malignant", "abnormal")

POSITIVE_CLASS_NAMES: tuple[str, ...] = (
    "1", "positive", "pos", "abnormal", "yes", "true", "present", "disease", "finding",
)
NORMAL_CLASS_NAMES: tuple[str, ...] = (
    "0", "normal", "negative", "neg", "no", "false", "healthy", "benign", "no_finding", "none", "absent",
    "no_fracture", "no_pneumothorax", "no_pneumonia", "control", "other", "rest",
)


@dataclass(frozen=True)
class ColumnRule:
    """How a confounder is found among metadata columns.

    Attributes:
        names: normalised column names that hold it exactly.
        tokens: words that, found among a column name's ``_``-separated words, point at it.
        exclude: words that rule a column out even if a token matches (``anatom`` for ``site``).
    """

    names: tuple[str, ...]
    tokens: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()


COLUMN_RULES: dict[str, ColumnRule] = {
    "chest_drain": ColumnRule(("chest_drain", "drain", "chest_tube", "tube", "drains", "chest_drains",
                               "chesttube", "chestdrain", "thoracostomy_tube", "icd"),
                              ("drain", "drains", "chest_tube", "thoracostomy"),
                              ("et", "ng", "endotracheal")),
    "ruler": ColumnRule(("ruler", "rulers", "has_ruler", "scale_bar"), ("ruler", "rulers")),
    "ink_marking": ColumnRule(("ink_marking", "ink", "marking", "markings", "pen_marking", "pen_mark",
                               "skin_marker", "ink_marks", "surgical_marking"),
                              ("ink", "marking", "markings")),
    "metal_implant": ColumnRule(("metal_implant", "implant", "metal", "hardware", "osteosynthesis",
                                 "metal_plate", "metalwork"),
                                ("implant", "implants", "metal", "osteosynthesis")),
    "cast": ColumnRule(("cast", "splint", "plaster", "has_cast"), ("cast", "splint", "plaster")),
    "text_marker": ColumnRule(("text_marker", "text", "marker", "lr_marker", "laterality_marker",
                               "burned_in_text"), ("marker", "laterality")),
    "anatom_site": ColumnRule(("anatom_site_general", "anatom_site", "anatom_site_general_challenge",
                               "localization", "location", "body_site"), ("anatom", "localization")),
    "site": ColumnRule(("site", "hospital", "center", "centre", "institution", "source", "clinic",
                        "acquisition_site", "institution_name"),
                       ("hospital", "institution", "center", "centre", "clinic"), ("anatom",)),
    "hospital": ColumnRule(("hospital", "site", "center", "centre", "institution", "institution_name"),
                           ("hospital", "institution"), ("anatom",)),
    "scanner": ColumnRule(("scanner", "manufacturer", "device", "machine", "vendor", "scanner_model",
                           "manufacturer_model_name", "modality_model", "camera"),
                          ("scanner", "manufacturer", "vendor")),
    "sex": ColumnRule(("sex", "gender", "patient_sex"), ("sex", "gender")),
    "age": ColumnRule(("age", "age_approx", "patient_age", "age_years", "age_group"), ("age",)),
    "view_position": ColumnRule(("view_position", "view", "projection", "viewposition"),
                                ("view", "projection")),
    "hair": ColumnRule(("hair", "has_hair"), ("hair",)),
    "dark_corner": ColumnRule(("dark_corner", "dark_corners", "vignette", "vignetting"),
                              ("dark", "vignette")),
    "ecg_lead": ColumnRule(("ecg_lead", "ecg_leads", "ecg", "electrode", "electrodes"), ("ecg", "electrode")),
    "pacemaker": ColumnRule(("pacemaker", "cardiac_device", "pacer"), ("pacemaker",)),
}

MODALITY_LABELS: dict[str, str] = {
    "dermoscopy": "dermoscopy images",
    "chest_xray": "chest X-rays",
    "musculoskeletal_xray": "musculoskeletal X-rays",
    "other": "the images",
}
