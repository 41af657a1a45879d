"""Writes the packaged detection template notebook (run after editing the cells here; tests check the result)."""

from _notebook_cells import code, md, write_template

cells = [
md('''
# Detection iteration

One iteration of the clinagent-lab loop for box detection (e.g. wrist fractures on radiographs): load the
data with the frozen split, build the detector the Recipe describes, train it with PyTorch Lightning
(teacher-student pseudo-labelling when only some images have boxes and the Recipe asks for it), and evaluate
it on the **validation** split with the frozen evaluator (mAP@50 on the box-annotated images, sensitivity at
fixed false positives per image, image-level AUROC). Progress goes to `events.jsonl` through
`clinagent_lab.notebooks.progress.ProgressCallback`. The test split is never read here. Rerun with papermill,
e.g. `papermill iteration.ipynb out.ipynb -p seed 1`.
'''),
code('''
data_path = ""        # dataset folder or file
data_format = ""      # registered format name; "" to auto-detect
splits_path = ""      # CSV (image_id, split) frozen by the engine; the test split is never read here
output_dir = "."      # metrics.json, val_predictions, model.ckpt and events.jsonl go here
events_path = ""      # JSON-lines progress events; "" for output_dir/events.jsonl
seed = 0
recipe = {}           # clinagent_lab.recipe.Recipe as a dict
spec = {}             # clinagent_lab.spec.TaskSpec as a dict
max_epochs = None     # overrides recipe["training"]["max_epochs"] when set
time_budget_s = None  # Lightning max_time guard (seconds)
''', 'parameters'),
code('''
import lightning as L

from clinagent_lab.notebooks.runtime import prepare_run
from clinagent_lab.tasks.detection import fit, save_box_figure

run = prepare_run(recipe=recipe, spec=spec, seed=seed, output_dir=output_dir, events_path=events_path,
                  max_epochs=max_epochs, time_budget_s=time_budget_s)
R, S = run.recipe, run.spec
print(f"task: {R.task_type}, detector: {R.model.architecture}, {R.data.image_size} px, seed: {R.seed}, "
      f"epochs: {R.training.max_epochs}, supervision: {R.supervision.kind}, "
      f"pseudo labels: {R.supervision.pseudo_label}")
for field, reason in R.reasons.items():
    print(f"  {field}: {reason}")
'''),
md('## Data (frozen split)'),
code('''
dataset = run.load_data(data_path, data_format, splits_path)
run.data_summary(dataset)
''', 'frozen'),
md('''
## Custom code hooks

Cells below are empty unless the agent wrote code for them. Each is checked before it runs and must define one
function: `build_model(recipe, num_classes, in_channels)` returning a torchvision-style detector
(`num_classes` counts the background), or `extra_transforms(train)` returning albumentations transforms that
keep boxes right.
'''),
code('# hook: model (none)', 'hook:model'),
code('# hook: augment (none)', 'hook:augment'),
md('## Model and training'),
code('''
hooks = run.collect_hooks(globals())
datamodule = run.backend.make_datamodule(dataset, R, S, **hooks.data)
module = run.backend.make_module(R, dataset, S, datamodule=datamodule, **hooks.model)
print(module.__class__.__name__, f"{sum(p.numel() for p in module.parameters()):,} parameters,",
      f"box classes: {module.box_classes}, target: {module.target_class}")
print("training images by supervision:", datamodule.supervision_summary())
'''),
code('''
trainer = L.Trainer(**run.trainer_kwargs())  # with the ProgressCallback and the val_map50 checkpoint
module = fit(module, datamodule, trainer)     # teacher -> pseudo labels -> student when pseudo_label is on
module = run.best_module(module, trainer)
'''),
md('## Frozen validation evaluation'),
code('''
val_predictions = run.backend.predict(module, datamodule, "val")
val_metrics = run.backend.evaluate(val_predictions, R, S, dataset)
run.save_outputs(trainer, val_predictions, val_metrics)
run.show_metrics(val_metrics)
print("AP@50 per class:", {k: v for k, v in val_metrics["ap50_per_class"].items() if v is not None})
print("sensitivity at false positives per image:", val_metrics["sensitivity_at_fp"])
''', 'frozen'),
md('''
## Figures

Ground-truth boxes in green, predicted boxes (score >= 0.3) in red.
'''),
code('''
from IPython.display import Image

Image(filename=str(save_box_figure(dataset, val_predictions, run.output_dir / "val_boxes.png")))
'''),
]
write_template(cells, "detection.ipynb")
