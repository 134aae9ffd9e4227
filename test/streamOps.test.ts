/**
 * The stream plumbing of internal/streamOps.ts: `unwrapScoped` closes the
 * scope its stream was made in however the stream ends (done, failed,
 * stopped by its consumer, interrupted), with that end, and only then; a
 * `mailbox` hands its consumer what another fiber offers, in order, and ends
 * as that fiber ends it.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Chunk from "effect/Chunk"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Stream from "effect/Stream"
import { type Mailbox, mailbox, unwrapScoped } from "../src/internal/streamOps.js"

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

/** Yields until `fiber` waits (suspended on an async wait): a consumer reading a mailbox that is empty. */
const waiting = (fiber: Fiber.RuntimeFiber<unknown, unknown>) =>
  Effect.gen(function*() {
    for (let i = 0; i < 1_000; i++) {
      if ((yield* Fiber.status(fiber))._tag === "Suspended") return
      yield* Effect.yieldNow()
    }
    throw new Error("the consumer never waited")
  })

/** A consumer of `box` in a fiber of its own, noting each element in `seen`. */
const consuming = <A, E>(box: Mailbox<A, E>) =>
  Effect.gen(function*() {
    const seen: Array<A> = []
    const fiber = yield* Effect.fork(Stream.runForEach(box.stream, (element) => Effect.sync(() => seen.push(element))))
    return { seen, fiber }
  })

describe("streamOps.mailbox", () => {
  it.effect("what is offered before the consumer reads comes out in order, in one chunk; the end ends it", () =>
    Effect.gen(function*() {
      const box = mailbox<number, string>()
      box.offer(1)
      box.offer(2)
      box.offer(3)
      box.end(Exit.void)
      box.offer(4)
      const chunks = yield* Stream.runCollect(Stream.chunks(box.stream))
      expect(Chunk.toReadonlyArray(chunks).map(Chunk.toReadonlyArray)).toEqual([[1, 2, 3]])
    }))

  it.effect("a consumer waiting for the next element is woken by each offer, and by the end", () =>
    Effect.gen(function*() {
      const box = mailbox<string, never>()
      const seen: Array<string> = []
      const got = [yield* Deferred.make<void>(), yield* Deferred.make<void>()]
      const consumer = yield* Effect.fork(
        Stream.runForEach(
          box.stream,
          (text) => Effect.suspend(() => Deferred.succeed(got[seen.push(text) - 1]!, undefined))
        )
      )
      yield* waiting(consumer)
      expect(seen).toEqual([])
      box.offer("a")
      yield* Deferred.await(got[0]!)
      yield* waiting(consumer)
      box.offer("b")
      yield* Deferred.await(got[1]!)
      expect(seen).toEqual(["a", "b"])
      yield* waiting(consumer)
      box.end(Exit.void)
      yield* Fiber.join(consumer)
      expect(seen).toEqual(["a", "b"])
    }))

  it.effect("a failed end fails the stream with its cause, after what was offered before it", () =>
    Effect.gen(function*() {
      const box = mailbox<number, string>()
      const { fiber, seen } = yield* consuming(box)
      yield* waiting(fiber)
      box.offer(1)
      yield* waiting(fiber)
      box.end(Exit.fail("tool failed"))
      box.end(Exit.void)
      const exit = yield* Fiber.await(fiber)
      expect(seen).toEqual([1])
      expect(exit).toStrictEqual(Exit.fail("tool failed"))
    }))

  it.effect("an interrupted consumer that waits leaves the mailbox to its producer: later offers reach no one", () =>
    Effect.gen(function*() {
      const box = mailbox<number, never>()
      const { fiber, seen } = yield* consuming(box)
      yield* waiting(fiber)
      yield* Fiber.interrupt(fiber)
      box.offer(1)
      box.end(Exit.void)
      yield* Effect.yieldNow()
      expect(seen).toEqual([])
      expect(Exit.isInterrupted(yield* Fiber.await(fiber))).toBe(true)
    }))
})
