/**
 * The conversation store, in one process: conversations with the same id
 * share one history (in memory while they are open; in a real Redis server
 * for as long as it keeps them), each turn is stored whole in one write or
 * not at all, a turn that raced another one is recorded after it (versions),
 * a conversation is resumed by id with its limits and prompt-cache key, and
 * Redis going down never fails a turn. The multi-process cases (SIGKILL,
 * concurrent writers) are in conversationProcesses.test.ts.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Context from "effect/Context"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import { make as makeContext } from "../src/Context.js"
import * as Conversation from "../src/Conversation.js"
import * as ConversationStore from "../src/internal/conversationStore.js"
import * as OpenAi from "../src/layers/OpenAi.js"
import * as Llm from "../src/Llm.js"
import * as Message from "../src/Message.js"
import * as SharedState from "../src/SharedState.js"
import { fakeKey } from "./support/backends.js"
import * as FakeProvider from "./support/FakeProvider.js"
import { testRedis } from "./support/redis.js"

const fast = { initialDelay: "1 millis", maxDelay: "2 millis" } as const

/** The fake provider, and an OpenAI backend pointed at it, for the scope. */
const backend = Effect.gen(function*() {
  const server = yield* FakeProvider.make
  const built = yield* Layer.build(
    OpenAi.layer({ baseUrl: `${server.url}/v1`, apiKey: Redacted.make(fakeKey), model: "gpt-x", retry: fast })
  )
  return { server, llm: Context.get(built, Llm.Llm) }
})

/** A Redis-backed `SharedState` (its own connection, as another process has), for the scope. */
const redisState = (url: string) =>
  Effect.map(
    Layer.build(SharedState.layerRedis({ url, keyPrefix: "t:" })),
    (built) => Context.get(built, SharedState.SharedState)
  )

type Options = Conversation.ConversationOptions & {
  readonly systemMessage?: string
  readonly maxTurns?: number
  readonly maxTokens?: number
}

/** A conversation on `llm`, with `state` (none: the default), for the scope. */
const open = (
  llm: Llm.Llm.Service,
  options: Options,
  state?: SharedState.Service
): Effect.Effect<Conversation.Conversation.Service, never, Scope.Scope> => {
  const made = Conversation.make(makeContext(options), options).pipe(Effect.provideService(Llm.Llm, llm))
  return state === undefined ? made : Effect.provideService(made, SharedState.SharedState, state)
}

/** The connection of a Redis state. */
const connectionOf = (state: SharedState.Service) => {
  if (state._tag !== "Redis") throw new Error("expected Redis")
  return state.connection
}

/** What Redis holds for conversation `id`: its version and its record, decoded. */
const storedIn = (state: SharedState.Service, id: string) =>
  Effect.gen(function*() {
    const connection = connectionOf(state)
    const hash = Option.getOrThrow(yield* connection.run((c) => c.hgetall(connection.key("conversation", id))))
    if (hash.v === undefined) return undefined
    return { version: Number(hash.v), raw: hash.r!, record: yield* ConversationStore.decode(hash.r!) }
  })

/** The roles and contents of a history. */
const lines = (conversation: Conversation.Conversation.Service) =>
  Effect.map(conversation.context, (context) => context.history.map((m) => `${m.role}: ${m.content}`))

/** Answers every request with "re: <its last user message>". */
const echo = (server: FakeProvider.FakeProvider) =>
  server.respond((request) => {
    const messages = (request.body as { messages: ReadonlyArray<{ role: string; content: string }> }).messages
    const last = messages.filter((m) => m.role === "user").at(-1)
    return { kind: "reply", text: `re: ${last?.content}` }
  })

/** The body of the fake provider's request `i`. */
const bodyOf = (server: FakeProvider.FakeProvider, i: number) =>
  server.requests[i]!.body as { messages: ReadonlyArray<{ role: string; content: string }>; prompt_cache_key?: string }

