/**
 * Where a consumer group starts (SubscribeOptions.startFrom), on NATS.
 *
 * Raw topics have one durable consumer per group: created at the stream's end
 * for 'latest', and an existing durable keeps its position whatever is asked.
 *
 * Partitioned (envelope) groups create their lane consumers lazily, per lane,
 * owner and generation (`<durable>_<lane>_<epoch>_<gen>`, see
 * partitioned-subscription.ts), each at the previous generation's ack floor.
 * A lane's first generation needs a floor too, and it must be the same for
 * every lane, member and generation: taken once, when the group is new, and
 * never "now" again for a member that joins later. It is recorded as a durable
 * marker consumer `<durable>_start` whose start sequence is the floor + 1:
 * created atomically (the first member wins, the others read it), no TTL (the
 * group's KV bucket ages keys out), and visible with `nats consumer ls`.
 * 'earliest' groups need no marker: their floor is 0, as before the option.
 */
import type { ConsumerInfo, JetStreamManager } from '@nats-io/jetstream';
import type { Logger } from '../../core/logger.ts';
import type { StartFrom } from '../../core/types.ts';
import { type ConsumerSpec, configFor, consumerInfo, listConsumers } from './consumer.ts';
import { wrapApiError } from './errors.ts';

/** The marker consumer's name for a group's durable. */
export function startMarkerName(durable: string): string {
  return `${durable}_start`;
}

/** The stream's last sequence now (0 when empty). */
async function lastSequence(jsm: JetStreamManager, stream: string): Promise<number> {
  try {
    return (await jsm.streams.info(stream)).state.last_seq;
  } catch (error) {
    throw wrapApiError(`Failed to read stream ${stream}`, error);
  }
}

/** Start sequence of a raw group's durable when it is created now: undefined = from the beginning. */
export async function rawStartSequence(
  jsm: JetStreamManager,
  stream: string,
  startFrom: StartFrom | undefined,
): Promise<number | undefined> {
  return startFrom === 'latest' ? (await lastSequence(jsm, stream)) + 1 : undefined;
}

function floorOfMarker(info: ConsumerInfo): number {
  return Math.max(0, (info.config.opt_start_seq ?? 1) - 1);
}

/**
 * Whether the group already has consumers on the stream: a lane generation of
 * one of `lanes`, or the group's pre-partition durable. Lanes are matched by
 * name so a group called `g_p1` is never taken for a lane of group `g`.
 */
async function groupExists(
  jsm: JetStreamManager,
  stream: string,
  durable: string,
  lanes: readonly string[],
): Promise<boolean> {
  const generation = /^(.+)_\d+_\d+$/;
  for (const info of await listConsumers(jsm, stream)) {
    if (info.name === durable) return true;
    if (!info.name.startsWith(`${durable}_`)) continue;
    const match = generation.exec(info.name.slice(durable.length + 1));
    if (match !== null && lanes.includes(match[1] as string)) return true;
  }
  return false;
}

/**
 * The sequence every lane of the group starts after when it has no consumer
 * generation yet: the recorded floor of the group, else 0 ('earliest', or a
 * group that existed before), else (a new group asking for 'latest') the
 * stream's last sequence now, recorded for everyone after.
 */
export async function groupStartFloor(
  jsm: JetStreamManager,
  options: {
    /** The group's consumer settings (stream, durable, AckWait…): the marker gets the same, so tools see nothing odd. */
    readonly base: ConsumerSpec;
    readonly lanes: readonly string[];
    readonly startFrom: StartFrom | undefined;
    readonly logger: Logger;
  },
): Promise<number> {
  const { base, lanes, startFrom, logger } = options;
  const { stream, durable } = base;
  const name = startMarkerName(durable);
  const recorded = await consumerInfo(jsm, { stream, durable: name });
  if (recorded !== undefined) return floorOfMarker(recorded);
  if (startFrom !== 'latest') return 0;
  if (await groupExists(jsm, stream, durable, lanes)) return 0;
  const floor = await lastSequence(jsm, stream);
  try {
    const created = await jsm.consumers.add(stream, {
      ...configFor({ ...base, durable: name }, floor + 1),
      description: `jxt-eventbus: group ${durable} started after stream sequence ${floor} (startFrom 'latest'); do not delete while the group exists`,
    });
    logger.info({ stream, durable, floor }, 'nats: new group starts from the latest message');
    return floorOfMarker(created);
  } catch (error) {
    // Another member created it first (with its own "now"): its floor is the group's.
    const winner = await consumerInfo(jsm, { stream, durable: name });
    if (winner !== undefined) return floorOfMarker(winner);
    throw wrapApiError(`Failed to record where group ${durable} starts on stream ${stream}`, error);
  }
}
