/**
 * The request: what the model should do, and which data it learns from.
 */
import React from 'react';
import { Button } from '@jupyterlab/ui-components';

export interface IRequestProps {
  request: string;
  dataPath: string;
  busy: boolean;
  onRequest: (text: string) => void;
  onDataPath: (path: string) => void;
  onUseSelection: () => void;
  onInterpret: () => void;
  /** a spec is shown: interpreting again becomes the secondary action, preparing the data the primary one */
  interpreted?: boolean;
}

export function RequestSection(props: IRequestProps): JSX.Element {
  return (
    <section className="ca-section" aria-label="Request">
      <label htmlFor="ca-request" className="ca-label">
        What should the model do?
      </label>
      <textarea
        id="ca-request"
        className="ca-request jp-mod-styled"
        data-testid="clinagent-request"
        placeholder="e.g. flag pneumothorax on chest X-rays; missing one is worse than a false alarm; chest drains may be a shortcut"
        value={props.request}
        onChange={e => props.onRequest(e.target.value)}
      />
      <label htmlFor="ca-data" className="ca-label">
        Images and labels
      </label>
      <div className="ca-row">
        <input
          id="ca-data"
          className="ca-grow jp-mod-styled"
          data-testid="clinagent-data-path"
          placeholder="data folder, relative to the server root"
          value={props.dataPath}
          onChange={e => props.onDataPath(e.target.value)}
        />
        <Button
          small
          minimal
          data-testid="clinagent-use-selection"
          title="use the folder selected in the file browser"
          onClick={props.onUseSelection}
        >
          From file browser
        </Button>
      </div>
      <Button
        className={props.interpreted ? 'ca-secondary' : 'ca-primary'}
        data-testid="clinagent-interpret"
        disabled={props.busy || !props.request.trim()}
        onClick={props.onInterpret}
      >
        {props.interpreted ? 'Interpret again' : 'Interpret'}
      </Button>
    </section>
  );
}
