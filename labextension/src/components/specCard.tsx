/**
 * The TaskSpec as a clinician reads it: plain labels (machine values on hover), selects for the enums,
 * confounders as chips with their audit figure, assumptions folded to one line.
 */
import React from 'react';
import { HTMLSelect } from '@jupyterlab/ui-components';
import { ColumnAssociation, Confounder, TaskSpec } from '../schema';
import { fmt, label, METRICS, MODALITIES, RISKS, TASK_TYPES } from '../vocab';
import { Field, Fold } from './common';

export interface ISpecCardProps {
  spec: TaskSpec;
  locked: boolean;
  /** The data audit (from the session's fingerprint) once the data is loaded. */
  associations?: ColumnAssociation[];
  onChange: (spec: TaskSpec) => void;
  /** How the session trains (pretrained weights, candidates per round), shown under the budget. */
  children?: React.ReactNode;
}

const AUDIT_SENTENCE = /'([a-z0-9_]+)' predicts the label with AUROC ([0-9.]+) on its own/;

/** How well a confounder predicts the label on its own: from the audit, or from the parser's assumption. */
export function auditAuroc(c: Confounder, spec: TaskSpec, associations?: ColumnAssociation[]): number | null {
  const column = c.column ?? c.name;
  const found = associations?.find(a => a.column === column);
  if (found && typeof found.auroc === 'number') {
    return found.auroc;
  }
  for (const sentence of spec.assumptions) {
    const m = AUDIT_SENTENCE.exec(sentence);
    if (m && (m[1] === column || m[1] === c.name)) {
      return Number(m[2]);
    }
  }
  return null;
}

function Select(props: {
  id: string;
  value: string;
  values: string[];
  disabled: boolean;
  testid: string;
  onChange: (value: string) => void;
}): JSX.Element {
  return (
    <HTMLSelect
      id={props.id}
      className="ca-select"
      data-testid={props.testid}
      title={props.value}
      disabled={props.disabled}
      value={props.value}
      onChange={e => props.onChange(e.currentTarget.value)}
    >
      {props.values.map(v => (
        <option key={v} value={v} title={v}>
          {label(v)}
        </option>
      ))}
    </HTMLSelect>
  );
}

export function ConfounderChips(props: {
  spec: TaskSpec;
  locked: boolean;
  associations?: ColumnAssociation[];
  onChange: (confounders: Confounder[]) => void;
}): JSX.Element | null {
  const { spec } = props;
  if (!spec.confounders.length) {
    return null;
  }
  return (
    <ul className="ca-chips" aria-label="Possible shortcuts">
      {spec.confounders.map((c, i) => {
        const auroc = auditAuroc(c, spec, props.associations);
        const next = c.action === 'mitigate' ? 'report' : 'mitigate';
        return (
          <li key={c.name} className={`ca-chip ca-chip-${c.action}`} data-testid="clinagent-confounder">
            <span className="ca-chip-name" title={c.column ? `column ${c.column}` : 'no column found in the data'}>
              {label(c.name)}
            </span>
            {auroc !== null ? (
              <span className="ca-chip-audit" data-testid="clinagent-confounder-audit">
                predicts the label with AUROC {fmt(auroc, 2)} on its own
              </span>
            ) : null}
            <button
              className="ca-chip-toggle"
              role="switch"
              aria-checked={c.action === 'mitigate'}
              title={`action: ${c.action} (click for ${next})`}
              disabled={props.locked}
              data-testid={`clinagent-confounder-toggle-${c.name}`}
              onClick={() => {
                const copy = spec.confounders.map((x, j) => (j === i ? { ...x, action: next } : x)) as Confounder[];
                props.onChange(copy);
              }}
            >
              {c.action === 'mitigate' ? 'Mitigate' : 'Report only'}
            </button>
          </li>
        );
      })}
    </ul>
  );
}

