/**
 * Speculative generation: a conversation's turn started in a background
 * fiber on the user's interim transcript, its events and steps buffered in
 * order, then either adopted by the turn whose final text matches (replayed,
 * then continued live) or interrupted and counted as wasted. A speculation
 * never touches the history, and its calls of tools that wait for the final
 * turn wait until it is adopted and its consumer has caught up with them.
 *
 * @internal
 */
import * as Cause from "effect/Cause"
import * as Chunk from "effect/Chunk"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import * as Queue from "effect/Queue"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as SubscriptionRef from "effect/SubscriptionRef"
import type { ConversationContext } from "../Context.js"
import type { LlmError } from "../errors.js"
import type { Message } from "../Message.js"
import type { StreamEvent, Usage } from "../Reply.js"
import type { ToolExecutionError } from "../Tool.js"

/** Speculative generations started. */
export const startedCounter = Metric.counter("effect_llm.speculation.started", {
  description: "Speculative generations started on an interim transcript.",
  incremental: true
})

/** Speculative generations a turn adopted. */
export const reusedCounter = Metric.counter("effect_llm.speculation.reused", {
  description: "Speculative generations reused by the turn whose final text matched.",
  incremental: true
})

/** Speculative generations dropped: another text, a changed history, a failure before the commit, or discarded. */
export const wastedCounter = Metric.counter("effect_llm.speculation.wasted", {
  description: "Speculative generations dropped without being used.",
  incremental: true
})

/**
 * A transcript as speculation compares it: Unicode NFKC, case-folded (upper
 * then lower case, so that "ß" and "SS" match), whitespace collapsed and
 * trimmed, and trailing punctuation (`.`, `?!`, `。！？`, closing quotes) removed.
 */
export const normalise = (text: string): string => {
  const folded = text.normalize("NFKC").toUpperCase().toLowerCase().normalize("NFKC")
  return folded.replace(/\s+/gu, " ").replace(/[\s\p{P}]+$/u, "").trim()
}

/** What a speculation's hooks give the generation: its steps' messages go to `onStep`; its waiting tools await `final`. */
export interface Hooks {
  readonly onStep: (added: ReadonlyArray<Message>) => Effect.Effect<void>
  readonly final: Effect.Effect<void>
}

/** A turn's generation: its events (steps reported through the hooks' `onStep`), and the history to record it on, given what the user said. */
export interface Generation<R> {
  readonly events: Stream.Stream<StreamEvent, LlmError | ToolExecutionError, R>
  readonly recordedOn: (said: string) => ConversationContext
  /** Hands each step's usage to `listen`, those so far first (the loop's stream carries only the last step's). */
  readonly reportUsage: (listen: (usage: Usage) => void) => void
}

/** A speculation a turn adopted: its events (replayed, then live), and what ends it before the turn is recorded. */
export interface Adopted {
  readonly events: Stream.Stream<StreamEvent, LlmError | ToolExecutionError>
  readonly recordedOn: (said: string) => ConversationContext
  /** Hands each step's usage to `listen`, those so far first (the loop's stream carries only the last step's). */
  readonly reportUsage: (listen: (usage: Usage) => void) => void
  /** Interrupts the generation, and hands `onStep` a step it finished for a consumer that was waiting for it. Idempotent. */
  readonly release: Effect.Effect<void>
}

/** How many speculative generations started, were reused and were wasted. */
export interface Stats {
  readonly started: number
  readonly reused: number
  readonly wasted: number
}

/** What the speculative fiber hands to the turn that adopts it, in order. */
type Item =
  | { readonly _tag: "Events"; readonly events: Chunk.Chunk<StreamEvent> }
  | { readonly _tag: "Step"; readonly added: ReadonlyArray<Message> }
  | { readonly _tag: "End"; readonly exit: Exit.Exit<void, LlmError | ToolExecutionError> }

