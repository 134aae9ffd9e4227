/**
 * Local server dialects: what each server reads and sends, over HTTP to the
 * fake provider replaying streams shaped like that server's (see
 * test/support/servers.ts for where each shape comes from), under several
 * chunkings; the request bodies each dialect sends; and `server: "auto"`,
 * which detects the server from its probe endpoints.
 */
import { describe, expect, it } from "@effect/vitest"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import * as ChatCompletions from "../src/codecs/ChatCompletions.js"
import * as LlmConfig from "../src/Config.js"
import * as Local from "../src/layers/Local.js"
import * as Llm from "../src/Llm.js"
import * as Message from "../src/Message.js"
import { ResponseMetadata, type StreamEvent } from "../src/Reply.js"
import * as LlmStream from "../src/Stream.js"
import * as Tool from "../src/Tool.js"
import * as Toolkit from "../src/Toolkit.js"
import * as FakeProvider from "./support/FakeProvider.js"
import {
  chunkings,
  llamaJson,
  llamaStream,
  llamaTimings,
  lmstudioStream,
  mlxStream,
  ollamaErrorBody,
  ollamaParseError,
  ollamaStream,
  ollamaSwallowedError,
  pretend,
  rawJson,
  rawStream,
  vllmStream,
  type WireReply
} from "./support/servers.js"

const fast = { retry: { initialDelay: "1 millis", maxDelay: "2 millis" } } as const

type Server = NonNullable<Local.LocalOptions["server"]>

const localAt = (url: string, options: Local.LocalOptions = {}) =>
  Local.layer({ ...fast, model: "gpt-oss-20b", ...options, baseUrl: url })

const withServer = <A, E>(
  options: Local.LocalOptions,
  f: (server: FakeProvider.FakeProvider) => Effect.Effect<A, E, Llm.Llm>
) =>
  Effect.scoped(Effect.gen(function*() {
    const server = yield* FakeProvider.make
    return yield* f(server).pipe(Effect.provide(localAt(server.url, options)))
  }))

const chatBodies = (server: FakeProvider.FakeProvider) =>
  server.requests.filter((request) => request.protocol === "chat").map((request) =>
    request.body as Record<string, unknown>
  )

const weather = Message.toolDefinition({
  name: "get_weather",
  description: "the weather in a city",
  parameters: { type: "object", properties: { city: { type: "string" } }, required: ["city"] }
})
const time = Message.toolDefinition({
  name: "get_time",
  description: "the time in a city",
  parameters: { type: "object", properties: { city: { type: "string" } }, required: ["city"] }
})

const reasoningAndCall: WireReply = {
  reasoning: "The user wants the weather in Oslo; call get_weather.",
  calls: [{ id: "call_Oslo1", name: "get_weather", arguments: "{\"city\":\"Oslo\"}" }]
}

const summary = (events: ReadonlyArray<StreamEvent>) => {
  let text = ""
  let reasoning = ""
  const calls: Array<{ id: string; name: string; arguments: unknown }> = []
  let finish: Extract<StreamEvent, { _tag: "Finish" }> | undefined
  for (const event of events) {
    if (event._tag === "TextDelta") text += event.text
    else if (event._tag === "ReasoningDelta") reasoning += event.text
    else if (event._tag === "ToolCall") calls.push({ ...event.toolCall })
    else if (event._tag === "Finish") finish = event
  }
  return { text, reasoning, calls, finish }
}

const streamOnce = (messages: ReadonlyArray<Message.Message>, options?: Llm.CompletionOptions) =>
  Effect.map(Stream.runCollect(Llm.stream(messages, options)), (chunk) => summary([...chunk]))

