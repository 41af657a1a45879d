import React from 'react';
import { fireEvent, render, screen } from '@testing-library/react';
import { History, rounds } from '../components/history';
import { ProposalCard } from '../components/proposal';
import { RunOptions, size } from '../components/runOptions';
import { CachedWeights, Iteration, Proposal, Session } from '../schema';

const it_ = (index: number, round: number, decision: string, idea: string): Iteration =>
  ({ index, round, status: 'ok', decision, selection_value: 0.7 + index / 100, idea, rationale: `why ${index}`,
    decision_reason: 'r', recipe: { optim: { lr: index } }, error: null }) as unknown as Iteration;
const proposal = (idea: string, lr: number): Proposal =>
  ({ idea, rationale: `try ${idea}`, changes: { 'optim.lr': [0.001, lr] }, recipe: {} }) as unknown as Proposal;

describe('rounds', () => {
  it('groups the history by round and names the candidate each round kept', () => {
    const its = [it_(1, 1, 'baseline', 'baseline'), it_(2, 2, 'discarded', 'lower_lr'), it_(3, 2, 'kept', 'mixup'),
      it_(4, 3, 'discarded', 'focal_loss')];
    expect(rounds(its).map(g => g.iterations.map(it => it.index))).toEqual([[1], [2, 3], [4]]);
    const session = { iterations: its, best_iteration: 3 } as unknown as Session;
    render(<History session={session} />);
    const verdicts = screen.getAllByTestId('clinagent-round-verdict').map(el => el.textContent);
    expect(verdicts).toEqual(['kept iteration 1 (baseline)', 'kept iteration 3 (mixup)', 'none kept']);
    expect(screen.getAllByTestId('clinagent-history-row')).toHaveLength(4);
  });

  it('shows the whole round on the proposal card and approves it as one', () => {
    const onApprove = jest.fn();
    render(<ProposalCard proposal={proposal('lower_lr', 0.0005)} candidates={[proposal('mixup', 0.001)]} busy={false}
      onApprove={onApprove} onReject={jest.fn()} onEdit={jest.fn()} />);
    expect(screen.getByTestId('clinagent-proposal').textContent).toContain('Next round: 2 candidates');
    expect(screen.getAllByTestId('clinagent-candidate')).toHaveLength(1);
    fireEvent.click(screen.getByTestId('clinagent-approve'));
    expect(onApprove).toHaveBeenCalledTimes(1);
    expect(screen.getByTestId('clinagent-approve').textContent).toBe('Approve the round');
  });
});

describe('run options', () => {
  it('offers the cached weights and sends the choice; a session shows what it recorded', () => {
    const weights = [{ name: 'resnet18.a1_in1k', source: 'timm', path: '/c/m.safetensors', bytes: 46_800_000 }] as CachedWeights[];
    const onChange = jest.fn();
    const { unmount } = render(<RunOptions options={{ pretrained: '', parallel: 1 }} weights={weights} session={null} onChange={onChange} />);
    expect(Array.from(document.querySelectorAll('#ca-weights option')).map(o => o.getAttribute('value'))).toEqual(['none', 'resnet18.a1_in1k']);
    fireEvent.change(screen.getByTestId('clinagent-pretrained'), { target: { value: 'resnet18.a1_in1k' } });
    fireEvent.change(screen.getByTestId('clinagent-parallel'), { target: { value: '3' } });
    expect(onChange.mock.calls.map(c => c[0])).toEqual([{ pretrained: 'resnet18.a1_in1k', parallel: 1 }, { pretrained: '', parallel: 3 }]);
    expect(size(46_800_000)).toBe('44.6 MiB');
    unmount();
    const session = { recipe_overrides: { 'model.pretrained': 'resnet18.a1_in1k' }, execution: { parallel: 2 } } as unknown as Session;
    const onSessionParallel = jest.fn();
    render(<RunOptions options={{ pretrained: '', parallel: 1 }} weights={[]} session={session} onChange={onChange}
      onSessionParallel={onSessionParallel} />);
    expect(screen.getByTestId('clinagent-pretrained-shown').textContent).toBe('Pretrained weights: resnet18.a1_in1k');
    fireEvent.change(screen.getByTestId('clinagent-session-parallel'), { target: { value: '4' } });
    expect(onSessionParallel).toHaveBeenCalledWith(4);
  });
});
