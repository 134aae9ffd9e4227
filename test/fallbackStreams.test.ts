/**
 * Fallback's stream relay and breaker at their edges (issue 13, mutation
 * testing): the text a failure carries, continuation's dedupe of repeated
 * text, the events relayed as they are, empty chunks and deltas, defects kept
 * as they are, the breaker's ends while open or trying, probes failed or
 * interrupted, the all-skipped error, and the fallback span. Backends are
 * `ScriptedLlm`s (effect-llm/testing) on the `TestClock`, some with a
 * hand-written stream for events a script cannot express.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Cause from "effect/Cause"
import * as Channel from "effect/Channel"
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Option from "effect/Option"
import * as Stream from "effect/Stream"
import * as TestClock from "effect/TestClock"
import { LlmAuthenticationError, type LlmError, LlmProviderError } from "../src/errors.js"
import * as Fallback from "../src/layers/Fallback.js"
import type { Llm } from "../src/Llm.js"
import * as Message from "../src/Message.js"
import { StreamEvent } from "../src/Reply.js"
import * as LlmStream from "../src/Stream.js"
import * as ScriptedLlm from "../src/testing/ScriptedLlm.js"
import { recordSpans } from "./support/spans.js"

const hi = [Message.user("Hi")]
const down = (provider: string) => new LlmProviderError({ provider, model: "m", message: `${provider} is down` })
const badKey = (provider: string) => new LlmAuthenticationError({ provider, model: "m", message: "bad key" })

/** A backend answering every call with `step`. */
const backend = (provider: string, step: ScriptedLlm.Step) =>
  ScriptedLlm.make(() => step, { provider, model: `${provider}-model` })

/** A backend whose stream is `events` as given (chunk by chunk), then a failure with `error` carrying no text. */
const broken = (
  provider: string,
  chunks: ReadonlyArray<ReadonlyArray<StreamEvent>>,
  error: LlmError
): Effect.Effect<{ readonly llm: Llm.Service; readonly opened: () => number }> =>
  Effect.map(backend(provider, ScriptedLlm.fail(error)), ({ llm }) => {
    let opened = 0
    return {
      llm: {
        ...llm,
        stream: () =>
          Stream.suspend(() => {
            opened++
            return Stream.fromChannel(
              Channel.zipRight(
                chunks.reduce<Channel.Channel<Chunk.Chunk<StreamEvent>>>(
                  (channel, chunk) => Channel.zipRight(channel, Channel.write(Chunk.fromIterable(chunk))),
                  Channel.void
                ),
                Channel.fail(error)
              )
            )
          })
      },
      opened: () => opened
    }
  })

const text = (t: string) => StreamEvent.TextDelta({ text: t })

/** The text deltas of a stream's events, as delivered. */
const deltas = (events: Chunk.Chunk<StreamEvent>) =>
  Chunk.toArray(events).flatMap((event) => event._tag === "TextDelta" ? [event.text] : [])

const count = (calls: Effect.Effect<ReadonlyArray<ScriptedLlm.RecordedCall>>) => Effect.map(calls, (c) => c.length)