/** What a speculative generation produced so far, for the turn that adopts it. */
interface Tape {
  readonly queue: Queue.Queue<Item>
  /** Completed when a turn adopts it: its waiting tools may run once their consumer caught up. */
  readonly committed: Deferred.Deferred<void>
  /** How many items the consumer had taken when it last asked for more. */
  readonly demand: SubscriptionRef.SubscriptionRef<number>
  /** Items offered so far. */
  offered: number
  /** It ended with a failure (or was interrupted): a turn starts afresh rather than surface it. */
  failed: boolean
}

/** One running (or finished) speculative generation. */
interface Speculation {
  readonly key: string
  readonly base: ConversationContext
  readonly tape: Tape
  readonly fiber: Fiber.RuntimeFiber<void>
  readonly recordedOn: (said: string) => ConversationContext
  /** Hands each step's usage to `listen`, those so far first (the loop's stream carries only the last step's). */
  readonly reportUsage: (listen: (usage: Usage) => void) => void
}

/** A conversation's speculation: at most one at a time. */
export interface Speculations {
  /**
   * Starts a speculative generation on `base` and `text` in a fiber of the
   * conversation's scope, unless one on the same normalised text and the
   * same history is under way (then kept); any other is interrupted and
   * counted wasted. A blank text starts nothing.
   */
  readonly preempt: <R>(
    text: string,
    base: ConversationContext,
    generate: (hooks: Hooks) => Generation<R>
  ) => Effect.Effect<void, never, R>
  /**
   * Settles the pending speculation for a turn on `text` over `base`: the
   * speculation, adopted (its waiting tools released), when its normalised
   * text matches, its history is `base` and it has not failed; otherwise it
   * is interrupted, counted wasted, and the result is undefined.
   */
  readonly adopt: (
    text: string,
    base: ConversationContext,
    onStep: (added: ReadonlyArray<Message>) => Effect.Effect<void>
  ) => Effect.Effect<Adopted | undefined, never, Scope.Scope>
  /** Interrupts the pending speculation, if any, and counts it wasted. */
  readonly discard: Effect.Effect<void>
  readonly stats: Effect.Effect<Stats>
}

/**
 * A conversation's speculation, its fibers forked in `scope` (the
 * conversation's lifetime: closing it interrupts them).
 */
export const make = (scope: Scope.Scope): Effect.Effect<Speculations> =>
  Effect.gen(function*() {
    const lock = yield* Effect.makeSemaphore(1)
    let current: Speculation | undefined
    const stats = { started: 0, reused: 0, wasted: 0 }

    const waste = (speculation: Speculation) =>
      Effect.zipRight(
        Fiber.interrupt(speculation.fiber),
        Effect.suspend(() => {
          stats.wasted++
          return Metric.increment(wastedCounter)
        })
      )

    /** Takes the pending speculation, if any, leaving none. */
    const take = () => {
      const speculation = current
      current = undefined
      return speculation
    }

    const preempt = <R>(text: string, base: ConversationContext, generate: (hooks: Hooks) => Generation<R>) =>
      lock.withPermits(1)(Effect.gen(function*() {
        const key = normalise(text)
        if (key === "") return
        if (current !== undefined && current.key === key && current.base === base && !current.tape.failed) return
        const previous = take()
        if (previous !== undefined) yield* waste(previous)
        const tape: Tape = {
          queue: yield* Queue.unbounded<Item>(),
          committed: yield* Deferred.make<void>(),
          demand: yield* SubscriptionRef.make(0),
          offered: 0,
          failed: false
        }
        const offer = (item: Item) =>
          Effect.suspend(() => {
            tape.offered++
            return Effect.asVoid(Queue.offer(tape.queue, item))
          })
        // a waiting call runs once the turn is committed and its consumer asked for what came after the call's step
        const final = Effect.suspend(() => {
          const mark = tape.offered
          return Effect.zipRight(
            Deferred.await(tape.committed),
            tape.demand.changes.pipe(Stream.filter((taken) => taken >= mark), Stream.take(1), Stream.runDrain)
          )
        })
        const generation = generate({ onStep: (added) => offer({ _tag: "Step", added }), final })
        // interruptible whatever the caller's region: dropping it must stop it
        const run = generation.events.pipe(
          Stream.runForEachChunk((events) => offer({ _tag: "Events", events })),
          Effect.exit,
          Effect.flatMap((exit) => {
            if (Exit.isFailure(exit)) tape.failed = true
            return offer({ _tag: "End", exit })
          }),
          Effect.onInterrupt(() => Effect.sync(() => void (tape.failed = true))),
          Effect.interruptible
        )
        const fiber = yield* Effect.forkIn(run, scope)
        const speculation: Speculation = {
          key,
          base,
          tape,
          fiber,
          recordedOn: generation.recordedOn,
          reportUsage: generation.reportUsage
        }
        current = speculation
        stats.started++
        yield* Metric.increment(startedCounter)
      })).pipe(Effect.uninterruptible)

    const adopt = (
      text: string,
      base: ConversationContext,
      onStep: (added: ReadonlyArray<Message>) => Effect.Effect<void>
    ) =>
      lock.withPermits(1)(Effect.gen(function*() {
        const speculation = take()
        if (speculation === undefined) return undefined
        if (speculation.tape.failed || speculation.base !== base || speculation.key !== normalise(text)) {
          yield* waste(speculation)
          return undefined
        }
        stats.reused++
        yield* Metric.increment(reusedCounter)
        yield* Deferred.succeed(speculation.tape.committed, undefined)
        const adopted = consume(speculation, onStep)
        // also on the turn's scope, should the turn end before it takes over
        yield* Effect.addFinalizer(() => adopted.release)
        return adopted
      })).pipe(Effect.uninterruptible)

    return {
      preempt,
      adopt,
      discard: lock.withPermits(1)(Effect.suspend(() => {
        const speculation = take()
        return speculation === undefined ? Effect.void : waste(speculation)
      })),
      stats: Effect.sync(() => ({ ...stats }))
    }
  })

