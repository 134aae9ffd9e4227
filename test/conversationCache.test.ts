/**
 * A conversation's prompt cache: its key (generated once) and slot on every
 * turn, llama-server's slot cache as the fake provider simulates it (the
 * second turn reuses the first's prompt; two conversations keep to their
 * own slots), and `warm()`, which sends the prefix ahead of the first turn.
 */
import { NodeHttpClient } from "@effect/platform-node"
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import { make as makeContext } from "../src/Context.js"
import * as Conversation from "../src/Conversation.js"
import * as Anthropic from "../src/layers/Anthropic.js"
import * as Fallback from "../src/layers/Fallback.js"
import * as Local from "../src/layers/Local.js"
import * as OpenAi from "../src/layers/OpenAi.js"
import * as OpenRouter from "../src/layers/OpenRouter.js"
import * as Llm from "../src/Llm.js"
import { CompletionResult, ResponseMetadata, Usage } from "../src/Reply.js"
import * as LlmStream from "../src/Stream.js"
import * as Tool from "../src/Tool.js"
import * as Toolkit from "../src/Toolkit.js"
import * as FakeProvider from "./support/FakeProvider.js"

const client = NodeHttpClient.layerUndici
const fast = { retry: { initialDelay: "1 millis", maxDelay: "2 millis" } } as const
const key = Redacted.make("sk-test-SECRET-0123456789")
const uuid = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/

/** A fake provider simulating `slots` llama-server slots (none: no slot cache), closed with the scope. */
const fake = (slots?: number) =>
  Effect.acquireRelease(
    Effect.promise(() => FakeProvider.start(slots === undefined ? {} : { slots })),
    (server) => Effect.promise(() => server.close())
  )

const layers = {
  anthropic: (url: string) => Anthropic.layer({ ...fast, baseUrl: url, apiKey: key, model: "claude-x" }),
  openai: (url: string) => OpenAi.layer({ ...fast, baseUrl: `${url}/v1`, apiKey: key, model: "gpt-x" }),
  openrouter: (url: string) => OpenRouter.layer({ ...fast, baseUrl: `${url}/api/v1`, apiKey: key, model: "r/x" }),
  local: (url: string) => Local.layer({ ...fast, baseUrl: url, model: "gpt-oss:20b" })
}

/** Runs `f` with a fake provider and the backend `name` pointed at it. */
const withBackend = <A, E>(
  name: keyof typeof layers,
  f: (server: FakeProvider.FakeProvider) => Effect.Effect<A, E, Llm.Llm | Scope.Scope>,
  slots?: number
) =>
  Effect.scoped(Effect.gen(function*() {
    const server = yield* fake(slots)
    return yield* f(server).pipe(Effect.provide(Layer.provide(layers[name](server.url), client)))
  }))

const conversation = (systemMessage: string | undefined, options: Conversation.ConversationOptions = {}) =>
  Conversation.make(makeContext(systemMessage === undefined ? {} : { systemMessage }), options)

const bodyOf = (server: FakeProvider.FakeProvider, i: number) => server.requests[i]!.body as Record<string, unknown>

/** The number of leading characters two strings share: the fake's slot cache counts one token per character. */
const common = (a: string, b: string): number => {
  let n = 0
  while (n < a.length && n < b.length && a[n] === b[n]) n++
  return n
}

/** What the fake's llama-server slot reuses from `before` for `after`: the shared prefix, less the one token it always evaluates. */
const reused = (server: FakeProvider.FakeProvider, before: number, after: number): number => {
  const next = FakeProvider.slotPrompt(bodyOf(server, after))
  return Math.min(common(FakeProvider.slotPrompt(bodyOf(server, before)), next), next.length - 1)
}

const kit = Toolkit.make(
  Tool.make("now", { description: "The time", parameters: Schema.Struct({}), handler: () => Effect.succeed("12:00") })
)

