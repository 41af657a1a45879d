"""Writes the packaged template notebook (run after editing the cells here; tests check the result)."""

from _notebook_cells import code, md, write_template

cells = [
md("""
# Classification iteration

One iteration of the clinagent-lab loop: load the data with the frozen split, build the model the Recipe
describes, train it with PyTorch Lightning, and evaluate it on the **validation** split with the frozen
evaluator. The test split is never read here. Rerun with papermill, e.g.
`papermill iteration.ipynb out.ipynb -p seed 1`.
"""),
code('''
data_path = ""        # dataset folder or file
data_format = ""      # registered format name; "" to auto-detect
splits_path = ""      # CSV (image_id, split) frozen by the engine; the test split is never read here
output_dir = "."      # metrics.json, val_predictions.csv, model.ckpt and events.jsonl go here
events_path = ""      # JSON-lines progress events; "" for output_dir/events.jsonl
seed = 0              # seeds Python, NumPy and torch; same seed, same numbers on the same machine
recipe = {}           # clinagent_lab.recipe.Recipe as a dict (model, data, optimiser, loss, evaluation ...)
spec = {}             # clinagent_lab.spec.TaskSpec as a dict (metric parameters, confounders)
max_epochs = None     # epochs to train, or the [first, revised] plan of a run; None: fitted to the time left
time_budget_s = None  # Lightning max_time guard in seconds; None for no guard
''', "parameters"),
code('''
import lightning as L

from clinagent_lab.notebooks.runtime import prepare_run

run = prepare_run(recipe=recipe, spec=spec, seed=seed, output_dir=output_dir, events_path=events_path,
                  max_epochs=max_epochs, time_budget_s=time_budget_s)
R, S = run.recipe, run.spec
print(f"task: {R.task_type}, classes: {R.classes}, seed: {R.seed}, epochs: {R.training.max_epochs}")
for field, reason in R.reasons.items():
    print(f"  {field}: {reason}")
'''),
md("## Data (frozen split)"),
code('''
dataset = run.load_data(data_path, data_format, splits_path)
run.data_summary(dataset)
''', "frozen"),
md("""
## Custom code hooks

Cells below are empty unless the agent wrote code for them. Each is checked before it runs and must define
one function: `build_model(recipe, num_classes, in_channels)`, `custom_loss(logits, labels)`,
`extra_transforms(train)` or `sample_weights(labels, groups)`.
"""),
code("# hook: model (none)", "hook:model"),
code("# hook: loss (none)", "hook:loss"),
code("# hook: augment (none)", "hook:augment"),
code("# hook: sampler (none)", "hook:sampler"),
md("## Model and training"),
code('''
hooks = run.collect_hooks(globals())
datamodule = run.backend.make_datamodule(dataset, R, S, **hooks.data)
module = run.backend.make_module(R, dataset, S, datamodule=datamodule, **hooks.model)
print(module.__class__.__name__, f"{sum(p.numel() for p in module.parameters()):,} parameters")
'''),
code('''
trainer = L.Trainer(**run.trainer_kwargs(module, datamodule))  # epochs fitted to the time left
trainer.fit(module, datamodule=datamodule)
module = run.best_module(module, trainer)
'''),
md("## Frozen validation evaluation"),
code('''
val_predictions = run.backend.predict(module, datamodule, "val")
val_metrics = run.backend.evaluate(val_predictions, R, S, dataset)
run.save_outputs(trainer, val_predictions, val_metrics)
run.show_metrics(val_metrics)
''', "frozen"),
md("## Figures"),
code('''
run.show_figures(val_predictions, val_metrics)
run.show_saliency(module, datamodule)  # where the model looks (Grad-CAM)
'''),
]
write_template(cells, "classification.ipynb")
