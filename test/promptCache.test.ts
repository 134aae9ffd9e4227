/**
 * Prompt caching on the wire, per backend: Anthropic's cache breakpoints
 * (placed automatically, asked for on a message, turned off), OpenAI's
 * `prompt_cache_key`, llama-server's `id_slot` / `cache_prompt`, the
 * warm-up bodies, and the cache counters each backend reports in `Usage`.
 */
import { NodeHttpClient } from "@effect/platform-node"
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import * as Messages from "../src/codecs/AnthropicMessages.js"
import * as ChatCompletions from "../src/codecs/ChatCompletions.js"
import type { EncodeInput } from "../src/codecs/WireCodec.js"
import * as Anthropic from "../src/layers/Anthropic.js"
import * as Local from "../src/layers/Local.js"
import * as OpenAi from "../src/layers/OpenAi.js"
import * as OpenRouter from "../src/layers/OpenRouter.js"
import * as Llm from "../src/Llm.js"
import * as Message from "../src/Message.js"
import * as LlmStream from "../src/Stream.js"
import * as FakeProvider from "./support/FakeProvider.js"
import { chunkings, raw } from "./support/replies.js"

const ephemeral = { type: "ephemeral" }
const weather = Message.toolDefinition({
  name: "weather",
  description: "Current weather",
  parameters: { type: "object", properties: { city: { type: "string" } }, required: ["city"] }
})
const now = Message.toolDefinition({ name: "now" })
const wireWeather = {
  name: "weather",
  description: "Current weather",
  input_schema: { type: "object", properties: { city: { type: "string" } }, required: ["city"] }
}
const wireNow = { name: "now", input_schema: { type: "object", properties: {} } }

const anthropic = Messages.make()
const bodyOf = (codec: { encode: (input: EncodeInput) => { body: unknown } | { invalid: string } }) =>
(
  input: Partial<EncodeInput>
): Record<string, unknown> => {
  const encoded = codec.encode({ model: "m", messages: [Message.user("hi")], options: {}, stream: false, ...input })
  if ("invalid" in encoded) throw new Error(encoded.invalid)
  return encoded.body as Record<string, unknown>
}
const messagesBody = bodyOf(anthropic)

/** Every `cache_control` in a body, wherever it is. */
const breakpoints = (body: unknown): number => (JSON.stringify(body).match(/"cache_control"/g) ?? []).length

