/**
 * Insert an iteration's executed cells into the notebook the user has open (or a new one next to the data).
 */
import { JupyterFrontEnd } from '@jupyterlab/application';
import { PathExt } from '@jupyterlab/coreutils';
import { INotebookTracker, NotebookActions, NotebookPanel } from '@jupyterlab/notebook';

/** `GET sessions/<id>/iterations/<n>/cells`: the iteration's cells, outputs included (nbformat v4 JSON). */
export interface ICellsPayload {
  iteration: number;
  cells: Record<string, unknown>[];
}

async function targetNotebook(
  app: JupyterFrontEnd,
  tracker: INotebookTracker | null,
  dataPath: string
): Promise<NotebookPanel | null> {
  const current = tracker?.currentWidget;
  if (current) {
    return current;
  }
  const cwd = dataPath ? PathExt.dirname(dataPath.replace(/\/$/, '')) : '';
  const panel = (await app.commands.execute('notebook:create-new', {
    cwd,
    kernelName: 'python3'
  })) as NotebookPanel;
  await panel.context.ready;
  return panel;
}

/** Append the cells (markdown header + tagged code cells with outputs); returns how many were inserted. */
export async function insertIterationCells(
  app: JupyterFrontEnd,
  tracker: INotebookTracker | null,
  payload: ICellsPayload,
  dataPath: string
): Promise<number> {
  const panel = await targetNotebook(app, tracker, dataPath);
  if (!panel || !panel.content.model) {
    return 0;
  }
  const model = panel.content.model;
  const tag = `clinagent-iter-${String(payload.iteration).padStart(2, '0')}`;
  const already = Array.from({ length: model.cells.length }, (_, i) => model.cells.get(i)).some(cell =>
    ((cell.getMetadata('tags') as string[] | undefined) || []).includes(tag)
  );
  if (already) {
    return 0;
  }
  const cells = payload.cells as Parameters<typeof model.sharedModel.insertCells>[1];
  // A fresh notebook holds one empty cell: replace it rather than leave it on top.
  const first = model.cells.length === 1 ? model.cells.get(0) : null;
  const emptyFirst = first !== null && first.sharedModel.getSource() === '';
  model.sharedModel.insertCells(model.cells.length, cells);
  if (emptyFirst) {
    model.sharedModel.deleteCell(0);
  }
  NotebookActions.renderAllMarkdown(panel.content);
  await runResultsCell(panel, tag);
  return cells.length;
}

/** Run the inserted results cell (ROC and confounder widgets) in the notebook's live kernel. */
async function runResultsCell(panel: NotebookPanel, tag: string): Promise<void> {
  const model = panel.content.model;
  if (!model) {
    return;
  }
  for (let i = model.cells.length - 1; i >= 0; i--) {
    const tags = (model.cells.get(i).getMetadata('tags') as string[] | undefined) || [];
    if (tags.includes(tag) && tags.includes('clinagent-results')) {
      await panel.sessionContext.ready;
      panel.content.activeCellIndex = i;
      await NotebookActions.run(panel.content, panel.sessionContext);
      return;
    }
  }
}
