/**
 * `npm run chat`: an interactive chat in the terminal over the configuration
 * file (`--config`, default `LLM_CONFIG`, then `config.yaml`, as
 * `LlmConfig.layerFromFile` reads it). Replies stream as they arrive; after
 * each one a dim line gives the backend, the time to the first token, the
 * tokens per second and the cost. Commands: `/reset`, `/backend NAME`,
 * `/usage`, `/exit`.
 *
 * Ctrl-C during a reply interrupts the reply (its request is closed) and the
 * chat goes on; Ctrl-C at the prompt, or the end of input, ends the chat.
 * With no configuration file and no key in the environment it talks to the
 * project's fake provider, and says so.
 *
 * Run: npm run chat -- [--config FILE] [--backend NAME] [--system TEXT] [--tools]
 */
import { Command, Options, ValidationError } from "@effect/cli"
import { NodeContext, NodeRuntime } from "@effect/platform-node"
import { Cause, Context, Effect, Exit, Fiber, Layer, Option, Queue, Scope, Stream } from "effect"
import { existsSync } from "node:fs"
import * as readline from "node:readline"
import { environmentLlm } from "../examples/support/backend.js"
import { setTimer } from "../examples/support/kitchen.js"
import {
  Conversation,
  ConversationContext,
  type Errors,
  Llm,
  LlmConfig,
  Local,
  type StreamEvent,
  Toolkit,
  Usage
} from "../src/index.js"
import { metered } from "../src/internal/meter.js"
import { FakeProvider } from "../src/testing/index.js"

// ---------------------------------------------------------------------------
// Output
// ---------------------------------------------------------------------------

const colour = process.stdout.isTTY === true && process.env.NO_COLOR === undefined
const dim = (text: string) => (colour ? `\x1b[2m${text}\x1b[22m` : text)
const write = (text: string) => Effect.sync(() => void process.stdout.write(text))
const line = (text = "") => write(`${text}\n`)

/** Dollars as the cost line shows them; "cost n/a" when unknown. */
const dollars = (cost: number | undefined): string =>
  cost === undefined ? "cost n/a" : cost === 0 ? "$0" : `$${cost.toFixed(cost >= 0.01 ? 4 : 6)}`

const tokens = (n: number) => n.toLocaleString("en-US")

/** What `/usage` prints of a sum. */
const describeUsage = (usage: Usage, calls: number): string => {
  const cache = [
    usage.cachedInputTokens ? `${tokens(usage.cachedInputTokens)} cached` : undefined,
    usage.cacheWriteInputTokens ? `${tokens(usage.cacheWriteInputTokens)} written to the cache` : undefined
  ].filter((part) => part !== undefined)
  const reasoning = usage.reasoningTokens ? ` (${tokens(usage.reasoningTokens)} reasoning)` : ""
  return `usage: ${calls} ${calls === 1 ? "call" : "calls"} · ${tokens(usage.inputTokens)} in${
    cache.length === 0 ? "" : ` (${cache.join(", ")})`
  } · ${tokens(usage.outputTokens)} out${reasoning} · ${dollars(usage.cost)}`
}

// ---------------------------------------------------------------------------
// Backends
// ---------------------------------------------------------------------------

/** The backends the chat can talk to: their names, the first one, and each one's layer. */
interface Backends {
  readonly names: ReadonlyArray<string>
  readonly first: string
  /** What the first is, when it is more than its name (a fallback chain). */
  readonly firstLabel?: string | undefined
  readonly layer: (name: string, first: boolean) => Layer.Layer<Llm.Llm, unknown>
}

/** The `llm` keys that are not backends. */
const notBackends = new Set(["backend", "fallback", "retry", "circuit_breaker"])

const isRecord = (u: unknown): u is Readonly<Record<string, unknown>> =>
  typeof u === "object" && u !== null && !Array.isArray(u)