describe("Anthropic cache breakpoints", () => {
  it("marks the last tool, the system prompt (as blocks) and the last message before the newest user turn", () => {
    expect(messagesBody({
      messages: [
        Message.system("You are terse."),
        Message.user("Hi"),
        Message.assistant("Hello."),
        Message.user("Rain?")
      ],
      options: { tools: [weather, now] }
    })).toEqual({
      model: "m",
      max_tokens: 1024,
      system: [{ type: "text", text: "You are terse.", cache_control: ephemeral }],
      messages: [
        { role: "user", content: [{ type: "text", text: "Hi" }] },
        { role: "assistant", content: [{ type: "text", text: "Hello.", cache_control: ephemeral }] },
        { role: "user", content: [{ type: "text", text: "Rain?" }] }
      ],
      tools: [wireWeather, { ...wireNow, cache_control: ephemeral }]
    })
  })

  it("sends nothing to cache on a first turn without system prompt or tools", () => {
    expect(messagesBody({ messages: [Message.user("Hi")] })).toEqual({
      model: "m",
      max_tokens: 1024,
      messages: [{ role: "user", content: [{ type: "text", text: "Hi" }] }]
    })
  })

  it("keeps one block per system message, the breakpoint on the last", () => {
    expect(messagesBody({ messages: [Message.system("one"), Message.user("q"), Message.system("two")] }).system)
      .toEqual([{ type: "text", text: "one" }, { type: "text", text: "two", cache_control: ephemeral }])
  })

  it("in a tool loop, marks the assistant's tool call before the results", () => {
    expect(messagesBody({
      messages: [
        Message.user("Rain in Oslo?"),
        Message.assistant("", [{ id: "toolu_1", name: "weather", arguments: { city: "Oslo" } }]),
        Message.tool({ toolCallId: "toolu_1", name: "weather", content: "rain" })
      ],
      options: { tools: [weather] }
    })).toEqual({
      model: "m",
      max_tokens: 1024,
      messages: [
        { role: "user", content: [{ type: "text", text: "Rain in Oslo?" }] },
        {
          role: "assistant",
          content: [{
            type: "tool_use",
            id: "toolu_1",
            name: "weather",
            input: { city: "Oslo" },
            cache_control: ephemeral
          }]
        },
        { role: "user", content: [{ type: "tool_result", tool_use_id: "toolu_1", content: "rain" }] }
      ],
      tools: [{ ...wireWeather, cache_control: ephemeral }]
    })
  })

  it("puts cache_control where a message asks for it: its last block", () => {
    expect(messagesBody({
      messages: [
        Message.system("Rules.", { cache: true }),
        Message.system("Today is Monday."),
        Message.user("Here is a long document.", { cache: true }),
        Message.user("Summarise it.")
      ],
      options: { promptCache: false }
    })).toEqual({
      model: "m",
      max_tokens: 1024,
      system: "Rules.\n\nToday is Monday.",
      messages: [{
        role: "user",
        content: [{ type: "text", text: "Here is a long document." }, { type: "text", text: "Summarise it." }]
      }]
    })
    expect(messagesBody({
      messages: [
        Message.system("Rules.", { cache: true }),
        Message.system("Today is Monday."),
        Message.user("Here is a long document.", { cache: true }),
        Message.user("Summarise it.")
      ]
    })).toEqual({
      model: "m",
      max_tokens: 1024,
      system: [
        { type: "text", text: "Rules.", cache_control: ephemeral },
        { type: "text", text: "Today is Monday.", cache_control: ephemeral }
      ],
      messages: [{
        role: "user",
        content: [
          { type: "text", text: "Here is a long document.", cache_control: ephemeral },
          { type: "text", text: "Summarise it." }
        ]
      }]
    })
  })

  it("marks a tool result and an assistant message asked for", () => {
    const body = messagesBody({
      messages: [
        Message.user("q"),
        new Message.AssistantMessage({ content: "a", cache: true }),
        Message.user("r"),
        Message.assistant("", [{ id: "t", name: "now", arguments: {} }]),
        Message.tool({ toolCallId: "t", name: "now", content: "noon", cache: true }),
        Message.user("s")
      ],
      options: { promptCache: false }
    })
    expect(breakpoints(body)).toBe(0)
    expect(
      messagesBody({
        messages: [
          Message.user("q"),
          new Message.AssistantMessage({ content: "a", cache: true }),
          Message.user("r"),
          Message.assistant("", [{ id: "t", name: "now", arguments: {} }]),
          Message.tool({ toolCallId: "t", name: "now", content: "noon", cache: true }),
          Message.user("s")
        ]
      }).messages
    ).toEqual([
      { role: "user", content: [{ type: "text", text: "q" }] },
      { role: "assistant", content: [{ type: "text", text: "a", cache_control: ephemeral }] },
      { role: "user", content: [{ type: "text", text: "r" }] },
      { role: "assistant", content: [{ type: "tool_use", id: "t", name: "now", input: {}, cache_control: ephemeral }] },
      {
        role: "user",
        content: [
          { type: "tool_result", tool_use_id: "t", content: "noon", cache_control: ephemeral },
          { type: "text", text: "s" }
        ]
      }
    ])
  })

  it("sends at most 4 breakpoints: the messages' own first (the latest 4), then the last stable turn, system, tools", () => {
    const marked = (n: number) =>
      Array.from(
        { length: n },
        (_, i) =>
          i % 2 === 0
            ? Message.user(`u${i}`, { cache: true })
            : new Message.AssistantMessage({ content: `a${i}`, cache: true })
      )
    // five asked for: the latest four are kept, nothing automatic
    const five = messagesBody({
      messages: [Message.system("s"), ...marked(5), Message.user("last")],
      options: { tools: [weather] }
    })
    expect(breakpoints(five)).toBe(4)
    expect(five.system).toBe("s")
    expect(five.tools).toEqual([wireWeather])
    expect(JSON.stringify(five.messages)).not.toContain("\"u0\",\"cache_control\"")
    // one asked for: then the last stable turn, the system prompt and the last tool
    const two = messagesBody({
      messages: [Message.system("s"), Message.user("u0", { cache: true }), Message.assistant("a1"), Message.user("x")],
      options: { tools: [weather] }
    })
    expect(two).toEqual({
      model: "m",
      max_tokens: 1024,
      system: [{ type: "text", text: "s", cache_control: ephemeral }],
      messages: [
        { role: "user", content: [{ type: "text", text: "u0", cache_control: ephemeral }] },
        { role: "assistant", content: [{ type: "text", text: "a1", cache_control: ephemeral }] },
        { role: "user", content: [{ type: "text", text: "x" }] }
      ],
      tools: [{ ...wireWeather, cache_control: ephemeral }]
    })
    // two asked for: then the last stable turn and the system prompt; the tools get none
    const three = messagesBody({
      messages: [
        Message.system("s"),
        Message.user("u0", { cache: true }),
        Message.assistant("a1"),
        Message.user("u2", { cache: true }),
        Message.assistant("a3"),
        Message.user("x")
      ],
      options: { tools: [weather] }
    })
    expect(breakpoints(three)).toBe(4)
    expect(three.tools).toEqual([wireWeather])
    expect(three.system).toEqual([{ type: "text", text: "s", cache_control: ephemeral }])
  })

  it("sends no cache_control at all with promptCache: false", () => {
    const body = messagesBody({
      messages: [Message.system("s"), Message.user("Hi"), Message.assistant("Hello."), Message.user("Rain?")],
      options: { tools: [weather], promptCache: false }
    })
    expect(breakpoints(body)).toBe(0)
    expect(body.system).toBe("s")
  })

  it("sends the ttl asked for on every breakpoint", () => {
    const body = messagesBody({
      messages: [
        Message.system("s", { cache: true }),
        Message.user("Hi"),
        Message.assistant("Hello."),
        Message.user("?")
      ],
      options: { tools: [now], promptCache: { ttl: "1h" } }
    })
    const hour = { type: "ephemeral", ttl: "1h" }
    expect(body).toEqual({
      model: "m",
      max_tokens: 1024,
      system: [{ type: "text", text: "s", cache_control: hour }],
      messages: [
        { role: "user", content: [{ type: "text", text: "Hi" }] },
        { role: "assistant", content: [{ type: "text", text: "Hello.", cache_control: hour }] },
        { role: "user", content: [{ type: "text", text: "?" }] }
      ],
      tools: [{ ...wireNow, cache_control: hour }]
    })
  })

  it("ignores promptCache.key and slot (OpenAI's and llama-server's)", () => {
    expect(messagesBody({ messages: [Message.user("Hi")], options: { promptCache: { key: "k", slot: 1 } } })).toEqual({
      model: "m",
      max_tokens: 1024,
      messages: [{ role: "user", content: [{ type: "text", text: "Hi" }] }]
    })
  })

  it("warms with max_tokens 0, the breakpoints, and a placeholder user turn after them", () => {
    const warmed = anthropic.warm!({
      model: "m",
      messages: [Message.system("You are terse.")],
      options: { tools: [weather, now], maxTokens: 300, temperature: 0.5 }
    })
    expect(warmed).toEqual({
      body: {
        model: "m",
        max_tokens: 0,
        temperature: 0.5,
        system: [{ type: "text", text: "You are terse.", cache_control: ephemeral }],
        messages: [{ role: "user", content: [{ type: "text", text: "warm-up" }] }],
        tools: [wireWeather, { ...wireNow, cache_control: ephemeral }]
      }
    })
    // a history so far is cached up to its last message
    const later = anthropic.warm!({
      model: "m",
      messages: [Message.system("s"), Message.user("Hi"), Message.assistant("Hello.")],
      options: {}
    })
    expect(later).toEqual({
      body: {
        model: "m",
        max_tokens: 0,
        system: [{ type: "text", text: "s", cache_control: ephemeral }],
        messages: [
          { role: "user", content: [{ type: "text", text: "Hi" }] },
          { role: "assistant", content: [{ type: "text", text: "Hello.", cache_control: ephemeral }] },
          { role: "user", content: [{ type: "text", text: "warm-up" }] }
        ]
      }
    })
    expect(anthropic.warm!({ model: "m", messages: [Message.system("s")], options: { promptCache: false } })).toEqual({
      invalid: "a warm-up needs prompt caching, and promptCache is false"
    })
  })
})

