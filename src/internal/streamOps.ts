/**
 * Stream plumbing at the cost of one channel step: `unwrap` and `unwrapScoped` without the
 * stream `flatMap`s Effect's own go through, and a `mailbox` in place of a queue drained as a stream.
 * (No `provideService`: a channel given a service wraps every effect it runs in the context,
 * each network read's wait included; pass the service instead, as `Toolkit.streamOn` takes it.)
 */
import * as Channel from "effect/Channel"
import * as Chunk from "effect/Chunk"
import type * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"

/** `Stream.unwrap`: the stream `effect` makes, its failure the stream's (a channel's `unwrap`, no stream `flatMap`). */
export const unwrap = <A, E2, R2, E, R>(
  effect: Effect.Effect<Stream.Stream<A, E2, R2>, E, R>
): Stream.Stream<A, E | E2, R | R2> => Stream.fromChannel(Channel.unwrap(Effect.map(effect, Stream.toChannel)))

/**
 * The stream `make` builds from the running fiber's context, when the stream
 * runs: `unwrap` of a service lookup in one fiber step rather than seven
 * (the tag, its lookup, the continuation, and two `Effect.map`s).
 */
export const fromContext = <R0, A, E, R>(
  make: (context: Context.Context<R0>) => Stream.Stream<A, E, R>
): Stream.Stream<A, E, R | R0> =>
  Stream.fromChannel(
    Channel.unwrap(Effect.withFiberRuntime((fiber) =>
      Effect.succeed(Stream.toChannel(make(fiber.currentContext as Context.Context<R0>)))
    ))
  )

/**
 * `Stream.unwrapScoped`: the stream `effect` makes in a scope of its own,
 * closed with the stream's exit however it ends (done, failed, interrupted,
 * or stopped by its consumer). The stream runs as the continuation of the
 * effect (a channel's `flatMap`), not as a substream, so its elements cross
 * no extra stage.
 */
export const unwrapScoped = <A, E2, R2, E, R>(
  effect: Effect.Effect<Stream.Stream<A, E2, R2>, E, R>
): Stream.Stream<A, E | E2, Exclude<R, Scope.Scope> | R2> =>
  Stream.fromChannel(Channel.unwrap(Effect.map(Scope.make(), (scope) =>
    Channel.ensuringWith(
      Channel.flatMap(Channel.fromEffect(Scope.extend(effect, scope)), (stream) => Stream.toChannel(stream)),
      (exit) => Scope.close(scope, exit)
    ))))

/** A stream fed by another fiber: what it is handed goes out at the consumer's next read, its exit ends it. */
export interface Mailbox<A, E> {
  /** Hands the stream an element. */
  readonly offer: (element: A) => void
  /** Ends the stream: done on a success, failed with the cause on a failure. Later offers are dropped. */
  readonly end: (exit: Exit.Exit<unknown, E>) => void
  /** The elements, in the order offered (those offered while the consumer was busy in one chunk). */
  readonly stream: Stream.Stream<A, E>
}

/**
 * A `Mailbox`: what `Queue` + `Stream.fromQueue` + `Stream.flattenTake` do
 * for one producer and one consumer, without the queue's takes and the
 * stream stages over them. The consumer's read waits (no canceller: an
 * interrupted wait's resumption is dead) until an element or the end comes.
 */
export const mailbox = <A, E>(): Mailbox<A, E> => {
  let buffer: Array<A> = []
  let ended: Exit.Exit<unknown, E> | undefined
  let wake: ((effect: Effect.Effect<void>) => void) | undefined
  const notify = () => {
    const resume = wake
    wake = undefined
    resume?.(Effect.void)
  }
  const ready = Effect.async<void>((resume) => {
    if (buffer.length > 0 || ended !== undefined) return resume(Effect.void)
    wake = resume
  })
  const read: Channel.Channel<Chunk.Chunk<A>, unknown, E, unknown, void, unknown> = Channel.suspend(() => {
    if (buffer.length > 0) {
      const out = buffer
      buffer = []
      return Channel.zipRight(Channel.write(Chunk.unsafeFromArray(out)), read)
    }
    if (ended === undefined) return waitThenRead
    return Exit.isSuccess(ended) ? Channel.void : Channel.failCause(ended.cause)
  })
  const waitThenRead = Channel.zipRight(Channel.fromEffect(ready), read)
  return {
    offer: (element) => {
      if (ended !== undefined) return
      buffer.push(element)
      notify()
    },
    end: (exit) => {
      if (ended !== undefined) return
      ended = exit
      notify()
    },
    stream: Stream.fromChannel(read)
  }
}