/** Polls until a command reaches Redis again (it reconnects in the background). */
const reachable = (state: SharedState.Service) =>
  Effect.gen(function*() {
    for (let i = 0; i < 400; i++) {
      if (Option.isSome(yield* connectionOf(state).run((c) => c.ping()))) return
      yield* Effect.promise(() => new Promise((resolve) => setTimeout(resolve, 25)))
    }
    throw new Error("Redis did not come back")
  })

/** The two homes a store has: this process, and a Redis server started for the test. */
const homes = [
  { name: "memory", state: Effect.succeed<SharedState.Service | undefined>(undefined) },
  { name: "redis", state: Effect.flatMap(testRedis, (redis) => redisState(redis.url)) }
] as const

for (const home of homes) {
  describe(`conversation store: ${home.name}`, () => {
    it.live("two conversations open with the same id share one history", () =>
      Effect.scoped(Effect.gen(function*() {
        const { llm, server } = yield* backend
        echo(server)
        const state = yield* home.state
        const a = yield* open(llm, { id: "shared", maxTurns: 20 }, state)
        const b = yield* open(llm, { id: "shared", maxTurns: 20 }, state)
        const other = yield* open(llm, { id: "other" }, state)
        yield* a.send("one")
        expect(yield* lines(b)).toEqual(["user: one", "assistant: re: one"])
        yield* b.send("two")
        // a's next turn starts on b's: the model sees both turns
        yield* a.send("three")
        expect(bodyOf(server, 2).messages.map((m) => m.content)).toEqual(["one", "re: one", "two", "re: two", "three"])
        const all = [
          "user: one",
          "assistant: re: one",
          "user: two",
          "assistant: re: two",
          "user: three",
          "assistant: re: three"
        ]
        expect(yield* lines(a)).toEqual(all)
        expect(yield* lines(b)).toEqual(all)
        expect(yield* lines(other)).toEqual([])
      })))

    it.live("a turn that raced another one is recorded after it: no turn is lost", () =>
      Effect.scoped(Effect.gen(function*() {
        const { llm, server } = yield* backend
        const state = yield* home.state
        const a = yield* open(llm, { id: "race", maxTurns: 20 }, state)
        const b = yield* open(llm, { id: "race", maxTurns: 20 }, state)
        // a's turn starts first, on the empty history, and is held at the server while b's turn runs whole
        const gate = yield* Deferred.make<void>()
        server.enqueue(
          { kind: "gated", until: Effect.runPromise(Deferred.await(gate)), then: { kind: "reply", text: "A's reply" } },
          { kind: "reply", text: "B's reply" }
        )
        const slow = yield* Effect.fork(Stream.runDrain(a.sendStream("from a")))
        yield* Effect.promise(() => server.waitForRequests(1))
        yield* b.send("from b")
        yield* Deferred.succeed(gate, undefined)
        yield* Fiber.join(slow)
        const expected = ["user: from b", "assistant: B's reply", "user: from a", "assistant: A's reply"]
        expect(yield* lines(a)).toEqual(expected)
        expect(yield* lines(b)).toEqual(expected)
        // the next turn is sent on the whole history
        yield* b.send("next")
        expect(bodyOf(server, 2).messages.map((m) => m.content)).toEqual([
          "from b",
          "B's reply",
          "from a",
          "A's reply",
          "next"
        ])
        if (state !== undefined) {
          const stored = yield* storedIn(state, "race")
          expect(stored?.version).toBe(3)
          expect(stored?.record.context.history).toHaveLength(6)
        }
      })))

    it.live("a rebased turn is pruned by the conversation's limits", () =>
      Effect.scoped(Effect.gen(function*() {
        const { llm, server } = yield* backend
        echo(server)
        const state = yield* home.state
        const a = yield* open(llm, { id: "pruned", maxTurns: 2 }, state)
        const b = yield* open(llm, { id: "pruned", maxTurns: 2 }, state)
        yield* a.send("one")
        yield* a.send("two")
        const gate = yield* Deferred.make<void>()
        server.enqueue({
          kind: "gated",
          until: Effect.runPromise(Deferred.await(gate)),
          then: { kind: "reply", text: "re: late" }
        })
        const slow = yield* Effect.fork(Stream.runDrain(a.sendStream("late")))
        yield* Effect.promise(() => server.waitForRequests(3))
        yield* b.send("three")
        yield* Deferred.succeed(gate, undefined)
        yield* Fiber.join(slow)
        expect(yield* lines(b)).toEqual(["user: three", "assistant: re: three", "user: late", "assistant: re: late"])
      })))

    it.live("a barged-in turn is stored as what was received, marked interrupted; a failed turn is not stored", () =>
      Effect.scoped(Effect.gen(function*() {
        const { llm, server } = yield* backend
        const state = yield* home.state
        const a = yield* open(llm, { id: "barge" }, state)
        const b = yield* open(llm, { id: "barge" }, state)
        server.enqueue(
          { kind: "reply", text: "One two three four five six seven eight", chunkSize: 4, delayMs: 10 },
          { kind: "status", status: 400, type: "invalid_request_error", message: "no" }
        )
        const received = yield* a.sendStream("count").pipe(
          Stream.filterMap((event) => (event._tag === "TextDelta" ? Option.some(event.text) : Option.none())),
          Stream.take(3),
          Stream.runCollect
        )
        expect([...received].join("")).toBe("One two thre")
        const heard = { role: "assistant", content: "One two thre", interrupted: true }
        expect((yield* b.context).history[1]).toMatchObject(heard)
        const failed = yield* Effect.flip(b.send("again"))
        expect(failed._tag).toBe("LlmInvalidRequestError")
        expect((yield* a.context).history).toHaveLength(2)
        if (state !== undefined) expect((yield* storedIn(state, "barge"))?.version).toBe(1)
      })))

    it.live("a spoken turn cut short is stored as what the listener heard", () =>
      Effect.scoped(Effect.gen(function*() {
        const { llm, server } = yield* backend
        const state = yield* home.state
        const a = yield* open(llm, { id: "spoken" }, state)
        const b = yield* open(llm, { id: "spoken" }, state)
        server.enqueue({ kind: "reply", text: "One is first. Two is second. Three is third. Four is last." })
        const two = yield* Deferred.make<void>()
        const played: Array<string> = []
        const fiber = yield* Effect.fork(a.speak("Count.", {
          sink: (chunk) =>
            Effect.sleep("30 millis").pipe(
              Effect.zipRight(Effect.sync(() => played.push(chunk))),
              Effect.zipRight(
                Effect.suspend(() => played.length === 2 ? Deferred.succeed(two, undefined) : Effect.void)
              )
            )
        }))
        yield* Deferred.await(two)
        yield* Fiber.interrupt(fiber)
        expect(played).toEqual(["One is first.", "Two is second."])
        expect((yield* b.context).history[1]).toMatchObject({
          role: "assistant",
          content: "One is first. Two is second.",
          interrupted: true
        })
      })))
  })
}