describe("Chat Completions cache fields", () => {
  const openai = bodyOf(ChatCompletions.make({ maxTokensField: "max_completion_tokens", promptCacheKey: true }))
  const local = bodyOf(
    ChatCompletions.make({ emptyAssistantContent: "", maxTokensField: "max_tokens", cachePrompt: true })
  )
  const plain = bodyOf(ChatCompletions.make({ maxTokensField: "max_tokens" }))
  const hi = { role: "user", content: "hi" }

  it("OpenAI: prompt_cache_key from promptCache.key, nothing without one or with caching off", () => {
    expect(openai({ options: { promptCache: { key: "conv-1", slot: 3 } } })).toEqual({
      model: "m",
      messages: [hi],
      prompt_cache_key: "conv-1"
    })
    expect(openai({ options: { promptCache: { slot: 3 } } })).toEqual({ model: "m", messages: [hi] })
    expect(openai({ options: { promptCache: false } })).toEqual({ model: "m", messages: [hi] })
  })

  it("llama-server: id_slot and cache_prompt for a slot, cache_prompt false with caching off, nothing otherwise", () => {
    expect(local({ options: { promptCache: { slot: 2, key: "conv-1" } } })).toEqual({
      model: "m",
      messages: [hi],
      id_slot: 2,
      cache_prompt: true
    })
    expect(local({ options: { promptCache: { key: "conv-1" } } })).toEqual({ model: "m", messages: [hi] })
    expect(local({ options: { promptCache: false } })).toEqual({ model: "m", messages: [hi], cache_prompt: false })
    expect(local({})).toEqual({ model: "m", messages: [hi] })
  })

  it("other dialects send no cache field, and cannot warm", () => {
    expect(plain({ options: { promptCache: { slot: 2, key: "conv-1" } } })).toEqual({ model: "m", messages: [hi] })
    expect(ChatCompletions.make({ maxTokensField: "max_tokens" }).warm).toBeUndefined()
  })

  it("warms llama-server with max_tokens 0 into the slot, OpenAI with one token under the key", () => {
    const system = Message.system("You are terse.")
    const tool = {
      type: "function",
      function: { name: "now", description: "", parameters: { type: "object", properties: {} } }
    }
    const placeholder = { role: "user", content: "warm-up" }
    expect(
      ChatCompletions.make({ emptyAssistantContent: "", maxTokensField: "max_tokens", cachePrompt: true }).warm!({
        model: "m",
        messages: [system],
        options: { tools: [now], promptCache: { slot: 1 }, maxTokens: 200 }
      })
    ).toEqual({
      body: {
        model: "m",
        messages: [{ role: "system", content: "You are terse." }, placeholder],
        max_tokens: 0,
        tools: [tool],
        id_slot: 1,
        cache_prompt: true
      }
    })
    expect(
      ChatCompletions.make({ maxTokensField: "max_completion_tokens", promptCacheKey: true }).warm!({
        model: "m",
        messages: [system],
        options: { promptCache: { key: "conv-1" } }
      })
    ).toEqual({
      body: {
        model: "m",
        messages: [{ role: "system", content: "You are terse." }, placeholder],
        max_completion_tokens: 1,
        prompt_cache_key: "conv-1"
      }
    })
  })
})

