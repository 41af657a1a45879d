import { Event as JupyterEvent, ServerConnection } from '@jupyterlab/services';
import { Stream } from '@lumino/signaling';
import { EVENT_SCHEMA_ID, followEvents } from '../api';
import { Event, EventsReplay } from '../schema';

/** Jupyter's event bus as the sidebar sees it: a stream of emissions. */
class FakeBus implements JupyterEvent.IManager {
  readonly serverSettings = ServerConnection.makeSettings();
  readonly stream: JupyterEvent.Stream = new Stream<JupyterEvent.IManager, JupyterEvent.Emission>(this);
  isDisposed = false;
  dispose(): void {
    this.isDisposed = true;
  }
  async emit(): Promise<void> {
    return;
  }
}

const event = (seq: number, session = 's1'): Event =>
  ({ v: 2, type: 'log', message: `m${seq}`, session, seq, at: seq, time: seq, iteration: null, budget_s: null }) as Event;
const emission = (e: Event, schema: string = EVENT_SCHEMA_ID): JupyterEvent.Emission =>
  ({ ...e, schema_id: schema }) as unknown as JupyterEvent.Emission;
const settle = () => new Promise(resolve => setTimeout(resolve, 0));

describe('followEvents', () => {
  it('replays first, then follows the bus in seq order, filling a gap from the replay once', async () => {
    const bus = new FakeBus();
    const kept = [1, 2, 3, 4, 5].map(n => event(n));
    const asked: number[] = [];
    const replay = async (after: number): Promise<EventsReplay> => {
      asked.push(after);
      return { schema_id: EVENT_SCHEMA_ID, events: kept.filter(e => (e.seq ?? 0) > after && (e.seq ?? 0) <= 2 + asked.length), last_seq: 5 };
    };
    const seen: number[] = [];
    const stop = followEvents(bus, 's1', 0, e => seen.push(e.seq ?? -1), replay);
    (bus.stream as Stream<JupyterEvent.IManager, JupyterEvent.Emission>).emit(emission(event(2))); // during the catch-up
    await settle();
    expect(seen).toEqual([1, 2, 3]);
    const emit = (e: JupyterEvent.Emission) => (bus.stream as Stream<JupyterEvent.IManager, JupyterEvent.Emission>).emit(e);
    emit(emission(event(9, 'other'))); // another session
    emit(emission(event(4), 'https://events.jupyter.org/jupyter_server/kernel_actions/v1')); // another schema
    emit(emission(event(5))); // 4 was missed (a reconnect): asked for, then 5
    await settle();
    expect(seen).toEqual([1, 2, 3, 4, 5]);
    expect(asked).toEqual([0, 3]);
    stop();
    emit(emission(event(6)));
    expect(seen).toEqual([1, 2, 3, 4, 5]);
  });
});