describe("the built-in dialect records", () => {
  it("say what each server reads and sends", () => {
    const table = Object.fromEntries(
      Object.entries(ChatCompletions.dialects).map(([name, d]) => [name, {
        emptyAssistantContent: d.emptyAssistantContent,
        maxTokensField: d.maxTokensField,
        reasoningField: d.reasoningField,
        reasoningRequest: d.reasoningRequest,
        namedToolChoice: d.namedToolChoice,
        ignoresToolChoice: d.ignoresToolChoice ?? false,
        systemRole: d.systemRole,
        timings: d.timings ?? false,
        cachePrompt: d.cachePrompt ?? false,
        promptCacheKey: d.promptCacheKey ?? false
      }])
    )
    expect(table).toEqual({
      openai: {
        emptyAssistantContent: null,
        maxTokensField: "max_completion_tokens",
        reasoningField: undefined,
        reasoningRequest: "openai",
        namedToolChoice: "object",
        ignoresToolChoice: false,
        systemRole: "system",
        timings: false,
        cachePrompt: false,
        promptCacheKey: true
      },
      openrouter: {
        emptyAssistantContent: null,
        maxTokensField: "max_tokens",
        reasoningField: undefined,
        reasoningRequest: "openrouter",
        namedToolChoice: "object",
        ignoresToolChoice: false,
        systemRole: "system",
        timings: false,
        cachePrompt: false,
        promptCacheKey: false
      },
      local: {
        emptyAssistantContent: "",
        maxTokensField: "max_tokens",
        reasoningField: "reasoning_content",
        reasoningRequest: "reasoning_effort",
        namedToolChoice: "required",
        ignoresToolChoice: false,
        systemRole: "system",
        timings: true,
        cachePrompt: true,
        promptCacheKey: false
      },
      "llama.cpp": {
        emptyAssistantContent: "",
        maxTokensField: "max_tokens",
        reasoningField: "reasoning_content",
        reasoningRequest: "chat_template_kwargs",
        namedToolChoice: "required",
        ignoresToolChoice: false,
        systemRole: "system",
        timings: true,
        cachePrompt: true,
        promptCacheKey: false
      },
      ollama: {
        emptyAssistantContent: "",
        maxTokensField: "max_tokens",
        reasoningField: "reasoning",
        reasoningRequest: "reasoning_effort",
        namedToolChoice: "required",
        ignoresToolChoice: true,
        systemRole: "system",
        timings: false,
        cachePrompt: false,
        promptCacheKey: false
      },
      vllm: {
        emptyAssistantContent: "",
        maxTokensField: "max_tokens",
        reasoningField: "reasoning",
        reasoningRequest: "reasoning_effort",
        namedToolChoice: "object",
        ignoresToolChoice: false,
        systemRole: "system",
        timings: false,
        cachePrompt: false,
        promptCacheKey: false
      },
      lmstudio: {
        emptyAssistantContent: "",
        maxTokensField: "max_tokens",
        reasoningField: "reasoning",
        reasoningRequest: "reasoning_effort",
        namedToolChoice: "required",
        ignoresToolChoice: false,
        systemRole: "system",
        timings: false,
        cachePrompt: false,
        promptCacheKey: false
      },
      mlx: {
        emptyAssistantContent: "",
        maxTokensField: "max_tokens",
        reasoningField: "reasoning",
        reasoningRequest: "chat_template_kwargs",
        namedToolChoice: "required",
        ignoresToolChoice: true,
        systemRole: "system",
        timings: false,
        cachePrompt: false,
        promptCacheKey: false
      }
    })
    for (const [name, dialect] of Object.entries(ChatCompletions.dialects)) expect(dialect.name).toBe(name)
  })

  it("ChatCompletions.make keeps its old options, over the dialect they refine", () => {
    const encode = (codec: ReturnType<typeof ChatCompletions.make>) =>
      codec.encode({
        model: "m",
        stream: false,
        messages: [
          Message.user("q"),
          Message.assistant("", [{ id: "c", name: "f", arguments: {} }]),
          Message.tool({ toolCallId: "c", name: "f", content: "r" })
        ],
        options: { maxTokens: 9 }
      })
    expect(encode(ChatCompletions.make())).toMatchObject({
      body: { max_completion_tokens: 9, messages: [{}, { content: null }, {}] }
    })
    expect(encode(ChatCompletions.make({ emptyAssistantContent: "", maxTokensField: "max_tokens" }))).toMatchObject({
      body: { max_tokens: 9, messages: [{}, { content: "" }, {}] }
    })
    expect(encode(ChatCompletions.make({ dialect: ChatCompletions.dialects.openai, emptyAssistantContent: "" })))
      .toMatchObject({ body: { max_completion_tokens: 9, messages: [{}, { content: "" }, {}] } })
    expect(encode(ChatCompletions.make({ dialect: ChatCompletions.dialects.ollama, extraBody: { keep_alive: "5m" } })))
      .toMatchObject({ body: { keep_alive: "5m", max_tokens: 9, messages: [{}, { content: "" }, {}] } })
  })
})

