/**
 * Finish (the once-only test) and what it found; the report export.
 */
import React from 'react';
import { Button } from '@jupyterlab/ui-components';
import { FinalTest } from '../schema';
import { fmt, resultLabel } from '../vocab';

const HEADLINE = ['auroc', 'auroc_macro', 'sensitivity', 'specificity', 'balanced_accuracy', 'map50', 'threshold'];

export function FinalCard(props: { finalTest: FinalTest }): JSX.Element {
  const m = props.finalTest.metrics;
  const keys = HEADLINE.filter(k => typeof m[k] === 'number');
  return (
    <section className="ca-card" data-testid="clinagent-final" aria-label="Test result">
      <div className="ca-section-title">Test split, read once (iteration {props.finalTest.iteration})</div>
      <table className="ca-diff">
        <tbody>
          {keys.map(k => (
            <tr key={k}>
              <th scope="row" title={k}>{resultLabel(k)}</th>
              <td>{fmt(m[k])}</td>
            </tr>
          ))}
        </tbody>
      </table>
      <p className="ca-muted">{props.finalTest.n_samples} test images</p>
    </section>
  );
}

export function FinishBar(props: {
  canFinish: boolean;
  busy: boolean;
  running: boolean;
  onFinish: () => void;
  onExport: () => void;
}): JSX.Element {
  return (
    <div className="ca-row">
      {props.canFinish ? (
        <Button data-testid="clinagent-finish" disabled={props.busy || props.running} onClick={props.onFinish}
          title="evaluate the best model on the test split, once">
          Finish: test once
        </Button>
      ) : null}
      <Button data-testid="clinagent-export" disabled={props.busy || props.running} onClick={props.onExport}>
        Export report
      </Button>
    </div>
  );
}
