/**
 * Usage adding up, over real HTTP to the fake provider: across the steps of
 * a tool loop, the turns of a conversation (failed and interrupted turns
 * included when their tokens were reported), and the attempts a call was
 * billed for (a retried attempt or a backend fallen back from, when its
 * provider reported usage before failing; nothing is invented when it did not).
 */
import { describe, expect, it } from "@effect/vitest"
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import * as Supervisor from "effect/Supervisor"
import * as ConversationContext from "../src/Context.js"
import * as Conversation from "../src/Conversation.js"
import { isLlmError } from "../src/errors.js"
import * as Anthropic from "../src/layers/Anthropic.js"
import * as Fallback from "../src/layers/Fallback.js"
import * as OpenAi from "../src/layers/OpenAi.js"
import * as Llm from "../src/Llm.js"
import * as Message from "../src/Message.js"
import type { ProviderOptions } from "../src/Provider.js"
import * as LlmStream from "../src/Stream.js"
import * as Tool from "../src/Tool.js"
import * as Toolkit from "../src/Toolkit.js"
import { Usage } from "../src/Usage.js"
import * as FakeProvider from "./support/FakeProvider.js"

const hi = [Message.user("Hello?")]
const key = Redacted.make("sk-test-usage")
const noRetry: ProviderOptions = { retry: { maxRetries: 0 } }

const openai = (server: FakeProvider.FakeProvider, options: ProviderOptions = {}) =>
  OpenAi.layer({ ...options, baseUrl: `${server.url}/v1`, apiKey: key, model: "gpt-4o" })
const anthropic = (server: FakeProvider.FakeProvider, options: ProviderOptions = {}) =>
  Anthropic.layer({ ...options, baseUrl: server.url, apiKey: key, model: "claude-sonnet-4-20250514" })

/** gpt-4o's cost of a reply with this usage (no cache). */
const gpt4o = (input: number, output: number) => (input * 2.5 + output * 10) / 1_000_000

/** The counters of a usage, cost rounded, for comparing sums. */
const counters = (usage: Usage) => ({
  inputTokens: usage.inputTokens,
  outputTokens: usage.outputTokens,
  totalTokens: usage.totalTokens,
  cachedInputTokens: usage.cachedInputTokens,
  cacheWriteInputTokens: usage.cacheWriteInputTokens,
  reasoningTokens: usage.reasoningTokens,
  cost: usage.cost === undefined ? undefined : Math.round(usage.cost * 1e12) / 1e12
})

const u = (fields: ConstructorParameters<typeof Usage>[0]) => new Usage(fields)

describe("Usage.add and Usage.sum", () => {
  it("add counter by counter; an optional counter is present when either side has it", () => {
    const a = u({ inputTokens: 10, outputTokens: 2, totalTokens: 12, cachedInputTokens: 4, cost: 0.5 })
    const b = u({ inputTokens: 5, outputTokens: 3, totalTokens: 8, reasoningTokens: 1, cost: 0.25 })
    expect(counters(Usage.add(a, b))).toEqual({
      inputTokens: 15,
      outputTokens: 5,
      totalTokens: 20,
      cachedInputTokens: 4,
      cacheWriteInputTokens: undefined,
      reasoningTokens: 1,
      cost: 0.75
    })
  })

  it("a sum with a part of unknown cost has no cost; the sum of nothing is zero, cost 0", () => {
    const known = u({ inputTokens: 1, outputTokens: 1, totalTokens: 2, cost: 1 })
    const unknown = u({ inputTokens: 1, outputTokens: 1, totalTokens: 2 })
    expect(Usage.sum([known, unknown]).cost).toBeUndefined()
    expect(Usage.sum([unknown, known]).cost).toBeUndefined()
    expect(Usage.sum([known, known]).cost).toBe(2)
    expect(counters(Usage.sum([]))).toEqual(counters(Usage.zero))
    expect(Usage.zero.cost).toBe(0)
  })
})