/** The backends of a configuration file: its sections; the first is its primary, with its fallback chain. */
const fromFile = (path: string) =>
  Effect.gen(function*() {
    const config = yield* LlmConfig.readFile(path)
    const llm = isRecord(config) && isRecord(config.llm) ? config.llm : {}
    const primary = typeof llm.backend === "string" ? llm.backend : ""
    const sections = Object.keys(llm).filter((key) => !notBackends.has(key) && isRecord(llm[key]))
    const names = sections.includes(primary) || primary === "" ? sections : [primary, ...sections]
    const fallback = Array.isArray(llm.fallback) ? llm.fallback.filter((name) => typeof name === "string") : []
    const only = (name: string) =>
      isRecord(config) ? { ...config, llm: { ...llm, backend: name, fallback: [] } } : config
    return {
      names,
      first: primary,
      firstLabel: fallback.length === 0 ? undefined : `${primary}, then ${fallback.join(", ")}`,
      layer: (name, first) =>
        Layer.unwrapEffect(
          LlmConfig.make((first ? config : only(name)) as LlmConfig.LlmConfigInput, { source: path })
        )
    } satisfies Backends
  })

/** A reply of the fake provider: what the user said, streamed a few characters at a time. */
const fakeReply = (request: FakeProvider.RecordedRequest): FakeProvider.Script => {
  const messages = isRecord(request.body) && Array.isArray(request.body.messages) ? request.body.messages : []
  const last = [...messages].reverse().find((message) => isRecord(message) && message.role === "user")
  const said = isRecord(last) && typeof last.content === "string" ? last.content : "…"
  return {
    kind: "reply",
    text: `You said: "${said}" (I am the fake provider: configure a backend to talk to a model.)`,
    chunkSize: 6,
    delayMs: 15
  }
}

/** Without a configuration file: the backend the environment configures, or the fake provider (it says so). */
const fromEnvironment = (scope: Scope.Scope) =>
  Effect.gen(function*() {
    const real = environmentLlm()
    if (real !== undefined) {
      const name = process.env.OPENAI_API_KEY ? "openai" : process.env.ANTHROPIC_API_KEY ? "anthropic" : "local"
      return { names: [name], first: name, layer: () => real } satisfies Backends
    }
    const server = yield* Scope.extend(FakeProvider.make, scope)
    server.respond(fakeReply)
    yield* line(dim(`(no configuration file and no keys: talking to the fake provider at ${server.url})`))
    return {
      names: ["fake"],
      first: "fake",
      layer: () => Local.layer({ baseUrl: server.url, model: "fake-model" })
    } satisfies Backends
  })

// ---------------------------------------------------------------------------
// The chat
// ---------------------------------------------------------------------------

/** What the flags give. */
interface Flags {
  readonly config: Option.Option<string>
  readonly backend: Option.Option<string>
  readonly system: Option.Option<string>
  readonly tools: boolean
}

/** The end of input, as the line queue carries it. */
const end = Symbol("end")

/** One backend in use: its name, its `Llm` (metered) and the conversation over it. */
interface Active {
  readonly name: string
  readonly llm: Llm.Llm.Service
  readonly conversation: Conversation.Conversation.Service
}

/** The SIGINT listeners there before the runtime started (tsx's, which reports the signal to its parent process). */
const atLoad = new Set(process.listeners("SIGINT"))

/** Ctrl-C belongs to the chat: the runtime's SIGINT listener, which would end it, steps aside while it runs. */
const ownSigint = (handler: () => void) =>
  Effect.acquireRelease(
    Effect.sync(() => {
      const previous = process.listeners("SIGINT").filter((listener) => !atLoad.has(listener))
      for (const listener of previous) process.removeListener("SIGINT", listener)
      process.on("SIGINT", handler)
      return previous
    }),
    (previous) =>
      Effect.sync(() => {
        process.removeListener("SIGINT", handler)
        for (const listener of previous) process.on("SIGINT", listener)
      })
  )