describe("conversation store: memory", () => {
  it.live("a closed conversation's id starts afresh from the initial context", () =>
    Effect.scoped(Effect.gen(function*() {
      const { llm, server } = yield* backend
      echo(server)
      yield* Effect.scoped(Effect.flatMap(open(llm, { id: "once" }), (c) => c.send("one")))
      const again = yield* open(llm, { id: "once", systemMessage: "fresh" })
      expect((yield* again.context).history).toEqual([])
      expect((yield* again.context).systemMessage).toBe("fresh")
    })))
})

describe("conversation store: redis", () => {
  it.live("a conversation is resumed by id: history, system message, limits and prompt-cache key", () =>
    Effect.scoped(Effect.gen(function*() {
      const { llm, server } = yield* backend
      echo(server)
      const redis = yield* testRedis
      const first = yield* redisState(redis.url)
      yield* Effect.scoped(Effect.gen(function*() {
        const a = yield* open(llm, { id: "call-7", systemMessage: "Be brief.", maxTurns: 3, maxTokens: 5_000 }, first)
        yield* a.send("one")
        yield* a.send("two")
      }))
      const key = bodyOf(server, 0).prompt_cache_key
      expect(key).toMatch(/^[0-9a-f-]{36}$/)
      // another process: its own connection, other starting options (ignored: the stored conversation wins)
      const second = yield* redisState(redis.url)
      const b = yield* open(llm, { id: "call-7", systemMessage: "Other.", maxTurns: 10 }, second)
      const context = yield* b.context
      expect(context.systemMessage).toBe("Be brief.")
      expect(context.maxTurns).toBe(3)
      expect(context.maxTokens).toBe(5_000)
      yield* b.send("three")
      yield* b.send("four")
      const body = bodyOf(server, 3)
      expect(body.prompt_cache_key).toBe(key)
      expect(body.messages.map((m) => m.content)).toEqual([
        "Be brief.",
        "two",
        "re: two",
        "three",
        "re: three",
        "four"
      ])
      // a key given to the resumed conversation is used instead, and stored
      const c = yield* open(llm, { id: "call-7", promptCache: { key: "mine" } }, second)
      yield* c.send("five")
      expect(bodyOf(server, 4).prompt_cache_key).toBe("mine")
      expect((yield* storedIn(second, "call-7"))?.record.promptCacheKey).toBe("mine")
    })))

  it.live("messages are stored through their schemas: tool calls, results, reasoning and interruption come back equal", () =>
    Effect.scoped(Effect.gen(function*() {
      const { llm } = yield* backend
      const redis = yield* testRedis
      const state = yield* redisState(redis.url)
      const a = yield* open(llm, { id: "rich", systemMessage: "S" }, state)
      const context = makeContext({ systemMessage: "S" })
        .addUser("weather?")
        .addAssistant(
          Message.assistant("", [{ id: "call_1", name: "weather", arguments: { city: "Paris", days: [1, 2] } }], {
            reasoning: [{ text: "look it up", signature: "sig", provider: "anthropic" }]
          })
        )
        .addToolResult({ toolCallId: "call_1", name: "weather", content: "18C", isError: false })
        .addAssistant(new Message.AssistantMessage({ content: "It is 18", interrupted: true }))
      yield* a.set(context)
      const stored = yield* storedIn(state, "rich")
      expect(JSON.parse(stored!.raw).context).toEqual(context.encode())
      const b = yield* open(llm, { id: "rich" }, yield* redisState(redis.url))
      expect(yield* b.context).toEqual(context)
      // no key of the backend is ever stored
      const connection = connectionOf(state)
      const keys = Option.getOrThrow(yield* connection.run((c) => c.keys("*")))
      expect(keys).toEqual(["t:conversation:rich"])
      expect(stored!.raw).not.toContain(fakeKey)
    })))

  it.live("a stored conversation expires after expiresAfter (default 24 hours), from its last turn", () =>
    Effect.scoped(Effect.gen(function*() {
      const { llm, server } = yield* backend
      echo(server)
      const redis = yield* testRedis
      const state = yield* redisState(redis.url)
      const connection = connectionOf(state)
      const ttl = (id: string) =>
        Effect.map(connection.run((c) => c.pttl(connection.key("conversation", id))), Option.getOrThrow)
      yield* Effect.flatMap(open(llm, { id: "default" }, state), (c) => c.send("hi"))
      const day = Duration.toMillis("24 hours")
      expect(yield* ttl("default")).toBeGreaterThan(day - 60_000)
      expect(yield* ttl("default")).toBeLessThanOrEqual(day)
      yield* Effect.flatMap(open(llm, { id: "minute", expiresAfter: "1 minute" }, state), (c) => c.send("hi"))
      expect(yield* ttl("minute")).toBeGreaterThan(50_000)
      expect(yield* ttl("minute")).toBeLessThanOrEqual(60_000)
      yield* Effect.flatMap(open(llm, { id: "forever", expiresAfter: Duration.infinity }, state), (c) => c.send("hi"))
      expect(yield* ttl("forever")).toBe(-1)
    })))

  it.live("a bad expiresAfter fails each turn with LlmInvalidRequestError, nothing sent", () =>
    Effect.scoped(Effect.gen(function*() {
      const { llm, server } = yield* backend
      const redis = yield* testRedis
      const state = yield* redisState(redis.url)
      for (const expiresAfter of ["-5 seconds", 0, "soon"] as const) {
        const c = yield* open(llm, { id: "bad", expiresAfter: expiresAfter as Duration.DurationInput }, state)
        const error = yield* Effect.flip(c.send("hi"))
        expect(error._tag).toBe("LlmInvalidRequestError")
        expect(error.message).toContain("Conversation: expiresAfter")
        const streamed = yield* Effect.flip(Stream.runDrain(c.sendStream("hi")))
        expect(streamed._tag).toBe("LlmInvalidRequestError")
      }
      expect(server.requests).toHaveLength(0)
      expect(yield* storedIn(state, "bad")).toBeUndefined()
    })))

  it.live("Redis down: turns go on in this process; back (empty), the whole conversation is stored again", () =>
    Effect.scoped(Effect.gen(function*() {
      const { llm, server } = yield* backend
      echo(server)
      const redis = yield* testRedis
      const state = yield* redisState(redis.url)
      const a = yield* open(llm, { id: "outage", maxTurns: 10 }, state)
      yield* a.send("one")
      yield* Effect.promise(() => redis.stop())
      yield* a.send("two")
      const sentStream = yield* Stream.runCollect(a.sendStream("three"))
      expect(sentStream.length).toBeGreaterThan(0)
      expect((yield* a.context).history).toHaveLength(6)
      yield* Effect.promise(() => redis.start())
      yield* reachable(state)
      yield* a.send("four")
      const stored = yield* storedIn(state, "outage")
      expect(stored?.record.context.history.map((m) => m.content)).toEqual([
        "one",
        "re: one",
        "two",
        "re: two",
        "three",
        "re: three",
        "four",
        "re: four"
      ])
      const b = yield* open(llm, { id: "outage" }, yield* redisState(redis.url))
      expect((yield* b.context).history).toHaveLength(8)
    })))

  it.live("turns made while Redis was down are added after what another process stored meanwhile", () =>
    Effect.scoped(Effect.gen(function*() {
      const { llm, server } = yield* backend
      echo(server)
      const redis = yield* testRedis
      const state = yield* redisState(redis.url)
      const a = yield* open(llm, { id: "split", maxTurns: 10 }, state)
      yield* a.send("a1")
      // a loses Redis (its commands time out: a paused server), b goes on through it
      const other = yield* redisState(redis.url)
      const b = yield* open(llm, { id: "split", maxTurns: 10 }, other)
      const connection = connectionOf(state)
      yield* Effect.sync(() => connection.client.disconnect(false))
      yield* a.send("a2")
      yield* b.send("b1")
      yield* Effect.promise(() => connection.client.connect()).pipe(Effect.ignore)
      yield* reachable(state)
      yield* a.send("a3")
      expect((yield* b.context).history.map((m) => m.content)).toEqual([
        "a1",
        "re: a1",
        "b1",
        "re: b1",
        "a2",
        "re: a2",
        "a3",
        "re: a3"
      ])
    })))
})

describe("conversation store: a record that does not decode", () => {
  it.live("is replaced by the conversation's own, with a warning", () =>
    Effect.scoped(Effect.gen(function*() {
      const { llm, server } = yield* backend
      echo(server)
      const redis = yield* testRedis
      const state = yield* redisState(redis.url)
      const connection = connectionOf(state)
      yield* connection.run((c) => c.hset(connection.key("conversation", "odd"), "v", "7", "r", "{\"not\":\"ours\"}"))
      const logged: Array<string> = []
      const logger = Logger.make(({ logLevel, message }) => {
        logged.push(`${logLevel.label} ${Array.isArray(message) ? message.join(" ") : String(message)}`)
      })
      const c = yield* open(llm, { id: "odd" }, state)
      yield* c.send("hi").pipe(Effect.provide(Logger.replace(Logger.defaultLogger, logger)))
      expect(logged).toEqual([
        "WARN effect-llm: the stored conversation \"odd\" does not decode as a conversation; it is replaced by this process's"
      ])
      const stored = yield* storedIn(state, "odd")
      expect(stored?.version).toBe(8)
      expect(stored?.record.context.history.map((m) => m.content)).toEqual(["hi", "re: hi"])
    })))
})
