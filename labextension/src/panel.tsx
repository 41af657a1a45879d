/**
 * The clinagent sidebar: request -> TaskSpec card -> iterations with live progress -> proposal -> finish.
 */
import { JupyterFrontEnd } from '@jupyterlab/application';
import { IDefaultFileBrowser } from '@jupyterlab/filebrowser';
import { INotebookTracker } from '@jupyterlab/notebook';
import { ReactWidget } from '@jupyterlab/ui-components';
import React, { useCallback, useEffect, useRef, useState } from 'react';
import { api, ApiError, followEvents, Json } from './api';
import { insertIterationCells } from './notebook';

const TASK_TYPES = ['binary_classification', 'multiclass_classification', 'detection'];
const MODALITIES = ['dermoscopy', 'chest_xray', 'musculoskeletal_xray', 'other'];
const METRICS = [
  'auroc',
  'sensitivity_at_specificity',
  'specificity_at_sensitivity',
  'balanced_accuracy',
  'f1',
  'map50'
];
const RISKS = ['sensitivity', 'specificity', 'balanced'];

interface IProps {
  app: JupyterFrontEnd;
  tracker: INotebookTracker | null;
  browser: IDefaultFileBrowser | null;
}

interface IProgress {
  iteration: number;
  epoch: number | null;
  maxEpochs: number | null;
  metrics: Record<string, number>;
  startedAt: number;
  budgetS: number | null;
  status: string;
}

function fmt(value: unknown): string {
  if (typeof value === 'number') {
    return Number.isInteger(value) ? String(value) : value.toFixed(4);
  }
  return value === null || value === undefined ? '–' : JSON.stringify(value);
}

function errorText(err: unknown): string {
  if (err instanceof ApiError && err.body) {
    const b = err.body;
    return [b.what, b.where && `Where: ${b.where}`, b.fix && `What to do: ${b.fix}`]
      .filter(Boolean)
      .join('. ');
  }
  return String(err);
}