const getTime = Tool.make("get_time", {
  description: "The time",
  parameters: Schema.Struct({}),
  handler: () => Effect.succeed("12:00")
})

describe("a tool loop's usage", () => {
  it.live("Toolkit.run: two steps, each step's usage, and their sum", () =>
    Effect.scoped(Effect.gen(function*() {
      const server = yield* FakeProvider.make
      server.enqueue(
        {
          kind: "reply",
          toolCalls: [{ name: "get_time", arguments: {} }],
          usage: { inputTokens: 100, outputTokens: 20, cacheReadTokens: 40 }
        },
        { kind: "reply", text: "It is noon.", usage: { inputTokens: 150, outputTokens: 30, reasoningTokens: 5 } }
      )
      const run = yield* Toolkit.run(hi, Toolkit.make(getTime)).pipe(Effect.provide(openai(server)))
      expect(run.steps).toBe(2)
      expect(run.stepUsage.map(counters)).toEqual([
        {
          inputTokens: 100,
          outputTokens: 20,
          totalTokens: 120,
          cachedInputTokens: 40,
          cacheWriteInputTokens: undefined,
          reasoningTokens: 0,
          cost: Math.round(((60 * 2.5 + 40 * 1.25 + 20 * 10) / 1e6) * 1e12) / 1e12
        },
        {
          inputTokens: 150,
          outputTokens: 30,
          totalTokens: 180,
          cachedInputTokens: 0,
          cacheWriteInputTokens: undefined,
          reasoningTokens: 5,
          cost: Math.round(gpt4o(150, 30) * 1e12) / 1e12
        }
      ])
      expect(counters(run.usage)).toEqual(counters(Usage.add(run.stepUsage[0]!, run.stepUsage[1]!)))
      expect(run.usage.inputTokens).toBe(250)
      // the final result keeps its own step's usage
      expect(run.result.usage.inputTokens).toBe(150)
    })))
})