describe("reasoning, as each server streams it", () => {
  const cases: ReadonlyArray<readonly [Server, (reply: WireReply) => string]> = [
    ["llama.cpp", (reply) => llamaStream(reply)],
    ["ollama", ollamaStream],
    ["vllm", vllmStream],
    ["lmstudio", lmstudioStream],
    ["mlx", mlxStream]
  ]
  for (const [server, render] of cases) {
    it.live(`${server}: reasoning, text and a tool call, in every chunking`, () =>
      withServer({ server }, (fake) =>
        Effect.gen(function*() {
          const reply: WireReply = { ...reasoningAndCall, text: "Let me check." }
          for (const sizes of chunkings) {
            fake.enqueue(rawStream(render(reply), sizes))
            const got = yield* streamOnce([Message.user("weather in Oslo?")], { tools: [weather] })
            expect(got.reasoning).toBe(reply.reasoning)
            expect(got.text).toBe("Let me check.")
            expect(got.calls).toEqual([{ id: "call_Oslo1", name: "get_weather", arguments: { city: "Oslo" } }])
            expect(got.finish?.finishReason).toBe("tool_calls")
          }
        })))
  }
})

describe("named tool choice", () => {
  const request = (server: FakeProvider.FakeProvider) => {
    server.setDefault({ kind: "reply", toolCalls: [{ name: "get_weather", arguments: { city: "Oslo" } }] })
    return Llm.complete([Message.user("weather in Oslo?")], {
      tools: [weather, time],
      toolChoice: { name: "get_weather" }
    })
  }

  it.live("llama.cpp: tool_choice \"required\" with only the named tool offered (it ignores the object form)", () =>
    withServer({ server: "llama.cpp" }, (server) =>
      Effect.gen(function*() {
        yield* request(server)
        const [body] = chatBodies(server)
        expect(body!.tool_choice).toBe("required")
        expect((body!.tools as Array<{ function: { name: string } }>).map((tool) => tool.function.name)).toEqual([
          "get_weather"
        ])
      })))

  it.live("the generic local dialect does the same, as LM Studio's", () =>
    Effect.gen(function*() {
      for (const options of [{}, { server: "lmstudio" }] as const) {
        yield* withServer(options, (server) =>
          Effect.gen(function*() {
            yield* request(server)
            const [body] = chatBodies(server)
            expect(body!.tool_choice).toBe("required")
            expect((body!.tools as Array<unknown>).length).toBe(1)
          }))
      }
    }))

  it.live("vllm: the object form, every tool offered (it honours it)", () =>
    withServer({ server: "vllm" }, (server) =>
      Effect.gen(function*() {
        yield* request(server)
        const [body] = chatBodies(server)
        expect(body!.tool_choice).toEqual({ type: "function", function: { name: "get_weather" } })
        expect((body!.tools as Array<unknown>).length).toBe(2)
      })))

  it.live("ollama and mlx read no tool_choice: none is sent, and only the named tool is offered", () =>
    Effect.gen(function*() {
      for (const server of ["ollama", "mlx"] as const) {
        yield* withServer({ server }, (fake) =>
          Effect.gen(function*() {
            yield* request(fake)
            const [body] = chatBodies(fake)
            expect(body).not.toHaveProperty("tool_choice")
            expect((body!.tools as Array<{ function: { name: string } }>).map((tool) => tool.function.name)).toEqual([
              "get_weather"
            ])
          }))
      }
    }))

  it.live("ollama: toolChoice \"none\" offers no tools, since the server would not honour it", () =>
    withServer({ server: "ollama" }, (server) =>
      Effect.gen(function*() {
        yield* Llm.complete([Message.user("just talk")], { tools: [weather, time], toolChoice: "none" })
        const [body] = chatBodies(server)
        expect(body).not.toHaveProperty("tools")
        expect(body).not.toHaveProperty("tool_choice")
      })))

  it.live("llama.cpp: \"auto\", \"none\" and \"required\" are sent as they are, with every tool", () =>
    withServer({ server: "llama.cpp" }, (server) =>
      Effect.gen(function*() {
        for (const toolChoice of ["auto", "none", "required"] as const) {
          yield* Llm.complete([Message.user("q")], { tools: [weather, time], toolChoice })
        }
        expect(chatBodies(server).map((body) => [body.tool_choice, (body.tools as Array<unknown>).length])).toEqual([
          ["auto", 2],
          ["none", 2],
          ["required", 2]
        ])
      })))
})