/** Editable TaskSpec: assumptions highlighted, questions with an answer box. */
function SpecCard(props: {
  spec: Json;
  locked: boolean;
  onChange: (spec: Json) => void;
  onAnswer: (answers: string[]) => void;
}): JSX.Element {
  const { spec, locked, onChange } = props;
  const [answers, setAnswers] = useState<string[]>([]);
  const set = (path: string[], value: unknown) => {
    const copy = JSON.parse(JSON.stringify(spec));
    let node = copy;
    path.slice(0, -1).forEach(k => (node = node[k]));
    node[path[path.length - 1]] = value;
    onChange(copy);
  };
  const select = (label: string, path: string[], options: string[], testid: string) => (
    <label className="ca-field">
      <span>{label}</span>
      <select
        data-testid={testid}
        disabled={locked}
        value={path.reduce((n: Json, k) => n[k], spec)}
        onChange={e => set(path, e.target.value)}
      >
        {options.map(o => (
          <option key={o} value={o}>
            {o}
          </option>
        ))}
      </select>
    </label>
  );
  return (
    <div className="ca-card" data-testid="clinagent-spec">
      <div className="ca-card-title">Task spec</div>
      <label className="ca-field">
        <span>objective</span>
        <input
          data-testid="clinagent-spec-objective"
          disabled={locked}
          value={spec.objective}
          onChange={e => set(['objective'], e.target.value)}
        />
      </label>
      {select('task', ['task_type'], TASK_TYPES, 'clinagent-spec-task')}
      {select('modality', ['modality'], MODALITIES, 'clinagent-spec-modality')}
      {select('metric', ['primary_metric', 'name'], METRICS, 'clinagent-spec-metric')}
      <label className="ca-field">
        <span>metric params</span>
        <input
          disabled={locked}
          defaultValue={JSON.stringify(spec.primary_metric.params)}
          onBlur={e => {
            try {
              set(['primary_metric', 'params'], JSON.parse(e.target.value || '{}'));
            } catch {
              e.target.classList.add('ca-invalid');
            }
          }}
        />
      </label>
      {select('risk', ['risk_preference'], RISKS, 'clinagent-spec-risk')}
      <label className="ca-field">
        <span>target classes</span>
        <input
          disabled={locked}
          value={(spec.target_classes || []).join(', ')}
          onChange={e =>
            set(
              ['target_classes'],
              e.target.value
                .split(',')
                .map(s => s.trim())
                .filter(Boolean)
            )
          }
        />
      </label>
      <label className="ca-field">
        <span>confounders</span>
        <input
          disabled={locked}
          title="name:mitigate or name:report, comma separated"
          value={(spec.confounders || []).map((c: Json) => `${c.name}:${c.action}`).join(', ')}
          onChange={e =>
            set(
              ['confounders'],
              e.target.value
                .split(',')
                .map(s => s.trim())
                .filter(Boolean)
                .map(s => {
                  const [name, action] = s.split(':');
                  const old = (spec.confounders || []).find((c: Json) => c.name === name);
                  return { ...(old || {}), name, action: action === 'mitigate' ? 'mitigate' : 'report' };
                })
            )
          }
        />
      </label>
      <label className="ca-field">
        <span>iterations</span>
        <input
          type="number"
          min={1}
          data-testid="clinagent-spec-iterations"
          value={spec.budget.max_iterations}
          onChange={e => set(['budget', 'max_iterations'], Number(e.target.value))}
        />
      </label>
      <label className="ca-field">
        <span>minutes / iteration</span>
        <input
          type="number"
          min={0.1}
          step={0.5}
          value={spec.budget.iteration_minutes}
          onChange={e => set(['budget', 'iteration_minutes'], Number(e.target.value))}
        />
      </label>
      {(spec.assumptions || []).length > 0 && (
        <ul className="ca-assumptions">
          {spec.assumptions.map((a: string, i: number) => (
            <li key={i} className="ca-assumption" data-testid="clinagent-assumption" title="assumed, not stated">
              {a}
            </li>
          ))}
        </ul>
      )}
      {(spec.questions || []).length > 0 && !locked && (
        <div className="ca-questions">
          {spec.questions.map((q: string, i: number) => (
            <label key={i} className="ca-question" data-testid="clinagent-question">
              <span>{q}</span>
              <input
                data-testid="clinagent-answer"
                value={answers[i] || ''}
                onChange={e => {
                  const next = [...answers];
                  next[i] = e.target.value;
                  setAnswers(next);
                }}
              />
            </label>
          ))}
          <button className="jp-mod-styled" onClick={() => props.onAnswer(answers)}>
            Re-interpret with answers
          </button>
        </div>
      )}
    </div>
  );
}

function Progress(props: { progress: IProgress | null }): JSX.Element | null {
  const p = props.progress;
  const [now, setNow] = useState(Date.now());
  useEffect(() => {
    const timer = setInterval(() => setNow(Date.now()), 1000);
    return () => clearInterval(timer);
  }, []);
  if (!p) {
    return null;
  }
  const elapsed = (now - p.startedAt) / 1000;
  const done = p.epoch === null ? 0 : p.epoch + 1;
  let left: number | null = null;
  if (p.maxEpochs && done > 0) {
    left = (elapsed / done) * (p.maxEpochs - done);
  }
  if (p.budgetS !== null) {
    left = left === null ? p.budgetS - elapsed : Math.min(left, p.budgetS - elapsed);
  }
  const metric = Object.entries(p.metrics).find(([k]) => k.startsWith('val'));
  return (
    <div className="ca-progress" data-testid="clinagent-progress">
      <div>
        iteration {p.iteration} · {p.status}
        {p.maxEpochs ? ` · epoch ${done}/${p.maxEpochs}` : ''}
      </div>
      {p.maxEpochs ? <progress max={p.maxEpochs} value={done} /> : null}
      <div>
        {metric ? `${metric[0]} ${fmt(metric[1])} · ` : ''}
        {left !== null && p.status === 'running' ? `about ${Math.max(0, Math.round(left))} s left` : ''}
      </div>
    </div>
  );
}

