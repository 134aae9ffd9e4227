/**
 * What `npm run build` publishes: the build (`scripts/build.ts`) runs once into a
 * gitignored directory and is used the way a user's application uses it, by a plain `node`
 * process importing only the built `index.js` and `testing/index.js` (no
 * vitest transform, no `src/`). The names the barrel exports, values and
 * types, are the reviewed public API below; a change to it shows up here.
 */
import { describe, expect, it } from "@effect/vitest"
import { execFileSync, spawnSync } from "node:child_process"
import { readdirSync, readFileSync, rmSync } from "node:fs"
import { join, relative } from "node:path"
import { fileURLToPath, pathToFileURL } from "node:url"
import ts from "typescript"
import { beforeAll } from "vitest"

const root = fileURLToPath(new URL("..", import.meta.url))
/** Inside the project, so the built files resolve `effect` and the other dependencies from its node_modules. */
const out = join(root, ".dist-test")

/** Every value each entry point exports: a namespace's own names, or `"value"`. */
const runtimeApi = {
  index: {
    Anthropic: ["defaults", "layer", "layerConfig", "make", "provider"],
    AssistantMessage: "value",
    ChatCompletions: ["dialects", "make"],
    CompletionResult: "value",
    Conversation: ["Conversation", "layer", "make"],
    ConversationContext: ["ConversationContext", "decode", "estimateTokens", "make"],
    Errors: [
      "LlmAuthenticationError",
      "LlmConnectionError",
      "LlmError",
      "LlmInvalidRequestError",
      "LlmOutputError",
      "LlmProviderError",
      "LlmRateLimitError",
      "LlmResponseError",
      "LlmTimeoutError",
      "OutputErrorReason",
      "RateLimitKind",
      "TimeoutKind",
      "isContextOverflow",
      "isLlmError",
      "isTransient"
    ],
    Fallback: ["layer", "make"],
    HttpTransport: ["HttpTransport", "TransportError", "layerHttpClient", "layerUndici", "undici"],
    Llm: [
      "CompletionResult",
      "FinishReason",
      "Llm",
      "ResponseMetadata",
      "Usage",
      "complete",
      "generateObject",
      "stream",
      "streamObject",
      "streamText"
    ],
    LlmAuthenticationError: "value",
    LlmConfig: [
      "BackendRegistry",
      "layerFrom",
      "layerFromFile",
      "layerMcpFrom",
      "layerMcpFromFile",
      "make",
      "mcpServers",
      "readFile",
      "registry"
    ],
    LlmConnectionError: "value",
    LlmError: "value",
    LlmInvalidRequestError: "value",
    LlmOutputError: "value",
    LlmProviderError: "value",
    LlmRateLimitError: "value",
    LlmResponseError: "value",
    LlmStream: ["StreamEvent", "collect", "sentences", "textDeltas"],
    LlmTimeoutError: "value",
    Local: ["Health", "defaults", "detect", "health", "layer", "layerConfig", "make", "models", "provider", "servers"],
    McpToolkit: ["McpServerError", "McpToolkit", "layer", "make"],
    Message: [
      "AssistantMessage",
      "JsonObject",
      "Message",
      "ReasoningPart",
      "SystemMessage",
      "ToolCall",
      "ToolDefinition",
      "ToolMessage",
      "UserMessage",
      "assistant",
      "system",
      "tool",
      "toolDefinition",
      "user"
    ],
    AnthropicMessages: ["defaultMaxTokens", "finishReasonFromWire", "make"],
    OpenAi: ["defaults", "layer", "layerConfig", "make", "provider"],
    OpenRouter: ["defaults", "layer", "layerConfig", "make", "provider"],
    Pricing: ["Pricing", "bundled", "cost", "extend", "isFree", "layer", "layerTable", "make"],
    Provider: ["bearer", "defaultIdleTimeout", "make", "overrideEnv", "readEnv"],
    Retry: ["defaults"],
    SharedState: ["SharedState", "current", "layerMemory", "layerRedis"],
    ReasoningPart: "value",
    StreamEvent: "value",
    StructuredOutput: ["ObjectResult"],
    SystemMessage: "value",
    Telemetry: [
      "breakerState",
      "calls",
      "captureContent",
      "conventions",
      "conversationId",
      "fallbacks",
      "layerContentCapture",
      "operationDuration",
      "retries",
      "timeToFirstChunk",
      "tokenUsage",
      "withContentCapture",
      "withConversationId"
    ],
    TokenCounter: ["TokenCounter", "estimate", "layer", "openAi"],
    Tool: ["ToolExecutionError", "ToolSchemaError", "fromJsonSchema", "make"],
    ToolCall: "value",
    ToolDefinition: "value",
    ToolMessage: "value",
    Toolkit: [
      "execute",
      "generateObject",
      "make",
      "maxArgumentsDepth",
      "merge",
      "recorded",
      "run",
      "stream",
      "streamOn",
      "warm",
      "wrapperPrefixes"
    ],
    Usage: "value",
    UserMessage: "value",
    WireCodec: ["fromProviderFailure", "responseError"],
    isContextOverflow: "value",
    isLlmError: "value",
    isTransient: "value"
  },
  testing: {
    FakeProvider: ["FakeProviderServer", "layer", "make", "slotPrompt", "start"],
    ScriptedLlm: ["ScriptedLlm", "calls", "fail", "hang", "layer", "make", "reply", "toolCalls"]
  }
} as const