describe("a conversation's usage", () => {
  it.live("adds up across turns, streamed or not, tool steps included; a failed turn counts what was reported", () =>
    Effect.scoped(Effect.gen(function*() {
      const server = yield* FakeProvider.make
      server.enqueue(
        { kind: "reply", text: "One.", usage: { inputTokens: 10, outputTokens: 1 } },
        {
          kind: "reply",
          toolCalls: [{ name: "get_time", arguments: {} }],
          usage: { inputTokens: 20, outputTokens: 2 }
        },
        { kind: "reply", text: "Noon.", usage: { inputTokens: 30, outputTokens: 3 } },
        // cut off after its usage chunk, before [DONE]: billed, and the turn fails
        { kind: "reply", text: "Cut", usage: { inputTokens: 40, outputTokens: 4 }, resetAfterEvents: 4 },
        // answered with an error status: nothing reported, nothing counted
        { kind: "status", status: 400, message: "bad" }
      )
      const layer = Conversation.layer().pipe(Layer.provide(openai(server, noRetry)))
      yield* Effect.gen(function*() {
        const conversation = yield* Conversation.Conversation
        expect(counters(yield* conversation.usage)).toEqual(counters(Usage.zero))
        yield* conversation.send("First")
        yield* Stream.runDrain(conversation.sendStream("Time?", { toolkit: Toolkit.make(getTime) }))
        const afterTurns = yield* conversation.usage
        expect([afterTurns.inputTokens, afterTurns.outputTokens]).toEqual([60, 6])
        expect(afterTurns.cost).toBeCloseTo(gpt4o(60, 6), 12)
        const failed = yield* Effect.flip(Stream.runDrain(conversation.sendStream("Cut?")))
        expect(isLlmError(failed) ? failed.usage?.inputTokens : undefined).toBe(40)
        yield* Effect.flip(conversation.send("Bad?"))
        const total = yield* conversation.usage
        expect([total.inputTokens, total.outputTokens]).toEqual([100, 10])
        expect(total.cost).toBeCloseTo(gpt4o(100, 10), 12)
        // the failed turns left the history as it was: two turns, the second with its tool step
        expect((yield* conversation.context).messages.map((message) => message.role)).toEqual([
          "user",
          "assistant",
          "user",
          "assistant",
          "tool",
          "assistant"
        ])
      }).pipe(Effect.provide(layer))
    })))

  it.live("a tool that calls the model itself runs on the conversation's Llm: its call is billed to the turn", () =>
    Effect.scoped(Effect.gen(function*() {
      const server = yield* FakeProvider.make
      server.enqueue(
        {
          kind: "reply",
          toolCalls: [{ name: "summarise", arguments: {} }],
          usage: { inputTokens: 20, outputTokens: 2 }
        },
        // the tool's own call, made through the Llm its handler finds in its context
        { kind: "reply", text: "Short.", usage: { inputTokens: 5, outputTokens: 1 } },
        { kind: "reply", text: "It says: short.", usage: { inputTokens: 30, outputTokens: 3 } }
      )
      const summarise = Tool.make("summarise", {
        description: "Summarises the day",
        parameters: Schema.Struct({}),
        handler: () => Effect.map(Llm.complete([Message.user("Summarise")]), (result) => result.content)
      })
      const layer = Conversation.layer().pipe(Layer.provide(openai(server, noRetry)))
      yield* Effect.gen(function*() {
        const conversation = yield* Conversation.Conversation
        // the caller's own Llm, unmetered, is not the one the tool gets
        const events = yield* Stream.runCollect(
          conversation.sendStream("Day?", { toolkit: Toolkit.make(summarise) }).pipe(
            Stream.provideLayer(openai(server, noRetry))
          )
        )
        const ended = Chunk.toReadonlyArray(events).flatMap((event) =>
          event._tag === "ToolExecutionEnd" ? [event.result.content] : []
        )
        expect(ended).toEqual(["Short."])
        const total = yield* conversation.usage
        expect([total.inputTokens, total.outputTokens]).toEqual([55, 6])
        expect(server.requests.length).toBe(3)
      }).pipe(Effect.provide(layer))
    })))

  it.live("counts speculative generations: a discarded one was billed, an adopted one once", () =>
    Effect.scoped(Effect.gen(function*() {
      const server = yield* FakeProvider.make
      server.enqueue(
        { kind: "reply", text: "Speculated.", usage: { inputTokens: 10, outputTokens: 1 } },
        { kind: "reply", text: "Fresh.", usage: { inputTokens: 20, outputTokens: 2 } },
        { kind: "reply", text: "Adopted.", usage: { inputTokens: 30, outputTokens: 3 } }
      )
      const layer = Conversation.layer().pipe(Layer.provide(openai(server, noRetry)))
      yield* Effect.gen(function*() {
        const conversation = yield* Conversation.Conversation
        /** `preempt`, then the speculative generation run to its end. */
        const preempted = (text: string) =>
          Effect.gen(function*() {
            const supervisor = yield* Supervisor.track
            yield* conversation.preempt(text).pipe(Effect.supervised(supervisor))
            yield* Fiber.awaitAll(yield* supervisor.value)
          })
        yield* preempted("What time")
        // the final text differs: the speculation is discarded, a fresh call answers
        yield* Stream.runDrain(conversation.commit("Something else"))
        const afterDiscard = yield* conversation.usage
        expect([afterDiscard.inputTokens, afterDiscard.outputTokens]).toEqual([30, 3])
        expect(afterDiscard.cost).toBeCloseTo(gpt4o(30, 3), 12)
        yield* preempted("Again")
        yield* Stream.runDrain(conversation.commit("Again"))
        expect(server.requests.length).toBe(3)
        const total = yield* conversation.usage
        expect([total.inputTokens, total.outputTokens]).toEqual([60, 6])
      }).pipe(Effect.provide(layer))
    })))

  it.live("a turn interrupted before its stream's end adds nothing (no final usage); set() does not reset the sum", () =>
    Effect.scoped(Effect.gen(function*() {
      const server = yield* FakeProvider.make
      server.enqueue(
        { kind: "reply", text: "Fine.", usage: { inputTokens: 7, outputTokens: 1 } },
        // interrupted mid-stream (barge-in): no Finish, no error, so no usage reaches the conversation
        { kind: "reply", text: "A long story", usage: { inputTokens: 11, outputTokens: 9 }, stallAfterEvents: 4 }
      )
      const layer = Conversation.layer().pipe(Layer.provide(anthropic(server, noRetry)))
      yield* Effect.gen(function*() {
        const conversation = yield* Conversation.Conversation
        yield* conversation.send("Hi")
        const fiber = yield* Effect.fork(Stream.runDrain(conversation.sendStream("Story?")))
        yield* Effect.promise(() => server.waitForRequests(2))
        yield* Effect.sleep("100 millis")
        yield* Fiber.interrupt(fiber)
        yield* Effect.promise(() => server.waitForClientClose())
        // only the first turn is known
        const usage = yield* conversation.usage
        expect(usage.inputTokens).toBe(7)
        yield* conversation.set(ConversationContext.make())
        expect((yield* conversation.usage).inputTokens).toBe(7)
      }).pipe(Effect.provide(layer))
    })))
})

