import { chartData, markOf, metricName, yAxis } from '../chart';
import { Iteration, MetricSpec } from '../schema';

const it_ = (index: number, fields: Partial<Record<keyof Iteration, unknown>> = {}): Iteration =>
  ({ index, status: 'ok', decision: 'discarded', selection_value: 0.7, idea: 'change', rationale: '', decision_reason: '',
    round: null, val_metrics: {}, recipe: { evaluation: { primary_metric: 'auroc', selection_metric: null, metric_params: {} } },
    ...fields }) as unknown as Iteration;
const auroc = { name: 'auroc', direction: 'maximize', params: {} } as MetricSpec;

describe('iterations chart data', () => {
  it('gives both iterations of a baseline and a discarded change their own place and value', () => {
    // the browser test's session: the change scores higher but relies on the shortcut, so it is discarded
    const its = [
      it_(1, { decision: 'baseline', idea: 'baseline', selection_value: 0.35 }),
      it_(2, { idea: 'train_longer', selection_value: 0.94, decision_reason: 'constraint not met: relies on chest_drain' })
    ];
    const data = chartData(its, { best: 1, primary: auroc });
    expect(data.points.map(p => [p.index, p.slot, p.value, p.mark, p.best])).toEqual([
      [1, 0, 0.35, 'kept', true], [2, 1, 0.94, 'discarded', false]]);
    expect(data.ticks).toEqual([0.2, 0.4, 0.6, 0.8, 1]); // round values around both figures, within [0, 1]
    expect(data.domain).toEqual([0.2, 1]);
    expect(data.legend).toEqual(['kept', 'discarded']);
    expect(data.bestLine).toEqual([[0, 0.35], [1, 0.35]]); // the bar the change had to clear
    expect(data.points[1].title).toBe(
      'iteration 2, train longer: AUROC 0.940, tried, not kept (constraint not met: relies on chest_drain)');
    expect(data.metric).toBe('AUROC');
    expect(data.note).toBeNull();
  });

  it('puts crashed, timed-out and stopped iterations on the axis without a value, and running ones too', () => {
    const its = [
      it_(1, { decision: 'baseline', selection_value: 0.6 }),
      it_(2, { status: 'crash', decision: 'failed', selection_value: null }),
      it_(3, { status: 'timeout', decision: 'failed', selection_value: 0.9 }), // a figure from a cut-short run
      it_(4, { decision: 'kept', selection_value: 0.7 }),
      it_(5, { status: 'ok', decision: 'failed', selection_value: null }),
      it_(6, { status: 'running', decision: 'pending', selection_value: null })
    ];
    const data = chartData(its, { best: 4, primary: auroc });
    expect(data.points.map(p => [p.index, p.mark, p.value])).toEqual([
      [1, 'kept', 0.6], [2, 'failed', null], [3, 'failed', null], [4, 'kept', 0.7], [5, 'failed', null], [6, 'running', null]]);
    expect(data.points.map(p => p.slot)).toEqual([0, 1, 2, 3, 4, 5]);
    expect(data.domain[1]).toBeLessThan(0.9); // the timed-out figure does not stretch the scale
    expect(data.points[2].title).toBe('iteration 3, change: ran out of time, no result');
    expect(data.points[4].title).toBe('iteration 5, change: no validation figure, no result');
    expect(data.legend).toEqual(['kept', 'failed', 'running']);
    expect(data.bestLine).toEqual([[0, 0.6], [3, 0.6], [3, 0.7], [5, 0.7]]);
    expect(markOf(its[1])).toBe('failed');
  });

  it('keeps every candidate of a round at its own place and shades the round', () => {
    const its = [
      it_(1, { round: 1, decision: 'baseline', selection_value: 0.7 }),
      it_(2, { round: 2, selection_value: 0.72 }),
      it_(3, { round: 2, decision: 'kept', selection_value: 0.72 }), // same figure as its sibling
      it_(4, { round: 3, status: 'crash', decision: 'failed', selection_value: null })
    ];
    const data = chartData(its, { best: 3 });
    expect(data.points.map(p => p.slot)).toEqual([0, 1, 2, 3]);
    expect(data.rounds).toEqual([{ round: 1, from: 0, to: 0 }, { round: 2, from: 1, to: 2 }, { round: 3, from: 3, to: 3 }]);
    expect(data.points[1].title).toContain('iteration 2 (round 2)');
  });

  it('names the metric plotted, and the request\'s own when keep/discard is decided on another', () => {
    const mitigated = { evaluation: { primary_metric: 'auroc', selection_metric: 'group_balanced_auroc', metric_params: {} } };
    const its = [it_(1, { decision: 'baseline', recipe: mitigated, val_metrics: { selection_metric: 'group_balanced_auroc' } })];
    const data = chartData(its, { primary: auroc });
    expect(data.metric).toBe('group-balanced AUROC');
    expect(data.note).toBe('keep or discard is decided on group-balanced AUROC; the request is judged by AUROC');

    // a metric with a parameter, named from the spec when nothing has run yet
    const sens = { name: 'sensitivity_at_specificity', direction: 'maximize', params: { specificity: 0.9 } } as MetricSpec;
    const pending = chartData([it_(1, { status: 'running', decision: 'pending', selection_value: null })], { primary: sens });
    expect(pending.metric).toBe('sensitivity at 90 % specificity');
    expect(pending.domain).toEqual([0, 1]);
    expect(pending.bestLine).toEqual([]);
    expect(yAxis(0.71, 0.74).ticks).toEqual([0.68, 0.7, 0.72, 0.74, 0.76]);
    expect(yAxis(0.97, 0.99).ticks).toEqual([0.94, 0.96, 0.98, 1]); // never above 1
    expect(metricName('specificity_at_sensitivity')).toBe('specificity at a fixed sensitivity');
    expect(metricName('map50')).toBe('mAP at IoU 0.5');
  });
});