/** The type-only names each namespace adds to its values (what the `.d.ts` exports beyond `runtimeApi`). */
const typeApi = {
  index: {
    Anthropic: ["AnthropicOptions"],
    ChatCompletions: ["ChatCompletionsOptions", "Dialect"],
    CompletionOptions: "type",
    Conversation: [
      "ConversationOptions",
      "SendOptions",
      "SpeakOptions",
      "SpeculationStats",
      "SpeechSink",
      "TurnMetrics"
    ],
    ConversationContext: ["ContextOptions", "CountTokens", "Turn"],
    Fallback: ["Backend", "BackendFailure", "CircuitBreakerOptions", "FallbackOptions", "NamedLayer", "ProbedLayer"],
    FinishReason: "type",
    HttpTransport: ["BodyReader", "Request", "Response", "Service", "UndiciOptions"],
    Llm: ["CompletionOptions", "PromptCacheOption", "ReasoningOption", "ResponseFormat", "ToolChoice"],
    LlmStream: ["SentenceOptions"],
    LlmConfig: [
      "BackendContext",
      "BackendFactory",
      "BackendSection",
      "LlmConfigInput",
      "LlmSection",
      "McpServerSection",
      "PriceSection",
      "StateSection"
    ],
    Local: ["LocalOptions", "LocalServer", "ProbeOptions"],
    McpToolkit: ["HttpServer", "Options", "Server", "ServerOptions", "ServerStatus", "Service", "StdioServer"],
    AnthropicMessages: ["MessagesOptions"],
    OpenAi: ["OpenAiOptions"],
    OpenRouter: ["OpenRouterOptions"],
    Pricing: ["ModelPrice", "PriceTable", "Prices"],
    Provider: [
      "Declaration",
      "EnvNames",
      "KeyHeaders",
      "Provider",
      "ProviderDefaults",
      "ProviderOptions",
      "RateLimitOptions",
      "TextOptions"
    ],
    Retry: ["RetryOptions"],
    SharedState: ["RedisOptions", "Service"],
    PromptCacheOption: "type",
    ReasoningOption: "type",
    ResponseFormat: "type",
    StructuredOutput: [
      "DeepPartial",
      "ElementOf",
      "ObjectCallOptions",
      "ObjectOptions",
      "ObjectStreamEvent",
      "ObjectStreamOptions"
    ],
    ToolChoice: "type",
    Tool: ["Tool"],
    Toolkit: [
      "KitRequirements",
      "ObjectRunResult",
      "Requirements",
      "RunOptions",
      "RunResult",
      "StreamOptions",
      "Toolkit"
    ],
    Message: ["CacheOptions", "ReasoningPartInput", "ToolCallInput"],
    WireCodec: [
      "DecodedFinish",
      "DecodedReply",
      "EncodeInput",
      "ErrorContext",
      "ProviderFailure",
      "ServerTimings",
      "StreamDecoder",
      "WarmInput",
      "WireCodec"
    ]
  },
  testing: {
    FakeProvider: [
      "FakeInBandError",
      "FakeKeepAlive",
      "FakeProvider",
      "FakeProviderStats",
      "FakeToolCall",
      "FakeUsage",
      "FloodReply",
      "GatedReply",
      "HangReply",
      "HeadersOnlyReply",
      "RawReply",
      "RecordedRequest",
      "Reply",
      "ResetReply",
      "Responder",
      "Script",
      "StatusReply"
    ],
    ScriptedLlm: [
      "FailStep",
      "HangStep",
      "RecordedCall",
      "ReplyStep",
      "Script",
      "ScriptedLlmOptions",
      "ScriptedToolCall",
      "Step"
    ]
  }
} as const

type Api = Record<string, ReadonlyArray<string> | string>

