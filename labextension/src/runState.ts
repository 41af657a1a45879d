/**
 * The run state the sidebar shows, derived from the server's events only (so it is never stale).
 */
import { Event } from './schema';

export type RunPhase =
  | 'idle'
  | 'starting'
  | 'preparing'
  | 'training'
  | 'evaluating'
  | 'waiting'
  | 'testing'
  | 'finished'
  | 'crashed'
  | 'stopping';

export interface IRunState {
  phase: RunPhase;
  iteration: number | null;
  epoch: number | null;
  maxEpochs: number | null;
  metric: [string, number] | null;
  budgetS: number | null;
  startedAt: number | null;
  reason: string | null;
}

export const IDLE: IRunState = {
  phase: 'idle',
  iteration: null,
  epoch: null,
  maxEpochs: null,
  metric: null,
  budgetS: null,
  startedAt: null,
  reason: null
};

const SHOWN = ['val_group_balanced_auroc', 'val_auroc', 'val_auroc_macro', 'val_map50', 'val_loss'];

/** The next state after `event` (a pure function: the jest tests feed it event sequences). */
export function nextRunState(state: IRunState, event: Event): IRunState {
  switch (event.type) {
    case 'state':
      if (event.running) {
        if (event.running.phase === 'stopping') {
          return { ...state, phase: 'stopping' };
        }
        const settled = ['idle', 'waiting', 'crashed', 'finished', 'stopping'].includes(state.phase);
        return settled ? { ...IDLE, phase: 'starting', iteration: event.running.iteration ?? null } : state;
      }
      // the loop ended: a terminal state stays, otherwise the server now waits for the clinician
      return ['crashed', 'finished', 'waiting'].includes(state.phase) ? state : { ...state, phase: 'idle' };
    case 'iteration_started':
      // the notebook's kernel starts; 'preparing' follows on the kernel's own data_started event
      return {
        ...IDLE,
        phase: 'starting',
        iteration: event.iteration,
        maxEpochs: event.max_epochs ?? null,
        startedAt: event.at
      };
    case 'data_started':
      return { ...state, phase: 'preparing', iteration: event.iteration ?? state.iteration };
    case 'fit_started':
      return {
        ...state,
        phase: 'training',
        iteration: event.iteration,
        epoch: 0,
        maxEpochs: event.max_epochs ?? state.maxEpochs,
        budgetS: event.budget_s ?? state.budgetS
      };
    case 'epoch': {
      const key = SHOWN.find(k => typeof event.metrics?.[k] === 'number');
      return {
        ...state,
        phase: 'training',
        iteration: event.iteration,
        epoch: event.epoch + 1,
        maxEpochs: event.max_epochs ?? state.maxEpochs,
        metric: key && event.metrics ? [key, event.metrics[key]] : state.metric,
        budgetS: event.budget_s ?? state.budgetS
      };
    }
    case 'fit_finished':
      return { ...state, phase: 'evaluating' };
    case 'iteration_finished':
      if (event.status !== 'ok') {
        return {
          ...state,
          phase: 'crashed',
          reason: event.error || event.reason || label(event.status)
        };
      }
      return { ...state, phase: 'waiting', reason: event.reason ?? null };
    case 'proposal':
      return state.phase === 'crashed' ? state : { ...state, phase: event.proposal ? 'waiting' : 'idle' };
    case 'test_started':
      return { ...IDLE, phase: 'testing', iteration: event.iteration };
    case 'session_finished':
    case 'final_test':
      return { ...IDLE, phase: 'finished', iteration: event.type === 'final_test' ? event.final_test.iteration : event.iteration };
    case 'loop_finished':
      return state.phase === 'crashed' ? state : { ...state, phase: 'idle', reason: event.reason };
    case 'error':
      return { ...state, phase: 'crashed', reason: event.what || event.message || event.error || 'error' };
    default:
      return state;
  }
}

function label(status: string): string {
  return status === 'timeout' ? 'ran out of time' : status;
}

/** One line for the state, as the sidebar shows it. */
export function describeRunState(s: IRunState): string {
  const it = s.iteration !== null ? `Iteration ${s.iteration}: ` : '';
  switch (s.phase) {
    case 'idle':
      return 'Idle';
    case 'starting':
      return s.iteration === null ? 'Starting…' : `${it}starting the notebook's kernel`;
    case 'preparing':
      return `${it}preparing data`;
    case 'training':
      return `${it}training, epoch ${s.epoch ?? 0}/${s.maxEpochs ?? '?'}`;
    case 'evaluating':
      return `${it}evaluating on the validation split`;
    case 'waiting':
      return s.iteration === null
        ? 'Ready: the first recipe is proposed; press Start or edit it'
        : `${it}finished; waiting for your approval of the next step`;
    case 'testing':
      return `Evaluating iteration ${s.iteration} on the test split (once)`;
    case 'finished':
      return 'Finished: the test split has been read';
    case 'crashed':
      return `${it}crashed: ${s.reason ?? 'unknown reason'}`;
    case 'stopping':
      return 'Stopping…';
  }
}
