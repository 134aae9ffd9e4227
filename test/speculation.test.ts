/**
 * Speculative generation: `preempt` on an interim transcript, then the turn
 * on the final text (`commit`, `sendStream`, `speak`) reusing it or starting
 * afresh; tools that wait for the final turn. Over loopback to the fake
 * provider, whose view says which requests were made and which the client
 * closed.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Chunk from "effect/Chunk"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import * as Supervisor from "effect/Supervisor"
import * as Conversation from "../src/Conversation.js"
import { normalise, wastedCounter } from "../src/internal/speculation.js"
import { validateRequest } from "../src/internal/validate.js"
import type * as Llm from "../src/Llm.js"
import * as Message from "../src/Message.js"
import type { StreamEvent } from "../src/Reply.js"
import * as Tool from "../src/Tool.js"
import * as Toolkit from "../src/Toolkit.js"
import { type Backend, backends } from "./support/backends.js"
import * as FakeProvider from "./support/FakeProvider.js"

const local = backends.find((b) => b.name === "local")!
const anthropic = backends.find((b) => b.name === "anthropic")!

/** Runs `f` with a conversation over `backend` pointed at a fresh fake provider (no retries). */
const withConversation = <A, E>(
  f: (
    server: FakeProvider.FakeProvider,
    conversation: Conversation.Conversation.Service
  ) => Effect.Effect<A, E, Llm.Llm | Conversation.Conversation>,
  backend: Backend = local
) =>
  Effect.scoped(Effect.gen(function*() {
    const server = yield* FakeProvider.make
    return yield* Effect.flatMap(Conversation.Conversation, (conversation) => f(server, conversation)).pipe(
      Effect.provide(
        Layer.provideMerge(
          Conversation.layer({ maxTurns: 10 }),
          backend.layer(server.url, { retry: { maxRetries: 0 } })
        )
      )
    )
  }))

/** The body of request `i`, as text. */
const body = (server: FakeProvider.FakeProvider, i: number) => JSON.stringify(server.requests[i]!.body)

const textOf = (events: Chunk.Chunk<StreamEvent>) =>
  Chunk.toArray(events).flatMap((event) => (event._tag === "TextDelta" ? [event.text] : [])).join("")

/** `preempt`, returning the fibers it started (the speculative generation's), to await its end. */
const preempting = (
  conversation: Conversation.Conversation.Service,
  text: string,
  options?: Conversation.SendOptions
) =>
  Effect.gen(function*() {
    const supervisor = yield* Supervisor.track
    yield* conversation.preempt(text, options).pipe(Effect.supervised(supervisor))
    return yield* supervisor.value
  })

const wait = (promise: () => Promise<void>) => Effect.promise(promise)

/** A tool counting its runs, completing `ran` at each. */
const counted = (name: string, options: { readonly ran: Deferred.Deferred<void>; readonly waitForFinal?: boolean }) => {
  let runs = 0
  const tool = Tool.make(name, {
    description: `${name} counts its runs`,
    parameters: Schema.Struct({}),
    waitForFinal: options.waitForFinal,
    handler: () =>
      Effect.sync(() => ++runs).pipe(
        Effect.tap(() => Deferred.succeed(options.ran, undefined)),
        Effect.map((n) => `${name} run ${n}`)
      )
  })
  return { tool, runs: () => runs }
}

describe("normalise", () => {
  it("ignores case, spacing and trailing punctuation, in any script", () => {
    expect(normalise("  What's the   weather\tin Paris?! ")).toBe("what's the weather in paris")
    expect(normalise("WHAT'S THE WEATHER IN PARIS")).toBe("what's the weather in paris")
    expect(normalise("今日の天気は？")).toBe(normalise("今日の天気は。"))
    expect(normalise("今日の天気は！")).toBe("今日の天気は")
    // NFKC: full-width letters and punctuation are the plain ones; case folding: ß and SS
    expect(normalise("ＨＥＬＬＯ！")).toBe("hello")
    expect(normalise("Straße")).toBe(normalise("STRASSE"))
    expect(normalise("\"Stop.\"")).toBe("\"stop")
  })

  it("keeps what changes the meaning: words, and punctuation inside the text", () => {
    expect(normalise("Call Bob")).not.toBe(normalise("Call Rob"))
    expect(normalise("3.14")).not.toBe(normalise("314"))
    expect(normalise("Let's eat, Grandma")).not.toBe(normalise("Let's eat Grandma"))
    expect(normalise("?!")).toBe("")
  })
})

