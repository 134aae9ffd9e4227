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
import type * as Stream from "effect/Stream"
import type { StreamEvent } from "../Stream.js"

const TextOnly: unique symbol = Symbol.for("effect-llm/TextOnly")

/** A stream of events that carries its text-only variant. */
interface WithTextOnly<E, R> extends Stream.Stream<StreamEvent, E, R> {
  readonly [TextOnly]: () => Stream.Stream<string, E, R>
}

/** Marks `events` with `text`, the same reply's text deltas, selected where they are decoded. */
export const withTextOnly = <E, R>(
  events: Stream.Stream<StreamEvent, E, R>,
  text: () => Stream.Stream<string, E, R>
): Stream.Stream<StreamEvent, E, R> => Object.assign(events, { [TextOnly]: text }) satisfies WithTextOnly<E, R>

/** The text-only variant of `events`, if it carries one. */
export const textOnly = <E, R>(events: Stream.Stream<StreamEvent, E, R>): Stream.Stream<string, E, R> | undefined =>
  TextOnly in events ? (events as WithTextOnly<E, R>)[TextOnly]() : undefined