describe("a conversation's prompt cache key and slot", () => {
  it.live("generates one key per conversation and sends it on every turn", () =>
    withBackend("openai", (server) =>
      Effect.gen(function*() {
        const a = yield* conversation("Be brief.")
        const b = yield* conversation("Be brief.")
        yield* a.send("Hi")
        yield* b.send("Hi")
        yield* Stream.runDrain(a.sendStream("Rain?"))
        const keys = server.requests.map((request) => (request.body as { prompt_cache_key?: unknown }).prompt_cache_key)
        expect(keys[0]).toMatch(uuid)
        expect(keys[2]).toBe(keys[0])
        expect(keys[1]).toMatch(uuid)
        expect(keys[1]).not.toBe(keys[0])
      })))

  it.live("uses the key given, a turn's own promptCache over it, and none with promptCache: false", () =>
    withBackend("openai", (server) =>
      Effect.gen(function*() {
        const given = yield* conversation("Be brief.", { promptCache: { key: "user-42" } })
        yield* given.send("Hi")
        yield* given.send("Rain?", { promptCache: { key: "other" } })
        const off = yield* conversation("Be brief.", { promptCache: false })
        yield* off.send("Hi")
        expect(server.requests.map((request) => (request.body as { prompt_cache_key?: unknown }).prompt_cache_key))
          .toEqual(["user-42", "other", undefined])
        expect(bodyOf(server, 2)).toEqual({
          model: "gpt-x",
          messages: [{ role: "system", content: "Be brief." }, { role: "user", content: "Hi" }]
        })
      })))

  it.live("sends the slot given on every turn, tool steps included", () =>
    withBackend("local", (server) =>
      Effect.gen(function*() {
        const c = yield* conversation("Be brief.", { promptCache: { slot: 1 } })
        server.enqueue(
          { kind: "reply", toolCalls: [{ id: "call_1", name: "now", arguments: {} }] },
          { kind: "reply", text: "Noon." }
        )
        yield* c.send("Time?", { toolkit: kit })
        expect(server.requests.map((request) => [
          (request.body as { id_slot?: unknown }).id_slot,
          (request.body as { cache_prompt?: unknown }).cache_prompt
        ])).toEqual([[1, true], [1, true]])
      })))
})

describe("llama-server's slot cache (simulated by the fake provider)", () => {
  it.live("the second turn of a conversation reports cached prompt tokens from the server, whole and streamed", () =>
    withBackend("local", (server) =>
      Effect.gen(function*() {
        const c = yield* conversation("You are a weather assistant. Answer in one sentence.", {
          promptCache: { slot: 0 }
        })
        server.enqueue({ kind: "reply", text: "It is dry in Oslo." }, { kind: "reply", text: "Rain tomorrow." }, {
          kind: "reply",
          text: "Sunny."
        })
        const first = yield* c.send("Weather in Oslo?")
        const second = yield* c.send("And tomorrow?")
        const third = yield* LlmStream.collect(c.sendStream("And Bergen?"))
        expect(first.usage.cachedInputTokens).toBe(0)
        expect(second.usage.cachedInputTokens).toBeGreaterThan(0)
        expect(second.usage.cachedInputTokens).toBe(reused(server, 0, 1))
        expect(second.usage.inputTokens).toBe(FakeProvider.slotPrompt(bodyOf(server, 1)).length)
        expect(third.usage.cachedInputTokens).toBe(reused(server, 1, 2))
        expect(third.usage.cachedInputTokens).toBeGreaterThan(second.usage.cachedInputTokens!)
      }), 2))

  it.live("turns of two conversations go to their own slots and reuse their own prompts", () =>
    withBackend("local", (server) =>
      Effect.gen(function*() {
        const a = yield* conversation("You are Ada, a careful librarian.", { promptCache: { slot: 0 } })
        const b = yield* conversation("You are Bo, a cheerful gardener.", { promptCache: { slot: 1 } })
        yield* a.send("Recommend a book.")
        yield* b.send("When do I plant tulips?")
        const a2 = yield* a.send("Something shorter?")
        const b2 = yield* b.send("And daffodils?")
        expect(server.requests.map((request) => (request.body as { id_slot?: unknown }).id_slot)).toEqual([0, 1, 0, 1])
        expect(a2.usage.cachedInputTokens).toBe(reused(server, 0, 2))
        expect(b2.usage.cachedInputTokens).toBe(reused(server, 1, 3))
        // had they shared a slot, A's second turn would have found B's prompt there
        expect(a2.usage.cachedInputTokens).toBeGreaterThan(reused(server, 1, 2))
        expect(b2.usage.cachedInputTokens).toBeGreaterThan(reused(server, 2, 3))
      }), 2))

  it.live("two conversations pinned to one slot evict each other's prompt", () =>
    withBackend("local", (server) =>
      Effect.gen(function*() {
        const a = yield* conversation("You are Ada, a careful librarian.", { promptCache: { slot: 0 } })
        const b = yield* conversation("You are Bo, a cheerful gardener.", { promptCache: { slot: 0 } })
        yield* a.send("Recommend a book.")
        yield* b.send("When do I plant tulips?")
        const a2 = yield* a.send("Something shorter?")
        expect(a2.usage.cachedInputTokens).toBe(reused(server, 1, 2))
        expect(a2.usage.cachedInputTokens).toBeLessThan(reused(server, 0, 2))
      }), 2))
})

