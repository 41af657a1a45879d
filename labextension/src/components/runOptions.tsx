/**
 * How a new session trains, beside its spec: pretrained weights (what this machine has cached, or a weights file
 * under the server's root) and how many candidates a round runs. Read-only once the session exists.
 */
import React from 'react';
import { CachedWeights, Session } from '../schema';
import { Field } from './common';

export interface IRunOptions {
  /** A cached name, a weights file's path, or '' (the initializer decides). */
  pretrained: string;
  /** Candidates per round (`--parallel K`). */
  parallel: number;
}

export const DEFAULT_OPTIONS: IRunOptions = { pretrained: '', parallel: 1 };

/** `1.2 GiB` for a byte count. */
export function size(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let n = bytes;
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i += 1;
  }
  return i === 0 ? `${n} B` : `${n.toFixed(1)} ${units[i]}`;
}

/** What a session records of these options: its pretrained weights and its candidates per round. */
export function sessionOptions(session: Session): { pretrained: string | null; parallel: number } {
  const fixed = session.recipe_overrides['model.pretrained'];
  const parallel = session.execution['parallel'];
  return {
    pretrained: typeof fixed === 'string' ? fixed : null,
    parallel: typeof parallel === 'number' ? parallel : 1
  };
}

export function RunOptions(props: {
  options: IRunOptions;
  weights: CachedWeights[];
  session: Session | null;
  onChange: (options: IRunOptions) => void;
  /** A session's candidates per round changed (from its next round on); absent or undefined while it runs. */
  onSessionParallel?: (parallel: number) => void;
}): JSX.Element {
  const { options, weights, session } = props;
  if (session) {
    const shown = sessionOptions(session);
    return (
      <div className="ca-options" data-testid="clinagent-run-options">
        <p className="ca-muted" data-testid="clinagent-pretrained-shown">
          Pretrained weights: {shown.pretrained ?? 'chosen by the initializer'}
        </p>
        <Field label="Candidates per round" htmlFor="ca-session-parallel" hint="from the next round on">
          <input id="ca-session-parallel" type="number" min={1} max={16} className="jp-mod-styled"
            data-testid="clinagent-session-parallel" disabled={!props.onSessionParallel} value={shown.parallel}
            onChange={e => props.onSessionParallel?.(Math.max(1, Math.min(16, Number(e.target.value) || 1)))} />
        </Field>
      </div>
    );
  }
  return (
    <div className="ca-options" data-testid="clinagent-run-options">
      <Field label="Pretrained weights" htmlFor="ca-pretrained" hint="a cached name, a weights file under this folder, or none">
        <input id="ca-pretrained" className="jp-mod-styled" list="ca-weights" data-testid="clinagent-pretrained"
          placeholder={weights.length ? 'pick cached weights or type a file path' : 'a weights file path (none cached)'}
          value={options.pretrained} onChange={e => props.onChange({ ...options, pretrained: e.target.value })} />
        <datalist id="ca-weights">
          <option value="none">train from scratch</option>
          {weights.map(w => (
            <option key={w.path} value={w.name}>{`${w.source}, ${size(w.bytes)}`}</option>
          ))}
        </datalist>
      </Field>
      <Field label="Candidates per round" htmlFor="ca-parallel" hint="--parallel: several proposals run together, approved as one round">
        <input id="ca-parallel" type="number" min={1} max={16} className="jp-mod-styled" data-testid="clinagent-parallel"
          value={options.parallel}
          onChange={e => props.onChange({ ...options, parallel: Math.max(1, Math.min(16, Number(e.target.value) || 1)) })} />
      </Field>
    </div>
  );
}