describe("promptCache validation", () => {
  it.each([
    [{ slot: -1 }, "promptCache.slot must be a non-negative integer, got -1"],
    [{ slot: 1.5 }, "promptCache.slot must be a non-negative integer, got 1.5"],
    [{ key: "" }, "promptCache.key must be a non-empty string"],
    [{ ttl: "2h" }, "promptCache.ttl must be \"5m\" or \"1h\", got \"2h\""]
  ])("refuses %j before sending", (promptCache, invalid) => {
    const options = { promptCache } as unknown as Llm.CompletionOptions
    expect(anthropic.encode({ model: "m", messages: [Message.user("hi")], options, stream: false })).toEqual({
      invalid
    })
    expect(
      ChatCompletions.make({ cachePrompt: true }).encode({
        model: "m",
        messages: [Message.user("hi")],
        options,
        stream: true
      })
    ).toEqual({ invalid })
  })
})

const client = NodeHttpClient.layerUndici
const fast = { retry: { initialDelay: "1 millis", maxDelay: "2 millis" } } as const
const key = Redacted.make("sk-test-SECRET-0123456789")

/** Runs `f` against a fresh fake server with the layer `layer` builds for its URL. */
const withServer = <A, E>(
  layer: (url: string) => Layer.Layer<Llm.Llm>,
  f: (server: FakeProvider.FakeProvider) => Effect.Effect<A, E, Llm.Llm>
) =>
  Effect.scoped(Effect.gen(function*() {
    const server = yield* FakeProvider.make
    return yield* f(server).pipe(Effect.provide(Layer.provide(layer(server.url), client)))
  }))

