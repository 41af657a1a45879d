/**
 * The iterations at a glance: the chart of their validation figures (./chart.tsx) and rows that expand to the
 * rationale and the recipe diff. A session that ran rounds (`--parallel`) shows them grouped, each with the
 * candidate it kept.
 */
import React, { useState } from 'react';
import { markOf } from '../chart';
import { Iteration, Session } from '../schema';
import { fmt, label } from '../vocab';
import { MetricChart } from './chart';

export { markOf, MetricChart };

/** Recipe fields that differ between two recipes, as dotted paths → [before, after]. */
export function recipeDiff(before: unknown, after: unknown, prefix = ''): [string, unknown, unknown][] {
  if (typeof before === 'object' && before !== null && typeof after === 'object' && after !== null && !Array.isArray(after)) {
    const keys = Array.from(new Set([...Object.keys(before), ...Object.keys(after)])).sort();
    return keys.flatMap(k =>
      recipeDiff((before as Record<string, unknown>)[k], (after as Record<string, unknown>)[k], prefix ? `${prefix}.${k}` : k)
    );
  }
  return JSON.stringify(before) === JSON.stringify(after) ? [] : [[prefix, before, after]];
}

function Row(props: { it: Iteration; previous: Iteration | null; best: boolean }): JSX.Element {
  const [open, setOpen] = useState(false);
  const { it } = props;
  const m = markOf(it);
  // the recipe's own notes on why each value was chosen are the rationale, not a change
  const diff = props.previous ? recipeDiff(props.previous.recipe, it.recipe).filter(([k]) => !k.startsWith('reasons')) : [];
  return (
    <li className={`ca-hrow ca-${m}${props.best ? ' ca-best' : ''}`} data-testid="clinagent-history-row">
      <button className="ca-hrow-head" aria-expanded={open} onClick={() => setOpen(!open)}>
        <span className="ca-hrow-index">{it.index}</span>
        <span className="ca-hrow-idea">{label(it.idea || 'change')}</span>
        <span className="ca-hrow-value" title={`selection value ${it.selection_value ?? '–'}`}>{fmt(it.selection_value)}</span>
        <span className={`ca-badge ca-badge-${m}`} title={it.decision_reason}>
          {props.best ? '★ ' : ''}
          {it.status !== 'ok' && m !== 'running' ? label(it.status) : label(it.decision)}
        </span>
      </button>
      {open ? (
        <div className="ca-hrow-body">
          <p>{it.rationale}</p>
          {it.decision_reason ? <p className="ca-muted">{it.decision_reason}</p> : null}
          {it.error ? <p className="ca-error-text">{String(it.error.evalue ?? '')}</p> : null}
          {diff.length ? <DiffTable rows={diff} /> : null}
        </div>
      ) : null}
    </li>
  );
}

/** `training.max_epochs` may wrap after its dots, never inside a word. */
function dotted(key: string): JSX.Element[] {
  return key.split('.').map((part, i, parts) => (
    <React.Fragment key={i}>
      {part}
      {i < parts.length - 1 ? '.' : ''}
      {i < parts.length - 1 ? <wbr /> : null}
    </React.Fragment>
  ));
}

export function DiffTable(props: { rows: [string, unknown, unknown][] }): JSX.Element {
  return (
    <table className="ca-diff">
      <tbody>
        {props.rows.map(([key, before, after]) => (
          <tr key={key}>
            <th scope="row">{dotted(key)}</th>
            <td>
              <del className="ca-old">{fmt(before)}</del> → <ins className="ca-new">{fmt(after)}</ins>
            </td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

/** Iterations grouped by round, in order; iterations without a round are a group of their own. */
export function rounds(its: Iteration[]): { round: number | null; iterations: Iteration[] }[] {
  const groups: { round: number | null; iterations: Iteration[] }[] = [];
  for (const it of its) {
    const last = groups[groups.length - 1];
    if (last && it.round !== null && last.round === it.round) {
      last.iterations.push(it);
    } else {
      groups.push({ round: it.round, iterations: [it] });
    }
  }
  return groups;
}

/** The round's verdict: which candidate was kept, if any. */
export function roundVerdict(group: Iteration[]): string {
  if (group.some(it => markOf(it) === 'running')) {
    return 'running';
  }
  const kept = group.filter(it => markOf(it) === 'kept');
  return kept.length ? `kept ${kept.map(it => `iteration ${it.index} (${label(it.idea || 'change')})`).join(', ')}` : 'none kept';
}

export function History(props: { session: Session }): JSX.Element | null {
  const its = props.session.iterations;
  if (!its.length) {
    return null;
  }
  const row = (it: Iteration) => {
    const i = its.indexOf(it);
    return <Row key={it.index} it={it} previous={i > 0 ? its[i - 1] : null} best={props.session.best_iteration === it.index} />;
  };
  const grouped = its.some(it => it.round !== null);
  return (
    <section className="ca-section" aria-label="Iterations" data-testid="clinagent-history">
      <div className="ca-section-title">Iterations</div>
      <MetricChart iterations={its} best={props.session.best_iteration} primary={props.session.spec?.primary_metric} />
      {grouped ? (
        <ol className="ca-rounds">
          {rounds(its).map(group => (
            <li key={group.iterations[0].index} className="ca-round" data-testid="clinagent-round">
              <div className="ca-round-head">
                <span className="ca-round-name">Round {group.round ?? '–'}</span>
                <span className="ca-muted" data-testid="clinagent-round-verdict">{roundVerdict(group.iterations)}</span>
              </div>
              <ol className="ca-history">{group.iterations.map(row)}</ol>
            </li>
          ))}
        </ol>
      ) : (
        <ol className="ca-history">{its.map(row)}</ol>
      )}
    </section>
  );
}
