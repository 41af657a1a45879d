/**
 * The clinagent sidebar: request → spec card → run → history → proposal → final. Each section lives in
 * `components/`; this file holds the session's state and talks to the server.
 */
import { JupyterFrontEnd } from '@jupyterlab/application';
import { Notification } from '@jupyterlab/apputils';
import { IDefaultFileBrowser } from '@jupyterlab/filebrowser';
import { INotebookTracker } from '@jupyterlab/notebook';
import { HTMLSelect, ReactWidget } from '@jupyterlab/ui-components';
import React, { useCallback, useEffect, useReducer, useRef, useState } from 'react';
import { api, ApiError, followEvents } from './api';
import { FinalCard, FinishBar } from './components/final';
import { History } from './components/history';
import { ProposalCard } from './components/proposal';
import { AnyQuestion, Questions } from './components/questions';
import { RequestSection } from './components/request';
import { RunControl } from './components/runControl';
import { DEFAULT_OPTIONS, IRunOptions, RunOptions } from './components/runOptions';
import { SpecCard } from './components/specCard';
import { ICellsPayload, insertIterationCells } from './notebook';
import { IDLE, nextRunState } from './runState';
import { CachedWeights, Event, SessionState, TaskSpec, WeightsList } from './schema';
import { fmt, label } from './vocab';

interface IProps {
  app: JupyterFrontEnd;
  tracker: INotebookTracker | null;
  browser: IDefaultFileBrowser | null;
}

/** One entry of `GET sessions`. */
interface ISessionSummary {
  id: string;
  status: string;
  request: string;
}

interface IExported {
  path: string;
  relative?: string | null;
}

function errorText(err: unknown): string {
  if (err instanceof ApiError && err.body) {
    const b = err.body;
    return [b.what || b.message, b.where && `Where: ${b.where}`, b.fix && `What to do: ${b.fix}`].filter(Boolean).join('. ');
  }
  return String(err);
}

