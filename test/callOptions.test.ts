/**
 * Per-call model and provider options (issue 17), over loopback against the
 * fake provider, for every backend: `CompletionOptions.model` picks another
 * model of the same backend, and results, errors and spans name it;
 * `providerOptions` adds body fields for one backend by its name, merged
 * last, refused (nothing sent) when it is not JSON or would replace the
 * model, the messages or the stream flag.
 */
import { NodeHttpClient } from "@effect/platform-node"
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type { LlmError } from "../src/errors.js"
import * as Fallback from "../src/layers/Fallback.js"
import * as Local from "../src/layers/Local.js"
import * as OpenAi from "../src/layers/OpenAi.js"
import * as OpenRouter from "../src/layers/OpenRouter.js"
import * as Llm from "../src/Llm.js"
import * as Message from "../src/Message.js"
import type { ProviderOptions } from "../src/Provider.js"
import * as LlmStream from "../src/Stream.js"
import { type Backend, backends } from "./support/backends.js"
import * as FakeProvider from "./support/FakeProvider.js"
import { recordSpans } from "./support/spans.js"

const hi = [Message.user("Hi")]

/** The JSON body of request `i`. */
const bodyOf = (server: FakeProvider.FakeProvider, i: number) => server.requests[i]!.body as Record<string, unknown>

/** Runs `f` with `backend` pointed at a fresh fake server. */
const withBackend = <A, E>(
  backend: Backend,
  f: (server: FakeProvider.FakeProvider) => Effect.Effect<A, E, Llm.Llm>,
  options?: ProviderOptions
) =>
  Effect.scoped(Effect.gen(function*() {
    const server = yield* FakeProvider.make
    return yield* f(server).pipe(Effect.provide(backend.layer(server.url, options)))
  }))

/** The error of a whole and of a streamed call, and how many requests the server got for both. */
const refusedBoth = (server: FakeProvider.FakeProvider, options: Llm.CompletionOptions) =>
  Effect.gen(function*() {
    server.clearRequests()
    const whole = yield* Effect.flip(Llm.complete(hi, options))
    const streamed = yield* Effect.flip(LlmStream.collect(Llm.stream(hi, options)))
    return { errors: [whole, streamed] as ReadonlyArray<LlmError>, requests: server.requests.length }
  })

const expectRefused = (
  refused: { readonly errors: ReadonlyArray<LlmError>; readonly requests: number },
  pattern: RegExp
) => {
  expect(refused.requests).toBe(0)
  for (const error of refused.errors) {
    expect(error._tag).toBe("LlmInvalidRequestError")
    expect(error.message).toContain("nothing was sent")
    expect(error.message).toMatch(pattern)
  }
}

