"""Writes the packaged template notebook (run after editing the cells here; tests check the result)."""

from _notebook_cells import code, md, write_template

cells = [
md("""
# Final test evaluation (once)

The kept iteration's checkpoint, evaluated on the **test** split with the frozen evaluator. The operating
threshold is the one chosen on validation. The engine runs this notebook once per session and records that
it did; rerunning it by hand is possible for audit, and gives the same numbers for the same checkpoint.
"""),
code('''
data_path = ""        # dataset folder or file
data_format = ""      # registered format name; "" to auto-detect
splits_path = ""      # CSV (image_id, split) frozen by the engine
output_dir = "."      # test_metrics.json and test predictions go here
events_path = ""      # JSON-lines progress events; "" for output_dir/events.jsonl
seed = 0              # seeds Python, NumPy and torch
recipe = {}           # the kept iteration's Recipe as a dict
spec = {}             # the TaskSpec as a dict
checkpoint = ""       # the kept iteration's model.ckpt
threshold = None      # operating threshold chosen on validation (None: the evaluator's rule on test)
''', "parameters"),
code('''
from clinagent_lab.notebooks.runtime import prepare_run

run = prepare_run(recipe=recipe, spec=spec, seed=seed, output_dir=output_dir, events_path=events_path)
R, S = run.recipe, run.spec
print(f"task: {R.task_type}, classes: {R.classes}, checkpoint: {checkpoint}, threshold: {threshold}")
'''),
md("## Data (frozen split, test included)"),
code('''
dataset = run.load_data(data_path, data_format, splits_path, include_test=True)
run.data_summary(dataset)
''', "frozen"),
md("## Custom code hooks of the kept iteration"),
code("# hook: model (none)", "hook:model"),
code("# hook: loss (none)", "hook:loss"),
code("# hook: augment (none)", "hook:augment"),
code("# hook: sampler (none)", "hook:sampler"),
md("## Model"),
code('''
hooks = run.collect_hooks(globals())
datamodule = run.backend.make_datamodule(dataset, R, S, include_test=True, **hooks.data)
module = run.load_checkpoint(checkpoint, hooks)
'''),
md("## Frozen test evaluation"),
code('''
test_predictions = run.backend.predict(module, datamodule, "test")
test_metrics = run.backend.evaluate(test_predictions, R, S, dataset, threshold=threshold)
run.save_test_outputs(test_predictions, test_metrics, datamodule)
run.show_metrics(test_metrics)
''', "frozen"),
md("## Figures"),
code('''
run.show_figures(test_predictions, test_metrics)
'''),
]
write_template(cells, "final_test.ipynb")
