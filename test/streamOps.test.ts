/**
 * The stream plumbing of internal/streamOps.ts: `unwrapScoped` closes the
 * scope its stream was made in however the stream ends (done, failed,
 * stopped by its consumer, interrupted), with that end, and only then.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Chunk from "effect/Chunk"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Stream from "effect/Stream"
import { unwrapScoped } from "../src/internal/streamOps.js"

/** A stream of `elements` made in a scope whose closing is noted in `closed` (the exit's tag). */
const scopedOf = <E>(closed: Array<string>, stream: Stream.Stream<number, E>) =>
  unwrapScoped(Effect.as(
    Effect.addFinalizer((exit) =>
      Effect.sync(() =>
        closed.push(Exit.isSuccess(exit) ? "success" : Exit.isInterrupted(exit) ? "interrupted" : "failed")
      )
    ),
    stream
  ))

describe("streamOps.unwrapScoped", () => {
  it.effect("the scope closes once the stream is done, after its last element", () =>
    Effect.gen(function*() {
      const closed: Array<string> = []
      const seen: Array<string> = []
      yield* Stream.runForEach(
        scopedOf(closed, Stream.make(1, 2, 3)),
        (n) => Effect.sync(() => seen.push(`${n}:${closed.length}`))
      )
      expect(seen).toEqual(["1:0", "2:0", "3:0"])
      expect(closed).toEqual(["success"])
    }))

  it.effect("a failure of the stream closes it with the failure, and is the stream's", () =>
    Effect.gen(function*() {
      const closed: Array<string> = []
      const exit = yield* Effect.exit(
        Stream.runCollect(scopedOf(closed, Stream.concat(Stream.make(1), Stream.fail("boom"))))
      )
      expect(exit).toEqual(Exit.fail("boom"))
      expect(closed).toEqual(["failed"])
    }))

  it.effect("a failure of the setup is the stream's, and closes what it acquired", () =>
    Effect.gen(function*() {
      const closed: Array<string> = []
      const stream = unwrapScoped(Effect.zipRight(
        Effect.addFinalizer(() => Effect.sync(() => closed.push("released"))),
        Effect.as(Effect.fail("setup"), Stream.make(1))
      ))
      expect(yield* Effect.exit(Stream.runDrain(stream))).toEqual(Exit.fail("setup"))
      expect(closed).toEqual(["released"])
    }))

  it.effect("a consumer that stops early closes it at once", () =>
    Effect.gen(function*() {
      const closed: Array<string> = []
      const taken = yield* Stream.runCollect(Stream.take(scopedOf(closed, Stream.iterate(1, (n) => n + 1)), 2))
      expect(Chunk.toReadonlyArray(taken)).toEqual([1, 2])
      expect(closed).toHaveLength(1)
    }))

  it.live("interrupting the consumer closes it as interrupted", () =>
    Effect.gen(function*() {
      const closed: Array<string> = []
      const first = yield* Deferred.make<void>()
      const fiber = yield* Effect.fork(
        Stream.runForEach(scopedOf(closed, Stream.concat(Stream.make(1), Stream.never)), () =>
          Deferred.succeed(first, void 0))
      )
      yield* Deferred.await(first)
      yield* Fiber.interrupt(fiber)
      expect(closed).toEqual(["interrupted"])
    }))
})
