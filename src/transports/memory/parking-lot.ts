/**
 * The park policy's state on the memory broker: kept with the broker (not the
 * bus), so a bus that is closed and opened again on the same broker, or another
 * member, knows what is parked. Replayed events are marked removed (the
 * broker's topic log is append-only).
 */
import { Headers } from '../../core/envelope.ts';
import type { ParkedEntry, ParkingLot } from '../../core/transport.ts';
import type { MemoryBroker } from './broker.ts';

interface LotState {
  /** `<topic>\0<group>` → parked aggregate → reason. */
  readonly parked: Map<string, Map<string, string>>;
  /** Parked topic → sequences already replayed. */
  readonly removed: Map<string, Set<number>>;
}

const states = new WeakMap<MemoryBroker, LotState>();

function stateOf(broker: MemoryBroker): LotState {
  let state = states.get(broker);
  if (state === undefined) {
    state = { parked: new Map(), removed: new Map() };
    states.set(broker, state);
  }
  return state;
}

export function memoryParkingLot(broker: MemoryBroker, topic: string, group: string): ParkingLot {
  const state = stateOf(broker);
  const id = `${topic}\u0000${group}`;
  const parkedTopic = `${topic}.PARKED`;
  const parked = (): Map<string, string> => {
    let map = state.parked.get(id);
    if (map === undefined) {
      map = new Map();
      state.parked.set(id, map);
    }
    return map;
  };
  const removed = (): Set<number> => {
    let set = state.removed.get(parkedTopic);
    if (set === undefined) {
      set = new Set();
      state.removed.set(parkedTopic, set);
    }
    return set;
  };
  return {
    list: async () => new Map(parked()),
    park: async (key, reason) => {
      parked().set(key, reason);
    },
    unpark: async (key) => {
      parked().delete(key);
    },
    read: async (key) => {
      const gone = removed();
      const out: ParkedEntry[] = [];
      for (const m of broker.messages(parkedTopic)) {
        if (gone.has(m.seq) || m.headers[Headers.deadLetterGroup] !== group) continue;
        if ((m.headers[Headers.deadLetterKey] ?? m.key) !== key) continue;
        out.push({ sequence: m.seq, data: m.data, headers: m.headers });
      }
      return out;
    },
    remove: async (entry) => {
      removed().add(entry.sequence);
    },
  };
}
