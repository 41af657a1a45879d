/**
 * Start / Run next / Stop, auto-continue, and the run state (driven by the server's events).
 */
import React, { useEffect, useState } from 'react';
import { Button } from '@jupyterlab/ui-components';
import { describeRunState, IRunState } from '../runState';
import { fmt, metricLabel } from '../vocab';

export interface IRunControlProps {
  state: IRunState;
  running: boolean;
  busy: boolean;
  hasIterations: boolean;
  canStart: boolean;
  autoContinue: boolean;
  onStart: () => void;
  onStop: () => void;
  onAutoContinue: (on: boolean) => void;
}

/** Seconds left: the pace so far, capped by the iteration's budget. */
export function secondsLeft(s: IRunState, nowS: number): number | null {
  if (s.phase !== 'training' || s.startedAt === null) {
    return null;
  }
  const elapsed = nowS - s.startedAt;
  let left: number | null = null;
  if (s.maxEpochs && s.epoch) {
    left = (elapsed / s.epoch) * (s.maxEpochs - s.epoch);
  }
  if (s.budgetS !== null) {
    left = left === null ? s.budgetS - elapsed : Math.min(left, s.budgetS - elapsed);
  }
  return left === null ? null : Math.max(0, Math.round(left));
}

export function RunStatus(props: { state: IRunState }): JSX.Element {
  const s = props.state;
  const [now, setNow] = useState(Date.now() / 1000);
  useEffect(() => {
    const timer = setInterval(() => setNow(Date.now() / 1000), 1000);
    return () => clearInterval(timer);
  }, []);
  const left = secondsLeft(s, now);
  return (
    <div className={`ca-status ca-phase-${s.phase}`} data-testid="clinagent-status" data-phase={s.phase} role="status" aria-live="polite">
      <div className="ca-status-line">{describeRunState(s)}</div>
      {s.phase === 'training' && s.maxEpochs ? (
        <progress className="ca-progressbar" max={s.maxEpochs} value={s.epoch ?? 0} aria-label="epochs done" />
      ) : null}
      {s.phase === 'training' && (s.metric || left !== null) ? (
        <div className="ca-muted" data-testid="clinagent-progress">
          {s.metric ? `${metricLabel(s.metric[0])} ${fmt(s.metric[1])}` : ''}
          {s.metric && left !== null ? ' · ' : ''}
          {left !== null ? `about ${left} s left` : ''}
        </div>
      ) : null}
    </div>
  );
}

export function RunControl(props: IRunControlProps): JSX.Element {
  return (
    <section className="ca-section ca-run" aria-label="Run">
      <div className="ca-row">
        <Button
          className="ca-primary"
          data-testid="clinagent-start"
          disabled={props.busy || props.running || !props.canStart}
          onClick={props.onStart}
        >
          {props.hasIterations ? 'Run next' : 'Start'}
        </Button>
        <Button data-testid="clinagent-stop" disabled={!props.running} onClick={props.onStop}>
          Stop
        </Button>
        <label className="ca-switch" title="run the next proposal without waiting for approval">
          <input
            type="checkbox"
            data-testid="clinagent-auto-continue"
            checked={props.autoContinue}
            onChange={e => props.onAutoContinue(e.target.checked)}
          />
          keep going
        </label>
      </div>
      <RunStatus state={props.state} />
    </section>
  );
}
