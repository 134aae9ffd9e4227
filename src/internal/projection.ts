/**
 * Streams of events whose consumers' per-batch work runs where the events
 * are made. A backend's stream decodes each network read into a batch of
 * events in one stage; a stream that carries its projection can be built
 * with any per-batch function applied in that same stage (`project`), so
 * the text a consumer keeps, a tool loop's bookkeeping, a conversation's
 * record or a spoken turn's sentences cost no stream stage of their own:
 * a read that yields nothing for the consumer wakes no later stage.
 *
 * The projection travels on the stream value itself: a stream piped through
 * any other operator is a new value without it, and `project` then applies
 * the function in a stage of its own, so a wrapper that changes the events
 * is never bypassed. The operators here (`mapEvents`, `make`, `concat`,
 * `suspend`, `unwrap`, `unwrapScoped`, `eachHandedOn`) keep it.
 *
 * @internal
 */
import * as Channel from "effect/Channel"
import * as Chunk from "effect/Chunk"
import type * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import { identity } from "effect/Function"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import type { StreamEvent } from "../Reply.js"
import * as StreamOps from "./streamOps.js"

const Projected: unique symbol = Symbol.for("effect-llm/Projected")

/**
 * What a stream hands its consumer of each batch of events: all of them, or
 * what the consumer keeps of them (written as one chunk), or a `HandOff`. It
 * never changes the array it is given, and is called once per batch, in
 * order, so it may keep state.
 */
export type Projection<A> = (events: Array<StreamEvent>) => Array<A> | HandOff<A>

/**
 * A batch handed on one event at a time (`eachHandedOn`): what each event
 * gives the consumer, written in a chunk of its own, and `seen` told of each
 * event just before: once the consumer has pulled past what the event
 * before it gave.
 */
export class HandOff<A> {
  constructor(
    readonly events: ReadonlyArray<StreamEvent>,
    readonly outputs: ReadonlyArray<Array<A> | HandOff<A>>,
    readonly seen: (event: StreamEvent) => void
  ) {}

  /** The writes from event `from` on; `undefined` once nothing is left to write (every event told). */
  from(from: number): Channel.Channel<Chunk.Chunk<A>, unknown, never, unknown, void, unknown> | undefined {
    for (let at = from; at < this.events.length; at++) {
      this.seen(this.events[at]!)
      const writes = written(this.outputs[at]!)
      if (writes === undefined) continue
      if (at + 1 === this.events.length) return writes
      return Channel.flatMap(writes, () => this.from(at + 1) ?? Channel.void)
    }
    return undefined
  }
}

/**
 * The writes of what a projection gave for one batch, or `undefined` when it
 * gave the consumer nothing: what every writer of a projected stream (the
 * decoder, a fallback's relay, the stage `project` adds) writes.
 */
export const written = <A>(
  output: Array<A> | HandOff<A>
): Channel.Channel<Chunk.Chunk<A>, unknown, never, unknown, void, unknown> | undefined =>
  Array.isArray(output)
    ? output.length === 0 ? undefined : Channel.write(Chunk.unsafeFromArray(output))
    : output.from(0)

/** A stream of events that can be built with a projection applied where its events are made. */
interface WithProjection<E, R> extends Stream.Stream<StreamEvent, E, R> {
  readonly [Projected]: <A>(projection: Projection<A>) => Stream.Stream<A, E, R>
}

/** The text of the `TextDelta` events among `events`, in order. */
export const textsOf = (events: Iterable<StreamEvent>): Array<string> => {
  const out: Array<string> = []
  for (const event of events) if (event._tag === "TextDelta") out.push(event.text)
  return out
}

/** The events of a stream that `build` makes for any projection, carrying `build`. */
export const projectable = <E, R>(
  build: <A>(projection: Projection<A>) => Stream.Stream<A, E, R>
): Stream.Stream<StreamEvent, E, R> =>
  Object.assign(build<StreamEvent>(identity), { [Projected]: build }) satisfies WithProjection<E, R>

/** Whether `events` carries its projection (so that `project` adds no stage to it). */
export const isProjectable = <E, R>(events: Stream.Stream<StreamEvent, E, R>): boolean => Projected in events

/**
 * `projection` of each batch of `events`: applied where the events are made
 * when `events` carries its projection, else in one stage.
 */