describe("llama-server timings and cached prompt tokens", () => {
  const expectedTimings = {
    promptTokens: 61,
    promptMillis: 203.378,
    promptTokensPerSecond: 299.93,
    generationTokens: 42,
    generationMillis: 933.63,
    generationTokensPerSecond: 44.98,
    cachedPromptTokens: 1024
  }

  it.live("streamed: the last chunk's timings reach the Finish metadata, in every chunking", () =>
    withServer({ server: "llama.cpp" }, (server) =>
      Effect.gen(function*() {
        for (const sizes of chunkings) {
          server.enqueue(rawStream(llamaStream({ text: "It is sunny." }), sizes))
          const got = yield* streamOnce([Message.user("weather?")])
          expect(got.text).toBe("It is sunny.")
          expect(got.finish?.metadata.timings).toEqual(expectedTimings)
          expect(got.finish?.usage).toMatchObject({ inputTokens: 1085, outputTokens: 42, cachedInputTokens: 1024 })
        }
      })))

  it.live("whole: the body's timings reach the result metadata", () =>
    withServer({ server: "llama.cpp" }, (server) =>
      Effect.gen(function*() {
        server.enqueue(rawJson(llamaJson({ text: "It is sunny.", reasoning: "easy" })))
        const result = yield* Llm.complete([Message.user("weather?")])
        expect(result.content).toBe("It is sunny.")
        expect(result.reasoning).toBe("easy")
        expect(result.metadata.timings).toEqual(expectedTimings)
        expect(result.usage.cachedInputTokens).toBe(1024)
      })))

  it.live("an older build without prompt_tokens_details: the cached count comes from timings.cache_n", () =>
    withServer({ server: "llama.cpp" }, (server) =>
      Effect.gen(function*() {
        server.enqueue(rawStream(llamaStream({ text: "ok" }, { usageDetails: false }), [9]))
        const streamed = yield* streamOnce([Message.user("q")])
        expect(streamed.finish?.usage.cachedInputTokens).toBe(llamaTimings.cache_n)
        server.enqueue(rawJson(llamaJson({ text: "ok" }, { usageDetails: false })))
        const whole = yield* Llm.complete([Message.user("q")])
        expect(whole.usage.cachedInputTokens).toBe(llamaTimings.cache_n)
      })))

  it.live("no timings sent: no timings reported; a dialect that does not read them ignores them", () =>
    Effect.gen(function*() {
      yield* withServer({ server: "llama.cpp" }, (server) =>
        Effect.gen(function*() {
          server.enqueue(rawStream(llamaStream({ text: "ok" }, { timings: undefined })))
          const got = yield* streamOnce([Message.user("q")])
          expect(got.finish?.metadata.timings).toBeUndefined()
        }))
      yield* withServer({ server: "vllm" }, (server) =>
        Effect.gen(function*() {
          server.enqueue(rawStream(llamaStream({ text: "ok" })))
          const got = yield* streamOnce([Message.user("q")])
          expect(got.finish?.metadata.timings).toBeUndefined()
        }))
    }))

  it.live("timings survive JSON encoding of the metadata", () =>
    withServer({ server: "llama.cpp" }, (server) =>
      Effect.gen(function*() {
        server.enqueue(rawJson(llamaJson({ text: "ok" })))
        const result = yield* Llm.complete([Message.user("q")])
        const json = JSON.parse(JSON.stringify(Schema.encodeSync(ResponseMetadata)(result.metadata)))
        expect(Schema.decodeUnknownSync(ResponseMetadata)(json).timings).toEqual(expectedTimings)
      })))
})