const chat = (flags: Flags) =>
  Effect.scoped(Effect.gen(function*() {
    const scope = yield* Effect.scope
    // the runtime registers its own SIGINT listener once this fiber first yields
    yield* Effect.yieldNow()

    const path = Option.getOrUndefined(flags.config) ??
      process.env.LLM_CONFIG ?? "config.yaml"
    if (Option.isSome(flags.config) && !existsSync(path)) {
      return yield* Effect.fail(`${path}: no such configuration file`)
    }
    const backends: Backends = existsSync(path) ? yield* fromFile(path) : yield* fromEnvironment(scope)
    const start = Option.getOrElse(flags.backend, () => backends.first)
    if (!backends.names.includes(start)) {
      return yield* Effect.fail(`unknown backend ${start}; configured: ${backends.names.join(", ")}`)
    }

    // what every call was billed for, and the calls of the turn under way
    const calls: Array<Usage> = []
    let turn: Array<Usage> = []
    const record = (usage: Usage) => {
      calls.push(usage)
      turn.push(usage)
    }

    const built = new Map<string, Llm.Llm.Service>()
    const llmOf = (name: string, first: boolean) =>
      Effect.gen(function*() {
        const key = first ? "" : name
        const cached = built.get(key)
        if (cached !== undefined) return cached
        const context = yield* Layer.buildWithScope(backends.layer(name, first), scope)
        const llm = metered(Context.get(context, Llm.Llm), record)
        built.set(key, llm)
        return llm
      })
    const fresh = () =>
      Option.match(flags.system, {
        onNone: () => ConversationContext.make(),
        onSome: (systemMessage) => ConversationContext.make({ systemMessage })
      })
    const activate = (name: string, first: boolean, context: ConversationContext.ConversationContext) =>
      Effect.gen(function*() {
        const llm = yield* llmOf(name, first)
        const conversation = yield* Conversation.make(context).pipe(Effect.provideService(Llm.Llm, llm))
        return { name, llm, conversation } satisfies Active
      })

    let active = yield* activate(start, Option.isNone(flags.backend), fresh())
    const toolkit = flags.tools ? Toolkit.make(setTimer) : undefined
    const label = Option.isNone(flags.backend) && backends.firstLabel !== undefined ? backends.firstLabel : start
    yield* line(
      `effect-llm chat · ${label} (${active.llm.provider}, ${active.llm.model})${flags.tools ? " · tools on" : ""}`
    )
    yield* line(dim("/reset  /backend NAME  /usage  /exit  · Ctrl-C stops a reply"))

    // input: one line at a time, queued while a reply streams
    const lines = yield* Queue.unbounded<string | typeof end>()
    const rl = readline.createInterface({ input: process.stdin, output: process.stdout })
    yield* Effect.addFinalizer(() => Effect.sync(() => rl.close()))
    rl.setPrompt("> ")
    rl.on("line", (text) => Queue.unsafeOffer(lines, text))
    rl.on("close", () => Queue.unsafeOffer(lines, end))
    let replying: Fiber.RuntimeFiber<unknown, unknown> | undefined
    const onSigint = () => {
      if (replying !== undefined) Effect.runFork(Fiber.interrupt(replying))
      else Queue.unsafeOffer(lines, end)
    }
    rl.on("SIGINT", onSigint)
    yield* ownSigint(onSigint)

    const reply = (text: string) =>
      Effect.gen(function*() {
        turn = []
        const sent = performance.now()
        let first: number | undefined
        let last = sent
        let finish: Extract<StreamEvent, { _tag: "Finish" }> | undefined
        let atLineStart = true
        const onEvent = (event: StreamEvent) =>
          Effect.sync(() => {
            const now = performance.now()
            switch (event._tag) {
              case "TextDelta":
                first ??= now
                last = now
                process.stdout.write(event.text)
                atLineStart = event.text.endsWith("\n")
                return
              case "ReasoningDelta":
              case "ToolCallStart":
                first ??= now
                return
              case "ToolCall":
                last = now
                process.stdout.write(
                  `${atLineStart ? "" : "\n"}${
                    dim(`→ ${event.toolCall.name} ${JSON.stringify(event.toolCall.arguments)}`)
                  }\n`
                )
                atLineStart = true
                return
              case "Finish":
                finish = event
                return
            }
          })
        const fiber = yield* Effect.fork(
          Stream.runForEach(active.conversation.sendStream(text, toolkit === undefined ? {} : { toolkit }), onEvent)
        )
        replying = fiber
        const exit = yield* Fiber.await(fiber)
        replying = undefined
        if (!atLineStart) yield* line()
        const spent = Usage.sum(turn)
        const firstToken = first === undefined ? "no token" : `first token ${Math.round(first - sent)} ms`
        const seconds = first === undefined ? 0 : (last - first) / 1000
        const rate = seconds > 0 && spent.outputTokens > 0
          ? `${(spent.outputTokens / seconds).toFixed(1)} tok/s`
          : "– tok/s"
        if (Exit.isSuccess(exit)) {
          const answered = finish?.metadata.provider ?? active.llm.provider
          const after = (finish?.metadata.fallbacks ?? []).map((failure) => failure.provider)
          const backend = `${active.name}${answered === active.name ? "" : ` (${answered})`}${
            after.length === 0 ? "" : ` after ${after.join(", ")}`
          }`
          yield* line(
            dim(`${backend} · ${finish?.model ?? active.llm.model} · ${firstToken} · ${rate} · ${dollars(spent.cost)}`)
          )
        } else if (Exit.isInterrupted(exit)) {
          yield* line(
            dim(
              `(interrupted) · ${active.name} · ${firstToken} · ${dollars(turn.length === 0 ? undefined : spent.cost)}`
            )
          )
        } else {
          const error = Cause.squash(exit.cause) as Errors.LlmError | Error
          yield* line(dim(`error: ${"_tag" in error ? `${error._tag}: ` : ""}${error.message}`))
        }
      })

    const command = (text: string) =>
      Effect.gen(function*() {
        const [name = "", ...rest] = text.slice(1).trim().split(/\s+/)
        switch (name) {
          case "exit":
          case "quit":
            return false
          case "reset":
            yield* active.conversation.set(fresh())
            yield* line(dim("(conversation reset)"))
            return true
          case "usage":
            yield* line(describeUsage(Usage.sum(calls), calls.length))
            return true
          case "backend": {
            const wanted = rest[0]
            if (wanted === undefined) {
              yield* line(`backend: ${active.name} · configured: ${backends.names.join(", ")}`)
              return true
            }
            if (!backends.names.includes(wanted)) {
              yield* line(`unknown backend ${wanted}; configured: ${backends.names.join(", ")}`)
              return true
            }
            const context = yield* active.conversation.context
            const next = yield* Effect.either(activate(wanted, false, context))
            if (next._tag === "Left") {
              yield* line(`cannot use ${wanted}: ${String(next.left)}`)
              return true
            }
            active = next.right
            yield* line(dim(`(backend ${active.name}: ${active.llm.provider}, ${active.llm.model})`))
            return true
          }
          default:
            yield* line("commands: /reset  /backend NAME  /usage  /exit")
            return true
        }
      })

    for (;;) {
      rl.prompt()
      const next = yield* Queue.take(lines)
      if (next === end) break
      const text = next.trim()
      if (text === "") continue
      if (text.startsWith("/")) {
        if (!(yield* command(text))) break
        continue
      }
      yield* reply(text)
    }
    yield* line()
  }))