for (const backend of backends) {
  describe(`per-call model: ${backend.name}`, () => {
    it.live("is the model sent, and the one the result and the stream's Finish name", () =>
      withBackend(backend, (server) =>
        Effect.gen(function*() {
          const llm = yield* Llm.Llm
          const result = yield* Llm.complete(hi, { model: "other-model" })
          expect(bodyOf(server, 0).model).toBe("other-model")
          expect(result.model).toBe("other-model")
          const streamed = yield* LlmStream.collect(Llm.stream(hi, { model: "other-model" }))
          expect(bodyOf(server, 1).model).toBe("other-model")
          expect(streamed.model).toBe("other-model")
          // a call without it keeps the layer's model
          const plain = yield* Llm.complete(hi)
          expect(bodyOf(server, 2).model).toBe(llm.model)
          expect(plain.model).toBe(llm.model)
        })))

    it.live("a reply that names no model is reported as the per-call model", () =>
      withBackend(backend, (server) =>
        Effect.gen(function*() {
          const reply = backend.protocol === "chat"
            ? {
              id: "chatcmpl-1",
              choices: [{ index: 0, message: { role: "assistant", content: "ok" }, finish_reason: "stop" }]
            }
            : {
              id: "msg_1",
              type: "message",
              role: "assistant",
              content: [{ type: "text", text: "ok" }],
              stop_reason: "end_turn",
              usage: { input_tokens: 1, output_tokens: 1 }
            }
          server.setDefault({
            kind: "raw",
            headers: { "content-type": "application/json" },
            chunks: [JSON.stringify(reply)]
          })
          expect((yield* Llm.complete(hi, { model: "other-model" })).model).toBe("other-model")
        })))

    it.live("errors name the per-call model", () =>
      withBackend(backend, (server) =>
        Effect.gen(function*() {
          server.setDefault({ kind: "status", status: 404, type: "not_found_error", message: "no such model" })
          const whole = yield* Effect.flip(Llm.complete(hi, { model: "other-model" }))
          const streamed = yield* Effect.flip(LlmStream.collect(Llm.stream(hi, { model: "other-model" })))
          for (const error of [whole, streamed]) {
            expect(error._tag).toBe("LlmInvalidRequestError")
            expect(error.model).toBe("other-model")
            expect(error.message).toContain(`${backend.provider} (other-model)`)
          }
          // and so do errors raised before sending
          const refused = yield* Effect.flip(Llm.complete([], { model: "other-model" }))
          expect(refused.model).toBe("other-model")
        })))

    it.live("spans are named for the per-call model and carry it as gen_ai.request.model", () =>
      withBackend(backend, () =>
        Effect.gen(function*() {
          const { spans, tracer } = yield* recordSpans
          yield* Llm.complete(hi, { model: "other-model" }).pipe(Effect.withTracer(tracer))
          yield* LlmStream.collect(Llm.stream(hi, { model: "other-model" })).pipe(Effect.withTracer(tracer))
          const own = spans.filter((span) => span.name.startsWith("chat "))
          expect(own.map((span) => span.name)).toEqual(["chat other-model", "chat other-model"])
          for (const span of own) {
            expect(span.attributes.get("gen_ai.request.model")).toBe("other-model")
            expect(span.attributes.get("gen_ai.provider.name")).toBe(backend.provider)
          }
        })))

    it.live("a model that is empty, not a string or holds a line break is refused, nothing sent", () =>
      withBackend(backend, (server) =>
        Effect.gen(function*() {
          expectRefused(yield* refusedBoth(server, { model: "" }), /model/)
          expectRefused(yield* refusedBoth(server, { model: "a\nb" }), /model.*line break/)
          expectRefused(yield* refusedBoth(server, { model: 42 as unknown as string }), /model.*string/)
        })))
  })

  describe(`providerOptions: ${backend.name}`, () => {
    const options = {
      [backend.provider]: { cache_prompt: true, id_slot: 2, provider: { order: ["a", "b"] } },
      elsewhere: { never_sent: true }
    }

    it.live("adds the fields of its own backend's entry to the body, whole and streamed, and no other entry", () =>
      withBackend(backend, (server) =>
        Effect.gen(function*() {
          yield* Llm.complete(hi, { providerOptions: options })
          yield* LlmStream.collect(Llm.stream(hi, { providerOptions: options }))
          for (const i of [0, 1]) {
            const body = bodyOf(server, i)
            expect(body.cache_prompt).toBe(true)
            expect(body.id_slot).toBe(2)
            expect(body.provider).toEqual({ order: ["a", "b"] })
            expect(body).not.toHaveProperty("never_sent")
            expect(body).not.toHaveProperty("elsewhere")
          }
          expect(bodyOf(server, 1).stream).toBe(true)
        })))

    it.live("are merged last: a field the codec wrote is replaced, objects merged key by key", () =>
      withBackend(backend, (server) =>
        Effect.gen(function*() {
          yield* LlmStream.collect(Llm.stream(hi, {
            temperature: 0.7,
            providerOptions: { [backend.provider]: { temperature: 0.2, metadata: { user: "u1" } } }
          }))
          const body = bodyOf(server, 0)
          expect(body.temperature).toBe(0.2)
          expect(body.metadata).toEqual({ user: "u1" })
          if (backend.protocol === "chat") {
            yield* LlmStream.collect(Llm.stream(hi, {
              providerOptions: { [backend.provider]: { stream_options: { include_obfuscation: false } } }
            }))
            expect(bodyOf(server, 1).stream_options).toEqual({ include_usage: true, include_obfuscation: false })
          }
        })))

    it.live("never replace the model, the messages or the stream flag: refused, naming the key", () =>
      withBackend(backend, (server) =>
        Effect.gen(function*() {
          for (const key of ["model", "messages", "stream"]) {
            expectRefused(
              yield* refusedBoth(server, { providerOptions: { [backend.provider]: { [key]: "x" } } }),
              new RegExp(`providerOptions\\.${backend.provider}\\.${key}`)
            )
          }
          if (backend.protocol === "messages") {
            expectRefused(
              yield* refusedBoth(server, { providerOptions: { [backend.provider]: { system: "x" } } }),
              /providerOptions\.anthropic\.system/
            )
          }
        })))

    it.live("that are not JSON are refused, naming where, nothing sent", () =>
      withBackend(backend, (server) =>
        Effect.gen(function*() {
          const cycle: Record<string, unknown> = { a: 1 }
          cycle.self = cycle
          let deep: Record<string, unknown> = { leaf: 1 }
          for (let i = 0; i < 100; i++) deep = { deep }
          const cases: ReadonlyArray<readonly [unknown, RegExp]> = [
            [{ f: () => 1 }, /providerOptions\.\w+\.f.*function/],
            [{ n: Number.NaN }, /providerOptions\.\w+\.n.*finite number/],
            [{ n: Number.POSITIVE_INFINITY }, /providerOptions\.\w+\.n.*finite number/],
            [{ b: 10n }, /providerOptions\.\w+\.b.*bigint/],
            [{ s: Symbol("s") }, /providerOptions\.\w+\.s.*symbol/],
            [{ d: new Date(0) }, /providerOptions\.\w+\.d.*plain object/],
            [{ m: new Map() }, /providerOptions\.\w+\.m.*plain object/],
            [{ list: [1, undefined] }, /providerOptions\.\w+\.list\[1\].*undefined/],
            [cycle, /providerOptions\.\w+\.self.*cycle/],
            [deep, /providerOptions\.\w+.*nested deeper than/],
            [JSON.parse("{\"__proto__\":{\"polluted\":true}}"), /providerOptions\.\w+\.__proto__/]
          ]
          for (const [entry, pattern] of cases) {
            expectRefused(
              yield* refusedBoth(server, { providerOptions: { [backend.provider]: entry as never } }),
              pattern
            )
          }
          // another backend's entry is checked too: the call is wrong wherever it would go
          expectRefused(
            yield* refusedBoth(server, { providerOptions: { elsewhere: { f: (() => 1) as never } } }),
            /providerOptions\.elsewhere\.f/
          )
          // the value and each entry must be objects
          expectRefused(yield* refusedBoth(server, { providerOptions: [] as never }), /providerOptions.*object/)
          expectRefused(
            yield* refusedBoth(server, { providerOptions: { [backend.provider]: [1] as never } }),
            /providerOptions\.\w+.*object/
          )
          expect(({} as Record<string, unknown>).polluted).toBeUndefined()
        })))

    it.live("a layer's providerOptions are sent on every call, the call's merged over them (call wins)", () =>
      withBackend(backend, (server) =>
        Effect.gen(function*() {
          yield* Llm.complete(hi)
          expect(bodyOf(server, 0).provider).toEqual({ order: ["a"], allow_fallbacks: false })
          expect(bodyOf(server, 0).cache_prompt).toBe(true)
          yield* Llm.complete(hi, { providerOptions: { [backend.provider]: { provider: { order: ["b"] } } } })
          expect(bodyOf(server, 1).provider).toEqual({ order: ["b"], allow_fallbacks: false })
          expect(bodyOf(server, 1).cache_prompt).toBe(true)
        }), { providerOptions: { cache_prompt: true, provider: { order: ["a"], allow_fallbacks: false } } }))

    it.live("a layer whose providerOptions are refused fails every call with why, nothing sent", () =>
      withBackend(backend, (server) =>
        Effect.gen(function*() {
          expectRefused(yield* refusedBoth(server, {}), /providerOptions\.model/)
        }), { providerOptions: { model: "x" } }))
  })
}