describe("null content", () => {
  const history = [
    Message.user("weather?"),
    Message.assistant("", [{ id: "c1", name: "get_weather", arguments: { city: "Oslo" } }]),
    Message.tool({ toolCallId: "c1", name: "get_weather", content: "sunny" })
  ]
  /** Answers 400 as LM Studio does when an assistant message's content is null. */
  const refuseNull = (server: FakeProvider.FakeProvider) =>
    server.respond((request) => {
      const messages = (request.body as { messages: ReadonlyArray<{ content: unknown }> }).messages
      return messages.some((message) => message.content === null)
        ? { kind: "status", status: 400, body: { error: "Invalid 'content': 'content' field must be a string" } }
        : undefined
    })

  for (const server of ["lmstudio", "mlx"] as const) {
    it.live(`${server}: a tool-only assistant turn is sent with content ""`, () =>
      withServer({ server }, (fake) =>
        Effect.gen(function*() {
          refuseNull(fake)
          const result = yield* Llm.complete(history, { tools: [weather] })
          expect(result.content).toBe("ok")
          expect((chatBodies(fake)[0]!.messages as Array<{ content: unknown }>)[1]!.content).toBe("")
        })))
  }

  it.live("a custom dialect with null content is refused by such a server, as a typed error", () =>
    withServer({
      server: { ...ChatCompletions.dialects.lmstudio, emptyAssistantContent: null },
      retry: { maxRetries: 0 }
    }, (fake) =>
      Effect.gen(function*() {
        refuseNull(fake)
        const error = yield* Effect.flip(Llm.complete(history, { tools: [weather] }))
        expect(error._tag).toBe("LlmInvalidRequestError")
      })))
})

describe("the system role", () => {
  it.live("every built-in local dialect sends system; a custom dialect can send developer", () =>
    Effect.gen(function*() {
      for (const server of ["llama.cpp", "ollama", "vllm", "lmstudio", "mlx"] as const) {
        yield* withServer({ server }, (fake) =>
          Effect.gen(function*() {
            yield* Llm.complete([Message.system("be brief"), Message.user("q")])
            expect((chatBodies(fake)[0]!.messages as Array<{ role: string }>)[0]!.role).toBe("system")
          }))
      }
      yield* withServer(
        { server: { ...ChatCompletions.dialects.vllm, name: "vllm-gpt-oss", systemRole: "developer" } },
        (fake) =>
          Effect.gen(function*() {
            yield* Llm.complete([Message.system("be brief"), Message.user("q")])
            expect(chatBodies(fake)[0]!.messages).toEqual([
              { role: "developer", content: "be brief" },
              { role: "user", content: "q" }
            ])
          })
      )
    }))
})

describe("tool names with channel residue", () => {
  const weatherTool = Tool.make("get_weather", {
    description: "the weather in a city",
    parameters: Schema.Struct({ city: Schema.String }),
    handler: ({ city }) => Effect.succeed(`sunny in ${city}`)
  })
  const kit = Toolkit.make(weatherTool)

  for (
    const name of [
      "get_weather<|channel|>commentary",
      "functions.get_weather<|channel|>commentary",
      "get_weather<|constrain|>json"
    ]
  ) {
    it.live(`${JSON.stringify(name)} runs get_weather and is recorded as get_weather`, () =>
      withServer({ server: "llama.cpp" }, (server) =>
        Effect.gen(function*() {
          server.enqueue(
            rawStream(llamaStream({ calls: [{ id: "c1", name, arguments: "{\"city\":\"Oslo\"}" }] }), [11]),
            rawStream(llamaStream({ text: "Sunny." }))
          )
          const added: Array<Message.Message> = []
          const events = yield* Stream.runCollect(
            Toolkit.stream([Message.user("weather?")], kit, {
              onStep: (step) =>
                Effect.sync(() => {
                  for (const message of step) added.push(message)
                })
            })
          )
          expect(summary([...events]).text).toBe("Sunny.")
          const [call, result] = added
          expect(call?.role === "assistant" && call.toolCalls.map((c) => c.name)).toEqual(["get_weather"])
          expect(result?.role === "tool" && [result.name, result.content, result.isError ?? false]).toEqual([
            "get_weather",
            "sunny in Oslo",
            false
          ])
          // the history sent back names the declared tool
          const second = chatBodies(server)[1]!.messages as Array<
            { tool_calls?: Array<{ function: { name: string } }> }
          >
          expect(second[1]!.tool_calls![0]!.function.name).toBe("get_weather")
        })))
  }

  it.live("Llm.complete reports the name as the server sent it: matching it to a tool is the toolkit's", () =>
    withServer({ server: "llama.cpp" }, (server) =>
      Effect.gen(function*() {
        server.enqueue(
          rawJson(llamaJson({ calls: [{ id: "c1", name: "get_weather<|channel|>commentary", arguments: "{}" }] }))
        )
        const result = yield* Llm.complete([Message.user("weather?")], { tools: [weather] })
        expect(result.toolCalls.map((call) => call.name)).toEqual(["get_weather<|channel|>commentary"])
        expect(Toolkit.recorded(kit, result.toolCalls).map((call) => call.name)).toEqual(["get_weather"])
      })))

  it.live("Toolkit.run resolves the residue the same way", () =>
    withServer({ server: "llama.cpp" }, (server) =>
      Effect.gen(function*() {
        server.enqueue(
          rawJson(
            llamaJson({
              calls: [{ id: "c1", name: "get_weather<|channel|>commentary", arguments: "{\"city\":\"Bergen\"}" }]
            })
          ),
          rawJson(llamaJson({ text: "Sunny." }))
        )
        const run = yield* Toolkit.run([Message.user("weather?")], kit)
        expect(run.result.content).toBe("Sunny.")
        expect(run.added.map((message) => message.role === "tool" ? message.content : message.role)).toEqual([
          "assistant",
          "sunny in Bergen",
          "assistant"
        ])
      })))
})