/**
 * The adopted speculation's items as a stream: each pull says what the
 * consumer has taken (releasing the waiting tools it caught up with), hands
 * steps to `onStep` in order with the events, and ends as the generation did.
 */
const consume = (
  { fiber, recordedOn, reportUsage, tape }: Speculation,
  onStep: (added: ReadonlyArray<Message>) => Effect.Effect<void>
): Adopted => {
  let pending: Array<Item> = []
  let taken = 0
  // the consumer is waiting for the generation (not busy with what it was given)
  let waiting = false
  let released = false
  const pull: Effect.Effect<Chunk.Chunk<StreamEvent>, Option.Option<LlmError | ToolExecutionError>> = Effect.gen(
    function*() {
      yield* SubscriptionRef.set(tape.demand, taken)
      for (;;) {
        if (pending.length === 0) {
          waiting = true
          pending = Chunk.toArray(yield* Queue.takeBetween(tape.queue, 1, Number.MAX_SAFE_INTEGER))
          waiting = false
        }
        const item = pending.shift()!
        taken++
        if (item._tag === "Events") return item.events
        if (item._tag === "Step") {
          yield* onStep(item.added)
          continue
        }
        return yield* Exit.isSuccess(item.exit)
          ? Effect.fail(Option.none())
          : Effect.failCause(Cause.map(item.exit.cause, Option.some))
      }
    }
  )
  const release = Effect.suspend(() => {
    if (released) return Effect.void
    released = true
    return Fiber.interrupt(fiber).pipe(
      Effect.zipRight(Queue.takeAll(tape.queue)),
      Effect.flatMap((rest) => {
        // a consumer waiting for the generation gets the steps finished meanwhile (the calls of tools
        // that are not interruptible, interrupted with it); one still busy with earlier events does not
        if (!waiting) return Effect.void
        const steps: Array<ReadonlyArray<Message>> = []
        for (const item of [...pending, ...rest]) {
          if (item._tag !== "Step") break
          steps.push(item.added)
        }
        return Effect.forEach(steps, onStep, { discard: true })
      })
    )
  })
  return { events: Stream.repeatEffectChunkOption(pull), recordedOn, reportUsage, release }
}