const anthropicAt = (url: string) => Anthropic.layer({ ...fast, baseUrl: url, apiKey: key, model: "claude-x" })
const openAiAt = (url: string) => OpenAi.layer({ ...fast, baseUrl: `${url}/v1`, apiKey: key, model: "gpt-x" })
const openRouterAt = (url: string) => OpenRouter.layer({ ...fast, baseUrl: `${url}/api/v1`, apiKey: key, model: "r/x" })
const localAt = (url: string) => Local.layer({ ...fast, baseUrl: url, model: "gpt-oss:20b" })

const history = [Message.system("Be brief."), Message.user("Hi"), Message.assistant("Hello."), Message.user("Rain?")]

/** An Anthropic stream whose counters arrive in message_start and are completed by message_delta. */
const anthropicStream = [
  "event: message_start",
  "data: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"claude-x\",\"content\":[],\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":12,\"cache_creation_input_tokens\":1500,\"cache_read_input_tokens\":0,\"output_tokens\":1}}}",
  "",
  "event: content_block_start",
  "data: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}",
  "",
  "event: content_block_delta",
  "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Dry.\"}}",
  "",
  "event: content_block_stop",
  "data: {\"type\":\"content_block_stop\",\"index\":0}",
  "",
  "event: message_delta",
  "data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\",\"stop_sequence\":null},\"usage\":{\"input_tokens\":12,\"cache_creation_input_tokens\":1500,\"cache_read_input_tokens\":2048,\"output_tokens\":3}}",
  "",
  "event: message_stop",
  "data: {\"type\":\"message_stop\"}",
  "",
  ""
].join("\n")

/** A Chat Completions stream whose last chunk carries the usage with cached tokens. */
const chatStream = [
  "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-x\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"finish_reason\":null}],\"usage\":null}",
  "",
  "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-x\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Dry.\"},\"finish_reason\":null}],\"usage\":null}",
  "",
  "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-x\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}],\"usage\":null}",
  "",
  "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-x\",\"choices\":[],\"usage\":{\"prompt_tokens\":2100,\"completion_tokens\":3,\"total_tokens\":2103,\"prompt_tokens_details\":{\"cached_tokens\":1920,\"audio_tokens\":0},\"completion_tokens_details\":{\"reasoning_tokens\":0}}}",
  "",
  "data: [DONE]",
  "",
  ""
].join("\n")