describe("Conversation.warm", () => {
  it.live("Anthropic: sends the system prompt and tools with their breakpoints and max_tokens 0, history unchanged", () =>
    withBackend("anthropic", (server) =>
      Effect.gen(function*() {
        const c = yield* conversation("You are terse.")
        server.enqueue(
          {
            kind: "reply",
            text: "",
            finishReason: "length",
            usage: { inputTokens: 2, outputTokens: 0, cacheWriteTokens: 1800 }
          },
          { kind: "reply", text: "Hi.", usage: { inputTokens: 4, outputTokens: 2, cacheReadTokens: 1800 } }
        )
        const warmed = yield* c.warm({ toolkit: kit })
        expect(Option.map(warmed, (result) => result.usage.cacheWriteInputTokens)).toEqual(Option.some(1800))
        const tools = [{
          name: "now",
          description: "The time",
          input_schema: { type: "object", properties: {} },
          cache_control: { type: "ephemeral" }
        }]
        const system = [{ type: "text", text: "You are terse.", cache_control: { type: "ephemeral" } }]
        expect(bodyOf(server, 0)).toEqual({
          model: "claude-x",
          max_tokens: 0,
          system,
          messages: [{ role: "user", content: [{ type: "text", text: "warm-up" }] }],
          tools
        })
        expect((yield* c.context).history).toEqual([])
        const first = yield* c.send("Hi", { toolkit: kit })
        expect(first.usage.cachedInputTokens).toBe(1800)
        // the first turn's prefix is the one warmed
        expect(bodyOf(server, 1).system).toEqual(system)
        expect(bodyOf(server, 1).tools).toEqual(tools)
      })))

  it.live("llama-server: warms the conversation's slot with max_tokens 0, so the first turn reuses it", () =>
    withBackend("local", (server) =>
      Effect.gen(function*() {
        const c = yield* conversation("You are a weather assistant. Answer in one sentence.", {
          promptCache: { slot: 1 }
        })
        const warmed = yield* c.warm()
        expect(bodyOf(server, 0)).toEqual({
          model: "gpt-oss:20b",
          messages: [
            { role: "system", content: "You are a weather assistant. Answer in one sentence." },
            { role: "user", content: "warm-up" }
          ],
          max_tokens: 0,
          id_slot: 1,
          cache_prompt: true
        })
        expect(Option.map(warmed, (result) => [result.content, result.usage.outputTokens])).toEqual(
          Option.some(["", 0])
        )
        const first = yield* c.send("Weather in Oslo?")
        expect(first.usage.cachedInputTokens).toBe(reused(server, 0, 1))
        expect(first.usage.cachedInputTokens).toBeGreaterThan(
          "You are a weather assistant. Answer in one sentence.".length
        )
        expect((yield* c.context).turns.length).toBe(1)
      }), 2))

  it.live("OpenAI: one token under the conversation's key", () =>
    withBackend("openai", (server) =>
      Effect.gen(function*() {
        const c = yield* conversation("You are terse.", { promptCache: { key: "user-42" } })
        yield* c.warm({ toolkit: kit })
        expect(bodyOf(server, 0)).toEqual({
          model: "gpt-x",
          messages: [{ role: "system", content: "You are terse." }, { role: "user", content: "warm-up" }],
          max_completion_tokens: 1,
          tools: [{
            type: "function",
            function: { name: "now", description: "The time", parameters: { type: "object", properties: {} } }
          }],
          prompt_cache_key: "user-42"
        })
      })))

  it.live("is a no-op (None, nothing sent) on OpenRouter and with promptCache: false", () =>
    Effect.gen(function*() {
      yield* withBackend("openrouter", (server) =>
        Effect.gen(function*() {
          const c = yield* conversation("You are terse.")
          expect(yield* c.warm()).toEqual(Option.none())
          expect(server.requests.length).toBe(0)
        }))
      yield* withBackend("anthropic", (server) =>
        Effect.gen(function*() {
          const c = yield* conversation("You are terse.", { promptCache: false })
          expect(yield* c.warm()).toEqual(Option.none())
          expect(server.requests.length).toBe(0)
        }))
    }))

  it.effect("is a no-op on a backend without a prompt cache to warm", () =>
    Effect.gen(function*() {
      const reply = new CompletionResult({
        content: "ok",
        model: "m",
        finishReason: "stop",
        toolCalls: [],
        usage: Usage.empty,
        metadata: new ResponseMetadata({ provider: "custom", attempts: 1, latencyMillis: 0 })
      })
      let calls = 0
      const custom: Llm.Llm.Service = {
        provider: "custom",
        model: "m",
        complete: () => Effect.sync(() => (calls++, reply)),
        stream: () => Stream.empty
      }
      const c = yield* conversation("You are terse.").pipe(Effect.provideService(Llm.Llm, custom))
      expect(yield* c.warm()).toEqual(Option.none())
      expect(calls).toBe(0)
    }).pipe(Effect.scoped))

  it.live("a failed warm-up fails typed and leaves the conversation as it was", () =>
    withBackend("anthropic", (server) =>
      Effect.gen(function*() {
        const c = yield* conversation("You are terse.")
        yield* c.send("Hi")
        const before = yield* c.context
        server.enqueue({ kind: "status", status: 400, type: "invalid_request_error", message: "bad" })
        const error = yield* Effect.flip(c.warm())
        expect(error._tag).toBe("LlmInvalidRequestError")
        expect(yield* c.context).toBe(before)
        // the history so far was sent, cached up to its last message
        expect(bodyOf(server, 1).messages).toEqual([
          { role: "user", content: [{ type: "text", text: "Hi" }] },
          { role: "assistant", content: [{ type: "text", text: "ok", cache_control: { type: "ephemeral" } }] },
          { role: "user", content: [{ type: "text", text: "warm-up" }] }
        ])
      })))
})