export function ClinagentSidebar(props: IProps): JSX.Element {
  const [request, setRequest] = useState('');
  const [dataPath, setDataPath] = useState('');
  const [spec, setSpec] = useState<TaskSpec | null>(null);
  const [sessions, setSessions] = useState<ISessionSummary[]>([]);
  const [sessionId, setSessionId] = useState<string | null>(null);
  const [state, setState] = useState<SessionState | null>(null);
  const [run, dispatch] = useReducer(nextRunState, IDLE);
  const [autoContinue, setAutoContinue] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const [report, setReport] = useState<IExported | null>(null);
  const [options, setOptions] = useState<IRunOptions>(DEFAULT_OPTIONS);
  const [weights, setWeights] = useState<CachedWeights[]>([]);
  const mountedAt = useRef(Date.now() / 1000);
  const dataDir = useRef('');
  dataDir.current = dataPath;

  const session = state?.session ?? null;
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
    const got = await api<SessionState>(`sessions/${encodeURIComponent(id)}`);
    setState(got);
    setAutoContinue(Boolean(got.runtime.auto_continue));
  }, []);

  const listSessions = useCallback(async () => {
    const got = await api<{ sessions: ISessionSummary[] }>('sessions');
    setSessions(got.sessions);
  }, []);

  useEffect(() => {
    void listSessions().catch(() => undefined);
    void api<WeightsList>('weights')
      .then(got => setWeights(got.weights))
      .catch(() => undefined); // no list: a file path can still be typed
  }, []);

  const insertCells = useCallback(
    async (id: string, iteration: number) => {
      const payload = await api<ICellsPayload>(`sessions/${encodeURIComponent(id)}/iterations/${iteration}/cells`);
      await insertIterationCells(props.app, props.tracker, payload, dataDir.current);
    },
    [props.app, props.tracker]
  );

  // Follow the selected session's events: its replay from the start (a reopened tab rebuilds its state), then
  // the live ones from Jupyter's event bus.
  useEffect(() => {
    if (!sessionId) {
      return;
    }
    dispatch({
      type: 'state', session: sessionId, seq: 0, at: 0, v: 2, time: 0, iteration: null, budget_s: null,
      running: null, auto_continue: null
    });
    const onEvent = (event: Event) => {
      dispatch(event);
      const live = (event.at ?? event.time) >= mountedAt.current - 1;
      switch (event.type) {
        case 'iteration_finished':
          void refresh(sessionId);
          if (live && event.status === 'ok') {
            Notification.success(
              `Iteration ${event.iteration} finished: ${label(event.decision ?? 'pending')}, selection ${fmt(event.selection_value)}`,
              { autoClose: 6000 }
            );
            if (event.iteration !== null) {
              const index = event.iteration;
              void insertCells(sessionId, index).catch(err => setError(errorText(err)));
            }
          } else if (live) {
            Notification.error(`Iteration ${event.iteration} ${label(event.status)}: ${event.error ?? event.reason ?? ''}`, {
              autoClose: false
            });
          }
          break;
        case 'error':
          setError(event.what || event.message || 'error');
          if (live) {
            Notification.error(`clinagent: ${event.what || event.message}`, { autoClose: false });
          }
          void refresh(sessionId);
          break;
        case 'state':
        case 'proposal':
        case 'final_test':
        case 'session_finished':
        case 'annotation':
        case 'loop_finished':
          void refresh(sessionId);
          break;
        default:
      }
    };
    void refresh(sessionId).catch(err => setError(errorText(err)));
    return followEvents(props.app.serviceManager.events, sessionId, 0, onEvent);
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
      setSpec(await api<TaskSpec>('interpret', 'POST', { request: text, data_path: dataPath || null }));
    });

  const post = (path: string, body: unknown = {}) =>
    guard(async () => {
      const answer = await api<IExported>(`sessions/${encodeURIComponent(sessionId!)}/${path}`, 'POST', body);
      if (path === 'export') {
        setReport(answer);
      }
      await refresh(sessionId!);
    });

  const shownSpec = session ? session.spec : spec;

  const changeSpec = (next: TaskSpec) => {
    if (session) {
      void post('spec', { spec: next });
    } else {
      setSpec(next);
    }
  };

  const answer = (questionId: string, value: string) =>
    guard(async () => {
      const next = await api<TaskSpec>('spec/answer', 'POST', { spec: shownSpec, question_id: questionId, value });
      if (session) {
        await api(`sessions/${encodeURIComponent(sessionId!)}/spec`, 'POST', { spec: next });
        await refresh(sessionId!);
      } else {
        setSpec(next);
      }
    });

  const create = () =>
    guard(async () => {
      const created = await api<SessionState>('sessions', 'POST', {
        request,
        data_path: dataPath,
        spec,
        pretrained: options.pretrained.trim() || null,
        parallel: options.parallel
      });
      const id = created.session.id;
      setState(created);
      await api(`sessions/${encodeURIComponent(id)}/proposal`);
      setSessionId(id);
      void listSessions();
    });

  const openSession = (id: string) => {
    setReport(null);
    setSessionId(id || null);
    if (!id) {
      setState(null);
      setSpec(null);
    }
  };

  const proposal = session?.proposal ?? null;
  const finished = Boolean(session?.final_test);
  const questions = (shownSpec?.questions ?? []) as AnyQuestion[];

  return (
    <div className="ca-panel" data-testid="clinagent-panel">
      <header className="ca-header">
        <h2 className="ca-title">Clinical model builder</h2>
        <HTMLSelect
          className="ca-session-select"
          aria-label="Session"
          data-testid="clinagent-session-select"
          value={sessionId || ''}
          onFocus={() => void listSessions()}
          onChange={e => openSession(e.currentTarget.value)}
        >
          <option value="">New session</option>
          {sessions.map(s => (
            <option key={s.id} value={s.id} title={s.id}>
              {s.request.slice(0, 40)} · {s.status}
            </option>
          ))}
        </HTMLSelect>
      </header>
      {error && (
        <div className="ca-error" role="alert" data-testid="clinagent-error">
          {error}
        </div>
      )}
      {!session && (
        <RequestSection request={request} dataPath={dataPath} busy={busy} onRequest={setRequest} onDataPath={setDataPath}
          onUseSelection={useSelection} onInterpret={() => void interpret()} interpreted={!!shownSpec} />
      )}
      {session && <blockquote className="ca-request-shown">{session.request}</blockquote>}
      {session && !finished && (
        <RunControl state={run} running={running} busy={busy} hasIterations={session.iterations.length > 0}
          canStart={!running} autoContinue={autoContinue}
          onStart={() => void post('start', { auto_continue: autoContinue })}
          onStop={() => void post('stop')}
          onAutoContinue={on => {
            setAutoContinue(on);
            void post('auto-continue', { auto_continue: on });
          }} />
      )}
      {proposal && !running && !finished && (
        <ProposalCard proposal={proposal} candidates={session?.candidates ?? []} busy={busy}
          onApprove={() => void post('proposal', { action: 'approve', auto_continue: autoContinue })}
          onReject={() => void post('proposal', { action: 'reject' })}
          onEdit={changes => void post('proposal', { action: 'edit', changes })} />
      )}
      {shownSpec && !session && (
        <button className="jp-mod-styled jp-mod-accept ca-create" data-testid="clinagent-create" disabled={busy || !dataPath}
          onClick={() => void create()}>
          Load the data and prepare
        </button>
      )}
      {shownSpec && questions.length > 0 && !(session && session.iterations.length) && (
        <Questions questions={questions} busy={busy} onAnswer={(id, v) => void answer(id, v)}
          onFreeAnswers={text => void interpret(text)} />
      )}
      {finished && session?.final_test && <FinalCard finalTest={session.final_test} />}
      {session && <History session={session} />}
      {session && (
        <FinishBar canFinish={session.best_iteration !== null && !finished} busy={busy} running={running}
          onFinish={() => void post('finish')} onExport={() => void post('export')} />
      )}
      {report && (
        <div className="ca-muted" data-testid="clinagent-report">
          {report.relative ? (
            <a href="#" onClick={e => {
              e.preventDefault();
              void props.app.commands.execute('docmanager:open', { path: report.relative });
            }}>
              {report.relative}
            </a>
          ) : (
            report.path
          )}
        </div>
      )}
      {shownSpec && (
        <SpecCard spec={shownSpec} locked={Boolean(session && session.iterations.length)}
          associations={session?.fingerprint?.associations} onChange={changeSpec}>
          <RunOptions options={options} weights={weights} session={session} onChange={setOptions}
            onSessionParallel={session && !running && !finished ? k => void post('parallel', { parallel: k }) : undefined} />
        </SpecCard>
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
    this.title.caption = 'Clinical model builder';
  }

  render(): JSX.Element {
    return <ClinagentSidebar {...this.props} />;
  }
}