describe("attempts that were billed", () => {
  it.live("a backend fallen back from after it reported usage: in failedUsage, its error, and Usage.billed", () =>
    Effect.scoped(Effect.gen(function*() {
      const [primary, secondary] = yield* Effect.all([FakeProvider.make, FakeProvider.make])
      // Anthropic reports the prompt's tokens in message_start, then fails before any content
      primary.setDefault({
        kind: "reply",
        text: "never",
        usage: { inputTokens: 500, outputTokens: 9 },
        inBandError: { afterEvents: 2, type: "overloaded_error", message: "Overloaded" }
      })
      secondary.setDefault({ kind: "reply", text: "Secondary.", usage: { inputTokens: 100, outputTokens: 10 } })
      const layer = Fallback.layer([anthropic(primary, noRetry), openai(secondary)])
      const reply = yield* LlmStream.collect(Llm.stream(hi)).pipe(Effect.provide(layer))
      expect(reply.content).toBe("Secondary.")
      const sonnet = (500 * 3 + 1 * 15) / 1e6
      // what message_start said: 500 prompt tokens, 1 output token so far
      expect(counters(reply.metadata.failedUsage!)).toEqual({
        inputTokens: 500,
        outputTokens: 1,
        totalTokens: 501,
        cachedInputTokens: 0,
        cacheWriteInputTokens: 0,
        reasoningTokens: undefined,
        cost: Math.round(sonnet * 1e12) / 1e12
      })
      expect(reply.metadata.fallbacks?.[0]?.error?.usage?.inputTokens).toBe(500)
      // the reply's own usage is the answering backend's
      expect(reply.usage.inputTokens).toBe(100)
      const billed = Usage.billed(reply)
      expect([billed.inputTokens, billed.outputTokens]).toEqual([600, 11])
      expect(billed.cost).toBeCloseTo(sonnet + gpt4o(100, 10), 12)
    })))

  it.live("a stream cut off after its usage chunk, continued by the next backend, is billed", () =>
    Effect.scoped(Effect.gen(function*() {
      const [primary, secondary] = yield* Effect.all([FakeProvider.make, FakeProvider.make])
      primary.setDefault({
        kind: "reply",
        text: "Hello there. ",
        chunkSize: 100,
        usage: { inputTokens: 80, outputTokens: 4 },
        // role chunk, text, finish chunk, usage chunk: then the connection is reset before [DONE]
        resetAfterEvents: 4
      })
      secondary.setDefault({ kind: "reply", text: "General Kenobi.", usage: { inputTokens: 90, outputTokens: 5 } })
      const layer = Fallback.layer([openai(primary, noRetry), openai(secondary)], { continuation: true })
      const events = yield* Stream.runCollect(Llm.stream(hi)).pipe(Effect.provide(layer))
      const finish = Chunk.toReadonlyArray(events).find((event) => event._tag === "Finish")
      if (finish?._tag !== "Finish") return expect.fail("no Finish")
      expect(finish.metadata.failedUsage?.inputTokens).toBe(80)
      expect(finish.metadata.failedUsage?.cost).toBeCloseTo(gpt4o(80, 4), 12)
      expect(counters(Usage.billed(finish))).toEqual(counters(Usage.add(finish.metadata.failedUsage!, finish.usage)))
    })))

  it.live("a retried attempt that reported usage is billed in the answer's failedUsage", () =>
    Effect.scoped(Effect.gen(function*() {
      const server = yield* FakeProvider.make
      server.enqueue(
        {
          kind: "reply",
          text: "never",
          usage: { inputTokens: 300, outputTokens: 9 },
          inBandError: { afterEvents: 2, type: "overloaded_error", message: "Overloaded" }
        },
        { kind: "reply", text: "Second try.", usage: { inputTokens: 300, outputTokens: 3 } }
      )
      const layer = anthropic(server, { retry: { maxRetries: 1, initialDelay: "1 millis" } })
      const reply = yield* LlmStream.collect(Llm.stream(hi)).pipe(Effect.provide(layer))
      expect(reply.metadata.attempts).toBe(2)
      expect(reply.metadata.failedUsage?.inputTokens).toBe(300)
      expect(reply.metadata.failedUsage?.outputTokens).toBe(1)
      expect(Usage.billed(reply).inputTokens).toBe(600)
    })))

  it.live("failures that reported nothing are not billed: no tokens are invented", () =>
    Effect.scoped(Effect.gen(function*() {
      const [primary, secondary] = yield* Effect.all([FakeProvider.make, FakeProvider.make])
      primary.setDefault({ kind: "status", status: 503, message: "down" })
      secondary.setDefault({ kind: "reply", text: "Up.", usage: { inputTokens: 10, outputTokens: 1 } })
      const layer = Fallback.layer([openai(primary, noRetry), openai(secondary)])
      const [whole, streamed] = yield* Effect.all([Llm.complete(hi), LlmStream.collect(Llm.stream(hi))]).pipe(
        Effect.provide(layer)
      )
      for (const reply of [whole, streamed]) {
        expect(reply.metadata.fallbacks?.length).toBe(1)
        expect(reply.metadata.failedUsage).toBeUndefined()
        expect(counters(Usage.billed(reply))).toEqual(counters(reply.usage))
      }
    })))

  it.live("a chain that fails in the end carries what every backend tried had reported", () =>
    Effect.scoped(Effect.gen(function*() {
      const [primary, secondary] = yield* Effect.all([FakeProvider.make, FakeProvider.make])
      const overloaded = (inputTokens: number): FakeProvider.Script => ({
        kind: "reply",
        text: "never",
        usage: { inputTokens, outputTokens: 9 },
        inBandError: { afterEvents: 2, type: "overloaded_error", message: "Overloaded" }
      })
      primary.setDefault(overloaded(200))
      secondary.setDefault(overloaded(300))
      const layer = Fallback.layer([anthropic(primary, noRetry), anthropic(secondary, noRetry)])
      const error = yield* Effect.flip(Stream.runDrain(Llm.stream(hi)).pipe(Effect.provide(layer)))
      expect(error._tag).toBe("LlmProviderError")
      expect(error.usage?.inputTokens).toBe(500)
      expect(error.usage?.outputTokens).toBe(2)
    })))
})