describe("Ollama /v1 quirks", () => {
  it.live("a tool-call parse error after output began: the stream ends early, a typed error with the text so far", () =>
    withServer({ server: "ollama" }, (server) =>
      Effect.gen(function*() {
        for (const sizes of chunkings) {
          server.enqueue(rawStream(ollamaSwallowedError({ reasoning: "thinking", text: "Let me check" }), sizes))
          const error = yield* Effect.flip(Stream.runDrain(Llm.stream([Message.user("q")], { tools: [weather] })))
          expect(error._tag).toBe("LlmResponseError")
          expect(error.partialText).toBe("Let me check")
        }
      })))

  it.live("the same error as an in-band error chunk (Ollama's own wording) is a typed, transient error", () =>
    withServer({ server: "ollama", retry: { maxRetries: 0 } }, (server) =>
      Effect.gen(function*() {
        const body = ollamaStream({ text: "Let me check" }).split("\n\n").slice(0, 3).map((e) => `${e}\n\n`).join("") +
          `data: ${JSON.stringify({ error: ollamaParseError })}\n\n`
        for (const sizes of chunkings) {
          server.enqueue(rawStream(body, sizes))
          const error = yield* Effect.flip(Stream.runDrain(Llm.stream([Message.user("q")], { tools: [weather] })))
          expect(error._tag).toBe("LlmProviderError")
          expect(error.message).toContain("error parsing tool call")
          expect(error.partialText).toBe("Let me check")
        }
      })))

  it.live("before any output: Ollama's 500 is retried, and its message kept when it persists", () =>
    withServer(
      { server: "ollama", retry: { maxRetries: 1, initialDelay: "1 millis" } },
      (server) =>
        Effect.gen(function*() {
          const failure = { kind: "status", status: 500, body: ollamaErrorBody(ollamaParseError) } as const
          server.enqueue(failure, rawStream(ollamaStream({ text: "fine" })))
          const got = yield* streamOnce([Message.user("q")], { tools: [weather] })
          expect(got.text).toBe("fine")
          server.enqueue(failure, failure)
          const error = yield* Effect.flip(Stream.runDrain(Llm.stream([Message.user("q")], { tools: [weather] })))
          expect(error._tag).toBe("LlmProviderError")
          expect(error.message).toContain("error parsing tool call")
        })
    ))
})