function ProposalCard(props: {
  proposal: Json;
  busy: boolean;
  onAction: (action: string, changes?: Json) => void;
}): JSX.Element {
  const { proposal } = props;
  const [edits, setEdits] = useState<Record<string, string>>({});
  const [editing, setEditing] = useState(false);
  const [field, setField] = useState('');
  const [value, setValue] = useState('');
  const entries = Object.entries(proposal.changes || {}) as [string, [unknown, unknown]][];
  const parsed = (): Json => {
    const out: Json = {};
    Object.entries(edits).forEach(([k, v]) => {
      try {
        out[k] = JSON.parse(v);
      } catch {
        out[k] = v;
      }
    });
    return out;
  };
  return (
    <div className="ca-card" data-testid="clinagent-proposal">
      <div className="ca-card-title">Next: {proposal.idea || 'change'}</div>
      <div className="ca-rationale">{proposal.rationale}</div>
      {entries.length > 0 ? (
        <table className="ca-diff">
          <tbody>
            {entries.map(([key, [oldValue, newValue]]) => (
              <tr key={key}>
                <td>{key}</td>
                <td className="ca-old">{fmt(oldValue)}</td>
                <td className="ca-new">
                  {editing ? (
                    <input
                      data-testid={`clinagent-edit-${key}`}
                      defaultValue={JSON.stringify(newValue)}
                      onChange={e => setEdits({ ...edits, [key]: e.target.value })}
                    />
                  ) : (
                    fmt(newValue)
                  )}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      ) : (
        <div className="ca-muted">the initial recipe from the spec and the data</div>
      )}
      <div className="ca-row">
        <input
          className="ca-grow"
          data-testid="clinagent-edit-field"
          placeholder="recipe field, e.g. training.max_epochs"
          value={field}
          onChange={e => setField(e.target.value)}
        />
        <input
          className="ca-small"
          data-testid="clinagent-edit-value"
          placeholder="value"
          value={value}
          onChange={e => setValue(e.target.value)}
        />
        <button
          className="jp-mod-styled"
          data-testid="clinagent-edit-apply"
          disabled={props.busy || !field.trim()}
          onClick={() => {
            let parsedValue: unknown = value;
            try {
              parsedValue = JSON.parse(value);
            } catch {
              // a bare string
            }
            props.onAction('edit', { [field.trim()]: parsedValue });
            setField('');
            setValue('');
          }}
        >
          Change
        </button>
      </div>
      <div className="ca-row">
        <button
          className="jp-mod-styled jp-mod-accept"
          data-testid="clinagent-approve"
          disabled={props.busy}
          onClick={() => props.onAction('approve')}
        >
          Approve
        </button>
        {editing ? (
          <button
            className="jp-mod-styled"
            data-testid="clinagent-save-edit"
            onClick={() => {
              setEditing(false);
              if (Object.keys(edits).length) {
                props.onAction('edit', parsed());
              }
            }}
          >
            Save edit
          </button>
        ) : (
          <button
            className="jp-mod-styled"
            data-testid="clinagent-edit"
            disabled={props.busy || entries.length === 0}
            onClick={() => setEditing(true)}
          >
            Edit
          </button>
        )}
        <button
          className="jp-mod-styled jp-mod-warn"
          data-testid="clinagent-reject"
          disabled={props.busy}
          onClick={() => props.onAction('reject')}
        >
          Reject
        </button>
      </div>
    </div>
  );
}

function History(props: { session: Json }): JSX.Element | null {
  const iterations: Json[] = props.session.iterations || [];
  if (!iterations.length) {
    return null;
  }
  const metric = props.session.spec.primary_metric.name;
  return (
    <table className="ca-history" data-testid="clinagent-history">
      <thead>
        <tr>
          <th>#</th>
          <th>{metric}</th>
          <th>decision</th>
          <th>rationale</th>
        </tr>
      </thead>
      <tbody>
        {iterations.map(it => (
          <tr
            key={it.index}
            data-testid="clinagent-history-row"
            className={`ca-${it.decision}${props.session.best_iteration === it.index ? ' ca-best' : ''}`}
          >
            <td>{it.index}</td>
            <td>{fmt(it.selection_value)}</td>
            <td title={it.decision_reason}>{it.status === 'ok' ? it.decision : it.status}</td>
            <td className="ca-rationale-cell" title={it.rationale}>
              {it.idea ? <b>{it.idea}: </b> : null}
              {it.rationale}
            </td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

export function ClinagentSidebar(props: IProps): JSX.Element {
  const [request, setRequest] = useState('');
  const [dataPath, setDataPath] = useState('');
  const [spec, setSpec] = useState<Json | null>(null);
  const [sessions, setSessions] = useState<Json[]>([]);
  const [sessionId, setSessionId] = useState<string | null>(null);
  const [state, setState] = useState<Json | null>(null);
  const [progress, setProgress] = useState<IProgress | null>(null);
  const [autoContinue, setAutoContinue] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const [log, setLog] = useState<string[]>([]);
  const [report, setReport] = useState<Json | null>(null);
  const mountedAt = useRef(Date.now() / 1000);
  const dataDir = useRef('');
  dataDir.current = dataPath;

  const session = state?.session;
  const running = Boolean(state?.runtime?.running);

  const guard = useCallback(async (fn: () => Promise<void>) => {
    setError(null);
    setBusy(true);
    try {
      await fn();
    } catch (err) {
      setError(errorText(err));
    } finally {
      setBusy(false);
    }
  }, []);

  const refresh = useCallback(async (id: string) => {
    const got = await api(`sessions/${encodeURIComponent(id)}`);
    setState(got);
    setAutoContinue(Boolean(got.runtime.auto_continue));
  }, []);

  const listSessions = useCallback(async () => {
    const got = await api('sessions');
    setSessions(got.sessions);
    return got.sessions as Json[];
  }, []);

  useEffect(() => {
    void listSessions().catch(() => undefined);
  }, []);

  const insertCells = useCallback(
    async (id: string, iteration: number, dataDir: string) => {
      const payload = await api(`sessions/${encodeURIComponent(id)}/iterations/${iteration}/cells`);
      const n = await insertIterationCells(props.app, props.tracker, payload, dataDir);
      setLog(l => [...l, `iteration ${iteration}: ${n} cells inserted into the notebook`]);
    },
    [props.app, props.tracker]
  );

  // Follow the event stream of the selected session (replay first, so a reopened tab catches up).
  useEffect(() => {
    if (!sessionId) {
      return;
    }
    const onEvent = (event: Json) => {
      const live = event.at >= mountedAt.current - 1;
      switch (event.type) {
        case 'iteration_started':
          setProgress({
            iteration: event.iteration,
            epoch: null,
            maxEpochs: event.max_epochs ?? null,
            metrics: {},
            startedAt: event.at * 1000,
            budgetS: null,
            status: 'running'
          });
          break;
        case 'fit_started':
        case 'epoch':
          setProgress(p =>
            p && {
              ...p,
              epoch: event.type === 'epoch' ? event.epoch : p.epoch,
              maxEpochs: event.max_epochs ?? p.maxEpochs,
              metrics: event.metrics || p.metrics,
              budgetS: event.budget_s ?? p.budgetS
            }
          );
          break;
        case 'iteration_finished':
          setProgress(p => p && { ...p, status: `${event.status}, ${event.decision}` });
          void refresh(sessionId);
          if (live && event.status === 'ok') {
            void insertCells(sessionId, event.iteration, dataDir.current).catch(err => setError(errorText(err)));
          }
          break;
        case 'error':
          setError(event.message || event.what);
          void refresh(sessionId);
          break;
        case 'log':
          setLog(l => [...l.slice(-20), event.message]);
          break;
        case 'loop_finished':
          setLog(l => [...l.slice(-20), `stopped: ${event.reason}`]);
          void refresh(sessionId);
          break;
        default:
          if (['state', 'proposal', 'final_test', 'session_finished', 'annotation'].includes(event.type)) {
            void refresh(sessionId);
          }
      }
    };
    void refresh(sessionId).catch(err => setError(errorText(err)));
    return followEvents(sessionId, 0, onEvent);
  }, [sessionId]);

  const useSelection = () => {
    const browser = props.browser;
    if (!browser) {
      setError('no file browser available');
      return;
    }
    const first = browser.selectedItems().next();
    const item = first && !first.done ? first.value : null;
    setDataPath(item ? item.path : browser.model.path);
  };

  const interpret = (extra = '') =>
    guard(async () => {
      const text = extra ? `${request}\n${extra}` : request;
      if (extra) {
        setRequest(text);
      }
      setSpec(await api('interpret', 'POST', { request: text, data_path: dataPath || null }));
    });

  const create = () =>
    guard(async () => {
      const created = await api('sessions', 'POST', { request, data_path: dataPath, spec });
      const id = created.session.id as string;
      setState(created);
      await api(`sessions/${encodeURIComponent(id)}/proposal`);
      setSessionId(id);
      void listSessions();
    });

  const start = () =>
    guard(async () => {
      await api(`sessions/${encodeURIComponent(sessionId!)}/start`, 'POST', { auto_continue: autoContinue });
      await refresh(sessionId!);
    });

  const post = (path: string, body: Json = {}) =>
    guard(async () => {
      const answer = await api(`sessions/${encodeURIComponent(sessionId!)}/${path}`, 'POST', body);
      if (path === 'export') {
        setReport(answer);
      }
      await refresh(sessionId!);
    });

  const openSession = (id: string) => {
    setProgress(null);
    setReport(null);
    setSessionId(id || null);
    if (!id) {
      setState(null);
      setSpec(null);
    }
  };

  const shownSpec = session ? session.spec : spec;
  const proposal = session?.proposal;
  const finished = Boolean(session?.final_test);

  return (
    <div className="ca-panel" data-testid="clinagent-panel">
      <div className="ca-header">clinagent</div>
      <label className="ca-field">
        <span>session</span>
        <select
          data-testid="clinagent-session-select"
          value={sessionId || ''}
          onFocus={() => void listSessions()}
          onChange={e => openSession(e.target.value)}
        >
          <option value="">new session</option>
          {sessions.map(s => (
            <option key={s.id} value={s.id}>
              {s.id} · {s.status} · {s.request.slice(0, 40)}
            </option>
          ))}
        </select>
      </label>
      {!session && (
        <>
          <textarea
            className="ca-request"
            data-testid="clinagent-request"
            placeholder="What should the model do? e.g. 'flag pneumothorax on chest X-rays; missing one is worse than a false alarm; chest drains may be a shortcut'"
            value={request}
            onChange={e => setRequest(e.target.value)}
          />
          <div className="ca-row">
            <input
              className="ca-grow"
              data-testid="clinagent-data-path"
              placeholder="data folder (relative to the server root)"
              value={dataPath}
              onChange={e => setDataPath(e.target.value)}
            />
            <button className="jp-mod-styled" data-testid="clinagent-use-selection" onClick={useSelection}>
              use file browser selection
            </button>
          </div>
          <button
            className="jp-mod-styled jp-mod-accept"
            data-testid="clinagent-interpret"
            disabled={busy || !request.trim()}
            onClick={() => void interpret()}
          >
            Interpret
          </button>
        </>
      )}
      {session && <div className="ca-request-shown">{session.request}</div>}
      {shownSpec && (
        <SpecCard
          spec={shownSpec}
          locked={Boolean(session && session.iterations.length)}
          onChange={next => {
            if (session) {
              void post('spec', { spec: next });
            } else {
              setSpec(next);
            }
          }}
          onAnswer={answers =>
            void interpret(
              shownSpec.questions
                .map((q: string, i: number) => (answers[i] ? `${q} ${answers[i]}` : ''))
                .filter(Boolean)
                .join('\n')
            )
          }
        />
      )}
      {shownSpec && !session && (
        <button
          className="jp-mod-styled jp-mod-accept"
          data-testid="clinagent-create"
          disabled={busy || !dataPath}
          onClick={() => void create()}
        >
          Create session (load and check the data)
        </button>
      )}
      {session && !finished && (
        <div className="ca-row">
          <button
            className="jp-mod-styled jp-mod-accept"
            data-testid="clinagent-start"
            disabled={busy || running}
            onClick={() => void start()}
          >
            {session.iterations.length ? 'Run next' : 'Start'}
          </button>
          <button
            className="jp-mod-styled jp-mod-warn"
            data-testid="clinagent-stop"
            disabled={!running}
            onClick={() => void post('stop')}
          >
            Stop
          </button>
          <label className="ca-switch">
            <input
              type="checkbox"
              data-testid="clinagent-auto-continue"
              checked={autoContinue}
              onChange={e => {
                setAutoContinue(e.target.checked);
                if (sessionId) {
                  void post('auto-continue', { auto_continue: e.target.checked });
                }
              }}
            />
            auto-continue
          </label>
        </div>
      )}
      <div className="ca-status" data-testid="clinagent-status">
        {running ? `running (${state.runtime.running.phase})` : session ? session.status : ''}
      </div>
      <Progress progress={progress} />
      {session && <History session={session} />}
      {proposal && !running && !finished && (
        <ProposalCard
          proposal={proposal}
          busy={busy}
          onAction={(action, changes) =>
            void post('proposal', { action, changes, auto_continue: autoContinue })
          }
        />
      )}
      {session && session.best_iteration !== null && !finished && (
        <button
          className="jp-mod-styled"
          data-testid="clinagent-finish"
          disabled={busy || running}
          onClick={() => void post('finish')}
        >
          Finish (evaluate on the test split once)
        </button>
      )}
      {finished && (
        <div className="ca-card" data-testid="clinagent-final">
          <div className="ca-card-title">Test split (iteration {session.final_test.iteration})</div>
          <table className="ca-diff">
            <tbody>
              {Object.entries(session.final_test.metrics)
                .filter(([, v]) => typeof v === 'number')
                .slice(0, 8)
                .map(([k, v]) => (
                  <tr key={k}>
                    <td>{k}</td>
                    <td>{fmt(v)}</td>
                  </tr>
                ))}
            </tbody>
          </table>
        </div>
      )}
      {session && (
        <button
          className="jp-mod-styled"
          data-testid="clinagent-export"
          disabled={busy || running}
          onClick={() => void post('export')}
        >
          Export report
        </button>
      )}
      {report && (
        <div className="ca-muted" data-testid="clinagent-report">
          {report.relative ? (
            <a
              href="#"
              onClick={e => {
                e.preventDefault();
                void props.app.commands.execute('docmanager:open', { path: report.relative });
              }}
            >
              {report.relative}
            </a>
          ) : (
            report.path
          )}
        </div>
      )}
      {error && (
        <div className="ca-error" data-testid="clinagent-error">
          {error}
        </div>
      )}
      {log.length > 0 && (
        <div className="ca-log" data-testid="clinagent-log">
          {log.slice(-5).map((line, i) => (
            <div key={i}>{line}</div>
          ))}
        </div>
      )}
    </div>
  );
}

/** Lumino wrapper for the sidebar. */
export class ClinagentPanel extends ReactWidget {
  constructor(private readonly props: IProps) {
    super();
    this.id = 'clinagent-sidebar';
    this.addClass('ca-root');
    this.title.caption = 'clinagent';
  }

  render(): JSX.Element {
    return <ClinagentSidebar {...this.props} />;
  }
}