describe("Tool.waitForFinal", () => {
  it("defaults to interruptible: false, and can be set either way", () =>
    Effect.gen(function*() {
      const of = (options: { readonly interruptible?: boolean; readonly waitForFinal?: boolean }) =>
        Tool.make("t", { description: "t", parameters: Schema.Struct({}), handler: () => Effect.void, ...options })
          .waitForFinal
      expect(of({})).toBe(false)
      expect(of({ interruptible: false })).toBe(true)
      expect(of({ interruptible: false, waitForFinal: false })).toBe(false)
      expect(of({ waitForFinal: true })).toBe(true)
      const json = (options: { readonly interruptible?: boolean; readonly waitForFinal?: boolean }) =>
        Effect.map(
          Tool.fromJsonSchema("t", { parameters: { type: "object" }, handler: () => Effect.void, ...options }),
          (tool) => tool.waitForFinal
        )
      expect(yield* json({})).toBe(false)
      expect(yield* json({ interruptible: false })).toBe(true)
      expect(yield* json({ waitForFinal: true })).toBe(true)
    }))
})

describe("Toolkit.stream with final", () => {
  it.live("a waiting tool's call runs once final completes; the others run at once", () =>
    Effect.scoped(Effect.gen(function*() {
      const server = yield* FakeProvider.make
      server.enqueue(
        {
          kind: "reply",
          toolCalls: [{ id: "p", name: "probe", arguments: {} }, { id: "s", name: "send_message", arguments: {} }]
        },
        { kind: "reply", text: "Done." }
      )
      const probed = yield* Deferred.make<void>()
      const sent = yield* Deferred.make<void>()
      const probe = counted("probe", { ran: probed })
      const send = counted("send_message", { ran: sent, waitForFinal: true })
      const final = yield* Deferred.make<void>()
      const fiber = yield* Toolkit.stream(
        [Message.user("Go.")],
        Toolkit.make(probe.tool, send.tool),
        { final: Deferred.await(final), concurrency: 1 }
      ).pipe(Stream.runCollect, Effect.provide(local.layer(server.url)), Effect.fork)
      yield* Deferred.await(probed)
      // concurrency 1: the waiting call comes right after the probe, in the same fiber, had it not waited
      expect(send.runs()).toBe(0)
      expect(server.requests.length).toBe(1)
      yield* Deferred.succeed(final, undefined)
      const events = yield* Fiber.join(fiber)
      expect(textOf(events)).toBe("Done.")
      expect([probe.runs(), send.runs()]).toEqual([1, 1])
      expect(body(server, 1)).toContain("send_message run 1")
    })))
})

