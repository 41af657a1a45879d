/**
 * The next step the loop proposes, as a readable diff, with approve / edit / reject. With several candidates per
 * round (`--parallel`) the whole round is shown and approved (or rejected) at once.
 */
import React, { useState } from 'react';
import { Button } from '@jupyterlab/ui-components';
import { Proposal } from '../schema';
import { label } from '../vocab';
import { DiffTable } from './history';

export interface IProposalProps {
  proposal: Proposal;
  /** The other candidates of the round the proposal opens. */
  candidates: Proposal[];
  busy: boolean;
  onApprove: () => void;
  onReject: () => void;
  onEdit: (changes: Record<string, unknown>) => void;
}

function parse(value: string): unknown {
  try {
    return JSON.parse(value);
  } catch {
    return value; // a bare string
  }
}

function changeRows(p: Proposal): [string, unknown, unknown][] {
  return Object.entries(p.changes).map(([k, [before, after]]) => [k, before, after] as [string, unknown, unknown]);
}

export function ProposalCard(props: IProposalProps): JSX.Element {
  const { proposal } = props;
  const [editing, setEditing] = useState(false);
  const [field, setField] = useState('');
  const [value, setValue] = useState('');
  const rows = changeRows(proposal);
  const round = props.candidates.length > 0;
  return (
    <section className="ca-card ca-proposal" data-testid="clinagent-proposal" aria-label="Proposed next step">
      <div className="ca-section-title">
        {round ? `Next round: ${props.candidates.length + 1} candidates, run together` : `Next: ${label(proposal.idea || 'change')}`}
      </div>
      {round ? <div className="ca-candidate-title">1. {label(proposal.idea || 'change')}</div> : null}
      <p className="ca-rationale">{proposal.rationale}</p>
      {rows.length ? <DiffTable rows={rows} /> : <p className="ca-muted">the first recipe, from the spec and the data</p>}
      {props.candidates.map((c, i) => (
        <div key={i} className="ca-candidate" data-testid="clinagent-candidate">
          <div className="ca-candidate-title">{i + 2}. {label(c.idea || 'change')}</div>
          <p className="ca-rationale">{c.rationale}</p>
          <DiffTable rows={changeRows(c)} />
        </div>
      ))}
      {editing ? (
        <div className="ca-edit">
          <label htmlFor="ca-edit-field" className="ca-label">Recipe field</label>
          <input id="ca-edit-field" className="jp-mod-styled" data-testid="clinagent-edit-field"
            placeholder="e.g. training.max_epochs" value={field} onChange={e => setField(e.target.value)} />
          <label htmlFor="ca-edit-value" className="ca-label">New value</label>
          <input id="ca-edit-value" className="jp-mod-styled" data-testid="clinagent-edit-value" placeholder="e.g. 5"
            value={value} onChange={e => setValue(e.target.value)} />
          <div className="ca-row">
            <Button small data-testid="clinagent-edit-apply" disabled={props.busy || !field.trim()}
              onClick={() => {
                props.onEdit({ [field.trim()]: parse(value) });
                setField('');
                setValue('');
              }}>
              Change
            </Button>
            <Button small minimal onClick={() => setEditing(false)}>Done</Button>
          </div>
        </div>
      ) : null}
      <div className="ca-row">
        <Button className="ca-primary" data-testid="clinagent-approve" disabled={props.busy} onClick={props.onApprove}>
          {round ? 'Approve the round' : 'Approve and run'}
        </Button>
        <Button data-testid="clinagent-edit" disabled={props.busy} onClick={() => setEditing(!editing)}>
          Edit
        </Button>
        <Button data-testid="clinagent-reject" disabled={props.busy} onClick={props.onReject}>
          {round ? 'Reject the round' : 'Reject'}
        </Button>
      </div>
    </section>
  );
}
