/**
 * clinagent-lab JupyterLab extension: a left sidebar that drives the clinagent server extension.
 */
import { ILayoutRestorer, JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { IDefaultFileBrowser } from '@jupyterlab/filebrowser';
import { INotebookTracker } from '@jupyterlab/notebook';
import { LabIcon } from '@jupyterlab/ui-components';
import { ClinagentPanel } from './panel';

const ICON_SVG =
  '<svg xmlns="http://www.w3.org/2000/svg" width="16" height="16" viewBox="0 0 24 24">' +
  '<path class="jp-icon3" fill="#616161" d="M10 2h4v8h8v4h-8v8h-4v-8H2v-4h8z"/></svg>';

export const clinagentIcon = new LabIcon({ name: 'clinagent-lab:icon', svgstr: ICON_SVG });

const plugin: JupyterFrontEndPlugin<void> = {
  id: 'clinagent-lab:sidebar',
  description: 'Build a medical-imaging model from a sentence: interpret, train, review, finish.',
  autoStart: true,
  optional: [INotebookTracker, IDefaultFileBrowser, ILayoutRestorer],
  activate: (
    app: JupyterFrontEnd,
    tracker: INotebookTracker | null,
    browser: IDefaultFileBrowser | null,
    restorer: ILayoutRestorer | null
  ) => {
    const panel = new ClinagentPanel({ app, tracker, browser });
    panel.title.icon = clinagentIcon;
    app.shell.add(panel, 'left', { rank: 600 });
    if (restorer) {
      restorer.add(panel, 'clinagent-sidebar');
    }
    app.commands.addCommand('clinagent:open', {
      label: 'Open the clinagent sidebar',
      execute: () => app.shell.activateById(panel.id)
    });
  }
};

export default plugin;