describe("the fake provider's slot simulation, on the wire", () => {
  const post = (server: FakeProvider.FakeProvider, body: object) =>
    Effect.promise(() =>
      fetch(`${server.url}/v1/chat/completions`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(body)
      }).then((response) => response.text())
    )
  const system = { role: "system", content: "You are terse." }

  it.live("reports llama-server's usage and timings: the prefix the slot reused, one token a character", () =>
    Effect.scoped(Effect.gen(function*() {
      const server = yield* fake(2)
      server.enqueue({ kind: "reply", text: "Hello." }, { kind: "reply", text: "Dry." })
      const first = { model: "m", messages: [system, { role: "user", content: "Hi" }], id_slot: 1 }
      const second = {
        model: "m",
        messages: [system, { role: "user", content: "Hi" }, { role: "assistant", content: "Hello." }, {
          role: "user",
          content: "Rain?"
        }],
        id_slot: 1
      }
      const firstPrompt = FakeProvider.slotPrompt(first)
      const secondPrompt = FakeProvider.slotPrompt(second)
      expect(firstPrompt).toBe("<|system|>You are terse.<|end|><|user|>Hi<|end|><|assistant|>")
      const a = JSON.parse(yield* post(server, first))
      expect(a.usage).toEqual({
        prompt_tokens: firstPrompt.length,
        completion_tokens: 2,
        total_tokens: firstPrompt.length + 2,
        prompt_tokens_details: { cached_tokens: 0 },
        completion_tokens_details: { reasoning_tokens: 0 }
      })
      expect(a.timings).toEqual({
        cache_n: 0,
        prompt_n: firstPrompt.length,
        prompt_ms: firstPrompt.length,
        prompt_per_token_ms: 1,
        prompt_per_second: 1000,
        predicted_n: 2,
        predicted_ms: 40,
        predicted_per_token_ms: 20,
        predicted_per_second: 50
      })
      const reusedTokens = common(firstPrompt, secondPrompt)
      expect(reusedTokens).toBe("<|system|>You are terse.<|end|><|user|>Hi<|end|><|assistant|>".length)
      // streamed: usage and timings on the last chunk before [DONE]
      const streamed = (yield* post(server, { ...second, stream: true, stream_options: { include_usage: true } }))
        .split("\n\n").filter((event) => event.startsWith("data: ")).map((event) => event.slice("data: ".length))
      expect(streamed.at(-1)).toBe("[DONE]")
      const last = JSON.parse(streamed.at(-2)!)
      expect(last.usage.prompt_tokens).toBe(secondPrompt.length)
      expect(last.usage.prompt_tokens_details).toEqual({ cached_tokens: reusedTokens })
      expect(last.timings).toMatchObject({ cache_n: reusedTokens, prompt_n: secondPrompt.length - reusedTokens })
    })))

  it.live("evaluates the whole prompt but its last token from the cache; n_predict 0 generates nothing; cache_prompt false reuses nothing", () =>
    Effect.scoped(Effect.gen(function*() {
      const server = yield* fake(1)
      const body = { model: "m", messages: [system], id_slot: 0 }
      const length = FakeProvider.slotPrompt(body).length
      yield* post(server, body)
      const again = JSON.parse(yield* post(server, { ...body, max_tokens: 0 }))
      expect(again.choices[0].message.content).toBe("")
      expect(again.choices[0].finish_reason).toBe("length")
      expect(again.usage.completion_tokens).toBe(0)
      expect(again.timings).toMatchObject({ cache_n: length - 1, prompt_n: 1, predicted_n: 0 })
      const off = JSON.parse(yield* post(server, { ...body, cache_prompt: false, n_predict: 0 }))
      expect(off.timings).toMatchObject({ cache_n: 0, prompt_n: length })
      // without a slot, the least recently used one: here the only one
      const any = JSON.parse(yield* post(server, { model: "m", messages: [system] }))
      expect(any.timings.cache_n).toBe(length - 1)
      // the finish chunk carries the timings when usage was not asked for
      const streamed = (yield* post(server, { ...body, stream: true })).split("\n\n").filter((event) =>
        event.startsWith("data: ")
      )
      expect(JSON.parse(streamed.at(-2)!.slice("data: ".length))).toMatchObject({
        choices: [{ finish_reason: "stop" }],
        timings: { cache_n: length - 1 }
      })
      server.reset()
      expect(JSON.parse(yield* post(server, body)).timings.cache_n).toBe(0)
    })))
})

describe("Conversation.warm through Fallback", () => {
  it.live("warms the primary (the local server's slot), and only it; with an OpenRouter primary, nothing", () =>
    Effect.scoped(Effect.gen(function*() {
      const local = yield* fake(2)
      const cloud = yield* fake()
      const chain = (primary: Layer.Layer<Llm.Llm>) =>
        Layer.provide(Fallback.layer([primary, layers.openai(cloud.url)]), client)
      const c = yield* conversation("You are terse.", { promptCache: { slot: 1 } }).pipe(
        Effect.provide(chain(layers.local(local.url)))
      )
      const warmed = yield* c.warm()
      expect(Option.isSome(warmed)).toBe(true)
      expect(bodyOf(local, 0)).toMatchObject({ max_tokens: 0, id_slot: 1, cache_prompt: true })
      expect(cloud.requests.length).toBe(0)
      const viaRouter = yield* conversation("You are terse.").pipe(
        Effect.provide(chain(layers.openrouter(cloud.url)))
      )
      expect(yield* viaRouter.warm()).toEqual(Option.none())
      expect(cloud.requests.length).toBe(0)
    })))
})