/** Both lists of one entry point merged: a namespace's values and types, or a single value's or type's kind. */
const merged = (runtime: Api, types: Api): Record<string, ReadonlyArray<string> | string> => {
  const all: Record<string, ReadonlyArray<string> | string> = {}
  for (const name of new Set([...Object.keys(runtime), ...Object.keys(types)])) {
    const a = runtime[name]
    const b = types[name]
    all[name] = typeof a === "string" ? a : typeof b === "string" ? b : [...(a ?? []), ...(b ?? [])].sort()
  }
  return all
}

/** Runs an ES module program in a plain `node` process (cwd: the project) and parses the JSON it prints. */
const runNode = (program: string): unknown =>
  JSON.parse(execFileSync(process.execPath, ["--input-type=module", "-e", program], { cwd: root, encoding: "utf8" }))

const url = (file: string) => JSON.stringify(pathToFileURL(join(out, file)).href)

const declarationFiles = (dir: string): Array<string> =>
  readdirSync(dir, { withFileTypes: true }).flatMap((entry) =>
    entry.isDirectory()
      ? declarationFiles(join(dir, entry.name))
      : entry.name.endsWith(".d.ts")
      ? [join(dir, entry.name)]
      : []
  )

describe("the built package", () => {
  beforeAll(() => {
    rmSync(out, { recursive: true, force: true })
    execFileSync(process.execPath, ["--import", "tsx", "scripts/build.ts", "--out-dir", out], {
      cwd: root,
      stdio: "pipe"
    })
  }, 180_000)

  it("importing index.js loads none of the packages and modules only some users need; they load when used", () => {
    // a resolve hook (on the loader thread) reports every module resolved, on stderr; written synchronously,
    // since what the loader thread writes through process.stderr may still be queued when the process exits
    const hook = `import { writeSync } from "node:fs"
    export async function resolve(specifier, context, next) {
      const found = await next(specifier, context)
      writeSync(2, "resolved " + found.url + "\\n")
      return found
    }`
    const program = `
      import { register } from "node:module"
      import { writeFileSync } from "node:fs"
      register(${JSON.stringify("data:text/javascript," + encodeURIComponent(hook))})
      const { LlmConfig } = await import(${url("index.js")})
      process.stderr.write("imported\\n")
      const Effect = await import("effect/Effect")
      const file = ${JSON.stringify(join(out, "probe.yaml"))}
      writeFileSync(file, "backends:\\n  - name: a\\n")
      console.log(JSON.stringify(await Effect.runPromise(LlmConfig.readFile(file))))
    `
    const run = spawnSync(process.execPath, ["--input-type=module", "-e", program], { cwd: root, encoding: "utf8" })
    expect(run.status, run.stderr).toBe(0)
    const [atImport, afterImport] = run.stderr.split("imported\n")
    const packagesIn = (log: string) =>
      new Set([...log.matchAll(/node_modules\/((?:@[^/]+\/)?[^/]+)\//g)].map((match) => match[1]!))
    const loaded = packagesIn(atImport!)
    expect(loaded.has("effect")).toBe(true)
    for (const lazy of ["yaml", "ajv", "ajv-formats", "gpt-tokenizer", "@modelcontextprotocol/sdk", "ioredis"]) {
      expect(loaded.has(lazy), `${lazy} loaded by the import`).toBe(false)
    }
    expect(loaded.has("@effect/platform"), "@effect/platform loaded by the import").toBe(false)
    // the configuration's schemas and checks load with the first configuration read, as does the YAML parser
    const configuration = /\/chunks\/llmConfig-\w+\.js/
    expect(configuration.test(atImport!), "LlmConfig's implementation loaded by the import").toBe(false)
    expect(configuration.test(afterImport!)).toBe(true)
    expect(packagesIn(afterImport!).has("yaml")).toBe(true)
    expect(JSON.parse(run.stdout)).toEqual({ backends: [{ name: "a" }] })
  })

  it("exports exactly the reviewed values from index.js and testing/index.js", () => {
    const found = runNode(`
      // a namespace (\`export * as\`) is a module object, or in the bundle, an object of live bindings (getters only)
      const isNamespace = (v) => Object.prototype.toString.call(v) === "[object Module]" ||
        (typeof v === "object" && v !== null && Object.keys(v).length > 0 &&
          Object.values(Object.getOwnPropertyDescriptors(v)).every((p) => p.get !== undefined && p.set === undefined))
      const describe = (m) => Object.fromEntries(Object.keys(m).sort().map((k) => [k,
        isNamespace(m[k]) ? Object.keys(m[k]).sort() : "value"]))
      const index = await import(${url("index.js")})
      const testing = await import(${url("testing/index.js")})
      console.log(JSON.stringify({ index: describe(index), testing: describe(testing) }))
    `)
    expect(found).toEqual(runtimeApi)
  })

  it("answers through a scripted Llm, a Local layer against the fake provider, and types its errors", () => {
    const found = runNode(`
      import * as Effect from "effect/Effect"
      import * as Stream from "effect/Stream"
      import * as Chunk from "effect/Chunk"
      const { Llm, Local, Message, Errors, LlmRateLimitError, isLlmError } = await import(${url("index.js")})
      const { ScriptedLlm, FakeProvider } = await import(${url("testing/index.js")})
      const hi = [Message.user("Hi")]
      const scripted = await Effect.runPromise(Effect.gen(function*() {
        const reply = yield* Llm.complete(hi)
        const error = yield* Effect.flip(Llm.complete(hi))
        return { content: reply.content, tag: error._tag, isLlmError: isLlmError(error), transient: Errors.isTransient(error) }
      }).pipe(Effect.provide(ScriptedLlm.layer([
        ScriptedLlm.reply("Hello from the script"),
        ScriptedLlm.fail(new LlmRateLimitError({ provider: "scripted", model: "m", message: "slow down" }))
      ]))))
      const overHttp = await Effect.runPromise(Effect.scoped(Effect.gen(function*() {
        const server = yield* FakeProvider.make
        server.enqueue({ kind: "reply", text: "Hello over HTTP" }, { kind: "reply", text: "streamed reply", chunkSize: 3 })
        const layer = Local.layer({ baseUrl: server.url, model: "fake-model" })
        const reply = yield* Effect.provide(Llm.complete(hi), layer)
        const texts = yield* Llm.streamText(hi).pipe(Stream.runCollect, Effect.provide(layer))
        return { content: reply.content, provider: reply.metadata.provider, streamed: Chunk.toReadonlyArray(texts),
          paths: server.requests.map((request) => request.path) }
      })))
      console.log(JSON.stringify({ scripted, overHttp }))
    `)
    expect(found).toEqual({
      scripted: { content: "Hello from the script", tag: "LlmRateLimitError", isLlmError: true, transient: true },
      overHttp: {
        content: "Hello over HTTP",
        provider: "local",
        streamed: ["str", "eam", "ed ", "rep", "ly"],
        paths: ["/v1/chat/completions", "/v1/chat/completions"]
      }
    })
  })

  it("declares exactly the reviewed names, in .d.ts files that compile and carry no @internal declaration", () => {
    const files = declarationFiles(out)
    const program = ts.createProgram([join(out, "index.d.ts"), join(out, "testing", "index.d.ts")], {
      module: ts.ModuleKind.NodeNext,
      moduleResolution: ts.ModuleResolutionKind.NodeNext,
      target: ts.ScriptTarget.ES2022,
      strict: true,
      exactOptionalPropertyTypes: true,
      types: ["node"],
      noEmit: true
    })
    const checker = program.getTypeChecker()
    const problems = files.flatMap((file) => {
      const source = program.getSourceFile(file)
      const diagnostics = source === undefined ? [] : program.getSemanticDiagnostics(source)
      return diagnostics.map((d) => `${relative(out, file)}: ${ts.flattenDiagnosticMessageText(d.messageText, "\n")}`)
    })
    expect(problems).toEqual([])
    const internal = files.filter((file) => readFileSync(file, "utf8").includes("@internal")).map((file) =>
      relative(out, file)
    )
    // the modules under internal/ are not exported; their own notes may say so
    expect(internal.filter((file) => !file.startsWith("internal/"))).toEqual([])

    const isValue = (symbol: ts.Symbol) => (symbol.flags & ts.SymbolFlags.Value) !== 0
    const declared = (entry: string) => {
      const module = checker.getSymbolAtLocation(program.getSourceFile(join(out, entry))!)!
      const names: Record<string, ReadonlyArray<string> | string> = {}
      for (const exported of checker.getExportsOfModule(module)) {
        const target = exported.flags & ts.SymbolFlags.Alias ? checker.getAliasedSymbol(exported) : exported
        const specifier = exported.declarations?.[0]
        const typeOnly = specifier !== undefined && ts.isExportSpecifier(specifier) &&
          (specifier.isTypeOnly || specifier.parent.parent.isTypeOnly)
        names[exported.name] = typeOnly ?
          "type" :
          target.flags & ts.SymbolFlags.ValueModule && target.valueDeclaration !== undefined &&
            ts.isSourceFile(target.valueDeclaration)
          ? checker.getExportsOfModule(target).map((member) => member.name).sort()
          : isValue(target)
          ? "value"
          : "type"
      }
      return names
    }
    expect(declared("index.d.ts")).toEqual(merged(runtimeApi.index, typeApi.index))
    expect(declared("testing/index.d.ts")).toEqual(merged(runtimeApi.testing, typeApi.testing))
  })
})