for (const backend of [local, anthropic]) {
  describe(`speculative generation: ${backend.name}`, () => {
    for (const chunkSize of [1, 5, 17]) {
      it.live(`a matching final text reuses the generation: one request, its events replayed, the final text recorded (deltas of ${chunkSize})`, () =>
        withConversation((server, conversation) =>
          Effect.gen(function*() {
            server.enqueue({ kind: "reply", text: "It is sunny in Paris today.", chunkSize })
            const before = yield* conversation.context
            const fibers = yield* preempting(conversation, "what's the weather in paris")
            // the speculation has ended: everything it produced is in its buffer, and nothing in the history
            yield* Fiber.awaitAll(fibers)
            expect(yield* conversation.context).toBe(before)
            const events = yield* Stream.runCollect(conversation.commit("What's the weather in Paris?"))
            expect(textOf(events)).toBe("It is sunny in Paris today.")
            expect(Chunk.toArray(events).filter((event) => event._tag === "Finish").length).toBe(1)
            expect(server.requests.length).toBe(1)
            expect(body(server, 0)).toContain("what's the weather in paris")
            const history = (yield* conversation.context).history
            expect(history.map((m) => [m.role, m.content])).toEqual([
              ["user", "What's the weather in Paris?"],
              ["assistant", "It is sunny in Paris today."]
            ])
            expect(yield* conversation.speculation).toEqual({ started: 1, reused: 1, wasted: 0 })
          }), backend))
    }

    it.live("another final text closes the speculative request and starts afresh with it", () =>
      withConversation((server, conversation) =>
        Effect.gen(function*() {
          const wastedBefore = (yield* Metric.value(wastedCounter)).count
          server.enqueue({ kind: "hang" }, { kind: "reply", text: "Rome is warm." })
          yield* conversation.preempt("what's the weather in paris")
          yield* wait(() => server.waitForRequests(1))
          const events = yield* Stream.runCollect(conversation.commit("What's the weather in Rome?"))
          yield* wait(() => server.waitForClientClose(1))
          expect(server.requests[0]!.closedByClient).toBe(true)
          expect(textOf(events)).toBe("Rome is warm.")
          expect(server.requests.length).toBe(2)
          expect(body(server, 1)).toContain("What's the weather in Rome?")
          expect(body(server, 1)).not.toContain("paris")
          const history = (yield* conversation.context).history
          expect(history.map((m) => m.content)).toEqual(["What's the weather in Rome?", "Rome is warm."])
          expect(yield* conversation.speculation).toEqual({ started: 1, reused: 0, wasted: 1 })
          expect((yield* Metric.value(wastedCounter)).count).toBe(wastedBefore + 1)
        }), backend))

    it.live("speak reuses a speculation: one request, every chunk played, the final text recorded", () =>
      withConversation((server, conversation) =>
        Effect.gen(function*() {
          server.enqueue({ kind: "reply", text: "One is first. Two is second.", chunkSize: 3 })
          yield* conversation.preempt("count to two")
          yield* wait(() => server.waitForRequests(1))
          const played: Array<string> = []
          const result = yield* conversation.speak("Count to two.", {
            sink: (chunk) => Effect.sync(() => played.push(chunk))
          })
          expect(played).toEqual(["One is first.", "Two is second."])
          expect(result.content).toBe("One is first. Two is second.")
          expect(server.requests.length).toBe(1)
          const history = (yield* conversation.context).history
          expect(history.map((m) => m.content)).toEqual(["Count to two.", "One is first. Two is second."])
          expect(yield* conversation.speculation).toEqual({ started: 1, reused: 1, wasted: 0 })
        }), backend))
  })
}