describe("the text a stream's failure carries", () => {
  it.effect("after text was delivered, the error carries it; with none delivered, no partialText", () =>
    Effect.gen(function*() {
      for (const chunks of [[[text("Hel"), text("lo ")]], [[text("Hel")], [text("lo ")]]]) {
        const a = yield* broken("a", chunks, down("a"))
        const b = yield* backend("b", ScriptedLlm.reply("b"))
        const error = yield* Effect.flip(Stream.runDrain((yield* Fallback.make([a.llm, b.llm])).stream(hi)))
        expect([error.message, error.partialText]).toEqual(["a is down", "Hello "])
      }
      const reasoning = yield* broken("a", [[StreamEvent.ReasoningDelta({ text: "hmm" })]], down("a"))
      const b = yield* backend("b", ScriptedLlm.reply("b"))
      const error = yield* Effect.flip(Stream.runDrain((yield* Fallback.make([reasoning.llm, b.llm])).stream(hi)))
      expect(error.message).toBe("a is down")
      expect(error.partialText).toBeUndefined()
      expect(yield* count(b.calls)).toBe(0)
    }))

  it.effect("the last backend's failure before any event is the stream's error, without partialText", () =>
    Effect.gen(function*() {
      const a = yield* backend("a", ScriptedLlm.fail(down("a")))
      const b = yield* backend("b", ScriptedLlm.fail(down("b")))
      const error = yield* Effect.flip(Stream.runDrain((yield* Fallback.make([a.llm, b.llm])).stream(hi)))
      expect([error._tag, error.message, error.partialText]).toEqual(["LlmProviderError", "b is down", undefined])
    }))

  it.effect("in continuation, a next backend failing before its first event carries the text delivered before", () =>
    Effect.gen(function*() {
      const a = yield* broken("a", [[text("Hello ")]], down("a"))
      const b = yield* broken("b", [], badKey("b"))
      const llm = yield* Fallback.make([a.llm, b.llm], { continuation: true })
      const error = yield* Effect.flip(Stream.runDrain(llm.stream(hi)))
      expect([error._tag, error.message, error.partialText]).toEqual(["LlmAuthenticationError", "bad key", "Hello "])
    }))

  it.effect("in continuation, the last backend failing after its text carries all the text delivered", () =>
    Effect.gen(function*() {
      const a = yield* broken("a", [[text("Hello ")]], down("a"))
      const b = yield* broken("b", [[text("wor")], [text("ld")]], down("b"))
      const llm = yield* Fallback.make([a.llm, b.llm], { continuation: true })
      const error = yield* Effect.flip(Stream.runDrain(llm.stream(hi)))
      expect([error.message, error.partialText]).toEqual(["b is down", "Hello world"])
      expect(b.opened()).toBe(1)
    }))
})

describe("continuation", () => {
  const continued = (deltasOfB: ReadonlyArray<string>) =>
    Effect.gen(function*() {
      const a = yield* ScriptedLlm.make(() => ScriptedLlm.fail(down("a"), { afterText: "Hello there " }), {
        provider: "a"
      })
      const b = yield* backend("b", ScriptedLlm.reply(deltasOfB.join(""), { deltas: deltasOfB }))
      const llm = yield* Fallback.make([a.llm, b.llm], { continuation: true })
      const events = yield* Stream.runCollect(llm.stream(hi))
      const calls = yield* b.calls
      return { events, calls, a: yield* a.calls }
    })

  it.effect("asks the next backend with the text delivered as an assistant prefix, the first without one", () =>
    Effect.gen(function*() {
      const { a, calls, events } = yield* continued(["world"])
      expect(a[0]!.messages).toEqual(hi)
      expect(calls[0]!.messages.map((m) => [m.role, m.content])).toEqual([["user", "Hi"], ["assistant", "Hello there"]])
      expect(deltas(events).join("")).toBe("Hello there world")
    }))

  it.effect("drops the next backend's repetition of the text delivered, however its deltas cut it", () =>
    Effect.gen(function*() {
      for (
        const cut of [
          ["Hello there world"],
          ["Hello there ", "world"],
          ["Hel", "lo the", "re wor", "ld"],
          ["H", "ello there ", "", "world"]
        ]
      ) {
        const { events } = yield* continued(cut)
        expect(deltas(events).join("")).toBe("Hello there world")
      }
    }))

  it.effect("keeps a reply shorter than the text delivered, or one that only starts like it", () =>
    Effect.gen(function*() {
      expect(deltas((yield* continued(["ok"])).events)).toEqual(["Hello ", "there ", "ok"])
      expect(deltas((yield* continued(["Hel", "p me"])).events)).toEqual(["Hello ", "there ", "Help me"])
    }))

  it.effect("notes the backend that broke in the Finish, and keeps the Finish's own metadata", () =>
    Effect.gen(function*() {
      const { events } = yield* continued(["world"])
      const finish = Chunk.toArray(events).find((event) => event._tag === "Finish")
      expect(finish?._tag === "Finish" && finish.metadata.fallbacks?.map((f) => [f.provider, f.error?.message]))
        .toEqual([["a", "a is down"]])
      expect(finish?._tag === "Finish" && finish.metadata.provider).toBe("b")
    }))
})