export const project = <A, E, R>(
  events: Stream.Stream<StreamEvent, E, R>,
  projection: Projection<A>
): Stream.Stream<A, E, R> => {
  if (Projected in events) return (events as WithProjection<E, R>)[Projected](projection)
  if (projection === identity) return events as Stream.Stream<never, E, R>
  const stage: Channel.Channel<Chunk.Chunk<A>, Chunk.Chunk<StreamEvent>, E, E, unknown, unknown> = Channel
    .readWithCause({
      onInput: (chunk: Chunk.Chunk<StreamEvent>) => {
        const writes = written(projection(Chunk.toReadonlyArray(chunk) as Array<StreamEvent>))
        return writes === undefined ? stage : Channel.zipRight(writes, stage)
      },
      onFailure: Channel.failCause,
      onDone: Channel.succeed
    })
  return Stream.pipeThroughChannel(events, stage)
}

/** `Stream.mapChunks` on events, keeping the projection: `f` runs where the events are made when it can. */
export const mapEvents = <E, R>(
  events: Stream.Stream<StreamEvent, E, R>,
  f: (events: Array<StreamEvent>) => Array<StreamEvent>
): Stream.Stream<StreamEvent, E, R> =>
  projectable(<A>(projection: Projection<A>) =>
    project(events, projection === identity ? f as Projection<A> : (batch) => projection(f(batch)))
  )

/** The stream of `events`, keeping the projection: its consumer's work runs as they are written, in no stage. */
export const make = (...events: Array<StreamEvent>): Stream.Stream<StreamEvent> =>
  projectable(<A>(projection: Projection<A>) =>
    Stream.fromChannel(Channel.suspend(() => written(projection(events)) ?? Channel.void))
  )

/** `Stream.concat`, keeping the projection: each side is built with it. */
export const concat = <E, R, E2, R2>(
  self: Stream.Stream<StreamEvent, E, R>,
  that: Stream.Stream<StreamEvent, E2, R2>
): Stream.Stream<StreamEvent, E | E2, R | R2> =>
  projectable(<A>(projection: Projection<A>) => Stream.concat(project(self, projection), project(that, projection)))

/** `Stream.suspend`, keeping the projection of the stream `make` makes. */
export const suspend = <E, R>(make: () => Stream.Stream<StreamEvent, E, R>): Stream.Stream<StreamEvent, E, R> =>
  projectable(<A>(projection: Projection<A>) => Stream.suspend(() => project(make(), projection)))

/** `Stream.unwrap` (a channel's, as `StreamOps.unwrap`), keeping the projection of the stream `effect` makes. */
export const unwrap = <E, R, E2, R2>(
  effect: Effect.Effect<Stream.Stream<StreamEvent, E, R>, E2, R2>
): Stream.Stream<StreamEvent, E | E2, R | R2> =>
  projectable(<A>(projection: Projection<A>) =>
    StreamOps.unwrap(Effect.map(effect, (events) => project(events, projection)))
  )

/** `StreamOps.fromContext`, keeping the projection of the stream `make` builds. */
export const fromContext = <R0, E, R>(
  make: (context: Context.Context<R0>) => Stream.Stream<StreamEvent, E, R>
): Stream.Stream<StreamEvent, E, R | R0> =>
  projectable(<A>(projection: Projection<A>) =>
    StreamOps.fromContext((context: Context.Context<R0>) => project(make(context), projection))
  )

/** `StreamOps.unwrapScoped`, keeping the projection of the stream `effect` makes. */
export const unwrapScoped = <E, R, E2, R2>(
  effect: Effect.Effect<Stream.Stream<StreamEvent, E, R>, E2, R2>
): Stream.Stream<StreamEvent, E | E2, Exclude<R2, Scope.Scope> | R> =>
  projectable(<A>(projection: Projection<A>) =>
    StreamOps.unwrapScoped(Effect.map(effect, (events) => project(events, projection)))
  )

/**
 * `self`, each event handed on alone (what the projection keeps of it, in a
 * chunk of its own), `seen` told of each (synchronously, no effect per
 * event) just as it is handed on: a consumer that stops or is interrupted
 * was handed exactly what `seen` was told of, whatever the batches upstream
 * held. No stage of its own: the writer of `self`'s batches writes them so.
 */
export const eachHandedOn = <E, R>(
  self: Stream.Stream<StreamEvent, E, R>,
  seen: (event: StreamEvent) => void
): Stream.Stream<StreamEvent, E, R> =>
  projectable(<A>(projection: Projection<A>) =>
    project(self, (batch): Array<A> | HandOff<A> => {
      // one event: its chunk is handed on whole, so it is told now, as it goes
      if (batch.length === 1) {
        seen(batch[0]!)
        return projection === identity ? batch as Array<never> : projection(batch)
      }
      return new HandOff(
        batch,
        batch.map((event) => projection === identity ? [event as A] : projection([event])),
        seen
      )
    })
  )