describe("server: \"auto\"", () => {
  const probes = (server: FakeProvider.FakeProvider) =>
    server.requests.filter((request) => request.method === "GET").map((request) => request.path)

  const named = { tools: [weather, time], toolChoice: { name: "get_weather" } } as const

  const cases: ReadonlyArray<
    readonly [Parameters<typeof pretend>[1], Local.LocalServer | undefined, ReadonlyArray<string>]
  > = [
    ["llama.cpp", "llama.cpp", ["/v1/models"]],
    ["ollama", "ollama", ["/v1/models"]],
    ["vllm", "vllm", ["/v1/models"]],
    ["lmstudio", "lmstudio", ["/v1/models"]],
    ["mlx", "mlx", ["/v1/models", "/api/version", "/props", "/version"]],
    ["unknown", undefined, ["/v1/models", "/api/version", "/props", "/version"]]
  ]
  for (const [as, expected, asked] of cases) {
    it.live(`detects ${as} from what its endpoints answer`, () =>
      Effect.scoped(Effect.gen(function*() {
        const server = yield* FakeProvider.make
        pretend(server, as)
        expect(yield* Local.detect({ baseUrl: server.url })).toBe(expected)
        expect(probes(server)).toEqual(asked)
      })))
  }

  it.live("falls back on /api/version, /props and /version when the model owner says nothing", () =>
    Effect.scoped(Effect.gen(function*() {
      const server = yield* FakeProvider.make
      for (const [as, expected] of [["ollama", "ollama"], ["llama.cpp", "llama.cpp"], ["vllm", "vllm"]] as const) {
        server.reset()
        pretend(server, as, { owner: "hf.co" })
        expect(yield* Local.detect({ baseUrl: `${server.url}/v1` })).toBe(expected)
      }
    })))

  it.live("detects once, at the first call, and then speaks the detected dialect", () =>
    Effect.scoped(Effect.gen(function*() {
      const server = yield* FakeProvider.make
      pretend(server, "llama.cpp")
      const llm = yield* Local.make({ ...fast, baseUrl: server.url, server: "auto" })
      expect(server.requests).toEqual([])
      yield* Effect.all([llm.complete([Message.user("a")], named), llm.complete([Message.user("b")], named)], {
        concurrency: 2
      })
      yield* Stream.runDrain(llm.stream([Message.user("c")], named))
      expect(probes(server)).toEqual(["/v1/models"])
      expect(chatBodies(server).map((body) => body.tool_choice)).toEqual(["required", "required", "required"])
    })))

  it.live("an unknown server is remembered as such: the generic dialect, no second detection", () =>
    Effect.scoped(Effect.gen(function*() {
      const server = yield* FakeProvider.make
      pretend(server, "unknown")
      const llm = yield* Local.make({ ...fast, baseUrl: server.url, server: "auto" })
      yield* llm.complete([Message.user("a")], named)
      yield* llm.complete([Message.user("b")], named)
      expect(probes(server).length).toBe(4)
      expect(chatBodies(server).map((body) => body.tool_choice)).toEqual(["required", "required"])
    })))

  it.live("a server that is still loading is asked again at the next call", () =>
    Effect.scoped(Effect.gen(function*() {
      const server = yield* FakeProvider.make
      pretend(server, "ollama")
      server.setRoute("/v1/models", {
        status: 503,
        body: { error: { code: 503, message: "Loading model", type: "unavailable_error" } }
      })
      const llm = yield* Local.make({ ...fast, baseUrl: server.url, server: "auto" })
      yield* llm.complete([Message.user("a")], named)
      pretend(server, "ollama")
      yield* llm.complete([Message.user("b")], named)
      yield* llm.complete([Message.user("c")], named)
      expect(probes(server)).toEqual(["/v1/models", "/v1/models"])
      // generic while unknown, Ollama's once detected
      expect(chatBodies(server).map((body) => body.tool_choice ?? "absent")).toEqual(["required", "absent", "absent"])
    })))

  it.live("an unreachable server does not break the layer; detection waits for it", () =>
    Effect.scoped(Effect.gen(function*() {
      const port = yield* Effect.promise(async () => {
        const probe = await FakeProvider.start()
        await probe.close()
        return probe.port
      })
      const url = `http://127.0.0.1:${port}`
      yield* Layer.build(Local.layer({ ...fast, baseUrl: url, server: "auto" }))
      const llm = yield* Local.make({ ...fast, baseUrl: url, server: "auto", retry: { maxRetries: 0 } })
      const error = yield* Effect.flip(llm.complete([Message.user("a")], named))
      expect(error._tag).toBe("LlmConnectionError")
      const server = yield* Effect.acquireRelease(
        Effect.promise(() => FakeProvider.start({ port })),
        (s) => Effect.promise(() => s.close())
      )
      pretend(server, "vllm")
      yield* llm.complete([Message.user("b")], named)
      expect(probes(server)).toEqual(["/v1/models"])
      expect(chatBodies(server).map((body) => body.tool_choice)).toEqual([{
        type: "function",
        function: { name: "get_weather" }
      }])
    })))

  it.live("the probes send the key, and the stream of an auto layer keeps its text-only variant", () =>
    Effect.scoped(Effect.gen(function*() {
      const server = yield* FakeProvider.make
      pretend(server, "mlx")
      const layer = localAt(server.url, { server: "auto", apiKey: Redacted.make("sk-local-SECRET") })
      server.enqueue(rawStream(mlxStream({ text: "Hello there." })), rawStream(mlxStream({ text: "Again." })))
      const texts = yield* Effect.provide(
        Effect.all([
          Stream.runCollect(Llm.streamText([Message.user("hi")])),
          Stream.runCollect(LlmStream.textDeltas(Llm.stream([Message.user("hi")])))
        ]),
        layer
      )
      expect(texts.map((chunk) => [...chunk].join(""))).toEqual(["Hello there.", "Again."])
      for (const request of server.requests) expect(request.headers.authorization).toBe("Bearer sk-local-SECRET")
    })))

  it.live("a server name the library does not know fails every call, naming the known ones", () =>
    withServer({ server: "kobold" as Local.LocalServer }, (server) =>
      Effect.gen(function*() {
        const error = yield* Effect.flip(Llm.complete([Message.user("q")]))
        expect(error._tag).toBe("LlmInvalidRequestError")
        expect(error.message).toContain("llama.cpp, ollama, vllm, lmstudio, mlx or \"auto\"")
        const streamed = yield* Effect.flip(Stream.runDrain(Llm.stream([Message.user("q")])))
        expect(streamed._tag).toBe("LlmInvalidRequestError")
        expect(server.requests).toEqual([])
      })))

  it.live("detection refuses to send the key over plain http to a remote host", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(
        Local.detect({ baseUrl: "http://192.0.2.1:8080", apiKey: Redacted.make("sk-local-SECRET") })
      )
      expect(error._tag).toBe("LlmInvalidRequestError")
      expect(error.message).not.toContain("SECRET")
    }))
})