describe("caching over loopback", () => {
  it.live("Anthropic: the request carries the breakpoints; Usage has cache reads and writes, whole and streamed", () =>
    withServer(anthropicAt, (server) =>
      Effect.gen(function*() {
        server.enqueue({
          kind: "reply",
          text: "Dry.",
          usage: { inputTokens: 12, outputTokens: 3, cacheReadTokens: 2048, cacheWriteTokens: 1500 }
        })
        const result = yield* Llm.complete(history, { tools: [now] })
        expect(server.requests[0]!.body).toEqual({
          model: "claude-x",
          max_tokens: 1024,
          system: [{ type: "text", text: "Be brief.", cache_control: ephemeral }],
          messages: [
            { role: "user", content: [{ type: "text", text: "Hi" }] },
            { role: "assistant", content: [{ type: "text", text: "Hello.", cache_control: ephemeral }] },
            { role: "user", content: [{ type: "text", text: "Rain?" }] }
          ],
          tools: [{ ...wireNow, cache_control: ephemeral }]
        })
        const usage = {
          inputTokens: 12 + 1500 + 2048,
          outputTokens: 3,
          totalTokens: 12 + 1500 + 2048 + 3,
          cachedInputTokens: 2048,
          cacheWriteInputTokens: 1500
        }
        expect({ ...result.usage }).toEqual(usage)
        for (const chunks of chunkings(anthropicStream)) {
          server.enqueue(raw(chunks))
          const streamed = yield* LlmStream.collect(Llm.stream(history))
          expect(streamed.content).toBe("Dry.")
          expect({ ...streamed.usage }).toEqual(usage)
        }
        expect(server.requests.slice(1).map((request) => (request.body as { stream: unknown }).stream)).toEqual([
          true,
          true,
          true
        ])
      })))

  it.live("OpenAI: prompt_cache_key is sent; cached_tokens is Usage.cachedInputTokens, whole and streamed", () =>
    withServer(openAiAt, (server) =>
      Effect.gen(function*() {
        server.enqueue({
          kind: "reply",
          text: "Dry.",
          usage: { inputTokens: 2100, outputTokens: 3, cacheReadTokens: 1920 }
        })
        const result = yield* Llm.complete([Message.system("Be brief."), Message.user("Rain?")], {
          promptCache: { key: "conversation-7" }
        })
        expect(server.requests[0]!.body).toEqual({
          model: "gpt-x",
          messages: [{ role: "system", content: "Be brief." }, { role: "user", content: "Rain?" }],
          prompt_cache_key: "conversation-7"
        })
        const usage = {
          inputTokens: 2100,
          outputTokens: 3,
          totalTokens: 2103,
          cachedInputTokens: 1920,
          reasoningTokens: 0
        }
        expect({ ...result.usage }).toEqual(usage)
        for (const chunks of chunkings(chatStream)) {
          server.enqueue(raw(chunks))
          const streamed = yield* LlmStream.collect(Llm.stream([Message.user("Rain?")], { promptCache: { key: "k" } }))
          expect({ ...streamed.usage }).toEqual(usage)
        }
        expect(
          server.requests.slice(1).map((request) => (request.body as { prompt_cache_key: unknown }).prompt_cache_key)
        )
          .toEqual(["k", "k", "k"])
      })))

  it.live("OpenRouter: no cache field is added (cached_tokens still read)", () =>
    withServer(openRouterAt, (server) =>
      Effect.gen(function*() {
        server.enqueue({
          kind: "reply",
          text: "Dry.",
          usage: { inputTokens: 30, outputTokens: 3, cacheReadTokens: 20 }
        })
        const result = yield* Llm.complete([Message.system("Be brief."), Message.user("Rain?")], {
          promptCache: { key: "conversation-7", slot: 1 }
        })
        expect(server.requests[0]!.body).toEqual({
          model: "r/x",
          messages: [{ role: "system", content: "Be brief." }, { role: "user", content: "Rain?" }]
        })
        expect(result.usage.cachedInputTokens).toBe(20)
      })))

  it.live("local: a slot is sent as id_slot with cache_prompt, streamed and whole", () =>
    withServer(localAt, (server) =>
      Effect.gen(function*() {
        yield* Llm.complete([Message.user("Rain?")], { promptCache: { slot: 3 } })
        yield* LlmStream.collect(Llm.stream([Message.user("Rain?")], { promptCache: { slot: 3 } }))
        expect(server.requests.map((request) => request.body)).toEqual([
          { model: "gpt-oss:20b", messages: [{ role: "user", content: "Rain?" }], id_slot: 3, cache_prompt: true },
          {
            model: "gpt-oss:20b",
            messages: [{ role: "user", content: "Rain?" }],
            stream: true,
            stream_options: { include_usage: true },
            id_slot: 3,
            cache_prompt: true
          }
        ])
      })))

  it.live("a layer's promptCache: false turns caching off; a call's own option wins", () =>
    Effect.scoped(Effect.gen(function*() {
      const server = yield* FakeProvider.make
      const layer = Layer.provide(
        Anthropic.layer({ ...fast, baseUrl: server.url, apiKey: key, model: "claude-x", promptCache: false }),
        client
      )
      yield* Llm.complete(history).pipe(Effect.provide(layer))
      yield* Llm.complete(history, { promptCache: {} }).pipe(Effect.provide(layer))
      expect(breakpoints(server.requests[0]!.body)).toBe(0)
      expect(breakpoints(server.requests[1]!.body)).toBe(2)
    })))

  it.live("a bad promptCache is refused before anything is sent", () =>
    withServer(localAt, (server) =>
      Effect.gen(function*() {
        const error = yield* Effect.flip(Llm.complete([Message.user("Rain?")], { promptCache: { slot: -2 } }))
        expect(error._tag).toBe("LlmInvalidRequestError")
        expect(error.message).toContain("promptCache.slot must be a non-negative integer, got -2")
        expect(server.requests.length).toBe(0)
      })))
})
