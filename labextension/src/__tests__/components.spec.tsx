import React from 'react';
import { fireEvent, render, screen } from '@testing-library/react';
import { History, MetricChart, recipeDiff } from '../components/history';
import { FinalCard } from '../components/final';
import { Questions } from '../components/questions';
import { auditAuroc, SpecCard } from '../components/specCard';
import { Iteration, Session, TaskSpec } from '../schema';
import { label, TASK_TYPES } from '../vocab';

const spec = {
  request: 'flag pneumothorax',
  objective: 'detect pneumothorax',
  task_type: 'binary_classification',
  modality: 'chest_xray',
  classes: ['normal', 'pneumothorax'],
  target_classes: ['pneumothorax'],
  primary_metric: { name: 'auroc', direction: 'maximize', params: {} },
  secondary_metrics: [],
  risk_preference: 'balanced',
  confounders: [{ name: 'chest_drain', column: 'chest_drain', action: 'mitigate' }],
  supervision: { kind: 'full', box_fraction: null },
  output_format: 'probabilities',
  budget: { max_iterations: 4, iteration_minutes: 5, total_minutes: null },
  target_value: null,
  assumptions: ["'chest_drain' predicts the label with AUROC 0.85 on its own: the concern is real", 'Metric: AUROC'],
  questions: [],
  parsed_by: 'offline'
} as unknown as TaskSpec;

const it_ = (index: number, status: string, decision: string, value: number | null, lr: number): Iteration =>
  ({ index, status, decision, selection_value: value, idea: index === 1 ? 'baseline' : 'mitigate', rationale: `why ${index}`,
    decision_reason: 'r', recipe: { optim: { lr } }, error: status === 'crash' ? { evalue: 'boom' } : null }) as unknown as Iteration;

describe('vocabulary', () => {
  it('reads enum values from the server schema and gives them human labels', () => {
    expect(TASK_TYPES).toContain('binary_classification');
    expect(label('chest_xray')).toBe('Chest X-ray');
    expect(label('some_new_value')).toBe('some new value');
  });
});

describe('spec card', () => {
  it('shows labels with machine values on hover, confounder chips with the audit figure, assumptions folded', () => {
    const onChange = jest.fn();
    render(<SpecCard spec={spec} locked={false} onChange={onChange} />);
    const task = screen.getByTestId('clinagent-spec-task') as HTMLSelectElement;
    expect(task.title).toBe('binary_classification');
    expect(task.selectedOptions[0].textContent).toBe('Finding present or not');
    expect(screen.getByTestId('clinagent-confounder-audit').textContent).toBe('predicts the label with AUROC 0.85 on its own');
    expect(screen.queryByTestId('clinagent-assumption')).toBeNull();
    fireEvent.click(screen.getByTestId('clinagent-assumptions-toggle'));
    expect(screen.getAllByTestId('clinagent-assumption')).toHaveLength(2);
    fireEvent.click(screen.getByTestId('clinagent-confounder-toggle-chest_drain'));
    expect(onChange.mock.calls[0][0].confounders[0].action).toBe('report');
  });

  it('prefers the data audit over the parser sentence', () => {
    const audit = [{ column: 'chest_drain', auroc: 0.9 }] as never;
    expect(auditAuroc(spec.confounders[0], spec, audit)).toBe(0.9);
    expect(auditAuroc(spec.confounders[0], spec)).toBe(0.85);
  });
});

describe('questions', () => {
  it('offers structured choices with the default marked and handles plain strings', () => {
    const onAnswer = jest.fn();
    const q = { id: 'risk_preference', text: 'Which mistake is worse?', field: 'risk_preference', default: 'balanced',
      options: [{ value: 'sensitivity', label: 'Missing a case' }, { value: 'balanced', label: 'Both the same' }] };
    render(<Questions questions={[q, 'Which hospital?']} busy={false} onAnswer={onAnswer} onFreeAnswers={jest.fn()} />);
    expect(screen.getByTestId('clinagent-choice-balanced').textContent).toContain('(default)');
    expect(screen.getByTestId('clinagent-choice-sensitivity').textContent).not.toContain('(default)');
    fireEvent.click(screen.getByTestId('clinagent-choice-sensitivity'));
    expect(onAnswer).toHaveBeenCalledWith('risk_preference', 'sensitivity');
    expect(screen.getByTestId('clinagent-answer')).toBeTruthy();
  });
});

describe('history', () => {
  const its = [it_(1, 'ok', 'baseline', 0.71, 0.001), it_(2, 'ok', 'discarded', 0.69, 0.01), it_(3, 'crash', 'failed', null, 0.1)];

  it('marks kept, discarded and crashed iterations in the chart', () => {
    const { container } = render(<MetricChart iterations={its} best={1} />);
    const plot = container.querySelector('svg.ca-chart')!;
    expect(plot.querySelectorAll('.ca-chart-kept')).toHaveLength(1);
    expect(plot.querySelectorAll('.ca-chart-discarded')).toHaveLength(1);
    expect(plot.querySelectorAll('.ca-chart-failed')).toHaveLength(1);
    expect(plot.querySelectorAll('.ca-chart-best')).toHaveLength(1);
    const points = screen.getAllByTestId('clinagent-chart-point');
    expect(points.map(p => [p.dataset.index, p.dataset.mark, p.dataset.value])).toEqual([
      ['1', 'kept', '0.71'], ['2', 'discarded', '0.69'], ['3', 'failed', '']]);
    expect(points[2].querySelector('title')!.textContent).toBe('iteration 3, Stop the model relying on it: crashed, no result');
    expect(Array.from(screen.getByTestId('clinagent-chart-legend').querySelectorAll('li')).map(li => li.textContent)).toEqual([
      'kept', 'tried, not kept', 'no result (crashed or ran out of time)', 'best so far']);
    expect(screen.getByTestId('clinagent-chart-metric').textContent).toBe('Validation AUROC per iteration, higher is better');
  });

  it('expands a row to its rationale and recipe diff', () => {
    render(<History session={{ iterations: its, best_iteration: 1 } as unknown as Session} />);
    const rows = screen.getAllByTestId('clinagent-history-row');
    expect(rows).toHaveLength(3);
    fireEvent.click(rows[1].querySelector('button')!);
    expect(rows[1].textContent).toContain('why 2');
    expect(rows[1].textContent).toContain('optim.lr');
    expect(recipeDiff({ a: { b: 1, c: 2 } }, { a: { b: 1, c: 3 } })).toEqual([['a.c', 2, 3]]);
  });
});

describe('final card', () => {
  it('names the measured sensitivity and specificity, not the risk preferences of the same name', () => {
    const finalTest = { iteration: 2, metrics: { auroc: 0.91, sensitivity: 0.93, specificity: 0.7 }, n_samples: 115 };
    render(<FinalCard finalTest={finalTest as never} />);
    expect(screen.getByText('Sensitivity (cases found)')).toBeTruthy();
    expect(screen.getByText('Specificity (normals cleared)')).toBeTruthy();
    expect(screen.queryByText('Missing a case is worse')).toBeNull();
    expect(screen.getByText('115 test images')).toBeTruthy();
  });
});
