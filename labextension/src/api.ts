/**
 * REST client for /clinagent/api/ and a reconnecting reader of the server-sent event stream.
 */
import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';
import { Event } from './schema';

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

/**
 * Follow `sessions/<id>/events`, replaying what was missed (`after`), reconnecting on failure.
 * Returns a function that ends the subscription.
 */
export function followEvents(
  sessionId: string,
  after: number,
  onEvent: (event: Event) => void
): () => void {
  let last = after;
  let stopped = false;
  let controller = new AbortController();

  const once = async (): Promise<void> => {
    controller = new AbortController();
    const path = `sessions/${encodeURIComponent(sessionId)}/events?after=${last}`;
    const response = await ServerConnection.makeRequest(
      url(path),
      { method: 'GET', signal: controller.signal },
      settings()
    );
    if (!response.ok || !response.body) {
      throw new ApiError(response.status, null);
    }
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffer = '';
    for (;;) {
      const { value, done } = await reader.read();
      if (done) {
        return;
      }
      buffer += decoder.decode(value, { stream: true });
      let cut = buffer.indexOf('\n\n');
      while (cut >= 0) {
        const frame = buffer.slice(0, cut);
        buffer = buffer.slice(cut + 2);
        const data = frame
          .split('\n')
          .filter(line => line.startsWith('data: '))
          .map(line => line.slice(6))
          .join('\n');
        if (data) {
          const event = JSON.parse(data) as Event;
          last = Math.max(last, event.seq || 0);
          onEvent(event);
        }
        cut = buffer.indexOf('\n\n');
      }
    }
  };

  const loop = async (): Promise<void> => {
    while (!stopped) {
      try {
        await once();
      } catch (err) {
        if (stopped) {
          return;
        }
      }
      await new Promise(resolve => setTimeout(resolve, 1000));
    }
  };
  void loop();
  return () => {
    stopped = true;
    controller.abort();
  };
}
