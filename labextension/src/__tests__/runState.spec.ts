import { describeRunState, IDLE, IRunState, nextRunState } from '../runState';
import { Event } from '../schema';

const base = { v: 1, session: 's', seq: 0, at: 100 };
const ev = (e: Record<string, unknown>): Event => ({ ...base, ...e }) as unknown as Event;

function run(events: Event[]): IRunState[] {
  const states: IRunState[] = [];
  events.reduce((s, e) => {
    const next = nextRunState(s, e);
    states.push(next);
    return next;
  }, IDLE);
  return states;
}

const running = { session: 's', iteration: null, phase: 'running', auto_continue: false, started_at: 1 };

describe('run state', () => {
  it('follows two iterations through every phase and never stays "running"', () => {
    const iteration = (n: number): Event[] => [
      ev({ type: 'state', running }),
      ev({ type: 'iteration_started', iteration: n, max_epochs: 2 }),
      ev({ type: 'data_started', iteration: n, data_path: 'data' }),
      ev({ type: 'fit_started', iteration: n, max_epochs: 2, budget_s: 60 }),
      ev({ type: 'epoch', iteration: n, epoch: 0, max_epochs: 2, metrics: { val_loss: 0.6, val_auroc: 0.71 } }),
      ev({ type: 'epoch', iteration: n, epoch: 1, max_epochs: 2, metrics: { val_auroc: 0.74 } }),
      ev({ type: 'fit_finished', iteration: n }),
      ev({ type: 'iteration_finished', iteration: n, status: 'ok', decision: 'kept' }),
      ev({ type: 'proposal', proposal: { idea: 'x' } }),
      ev({ type: 'state', running: null })
    ];
    const states = run([...iteration(1), ...iteration(2)]);
    expect(states.map(s => s.phase)).toEqual(
      Array(2).fill(['starting', 'starting', 'preparing', 'training', 'training', 'training', 'evaluating', 'waiting', 'waiting', 'waiting']).flat()
    );
    expect(describeRunState(states[1])).toBe("Iteration 1: starting the notebook's kernel");
    expect(describeRunState(states[2])).toBe('Iteration 1: preparing data');
    expect(describeRunState(states[5])).toBe('Iteration 1: training, epoch 2/2');
    expect(states[5].metric).toEqual(['val_auroc', 0.74]);
    expect(describeRunState(states[states.length - 1])).toContain('Iteration 2: finished; waiting for your approval');
  });

  it('shows a crash with its reason and keeps it after the loop ends', () => {
    const states = run([
      ev({ type: 'iteration_started', iteration: 1 }),
      ev({ type: 'iteration_finished', iteration: 1, status: 'crash', decision: 'failed', error: 'CUDA out of memory' }),
      ev({ type: 'state', running: null })
    ]);
    expect(states[2].phase).toBe('crashed');
    expect(describeRunState(states[2])).toBe('Iteration 1: crashed: CUDA out of memory');
  });

  it('reaches finished after the once-only test', () => {
    const states = run([ev({ type: 'test_started', iteration: 2 }), ev({ type: 'session_finished', iteration: 2, metrics: {} })]);
    expect(describeRunState(states[0])).toContain('test split (once)');
    expect(states[1].phase).toBe('finished');
  });
});
