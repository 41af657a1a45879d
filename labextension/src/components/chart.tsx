/**
 * The iterations chart: the validation figure of each iteration at its number, kept / tried-not-kept / no
 * result told apart by shape and colour (a legend in words below), the best-so-far line, rounds shaded. The
 * data are prepared by `chartData` (../chart.ts).
 */
import React from 'react';
import { ChartData, chartData, Mark, MARK_WORDS } from '../chart';
import { Iteration, MetricSpec } from '../schema';

const W = 300;
const H = 132;
const [LEFT, RIGHT, TOP, BOTTOM] = [34, W - 10, 20, H - 30];
const PAD = 12;

function scales(data: ChartData): { x: (slot: number) => number; y: (v: number) => number } {
  const n = data.points.length;
  const [y0, y1] = data.domain;
  return {
    x: slot => (n === 1 ? (LEFT + RIGHT) / 2 : LEFT + PAD + (slot * (RIGHT - LEFT - 2 * PAD)) / (n - 1)),
    y: v => BOTTOM - ((v - y0) / (y1 - y0 || 1)) * (BOTTOM - TOP)
  };
}

/** A mark's symbol centred on (cx, cy), the same in the plot and in the legend. */
function Symbol(props: { mark: Mark; cx: number; cy: number }): JSX.Element {
  const { mark, cx, cy } = props;
  if (mark === 'failed') {
    return (
      <path className="ca-chart-failed" d={`M${cx - 4},${cy - 4}L${cx + 4},${cy + 4}M${cx - 4},${cy + 4}L${cx + 4},${cy - 4}`} />
    );
  }
  return <circle className={`ca-chart-${mark}`} cx={cx} cy={cy} r={mark === 'running' ? 3.5 : 4} />;
}

function Legend(props: { data: ChartData }): JSX.Element {
  const line = props.data.bestLine.length > 1;
  return (
    <ul className="ca-chart-legend" data-testid="clinagent-chart-legend">
      {props.data.legend.map(mark => (
        <li key={mark} data-mark={mark}>
          <svg width={12} height={12} viewBox="0 0 12 12" aria-hidden="true">
            <Symbol mark={mark} cx={6} cy={6} />
          </svg>
          {MARK_WORDS[mark]}
        </li>
      ))}
      {line ? (
        <li data-mark="best">
          <svg width={18} height={12} viewBox="0 0 18 12" aria-hidden="true">
            <path className="ca-chart-line" d="M1,6H17" />
          </svg>
          best so far
        </li>
      ) : null}
    </ul>
  );
}

export function MetricChart(props: { iterations: Iteration[]; best: number | null; primary?: MetricSpec | null }): JSX.Element | null {
  if (!props.iterations.length) {
    return null;
  }
  const data = chartData(props.iterations, { best: props.best, primary: props.primary });
  const { x, y } = scales(data);
  const n = data.points.length;
  const every = Math.ceil(n / 12); // iteration numbers stay legible on a narrow panel (the newest always)
  const half = n > 1 ? (RIGHT - LEFT - 2 * PAD) / (n - 1) / 2 : (RIGHT - LEFT) / 2;
  const better = props.primary?.direction === 'minimize' ? 'lower is better' : 'higher is better';
  const said = data.points.map(p => p.title).join('; ');
  return (
    <figure className="ca-chart-figure" data-testid="clinagent-chart-figure">
      <figcaption className="ca-chart-caption" data-testid="clinagent-chart-metric">
        Validation {data.metric} <span className="ca-muted">per iteration, {better}</span>
      </figcaption>
      <svg className="ca-chart" viewBox={`0 0 ${W} ${H}`} role="img" data-testid="clinagent-chart"
        aria-label={`validation ${data.metric} per iteration: ${said}`}>
        {data.rounds.map((r, i) => (
          <g key={`r${r.round}-${r.from}`}>
            <rect className={`ca-chart-round ca-chart-round-${i % 2}`} x={x(r.from) - half} y={2}
              width={x(r.to) - x(r.from) + 2 * half} height={BOTTOM - 2} />
            <text className="ca-chart-axis" x={(x(r.from) + x(r.to)) / 2} y={11} textAnchor="middle">
              round {r.round}
            </text>
          </g>
        ))}
        {data.ticks.map(t => (
          <g key={t}>
            <line className="ca-chart-grid" x1={LEFT} x2={RIGHT} y1={y(t)} y2={y(t)} />
            <text className="ca-chart-axis" x={LEFT - 4} y={y(t) + 3} textAnchor="end">{t.toFixed(2)}</text>
          </g>
        ))}
        <line className="ca-chart-baseline" x1={LEFT} x2={RIGHT} y1={BOTTOM} y2={BOTTOM} />
        {data.points.map(p =>
          (n - 1 - p.slot) % every === 0 ? (
            <text key={p.index} className="ca-chart-axis" x={x(p.slot)} y={BOTTOM + 12} textAnchor="middle">{p.index}</text>
          ) : null
        )}
        <text className="ca-chart-axis ca-chart-axis-title" x={(LEFT + RIGHT) / 2} y={H - 3} textAnchor="middle">iteration</text>
        {data.bestLine.length > 1 ? (
          <path className="ca-chart-line" d={data.bestLine.map(([s, v], i) => `${i ? 'L' : 'M'}${x(s)},${y(v)}`).join('')} />
        ) : null}
        {data.points.map(p => {
          const cy = p.value === null ? BOTTOM : y(p.value);
          return (
            <g key={p.index} data-testid="clinagent-chart-point" data-index={p.index} data-mark={p.mark}
              data-value={p.value ?? ''}>
              <title>{p.title}</title>
              {p.best ? <circle className="ca-chart-best" cx={x(p.slot)} cy={cy} r={7} /> : null}
              <Symbol mark={p.mark} cx={x(p.slot)} cy={cy} />
              {p.value !== null && n <= 8 ? (
                <text className="ca-chart-value" x={x(p.slot)} y={cy - (p.best ? 10 : 7)} textAnchor="middle">
                  {p.value.toFixed(2)}
                </text>
              ) : null}
            </g>
          );
        })}
      </svg>
      <Legend data={data} />
      {data.note ? <p className="ca-muted ca-chart-note">{data.note}</p> : null}
    </figure>
  );
}