describe("the events relayed", () => {
  it.effect("relays tool calls and reasoning as they are, after a fallback too", () =>
    Effect.gen(function*() {
      const a = yield* backend("a", ScriptedLlm.fail(down("a")))
      const b = yield* backend(
        "b",
        ScriptedLlm.toolCalls([{ id: "c1", name: "look", arguments: { q: 1 } }], { text: "ok", reasoning: "why" })
      )
      const events = yield* Stream.runCollect((yield* Fallback.make([a.llm, b.llm])).stream(hi))
      expect(Chunk.toArray(events).map((event) => event._tag)).toEqual([
        "ReasoningDelta",
        "TextDelta",
        "ToolCallStart",
        "ToolCallDelta",
        "ToolCall",
        "Finish"
      ])
      const finish = Chunk.toArray(events).at(-1)!
      expect(finish._tag === "Finish" && [finish.finishReason, finish.metadata.provider, finish.model]).toEqual([
        "tool_calls",
        "b",
        "b-model"
      ])
      const collected = yield* LlmStream.collect((yield* Fallback.make([a.llm, b.llm])).stream(hi))
      expect(collected.toolCalls.map((call) => [call.id, call.name])).toEqual([["c1", "look"]])
    }))

  it.effect("drops empty text deltas", () =>
    Effect.gen(function*() {
      const b = yield* backend("b", ScriptedLlm.reply("Hello", { deltas: ["", "Hel", "", "lo"] }))
      const events = yield* Stream.runCollect((yield* Fallback.make([b.llm])).stream(hi))
      expect(deltas(events)).toEqual(["Hel", "lo"])
    }))

  it.effect("an empty chunk is not the first event: a failure after it still falls back", () =>
    Effect.gen(function*() {
      const a = yield* broken("a", [[]], down("a"))
      const b = yield* backend("b", ScriptedLlm.reply("from b"))
      const result = yield* LlmStream.collect((yield* Fallback.make([a.llm, b.llm])).stream(hi))
      expect(result.content).toBe("from b")
    }))
})

describe("defects and interruptions are kept as they are", () => {
  it.effect("a defect of complete or of a stream ends the call, with no fallback", () =>
    Effect.gen(function*() {
      const a = yield* ScriptedLlm.make([], { provider: "a" })
      const b = yield* backend("b", ScriptedLlm.reply("b"))
      const llm = yield* Fallback.make([a.llm, b.llm])
      const completed = yield* Effect.exit(Effect.asVoid(llm.complete(hi)))
      const streamed = yield* Effect.exit(Stream.runDrain(llm.stream(hi)))
      for (const exit of [completed, streamed]) {
        expect(Exit.isFailure(exit) && Cause.isDie(exit.cause)).toBe(true)
        expect(Exit.isFailure(exit) && Cause.pretty(exit.cause)).toContain("ScriptedLlm: call")
      }
      expect(yield* count(b.calls)).toBe(0)
    }))
})

