/**
 * A stream of events that can also hand over its text alone, selected where
 * the events are made, so that `textDeltas` costs no stream stage. The
 * variant travels on the stream value itself: a stream piped through any
 * operator is a new value without it, and `textDeltas` then selects the text
 * in a stage of its own, so a wrapper that changes the events is never
 * bypassed.
 *
 * @internal
 */
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import { identity } from "effect/Function"
import * as Stream from "effect/Stream"
import type { StreamEvent } from "../Reply.js"

const TextOnly: unique symbol = Symbol.for("effect-llm/TextOnly")

/** A stream of events that carries its text-only variant. */
interface WithTextOnly<E, R> extends Stream.Stream<StreamEvent, E, R> {
  readonly [TextOnly]: () => Stream.Stream<string, E, R>
}

/** What a stream hands its consumer of each batch of events: all of them, or only their text. */
export type Projection<A> = (events: Array<StreamEvent>) => Array<A>

/** The text of the `TextDelta` events among `events`, in order. */
export const textsOf = (events: Iterable<StreamEvent>): Array<string> => {
  const out: Array<string> = []
  for (const event of events) if (event._tag === "TextDelta") out.push(event.text)
  return out
}

/**
 * The events of a stream that `build` makes for any projection, carrying the
 * same reply's text-only variant (`build` with the text selected).
 */
export const projectable = <E, R>(
  build: <A>(project: Projection<A>) => Stream.Stream<A, E, R>
): Stream.Stream<StreamEvent, E, R> =>
  Object.assign(build<StreamEvent>(identity), { [TextOnly]: () => build(textsOf) }) satisfies WithTextOnly<E, R>

/** The text-only variant of `events`, if it carries one. */
export const textOnly = <E, R>(events: Stream.Stream<StreamEvent, E, R>): Stream.Stream<string, E, R> | undefined =>
  TextOnly in events ? (events as WithTextOnly<E, R>)[TextOnly]() : undefined

/**
 * The stream an effect makes, once it has run (a backend chosen when the
 * call starts), carrying the text-only variant of the stream it makes: its
 * own when it has one, else its text selected in a stage.
 */
export const deferred = <E, R, E2, R2>(
  make: Effect.Effect<Stream.Stream<StreamEvent, E, R>, E2, R2>
): Stream.Stream<StreamEvent, E | E2, R | R2> =>
  Object.assign(Stream.unwrap(make), {
    [TextOnly]: () =>
      Stream.unwrap(Effect.map(make, (events) =>
        textOnly(events) ?? Stream.mapChunks(events, (chunk) =>
          Chunk.unsafeFromArray(textsOf(chunk)))))
  }) satisfies WithTextOnly<E | E2, R | R2>
