/**
 * What the iterations chart shows, prepared apart from its drawing: one mark per listed iteration at its own
 * place on the x axis (its number), the validation figure on the y axis when it has one, a crashed, timed-out
 * or stopped one on the axis without a value, the best-so-far line through the kept ones, the rounds run
 * together (`--parallel`), and the name of the metric plotted.
 */
import { Iteration, MetricSpec } from './schema';
import { label } from './vocab';

/** kept (the baseline, or a new best), tried and not kept, no result, still running. */
export type Mark = 'kept' | 'discarded' | 'failed' | 'running';

export interface ChartPoint {
  index: number;
  /** 0-based place on the x axis: the iteration's place in the list */
  slot: number;
  /** the validation figure; null when there is none (drawn on the axis) */
  value: number | null;
  mark: Mark;
  best: boolean;
  round: number | null;
  /** what a hover (and a screen reader) says about it */
  title: string;
}

export interface ChartData {
  points: ChartPoint[];
  /** y range: the figures with a margin, on round values inside [0, 1] */
  domain: [number, number];
  /** round values along the y axis, from the bottom of the range to its top */
  ticks: number[];
  /** the plotted metric as a clinician reads it, e.g. "AUROC" */
  metric: string;
  /** when keep/discard is decided on another metric than the one the request is judged by */
  note: string | null;
  /** [slot, value] corners of the best-so-far line (kept iterations, held until the next one) */
  bestLine: [number, number][];
  /** rounds of candidates run together: first and last slot of each */
  rounds: { round: number; from: number; to: number }[];
  /** the marks present, for the legend, in a fixed order */
  legend: Mark[];
}

export const MARK_WORDS: Record<Mark, string> = {
  kept: 'kept',
  discarded: 'tried, not kept',
  failed: 'no result (crashed or ran out of time)',
  running: 'running'
};

export function markOf(it: Iteration): Mark {
  if (it.status === 'running' || it.status === 'pending') {
    return 'running';
  }
  if (it.status !== 'ok' || typeof it.selection_value !== 'number' || !Number.isFinite(it.selection_value)) {
    return 'failed';
  }
  return it.decision === 'kept' || it.decision === 'baseline' ? 'kept' : 'discarded';
}

const NAMES: Record<string, string> = {
  auroc: 'AUROC',
  group_balanced_auroc: 'group-balanced AUROC',
  worst_group_auroc: 'worst-group AUROC',
  balanced_accuracy: 'balanced accuracy',
  f1: 'F1 score',
  map50: 'mAP at IoU 0.5'
};

/** `sensitivity_at_specificity` with `{specificity: 0.9}` → "sensitivity at 90 % specificity". */
export function metricName(key: string, params: Record<string, unknown> = {}): string {
  const at = key.match(/^(sensitivity|specificity)_at_(sensitivity|specificity)$/);
  if (at) {
    const value = params[at[2]];
    return typeof value === 'number' ? `${at[1]} at ${Math.round(value * 100)} % ${at[2]}` : `${at[1]} at a fixed ${at[2]}`;
  }
  return NAMES[key] ?? label(key);
}

function evaluation(it: Iteration): { primary_metric?: string; selection_metric?: string | null; metric_params?: Record<string, unknown> } {
  return ((it.recipe as unknown as { evaluation?: object })?.evaluation ?? {}) as never;
}

/** The metric the figures are: the one keep/discard is decided on (newest iteration that says), and a note
 * naming the request's own metric when they differ. */
function plotted(its: Iteration[], primary?: MetricSpec | null): { metric: string; note: string | null } {
  const primaryKey = primary?.name ?? (its.length ? evaluation(its[0]).primary_metric : undefined) ?? 'auroc';
  const params = primary?.params ?? (its.length ? evaluation(its[0]).metric_params : undefined) ?? {};
  let key = primaryKey;
  for (const it of [...its].reverse()) {
    const said = it.val_metrics?.selection_metric;
    const chosen = typeof said === 'string' ? said : evaluation(it).selection_metric ?? evaluation(it).primary_metric;
    if (chosen) {
      key = chosen;
      break;
    }
  }
  const metric = metricName(key, key === primaryKey ? params : {});
  const note = key === primaryKey ? null : `keep or discard is decided on ${metric}; the request is judged by ${metricName(primaryKey, params)}`;
  return { metric, note };
}

