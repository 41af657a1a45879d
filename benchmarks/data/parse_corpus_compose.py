"""Write ``parse_corpus.jsonl``: clinicians' requests with the fields a correct reading gives.

Each part of the corpus has its own hand-written sentences: ``parse_corpus_dev.py`` was written while the
parser was developed; ``parse_corpus_heldout1.py`` after the first round of changes (scored once, whole spec
0.905, then used to fix the classes of phrasing it missed, so it is development data now);
``parse_corpus_heldout2.py`` after the second round (scored once, 0.864, then used likewise);
``parse_corpus_heldout3.py`` after the third round (scored once, 0.914, then used likewise);
``parse_corpus_heldout4.py`` after the fourth round, never used to tune anything. The sentences come in
varied voices: terse, chatty, British and US spelling, bullet lists, several sentences, typos. A request is either
written whole (``WHOLE``) or put together from one sentence of each kind (task, risk, metric, confounder,
boxes, budget), in a seeded random order and layout; the expected fields follow from what each sentence
states, by the rules the TaskSpec documents (a stated risk wins; else a stressed finding means sensitivity;
else the quantity an operating point puts first; detection selects on mAP@50; a confounder named without an
action is reported).

Usage:
    python benchmarks/data/parse_corpus_compose.py        # rewrites benchmarks/data/parse_corpus.jsonl
"""

from __future__ import annotations

import importlib.util
import json
import random
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
PARTS = {"dev": ("parse_corpus_dev.py", 300), "heldout1": ("parse_corpus_heldout1.py", 220),
         "heldout2": ("parse_corpus_heldout2.py", 220), "heldout3": ("parse_corpus_heldout3.py", 220),
         "heldout4": ("parse_corpus_heldout4.py", 220)}
LAYOUTS = ("{a}, {b}", "{a}; {b}", "{a}. {b}", "{a}\n- {b}", "{a} - {b}", "{a}. Also, {b}")


def _load(name: str) -> Any:
    spec = importlib.util.spec_from_file_location(name[:-3], HERE / name)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def expected(task: dict, risk: dict | None, metric: dict | None, confs: list[dict], boxes: dict | None) -> dict:
    detection = task["task_type"] == "detection"
    targets = list(task["targets"])
    if detection:
        m = {"name": "map50", "params": {}}
    elif metric is not None:
        m = {"name": metric["name"], "params": dict(metric.get("params", {}))}
        if m["name"] in ("sensitivity_at_specificity", "specificity_at_sensitivity") and targets:
            m["params"]["class"] = targets[0]
    else:
        m = {"name": "auroc", "params": {}}
    if risk is not None:
        r = risk["risk"]
    elif task.get("emphasis"):
        r = "sensitivity"
    elif metric is not None and metric.get("subject"):
        r = metric["subject"]
    else:
        r = "balanced"
    confounders: dict[str, str] = {}
    for c in confs:
        confounders.update(c["confounders"])
    if detection and boxes is not None:
        sup = {"kind": boxes["kind"], "box_fraction": boxes["fraction"]}
    else:
        sup = {"kind": "full", "box_fraction": None}
    return {"task_type": task["task_type"], "target_classes": targets, "metric": m, "risk": r,
            "confounders": confounders, "supervision": sup}


def compose(module: Any, part: str, n: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    rows = [{"text": w["text"], "expect": w["expect"]} for w in module.WHOLE]
    while len(rows) < n:
        task = rng.choice(module.TASKS)
        kind = task.get("kind", "any")
        sentences = [rng.choice(task["texts"])]
        risk = rng.choice(module.RISKS) if rng.random() < 0.55 else None
        metric = None
        if task["task_type"] != "detection" and rng.random() < 0.4:
            metric = rng.choice([m for m in module.METRICS if m.get("for", "any") in ("any", kind)])
        pool = [c for c in module.CONFOUNDERS if c["modality"] == task["modality"]]
        confs = [rng.choice(pool)] if pool and rng.random() < 0.6 else []
        boxes = rng.choice(module.BOXES) if task["task_type"] == "detection" and rng.random() < 0.8 else None
        extras = [x for x in (risk, metric, *confs, boxes) if x is not None]
        if rng.random() < 0.3:
            extras.append(rng.choice(module.BUDGETS))
        rng.shuffle(extras)
        sentences += [rng.choice(x["texts"]) for x in extras]
        text = sentences[0]
        for s in sentences[1:]:
            text = rng.choice(LAYOUTS).format(a=text, b=s)
        if rng.random() < 0.25:
            text = rng.choice(module.OPENERS) + _cap(text)
        if rng.random() < 0.15:
            text += rng.choice(module.CLOSERS)
        row = {"text": text, "expect": expected(task, risk, metric, confs, boxes)}
        if all(row["text"] != r["text"] for r in rows):
            rows.append(row)
    return [{"id": f"{part}-{i:03d}", "part": part, **row} for i, row in enumerate(rows, 1)]


def main() -> None:
    rows: list[dict] = []
    for seed, (part, (name, n)) in enumerate(PARTS.items()):
        path = HERE / name
        if path.exists():
            rows += compose(_load(name), part, n, seed)
    out = HERE / "parse_corpus.jsonl"
    out.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    print(f"{out}: {len(rows)} requests")


if __name__ == "__main__":
    main()