describe("the breaker at its edges", () => {
  it.effect("a call let through before the breaker opened does not close it when it fails", () =>
    Effect.gen(function*() {
      const primary = yield* ScriptedLlm.make(
        (_, index) => index === 0 ? ScriptedLlm.fail(down("p"), { delay: "10 seconds" }) : ScriptedLlm.fail(down("p")),
        { provider: "p" }
      )
      const secondary = yield* backend("s", ScriptedLlm.reply("ok"))
      const llm = yield* Fallback.make([primary.llm, secondary.llm], { circuitBreaker: { failureThreshold: 1 } })
      const slow = yield* Effect.fork(llm.complete(hi))
      yield* TestClock.adjust("1 second")
      yield* llm.complete(hi)
      yield* TestClock.adjust("10 seconds")
      expect((yield* Fiber.join(slow)).content).toBe("ok")
      const skipped = yield* llm.complete(hi)
      expect(skipped.metadata.fallbacks).toEqual([{ provider: "p", skipped: true }])
      expect(yield* count(primary.calls)).toBe(2)
    }))

  it.effect("a non-transient error of a closed breaker leaves it closed, counting nothing", () =>
    Effect.gen(function*() {
      const primary = yield* ScriptedLlm.make(
        (_, index) => index === 0 ? ScriptedLlm.fail(badKey("p")) : ScriptedLlm.fail(down("p")),
        { provider: "p" }
      )
      const secondary = yield* backend("s", ScriptedLlm.reply("ok"))
      const llm = yield* Fallback.make([primary.llm, secondary.llm], { fallThroughOnAnyError: true })
      for (let i = 0; i < 3; i++) yield* llm.complete(hi)
      // one non-transient, two transient failures: still closed
      yield* llm.complete(hi)
      expect(yield* count(primary.calls)).toBe(4)
    }))

  it.effect("while a trial is in flight, a call let through before that ends unknown leaves the others skipping", () =>
    Effect.gen(function*() {
      const primary = yield* ScriptedLlm.make(
        (_, index) =>
          index === 0
            ? ScriptedLlm.fail(badKey("p"), { delay: "20 seconds" })
            : index === 1
            ? ScriptedLlm.fail(down("p"))
            : ScriptedLlm.hang,
        { provider: "p" }
      )
      const secondary = yield* backend("s", ScriptedLlm.reply("ok"))
      const llm = yield* Fallback.make([primary.llm, secondary.llm], {
        fallThroughOnAnyError: true,
        circuitBreaker: { failureThreshold: 1, cooldown: "5 seconds" }
      })
      const early = yield* Effect.fork(llm.complete(hi))
      yield* TestClock.adjust("1 second")
      yield* llm.complete(hi) // opens the breaker
      yield* TestClock.adjust("5 seconds")
      const trial = yield* Effect.fork(llm.complete(hi)) // the trial, hanging
      yield* TestClock.adjust("1 second")
      expect(yield* count(primary.calls)).toBe(3)
      yield* TestClock.adjust("20 seconds") // the early call ends with its auth error
      expect((yield* Fiber.join(early)).content).toBe("ok")
      const skipped = yield* llm.complete(hi)
      expect(skipped.metadata.fallbacks).toEqual([{ provider: "p", skipped: true }])
      expect(yield* count(primary.calls)).toBe(3)
      yield* Fiber.interrupt(trial)
    }))

  it.effect("a trial that ends unknown after another call closed the breaker leaves it closed", () =>
    Effect.gen(function*() {
      const steps: ReadonlyArray<ScriptedLlm.Step> = [
        ScriptedLlm.reply("p", { firstTokenDelay: "20 seconds" }),
        ScriptedLlm.fail(down("p")),
        ScriptedLlm.fail(down("p")),
        ScriptedLlm.fail(badKey("p"), { delay: "30 seconds" }),
        ScriptedLlm.fail(down("p")),
        ScriptedLlm.reply("p")
      ]
      const primary = yield* ScriptedLlm.make(steps, { provider: "p" })
      const secondary = yield* backend("s", ScriptedLlm.reply("ok"))
      const llm = yield* Fallback.make([primary.llm, secondary.llm], {
        fallThroughOnAnyError: true,
        circuitBreaker: { failureThreshold: 2, cooldown: "5 seconds" }
      })
      const early = yield* Effect.fork(llm.complete(hi)) // let through while closed, answers at 20 s
      yield* TestClock.adjust("1 second")
      yield* llm.complete(hi)
      yield* llm.complete(hi) // opens the breaker
      yield* TestClock.adjust("5 seconds")
      const trial = yield* Effect.fork(llm.complete(hi)) // the trial, failing with a bad key at 36 s
      yield* TestClock.adjust("40 seconds")
      expect((yield* Fiber.join(early)).content).toBe("p") // closed the breaker
      expect((yield* Fiber.join(trial)).content).toBe("ok")
      yield* llm.complete(hi) // one failure: still closed, under the threshold of 2
      expect((yield* llm.complete(hi)).content).toBe("p")
      expect(yield* count(primary.calls)).toBe(6)
    }))
})