describe("per-call model and providerOptions through Fallback", () => {
  const chain = (primary: string, secondary: string) =>
    Fallback.layer([
      Local.layer({ baseUrl: primary, model: "local-default", retry: { maxRetries: 0 } }),
      OpenRouter.layer({ baseUrl: `${secondary}/api/v1`, model: "openrouter-default", retry: { maxRetries: 0 } })
    ]).pipe(Layer.provide(NodeHttpClient.layerUndici))

  it.live("the per-call model goes to the primary only; each backend takes its own providerOptions", () =>
    Effect.scoped(Effect.gen(function*() {
      const [local, cloud] = yield* Effect.all([FakeProvider.make, FakeProvider.make])
      const layer = chain(local.url, cloud.url)
      const options: Llm.CompletionOptions = {
        model: "qwen3:8b",
        providerOptions: { local: { id_slot: 1 }, openrouter: { provider: { order: ["x"] } } }
      }
      const first = yield* Llm.complete(hi, options).pipe(Effect.provide(layer))
      expect(first.model).toBe("qwen3:8b")
      expect(bodyOf(local, 0)).toMatchObject({ model: "qwen3:8b", id_slot: 1 })
      expect(bodyOf(local, 0)).not.toHaveProperty("provider")
      // the primary fails: the secondary answers with its own model and its own options
      local.setDefault({ kind: "status", status: 503 })
      const second = yield* Llm.complete(hi, options).pipe(Effect.provide(layer))
      expect(second.model).toBe("openrouter-default")
      expect(bodyOf(cloud, 0)).toMatchObject({ model: "openrouter-default", provider: { order: ["x"] } })
      expect(bodyOf(cloud, 0)).not.toHaveProperty("id_slot")
      const streamed = yield* LlmStream.collect(Llm.stream(hi, options)).pipe(Effect.provide(layer))
      expect(streamed.model).toBe("openrouter-default")
      expect(bodyOf(cloud, 1)).toMatchObject({ model: "openrouter-default", provider: { order: ["x"] } })
    })))

  it.live("an OpenAI layer takes providerOptions under its name", () =>
    Effect.scoped(Effect.gen(function*() {
      const server = yield* FakeProvider.make
      const layer = OpenAi.layer({ baseUrl: `${server.url}/v1` }).pipe(Layer.provide(NodeHttpClient.layerUndici))
      yield* Llm.complete(hi, { providerOptions: { openai: { prompt_cache_key: "k1" }, local: { id_slot: 3 } } }).pipe(
        Effect.provide(layer)
      )
      expect(bodyOf(server, 0).prompt_cache_key).toBe("k1")
      expect(bodyOf(server, 0)).not.toHaveProperty("id_slot")
    })))
})