describe("configuration", () => {
  it.live("Local.layerConfig reads LLM_LOCAL_SERVER", () =>
    Effect.scoped(Effect.gen(function*() {
      const server = yield* FakeProvider.make
      const env = (vars: Record<string, string>) =>
        Layer.setConfigProvider(
          ConfigProvider.fromMap(new Map(Object.entries({ LLM_LOCAL_BASE_URL: server.url, ...vars })))
        )
      yield* Llm.complete([Message.user("q")], { tools: [weather, time], toolChoice: { name: "get_weather" } }).pipe(
        Effect.provide(Local.layerConfig({ ...fast }).pipe(Layer.provide(env({ LLM_LOCAL_SERVER: "vllm" }))))
      )
      expect(chatBodies(server)[0]!.tool_choice).toEqual({ type: "function", function: { name: "get_weather" } })
      const error = yield* Effect.flip(
        Layer.build(Local.layerConfig().pipe(Layer.provide(env({ LLM_LOCAL_SERVER: "kobold" }))))
      )
      expect(String(error)).toContain("LLM_LOCAL_SERVER")
      expect(String(error)).toContain("llama.cpp")
    })))

  it.live("the configuration file's local section takes server", () =>
    Effect.scoped(Effect.gen(function*() {
      const server = yield* FakeProvider.make
      const layer = LlmConfig.layerFrom({
        llm: { backend: "local", local: { base_url: server.url, server: "ollama" } }
      })
      yield* Llm.complete([Message.user("q")], { tools: [weather, time], toolChoice: { name: "get_weather" } }).pipe(
        Effect.provide(layer)
      )
      const [body] = chatBodies(server)
      expect(body).not.toHaveProperty("tool_choice")
      expect((body!.tools as Array<unknown>).length).toBe(1)
      const error = yield* Effect.flip(
        Layer.build(
          LlmConfig.layerFrom({ llm: { backend: "local", local: { base_url: server.url, server: "kobold" } } })
        )
      )
      expect(String(error)).toContain("llm.local.server")
    })))
})