function pointTitle(it: Iteration, mark: Mark, metric: string, best: boolean): string {
  const head = `iteration ${it.index}${it.round !== null && it.round !== undefined ? ` (round ${it.round})` : ''}`;
  const idea = it.idea ? `, ${label(it.idea)}` : '';
  if (mark === 'running') {
    return `${head}${idea}: running`;
  }
  if (mark === 'failed') {
    const why = it.status === 'ok' ? 'no validation figure' : label(it.status);
    return `${head}${idea}: ${why}, no result`;
  }
  const value = (it.selection_value as number).toFixed(3);
  const reason = mark === 'discarded' && it.decision_reason ? ` (${it.decision_reason})` : '';
  return `${head}${idea}: ${metric} ${value}, ${MARK_WORDS[mark]}${best ? ', best so far' : ''}${reason}`;
}

/** A y range around [lo, hi] with a margin, on multiples of a round step (3 to 5 ticks), inside [0, 1]. */
export function yAxis(lo: number, hi: number): { domain: [number, number]; ticks: number[] } {
  const pad = Math.max(0.02, (hi - lo) * 0.15);
  const [a, b] = [Math.max(0, lo - pad), Math.min(1, hi + pad)];
  const eps = 1e-6; // 0.97 - 0.02 is 0.9499999...: a float's last digit never adds a tick
  const step = [0.01, 0.02, 0.05, 0.1, 0.2, 0.25].find(s => (b - a) / s <= 4 + eps) ?? 0.25;
  const n0 = Math.floor(a / step + eps);
  const n1 = Math.min(Math.ceil(b / step - eps), Math.floor(1 / step + eps));
  const ticks = Array.from({ length: n1 - n0 + 1 }, (_, i) => Math.round((n0 + i) * step * 1000) / 1000);
  return { domain: [ticks[0], ticks[ticks.length - 1]], ticks };
}

export function chartData(iterations: Iteration[], opts: { best?: number | null; primary?: MetricSpec | null } = {}): ChartData {
  const { metric, note } = plotted(iterations.filter(it => markOf(it) !== 'running'), opts.primary);
  const points: ChartPoint[] = iterations.map((it, slot) => {
    const mark = markOf(it);
    const best = opts.best === it.index;
    return {
      index: it.index, slot, mark, best, round: it.round ?? null,
      value: mark === 'kept' || mark === 'discarded' ? (it.selection_value as number) : null,
      title: pointTitle(it, mark, metric, best)
    };
  });
  const values = points.map(p => p.value).filter((v): v is number => v !== null);
  const lo = values.length ? Math.min(...values) : 0;
  const hi = values.length ? Math.max(...values) : 1;
  const { domain, ticks } = yAxis(lo, hi);

  const bestLine: [number, number][] = [];
  const kept = points.filter(p => p.mark === 'kept');
  kept.forEach((p, i) => {
    if (i > 0) {
      bestLine.push([p.slot, bestLine[bestLine.length - 1][1]]);
    }
    bestLine.push([p.slot, p.value as number]);
  });
  if (bestLine.length && points.length - 1 > bestLine[bestLine.length - 1][0]) {
    bestLine.push([points.length - 1, bestLine[bestLine.length - 1][1]]);
  }

  const rounds: ChartData['rounds'] = [];
  for (const p of points) {
    const last = rounds[rounds.length - 1];
    if (p.round === null) {
      continue;
    }
    if (last && last.round === p.round && last.to === p.slot - 1) {
      last.to = p.slot;
    } else {
      rounds.push({ round: p.round, from: p.slot, to: p.slot });
    }
  }
  const order: Mark[] = ['kept', 'discarded', 'failed', 'running'];
  return { points, domain, ticks, metric, note, bestLine, rounds, legend: order.filter(m => points.some(p => p.mark === m)) };
}