describe("speculative generation", () => {
  it.live("what was produced before the commit is replayed, then the same generation continues live", () =>
    withConversation((server, conversation) =>
      Effect.gen(function*() {
        const looked = yield* Deferred.make<void>()
        const lookup = counted("lookup", { ran: looked })
        const gate = yield* Deferred.make<void>()
        let open: () => void = () => undefined
        const opened = new Promise<void>((resolve) => (open = resolve))
        server.enqueue(
          { kind: "reply", text: "Let me look.", toolCalls: [{ id: "l", name: "lookup", arguments: {} }] },
          { kind: "gated", until: opened, then: { kind: "reply", text: "It is sunny." } }
        )
        const before = yield* conversation.context
        yield* conversation.preempt("weather", { toolkit: Toolkit.make(lookup.tool) })
        // a tool that does not wait ran speculatively: the first step is buffered, the second is asked for
        yield* Deferred.await(looked)
        yield* wait(() => server.waitForRequests(2))
        expect(yield* conversation.context).toBe(before)
        const seen: Array<StreamEvent> = []
        const fiber = yield* conversation.commit("Weather?").pipe(
          Stream.tap((event) =>
            Effect.zipRight(
              Effect.sync(() => seen.push(event)),
              event._tag === "ToolCall" ? Deferred.succeed(gate, undefined) : Effect.void
            )
          ),
          Stream.runCollect,
          Effect.fork
        )
        // the first step came from the buffer while the second request was still held
        yield* Deferred.await(gate)
        expect(textOf(Chunk.fromIterable(seen))).toBe("Let me look.")
        expect(server.requests[1]!.finished).toBe(false)
        open()
        const events = yield* Fiber.join(fiber)
        expect(textOf(events)).toBe("Let me look.It is sunny.")
        expect(server.requests.length).toBe(2)
        expect(lookup.runs()).toBe(1)
        const history = (yield* conversation.context).messages
        expect(validateRequest(history, {})).toBeUndefined()
        expect(history.map((m) => m.role)).toEqual(["user", "assistant", "tool", "assistant"])
        expect(history.map((m) => m.content)).toEqual(["Weather?", "Let me look.", "lookup run 1", "It is sunny."])
      })
    ))

  it.live("a spoken turn reusing a speculation counts the output tokens of every step, those before the commit too", () =>
    withConversation((server, conversation) =>
      Effect.gen(function*() {
        const probed = yield* Deferred.make<void>()
        const probe = counted("probe", { ran: probed })
        server.enqueue(
          {
            kind: "reply",
            text: "Checking.",
            toolCalls: [{ id: "p", name: "probe", arguments: {} }],
            usage: { inputTokens: 10, outputTokens: 7 }
          },
          { kind: "reply", text: "All good.", usage: { inputTokens: 20, outputTokens: 11 } }
        )
        const toolkit = Toolkit.make(probe.tool)
        yield* conversation.preempt("is it fine", { toolkit })
        // the first step, its usage included, is done before the turn adopts it
        yield* Deferred.await(probed)
        const result = yield* conversation.speak("Is it fine?", { toolkit, sink: () => Effect.void })
        expect(result.content).toBe("All good.")
        expect(result.metadata.voice).toMatchObject({ outputTokens: 18, interrupted: false })
        expect(yield* conversation.speculation).toEqual({ started: 1, reused: 1, wasted: 0 })
      })
    ))

  it.live("a second preempt with another text closes the first request and starts anew", () =>
    withConversation((server, conversation) =>
      Effect.gen(function*() {
        server.enqueue({ kind: "hang" }, { kind: "reply", text: "Set for ten minutes." })
        yield* conversation.preempt("set a timer for five")
        yield* wait(() => server.waitForRequests(1))
        yield* conversation.preempt("set a timer for ten")
        yield* wait(() => server.waitForClientClose(1))
        expect(server.requests[0]!.closedByClient).toBe(true)
        const events = yield* Stream.runCollect(conversation.commit("Set a timer for ten."))
        expect(textOf(events)).toBe("Set for ten minutes.")
        expect(server.requests.length).toBe(2)
        expect(body(server, 1)).toContain("set a timer for ten")
        expect(yield* conversation.speculation).toEqual({ started: 2, reused: 1, wasted: 1 })
      })
    ))

  it.live("a second preempt with the same normalised text keeps the running generation", () =>
    withConversation((server, conversation) =>
      Effect.gen(function*() {
        server.enqueue({ kind: "reply", text: "Hi!" })
        yield* conversation.preempt("hello there")
        yield* conversation.preempt("Hello  there!")
        yield* conversation.preempt("HELLO THERE.")
        const events = yield* Stream.runCollect(conversation.commit("Hello there."))
        expect(textOf(events)).toBe("Hi!")
        expect(server.requests.length).toBe(1)
        expect(server.requests[0]!.closedByClient).toBe(false)
        expect(yield* conversation.speculation).toEqual({ started: 1, reused: 1, wasted: 0 })
      })
    ))

  it.live("a blank interim text starts nothing", () =>
    withConversation((server, conversation) =>
      Effect.gen(function*() {
        yield* conversation.preempt(" ... ")
        expect(yield* conversation.speculation).toEqual({ started: 0, reused: 0, wasted: 0 })
        yield* Stream.runDrain(conversation.commit("Hi."))
        expect(server.requests.length).toBe(1)
      })
    ))

  it.live("discard while it streams closes its request; the next turn starts afresh", () =>
    withConversation((server, conversation) =>
      Effect.gen(function*() {
        server.enqueue({ kind: "reply", text: "A long story about a lighthouse.", stallAfterEvents: 3 }, {
          kind: "reply",
          text: "Fine."
        })
        const before = yield* conversation.context
        const fibers = yield* preempting(conversation, "tell me a story")
        yield* wait(() => server.waitForRequests(1))
        yield* conversation.discard
        // the speculative fiber is gone, and the server saw its request closed
        for (const fiber of fibers) expect(fiber.unsafePoll()).not.toBeNull()
        yield* wait(() => server.waitForClientClose(1))
        expect(yield* conversation.context).toBe(before)
        expect(yield* conversation.speculation).toEqual({ started: 1, reused: 0, wasted: 1 })
        const events = yield* Stream.runCollect(conversation.commit("Tell me a story."))
        expect(textOf(events)).toBe("Fine.")
        expect(server.requests.length).toBe(2)
        expect(body(server, 1)).toContain("Tell me a story.")
        yield* conversation.discard // nothing pending: nothing counted
        expect(yield* conversation.speculation).toEqual({ started: 1, reused: 0, wasted: 1 })
      })
    ))

  it.live("a speculation that failed before the commit: the commit starts afresh and succeeds", () =>
    withConversation((server, conversation) =>
      Effect.gen(function*() {
        server.enqueue({ kind: "status", status: 500, message: "overloaded" }, { kind: "reply", text: "Here." })
        const fibers = yield* preempting(conversation, "where am i")
        yield* Fiber.awaitAll(fibers)
        const before = yield* conversation.context
        expect(before.history).toEqual([])
        const events = yield* Stream.runCollect(conversation.commit("Where am I?"))
        expect(textOf(events)).toBe("Here.")
        expect(server.requests.length).toBe(2)
        expect(body(server, 1)).toContain("Where am I?")
        expect((yield* conversation.context).history.map((m) => m.content)).toEqual(["Where am I?", "Here."])
        expect(yield* conversation.speculation).toEqual({ started: 1, reused: 0, wasted: 1 })
      })
    ))

  it.live("a failure after the commit is the turn's: the stream fails and the history is as it was", () =>
    withConversation((server, conversation) =>
      Effect.gen(function*() {
        let open: () => void = () => undefined
        const opened = new Promise<void>((resolve) => (open = resolve))
        server.enqueue({ kind: "gated", until: opened, then: { kind: "status", status: 500, message: "down" } })
        yield* conversation.preempt("hi")
        yield* wait(() => server.waitForRequests(1))
        const fiber = yield* Effect.fork(Stream.runCollect(conversation.commit("Hi.")))
        // adopted before the failure arrives (the turn lock is taken once the commit runs)
        while ((yield* conversation.speculation).reused === 0) yield* Effect.yieldNow()
        open()
        const error = yield* Effect.flip(Fiber.join(fiber))
        expect(error._tag).toBe("LlmProviderError")
        expect((yield* conversation.context).history).toEqual([])
        expect(server.requests.length).toBe(1)
      })
    ))

  it.live("a tool that waits for the final turn does not run before the commit, and runs once after it", () =>
    withConversation((server, conversation) =>
      Effect.gen(function*() {
        const probed = yield* Deferred.make<void>()
        const sent = yield* Deferred.make<void>()
        const probe = counted("probe", { ran: probed })
        const send = counted("send_message", { ran: sent, waitForFinal: true })
        server.enqueue(
          {
            kind: "reply",
            text: "Sending.",
            toolCalls: [{ id: "p", name: "probe", arguments: {} }, { id: "s", name: "send_message", arguments: {} }]
          },
          { kind: "reply", text: "Sent." }
        )
        const toolkit = Toolkit.make(probe.tool, send.tool)
        const before = yield* conversation.context
        yield* conversation.preempt("text bob i'm late", { toolkit, concurrency: 1 })
        yield* Deferred.await(probed)
        // the waiting call is next, in the same fiber: it would have run by now
        expect(send.runs()).toBe(0)
        expect(server.requests.length).toBe(1)
        expect(yield* conversation.context).toBe(before)
        const events = yield* Stream.runCollect(conversation.commit("Text Bob I'm late.", { toolkit }))
        expect(textOf(events)).toBe("Sending.Sent.")
        expect([probe.runs(), send.runs()]).toEqual([1, 1])
        expect(server.requests.length).toBe(2)
        expect(body(server, 1)).toContain("send_message run 1")
        const history = (yield* conversation.context).messages
        expect(validateRequest(history, {})).toBeUndefined()
        expect(history.map((m) => m.role)).toEqual(["user", "assistant", "tool", "tool", "assistant"])
      })
    ))

  it.live("a side-effecting tool waiting in a dropped speculation never runs, and dropping it does not hang", () =>
    withConversation((server, conversation) =>
      Effect.gen(function*() {
        const probed = yield* Deferred.make<void>()
        let sends = 0
        // interruptible: false waits for the final turn by default; its wait is still interruptible
        const send = Tool.make("send_message", {
          description: "sends",
          parameters: Schema.Struct({}),
          interruptible: false,
          handler: () => Effect.sync(() => ++sends)
        })
        const probe = counted("probe", { ran: probed })
        server.enqueue({
          kind: "reply",
          toolCalls: [{ id: "p", name: "probe", arguments: {} }, { id: "s", name: "send_message", arguments: {} }]
        }, { kind: "reply", text: "Who?" })
        const toolkit = Toolkit.make(probe.tool, send)
        yield* conversation.preempt("text bob", { toolkit, concurrency: 1 })
        yield* Deferred.await(probed)
        const events = yield* Stream.runCollect(conversation.commit("Text Rob.", { toolkit }))
        expect(textOf(events)).toBe("Who?")
        expect(sends).toBe(0)
        expect(server.requests.length).toBe(2)
        expect(yield* conversation.speculation).toEqual({ started: 1, reused: 0, wasted: 1 })
      })
    ))

  it.live("a commit whose history changed since the preempt starts afresh", () =>
    withConversation((server, conversation) =>
      Effect.gen(function*() {
        server.enqueue(
          { kind: "reply", text: "First answer." },
          { kind: "hang" },
          { kind: "reply", text: "Second answer." }
        )
        // the user starts speaking while the first turn is still streaming
        const go = yield* Deferred.make<void>()
        const first = yield* conversation.sendStream("First.").pipe(
          Stream.tap(() => Deferred.await(go)),
          Stream.runDrain,
          Effect.fork
        )
        yield* wait(() => server.waitForRequests(1))
        yield* conversation.preempt("second")
        yield* wait(() => server.waitForRequests(2))
        expect(body(server, 1)).not.toContain("First answer.")
        yield* Deferred.succeed(go, undefined)
        yield* Fiber.join(first)
        const events = yield* Stream.runCollect(conversation.commit("Second."))
        expect(textOf(events)).toBe("Second answer.")
        yield* wait(() => server.waitForClientClose(1))
        expect(server.requests[1]!.closedByClient).toBe(true)
        expect(server.requests.length).toBe(3)
        expect(body(server, 2)).toContain("First answer.")
        expect((yield* conversation.context).history.map((m) => m.content)).toEqual([
          "First.",
          "First answer.",
          "Second.",
          "Second answer."
        ])
        expect(yield* conversation.speculation).toEqual({ started: 1, reused: 0, wasted: 1 })
      })
    ))

  it.live("barge-in on a reused generation closes its request and records what was received", () =>
    withConversation((server, conversation) =>
      Effect.gen(function*() {
        server.enqueue({ kind: "reply", text: "Once upon a time there was a lighthouse.", stallAfterEvents: 4 })
        yield* conversation.preempt("a story")
        yield* wait(() => server.waitForRequests(1))
        const got = yield* Deferred.make<void>()
        const received: Array<string> = []
        const fiber = yield* conversation.commit("A story.").pipe(
          Stream.tap((event) =>
            event._tag === "TextDelta"
              ? Effect.zipRight(Effect.sync(() => received.push(event.text)), Deferred.succeed(got, undefined))
              : Effect.void
          ),
          Stream.runDrain,
          Effect.fork
        )
        yield* Deferred.await(got)
        yield* Fiber.interrupt(fiber)
        yield* wait(() => server.waitForClientClose(1))
        const history = (yield* conversation.context).history
        expect(history.map((m) => m.role)).toEqual(["user", "assistant"])
        expect(history[0]!.content).toBe("A story.")
        expect(history[1]).toMatchObject({ content: received.join(""), interrupted: true })
        expect(received.join("")).not.toBe("")
      })
    ))

  it.live("barge-in while a released tool that must finish runs: its call and result are recorded", () =>
    withConversation((server, conversation) =>
      Effect.gen(function*() {
        const started = yield* Deferred.make<void>()
        const gate = yield* Deferred.make<void>()
        const send = Tool.make("send_message", {
          description: "sends",
          parameters: Schema.Struct({}),
          interruptible: false,
          handler: () =>
            Effect.zipRight(Deferred.succeed(started, undefined), Deferred.await(gate)).pipe(Effect.as("sent"))
        })
        const toolkit = Toolkit.make(send)
        server.enqueue(
          { kind: "reply", text: "Sending.", toolCalls: [{ id: "s", name: "send_message", arguments: {} }] },
          { kind: "reply", text: "Done." }
        )
        yield* conversation.preempt("send it", { toolkit })
        yield* wait(() => server.waitForRequests(1))
        const fiber = yield* Effect.fork(Stream.runDrain(conversation.commit("Send it.", { toolkit })))
        yield* Deferred.await(started)
        const interrupting = yield* Effect.fork(Fiber.interrupt(fiber))
        yield* Effect.sleep("20 millis")
        yield* Deferred.succeed(gate, undefined)
        yield* Fiber.join(interrupting)
        const history = (yield* conversation.context).messages
        expect(validateRequest(history, {})).toBeUndefined()
        expect(history.map((m) => m.role)).toEqual(["user", "assistant", "tool"])
        expect(history[1]).toMatchObject({ content: "Sending.", interrupted: true })
        expect(history[2]).toMatchObject({ toolCallId: "s", content: "sent" })
        expect(server.requests.length).toBe(1)
      })
    ))

  it.live("a reused spoken turn runs a waiting tool only once its step was said: barge-in during it runs none", () =>
    withConversation((server, conversation) =>
      Effect.gen(function*() {
        const started = yield* Deferred.make<void>()
        const send = Tool.make("send_message", {
          description: "sends",
          parameters: Schema.Struct({}),
          interruptible: false,
          handler: () => Effect.as(Deferred.succeed(started, undefined), "sent")
        })
        const toolkit = Toolkit.make(send)
        server.enqueue({
          kind: "reply",
          text: "On it. Checking now.",
          toolCalls: [{ id: "s", name: "send_message", arguments: {} }]
        })
        const fibers = yield* preempting(conversation, "send it", { toolkit })
        const midway = yield* Deferred.make<void>()
        const fiber = yield* Effect.fork(conversation.speak("Send it.", {
          toolkit,
          sink: (chunk, progress) =>
            chunk === "On it." ? Effect.void : progress("Checking").pipe(
              Effect.zipRight(Deferred.succeed(midway, undefined)),
              Effect.zipRight(Effect.never)
            )
        }))
        yield* Deferred.await(midway)
        // the whole step is buffered and the turn committed, but the listener has not heard it all
        yield* Fiber.interrupt(fiber)
        for (const speculative of fibers) yield* Fiber.await(speculative)
        expect(yield* Deferred.isDone(started)).toBe(false)
        const history = (yield* conversation.context).messages
        expect(validateRequest(history, {})).toBeUndefined()
        expect(history.map((m) => m.role)).toEqual(["user", "assistant"])
        expect(history[1]).toMatchObject({ content: "On it. Checking", toolCalls: [], interrupted: true })
        expect(yield* conversation.speculation).toEqual({ started: 1, reused: 1, wasted: 0 })
      })
    ))

  it.live("send discards a pending speculation: counted wasted, its request closed", () =>
    withConversation((server, conversation) =>
      Effect.gen(function*() {
        server.enqueue({ kind: "hang" }, { kind: "reply", text: "Typed." })
        yield* conversation.preempt("typed")
        yield* wait(() => server.waitForRequests(1))
        const reply = yield* conversation.send("Typed.")
        expect(reply.content).toBe("Typed.")
        yield* wait(() => server.waitForClientClose(1))
        expect(yield* conversation.speculation).toEqual({ started: 1, reused: 0, wasted: 1 })
      })
    ))

  it.live("closing the conversation interrupts its speculation and closes the request", () =>
    Effect.scoped(Effect.gen(function*() {
      const server = yield* FakeProvider.make
      server.enqueue({ kind: "hang" })
      yield* Effect.flatMap(Conversation.Conversation, (conversation) => conversation.preempt("hello")).pipe(
        Effect.zipLeft(Effect.promise(() => server.waitForRequests(1))),
        Effect.provide(Layer.provideMerge(Conversation.layer(), local.layer(server.url)))
      )
      yield* wait(() => server.waitForClientClose(1))
      expect(server.requests[0]!.closedByClient).toBe(true)
    })))
})