describe("probes", () => {
  const probed = (probe: Effect.Effect<unknown, unknown>) =>
    Effect.gen(function*() {
      const primary = yield* ScriptedLlm.make(
        (_, index) => index === 0 ? ScriptedLlm.fail(down("p")) : ScriptedLlm.reply("p"),
        { provider: "p" }
      )
      const secondary = yield* backend("s", ScriptedLlm.reply("ok"))
      let probes = 0
      const llm = yield* Fallback.make([
        { llm: primary.llm, probe: Effect.suspend(() => (probes++, probe)) },
        secondary.llm
      ], { circuitBreaker: { failureThreshold: 1, cooldown: "5 seconds" } })
      yield* llm.complete(hi) // opens
      yield* TestClock.adjust("5 seconds")
      const first = yield* llm.complete(hi) // the trial, probed
      return { llm, first, probes: () => probes, primary }
    })

  it.effect("a failed probe reopens the breaker: skipped until the next cooldown, then probed again", () =>
    Effect.gen(function*() {
      const { first, llm, primary, probes } = yield* probed(Effect.fail("down"))
      expect(first.metadata.fallbacks).toEqual([{ provider: "p", skipped: true }])
      expect(probes()).toBe(1)
      yield* llm.complete(hi)
      expect(probes()).toBe(1)
      yield* TestClock.adjust("5 seconds")
      yield* llm.complete(hi)
      expect(probes()).toBe(2)
      expect(yield* count(primary.calls)).toBe(1)
    }))

  it.effect("an interrupted probe says nothing: the next call probes again at once", () =>
    Effect.gen(function*() {
      const { first, llm, probes } = yield* probed(Effect.interrupt)
      expect(first.metadata.fallbacks).toEqual([{ provider: "p", skipped: true }])
      expect(probes()).toBe(1)
      yield* llm.complete(hi)
      expect(probes()).toBe(2)
    }))
})

describe("the chain's own error and span", () => {
  it.effect("every backend cooling down fails with the chain's error, named fallback", () =>
    Effect.gen(function*() {
      const a = yield* backend("a", ScriptedLlm.fail(down("a")))
      const b = yield* backend("b", ScriptedLlm.fail(down("b")))
      const llm = yield* Fallback.make([a.llm, b.llm], { circuitBreaker: { failureThreshold: 1 } })
      yield* Effect.flip(llm.complete(hi))
      for (const error of [yield* Effect.flip(llm.complete(hi)), yield* Effect.flip(Stream.runDrain(llm.stream(hi)))]) {
        expect([error._tag, error.provider, error.model, error.message]).toEqual([
          "LlmProviderError",
          "fallback",
          "a-model",
          "no backend is available: a, b are cooling down after repeated failures"
        ])
      }
    }))

  it.effect("traced, complete runs in the chain's effect_llm.fallback span, with an event for the fallback taken", () =>
    Effect.gen(function*() {
      const { spans, tracer } = yield* recordSpans
      const a = yield* backend("a", ScriptedLlm.fail(down("a")))
      const b = yield* backend("b", ScriptedLlm.reply("b"))
      const spy: Llm.Service = {
        ...b.llm,
        complete: (messages, options) =>
          Effect.zipRight(
            Effect.flatMap(Effect.option(Effect.currentSpan), (span) =>
              Effect.sync(() => {
                seen = Option.map(span, (s) => [s.name, s.attributes.get("effect_llm.fallback.backends")])
              })),
            b.llm.complete(messages, options)
          )
      }
      let seen: Option.Option<Array<unknown>> = Option.none()
      yield* (yield* Fallback.make([a.llm, spy])).complete(hi).pipe(Effect.withTracer(tracer))
      expect(seen).toEqual(Option.some(["effect_llm.fallback", ["a", "b"]]))
      const chain = spans.find((span) => span.name === "effect_llm.fallback") as unknown as {
        events: ReadonlyArray<readonly [string, bigint, Record<string, unknown>]>
      }
      // (the fallback's log line is an event of the span too, as Effect records logs)
      const own = chain.events.filter(([name]) => name.startsWith("effect_llm."))
      expect(own.map(([name, , attributes]) => [name, attributes])).toEqual([
        ["effect_llm.fallback", {
          "effect_llm.fallback.from": "a",
          "effect_llm.fallback.to": "b",
          "effect_llm.fallback.reason": "LlmProviderError"
        }]
      ])
    }))

  it.effect("untraced, complete makes no span: the backends run in the caller's", () =>
    Effect.gen(function*() {
      const a = yield* backend("a", ScriptedLlm.fail(down("a")))
      const b = yield* backend("b", ScriptedLlm.reply("b"))
      let seen: Option.Option<string> = Option.some("not called")
      const spy: Llm.Service = {
        ...b.llm,
        complete: (messages, options) =>
          Effect.zipRight(
            Effect.flatMap(
              Effect.option(Effect.currentSpan),
              (span) => Effect.sync(() => void (seen = Option.map(span, (s) => s.name)))
            ),
            b.llm.complete(messages, options)
          )
      }
      yield* (yield* Fallback.make([a.llm, spy])).complete(hi)
      expect(seen).toEqual(Option.none())
    }))
})
