/**
 * REST client for /clinagent/api/, and a session's events: live from jupyter_server's event bus
 * (`serviceManager.events`), caught up by `seq` from the session's replay.
 */
import { URLExt } from '@jupyterlab/coreutils';
import { Event as JupyterEvent, ServerConnection } from '@jupyterlab/services';
import apiSchema from './api-schema.json';
import { Event, EventsReplay } from './schema';

/** The body of an error answer: what went wrong, where, and what to do. */
export interface IErrorBody {
  error?: string;
  what?: string;
  where?: string | null;
  fix?: string | null;
  message?: string;
  field?: string;
}

/** An error answered by the server: `{error, what, where, fix, message}` (and `field` for bad bodies). */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly body: IErrorBody | null
  ) {
    super((body && (body.message || body.what)) || `HTTP ${status}`);
  }
}

const settings = (): ServerConnection.ISettings => ServerConnection.makeSettings();

function url(path: string): string {
  return URLExt.join(settings().baseUrl, 'clinagent', 'api', path);
}

/** Call the API; JSON in, JSON out; throws ApiError on a non-2xx answer. */
export async function api<T>(path: string, method = 'GET', body?: unknown): Promise<T> {
  const init: RequestInit = { method };
  if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers = { 'Content-Type': 'application/json' };
  }
  const response = await ServerConnection.makeRequest(url(path), init, settings());
  const text = await response.text();
  const data = text ? JSON.parse(text) : null;
  if (!response.ok) {
    throw new ApiError(response.status, data);
  }
  return data as T;
}

/** The schema id the server emits session events under (read from the generated API schema). */
export const EVENT_SCHEMA_ID: EventsReplay['schema_id'] = apiSchema.$defs.EventsReplay.properties.schema_id
  .const as EventsReplay['schema_id'];

/** Whether an emission of Jupyter's event bus is one of this session's events. */
export function isSessionEvent(emission: JupyterEvent.Emission, sessionId: string): boolean {
  return (
    emission.schema_id === EVENT_SCHEMA_ID &&
    emission.session === sessionId &&
    typeof emission.seq === 'number' &&
    typeof emission.type === 'string'
  );
}

/**
 * Follow a session's events in `seq` order, each once: what the session's replay holds after `after` first,
 * then the live events of the event bus. A gap in `seq` (the bus's socket reconnected, the tab slept) is
 * filled from the replay before anything later is delivered. Returns a function that ends the subscription.
 */
export function followEvents(
  bus: JupyterEvent.IManager,
  sessionId: string,
  after: number,
  onEvent: (event: Event) => void,
  fetchAfter: (seq: number) => Promise<EventsReplay> = seq =>
    api<EventsReplay>(`sessions/${encodeURIComponent(sessionId)}/events?after=${seq}`)
): () => void {
  let last = after;
  let stopped = false;
  let catchingUp: Promise<void> | null = null;
  let pending: Event[] = [];

  const deliver = (event: Event): void => {
    const seq = event.seq ?? 0;
    if (!stopped && seq > last) {
      last = seq;
      onEvent(event);
    }
  };
  /** Deliver the live events that follow on; `caughtUp`: the replay was just read, so a gap left is lost. */
  const flush = (caughtUp: boolean): void => {
    pending = pending.filter(e => (e.seq ?? 0) > last).sort((a, b) => (a.seq ?? 0) - (b.seq ?? 0));
    while (pending.length && (caughtUp || pending[0].seq === last + 1)) {
      deliver(pending.shift() as Event);
    }
    if (pending.length) {
      catchUp();
    }
  };
  const catchUp = (): void => {
    if (catchingUp || stopped) {
      return;
    }
    let read = false;
    catchingUp = fetchAfter(last)
      .then(got => {
        got.events.forEach(deliver);
        read = true;
      })
      .catch(() => undefined) // not answered: the next live event asks again
      .finally(() => {
        catchingUp = null;
        if (read) {
          flush(true);
        }
      });
  };
  const onEmission = (_: JupyterEvent.IManager, emission: JupyterEvent.Emission): void => {
    if (isSessionEvent(emission, sessionId)) {
      pending.push(emission as unknown as Event);
      if (!catchingUp) {
        flush(false);
      }
    }
  };
  bus.stream.connect(onEmission);
  catchUp();
  return () => {
    stopped = true;
    bus.stream.disconnect(onEmission);
  };
}
