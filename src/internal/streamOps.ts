/**
 * Stream plumbing at the cost of one channel step: `unwrap` and `unwrapScoped` without the
 * stream `flatMap`s Effect's own go through.
 * (No `provideService`: a channel given a service wraps every effect it runs in the context,
 * each network read's wait included; pass the service instead, as `Toolkit.streamOn` takes it.)
 */
import * as Channel from "effect/Channel"
import type * as Context from "effect/Context"
import * as Effect from "effect/Effect"
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