export function SpecCard(props: ISpecCardProps): JSX.Element {
  const { spec, locked } = props;
  const change = (patch: Partial<TaskSpec>) => props.onChange({ ...spec, ...patch });
  const metric = spec.primary_metric;
  const needs = metric.name === 'sensitivity_at_specificity' ? 'specificity' : metric.name === 'specificity_at_sensitivity' ? 'sensitivity' : null;
  const classes = spec.classes ?? [];
  const n = spec.assumptions.length;
  return (
    <section className="ca-card" data-testid="clinagent-spec" aria-label="What the model will do">
      <div className="ca-section-title">What the model will do</div>
      <Field label="Goal" htmlFor="ca-objective">
        <input
          id="ca-objective"
          className="jp-mod-styled"
          data-testid="clinagent-spec-objective"
          disabled={locked}
          value={spec.objective}
          onChange={e => change({ objective: e.target.value })}
        />
      </Field>
      <Field label="Task" htmlFor="ca-task">
        <Select id="ca-task" testid="clinagent-spec-task" value={spec.task_type} values={TASK_TYPES} disabled={locked}
          onChange={v => change({ task_type: v as TaskSpec['task_type'] })} />
      </Field>
      <Field label="Images" htmlFor="ca-modality">
        <Select id="ca-modality" testid="clinagent-spec-modality" value={spec.modality} values={MODALITIES} disabled={locked}
          onChange={v => change({ modality: v as TaskSpec['modality'] })} />
      </Field>
      {classes.length > 1 ? (
        <Field label="Costly to miss" htmlFor="ca-targets" hint="target classes">
          <div id="ca-targets" className="ca-choices" role="group">
            {classes.map(c => {
              const on = spec.target_classes.includes(c);
              return (
                <button key={c} className={on ? 'ca-toggle ca-on' : 'ca-toggle'} aria-pressed={on} disabled={locked}
                  title={c}
                  onClick={() => change({ target_classes: on ? spec.target_classes.filter(x => x !== c) : [...spec.target_classes, c] })}>
                  {label(c)}
                </button>
              );
            })}
          </div>
        </Field>
      ) : null}
      <Field label="Judged by" htmlFor="ca-metric">
        <Select id="ca-metric" testid="clinagent-spec-metric" value={metric.name} values={METRICS} disabled={locked}
          onChange={v => change({ primary_metric: { ...metric, name: v as typeof metric.name, params: v === 'sensitivity_at_specificity' ? { specificity: 0.8 } : v === 'specificity_at_sensitivity' ? { sensitivity: 0.9 } : {} } })} />
      </Field>
      {needs ? (
        <Field label={`at ${needs}`} htmlFor="ca-metric-param">
          <input id="ca-metric-param" type="number" min={0.01} max={0.99} step={0.01} className="jp-mod-styled"
            disabled={locked} value={Number(metric.params[needs] ?? 0.8)}
            onChange={e => change({ primary_metric: { ...metric, params: { ...metric.params, [needs]: Number(e.target.value) } } })} />
        </Field>
      ) : null}
      <Field label="Which mistake is worse" htmlFor="ca-risk">
        <Select id="ca-risk" testid="clinagent-spec-risk" value={spec.risk_preference} values={RISKS} disabled={locked}
          onChange={v => change({ risk_preference: v as TaskSpec['risk_preference'] })} />
      </Field>
      {spec.confounders.length ? (
        <div className="ca-field">
          <span className="ca-label">Possible shortcuts</span>
          <ConfounderChips spec={spec} locked={locked} associations={props.associations}
            onChange={confounders => change({ confounders })} />
        </div>
      ) : null}
      <div className="ca-row ca-budget">
        <Field label="Iterations" htmlFor="ca-iterations">
          <input id="ca-iterations" type="number" min={1} className="jp-mod-styled" data-testid="clinagent-spec-iterations"
            value={spec.budget.max_iterations}
            onChange={e => change({ budget: { ...spec.budget, max_iterations: Number(e.target.value) } })} />
        </Field>
        <Field label="Minutes each" htmlFor="ca-minutes">
          <input id="ca-minutes" type="number" min={0.1} step={0.5} className="jp-mod-styled"
            value={spec.budget.iteration_minutes}
            onChange={e => change({ budget: { ...spec.budget, iteration_minutes: Number(e.target.value) } })} />
        </Field>
      </div>
      {props.children}
      {n > 0 ? (
        <Fold title={`${n} assumption${n === 1 ? '' : 's'}`} summary="what was not said, and what was chosen" testid="clinagent-assumptions">
          <ul className="ca-assumptions">
            {spec.assumptions.map((a, i) => (
              <li key={i} className="ca-assumption" data-testid="clinagent-assumption">
                {a}
              </li>
            ))}
          </ul>
        </Fold>
      ) : null}
    </section>
  );
}