// ---------------------------------------------------------------------------
// The command line
// ---------------------------------------------------------------------------

const command = Command.make("chat", {
  config: Options.file("config").pipe(
    Options.withDescription("The configuration file (YAML or JSON); default: LLM_CONFIG, then config.yaml"),
    Options.optional
  ),
  backend: Options.text("backend").pipe(
    Options.withDescription("The backend to talk to: a section of the configuration file (default: its llm.backend)"),
    Options.optional
  ),
  system: Options.text("system").pipe(Options.withDescription("The system prompt"), Options.optional),
  tools: Options.boolean("tools").pipe(Options.withDescription("Offer the example tools (a kitchen timer)"))
}, (flags) =>
  chat(flags).pipe(
    Effect.catchAll((problem) =>
      Effect.sync(() => {
        process.stderr.write(`chat: ${typeof problem === "string" ? problem : String(problem)}\n`)
        process.exitCode = 1
      })
    )
  )).pipe(Command.withDescription("An interactive chat with the configured backend"))

const cli = Command.run(command, { name: "effect-llm chat", version: "0.1.0" })

cli(process.argv).pipe(
  // the command line's own errors were printed in its style
  Effect.catchIf(ValidationError.isValidationError, () => Effect.sync(() => void (process.exitCode = 1))),
  Effect.provide(NodeContext.layer),
  NodeRuntime.runMain({
    disableErrorReporting: false,
    teardown: (exit, onExit) => {
      const code = Exit.isFailure(exit) && !Cause.isInterruptedOnly(exit.cause) ? 1 : Number(process.exitCode ?? 0)
      onExit(code)
      // stdin may still be open (a terminal, a pipe): the chat is over
      process.exit(code)
    }
  })
)
