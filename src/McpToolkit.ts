/**
 * Tools from MCP servers: a toolkit that connects to Model Context Protocol
 * servers with the official SDK (a command over stdio, or a URL over
 * Streamable HTTP), lists their tools and calls them, so `Toolkit.run`,
 * `Toolkit.stream` and `Conversation` use them like Schema tools.
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import { type CallFailure, connect, type Connection, type McpTool, type Target } from "./internal/mcpConnection.js"
import { renderResult } from "./internal/mcpContent.js"
import { modelNames } from "./internal/mcpNames.js"
import {
  describeBaseUrlProblem,
  durationProblem,
  headerValueProblem,
  isInsecureRemote,
  parseBaseUrl,
  plainHttpRefusal
} from "./internal/validate.js"
import type { ToolDefinition } from "./Message.js"
import * as Tool from "./Tool.js"
import type * as Toolkit from "./Toolkit.js"

/**
 * What every server takes.
 *
 * @since 0.1.0
 */
export interface ServerOptions {
  /** Names the server in messages, statuses and tool prefixes; unique among the servers. */
  readonly name: string
  /** Offer every tool as `<name>_<tool>` (default: only tools whose name another server also has). */
  readonly prefix?: boolean | undefined
  /** How long a call of this server's tools may take (default: the toolkit's `timeout`). */
  readonly timeout?: Duration.DurationInput | undefined
  /** Per tool, by the server's name for it: how long a call may take. */
  readonly toolTimeouts?: Readonly<Record<string, Duration.DurationInput>> | undefined
}

/**
 * A server run as a child process, spoken to over its stdin and stdout.
 *
 * @since 0.1.0
 */
export interface StdioServer extends ServerOptions {
  readonly command: string
  readonly args?: ReadonlyArray<string> | undefined
  /**
   * Added to the few variables the child inherits (the SDK's default:
   * `HOME`, `PATH`, `SHELL`, `TERM`, `USER`, `LOGNAME`). Secrets as `Redacted`.
   */
  readonly env?: Readonly<Record<string, string | Redacted.Redacted<string>>> | undefined
  readonly cwd?: string | undefined
  /** Where the child's stderr goes (default `"inherit"`: this process's stderr). */
  readonly stderr?: "inherit" | "ignore" | undefined
}

/**
 * A server reached over Streamable HTTP.
 *
 * @since 0.1.0
 */
export interface HttpServer extends ServerOptions {
  /** The MCP endpoint, `https://host/mcp`. User info in it becomes Basic credentials. */
  readonly url: string
  /** Sent with every request (an `Authorization` header, say). Secrets as `Redacted`. */
  readonly headers?: Readonly<Record<string, string | Redacted.Redacted<string>>> | undefined
  /** Send headers or credentials over plain http to a host that is not loopback (off by default). */
  readonly allowInsecureHttp?: boolean | undefined
}

/**
 * A server to take tools from.
 *
 * @since 0.1.0
 */
export type Server = StdioServer | HttpServer

/**
 * The toolkit's options.
 *
 * @since 0.1.0
 */
export interface Options {
  readonly servers: ReadonlyArray<Server>
  /** How long a tool call may take, connecting included (default 60 seconds). The call is cancelled on the server when it is up. */
  readonly timeout?: Duration.DurationInput | undefined
  /** How long connecting and listing the tools may take (default 30 seconds). */
  readonly connectTimeout?: Duration.DurationInput | undefined
  /**
   * Reconnecting after a server went away: the first time at once, then
   * after `initialDelay` (default 250 millis), doubling up to `maxDelay`
   * (default 10 seconds) while it keeps going away; a call that succeeds resets it.
   */
  readonly reconnect?: {
    readonly initialDelay?: Duration.DurationInput | undefined
    readonly maxDelay?: Duration.DurationInput | undefined
  } | undefined
  /** How this client introduces itself to servers (default `effect-llm` 0.1.0). */
  readonly clientInfo?: { readonly name: string; readonly version: string } | undefined
}

/**
 * One server as the toolkit sees it now.
 *
 * @since 0.1.0
 */
export interface ServerStatus {
  readonly name: string
  readonly transport: "stdio" | "http"
  readonly connected: boolean
  /** The child process (stdio, while connected). */
  readonly pid: number | undefined
  /** Tools offered from this server. */
  readonly tools: number
  /** Reconnections since the start (process restarts, for stdio). */
  readonly restarts: number
  /** Calls running now. */
  readonly inFlight: number
}

/**
 * The toolkit: a `Toolkit.Toolkit` whose tools follow the servers' lists,
 * and the servers' state.
 *
 * @since 0.1.0
 */
export interface Service extends Toolkit.Toolkit {
  readonly servers: ReadonlyArray<ServerStatus>
}

/**
 * The toolkit as a service, provided by `layer`.
 *
 * @since 0.1.0
 */
export class McpToolkit extends Context.Tag("effect-llm/McpToolkit")<McpToolkit, Service>() {}

/**
 * A server that cannot be used: its options are wrong, or it could not be
 * started or reached when the toolkit was made. The message never holds a
 * header or environment value.
 *
 * @since 0.1.0
 */
export class McpServerError extends Schema.TaggedError<McpServerError>("effect-llm/McpServerError")(
  "McpServerError",
  {
    server: Schema.String,
    message: Schema.String
  }
) {}

const defaults = {
  timeout: Duration.seconds(60),
  connectTimeout: Duration.seconds(30),
  initialDelay: Duration.millis(250),
  maxDelay: Duration.seconds(10),
  clientInfo: { name: "effect-llm", version: "0.1.0" }
} as const

const isStdio = (server: Server): server is StdioServer => "command" in server

interface Checked {
  readonly server: Server
  readonly target: Target
  readonly timeout: Duration.Duration
  readonly toolTimeouts: ReadonlyMap<string, Duration.Duration>
}

/** Every option checked once, before anything starts: the first problem is the error. */
const check = (options: Options) =>
  Effect.gen(function*() {
    const refuse = (server: string, message: string) =>
      Effect.fail(new McpServerError({ server, message: `MCP server ${server}: ${message}` }))
    const duration = (server: string | undefined, what: string, input: Duration.DurationInput | undefined) => {
      const problem = durationProblem(input)
      if (problem === undefined) return Effect.succeed(input)
      return server === undefined
        ? Effect.fail(new McpServerError({ server: "", message: `McpToolkit: the ${what} option ${problem}` }))
        : refuse(server, `the ${what} option ${problem}`)
    }
    for (
      const [what, input] of [
        ["timeout", options.timeout],
        ["connectTimeout", options.connectTimeout],
        ["reconnect.initialDelay", options.reconnect?.initialDelay],
        ["reconnect.maxDelay", options.reconnect?.maxDelay]
      ] as const
    ) yield* duration(undefined, what, input)
    const names = new Set<string>()
    const checked: Array<Checked> = []
    for (const server of options.servers) {
      const name = server.name
      if (typeof name !== "string" || name.trim() === "") return yield* refuse(String(name), "a server needs a name")
      if (names.has(name)) return yield* refuse(name, "the name is given to two servers; each needs its own")
      names.add(name)
      yield* duration(name, "timeout", server.timeout)
      const toolTimeouts = new Map<string, Duration.Duration>()
      for (const [tool, input] of Object.entries(server.toolTimeouts ?? {})) {
        yield* duration(name, `toolTimeouts.${tool}`, input)
        toolTimeouts.set(tool, Duration.decode(input))
      }
      const timeout = Duration.decode(server.timeout ?? options.timeout ?? defaults.timeout)
      if (isStdio(server)) {
        if (typeof server.command !== "string" || server.command.trim() === "") {
          return yield* refuse(name, "the command to run is empty")
        }
        if (server.stderr !== undefined && server.stderr !== "inherit" && server.stderr !== "ignore") {
          return yield* refuse(name, `stderr must be "inherit" or "ignore", got ${JSON.stringify(server.stderr)}`)
        }
        checked.push({
          server,
          timeout,
          toolTimeouts,
          target: {
            kind: "stdio",
            command: server.command,
            args: server.args ?? [],
            env: server.env ?? {},
            cwd: server.cwd,
            stderr: server.stderr ?? "inherit"
          }
        })
        continue
      }
      const base = parseBaseUrl(String(server.url))
      if ("invalid" in base) return yield* refuse(name, describeBaseUrlProblem(String(server.url), base))
      const headers = { ...server.headers }
      for (const [key, value] of Object.entries(headers)) {
        const problem = typeof value === "string"
          ? headerValueProblem(value)
          : Redacted.isRedacted(value)
          ? headerValueProblem(Redacted.value(value))
          : "is not text"
        // never echoed: a header value may be a key
        if (problem !== undefined) return yield* refuse(name, `the value of header ${key} ${problem}`)
      }
      if (
        base.authorization !== undefined && !Object.keys(headers).some((key) => key.toLowerCase() === "authorization")
      ) {
        headers.authorization = base.authorization
      }
      if (Object.keys(headers).length > 0 && server.allowInsecureHttp !== true && isInsecureRemote(base.parsed)) {
        return yield* refuse(name, plainHttpRefusal("headers or credentials", base.parsed.host))
      }
      checked.push({ server, timeout, toolTimeouts, target: { kind: "http", url: base.parsed, headers } })
    }
    return checked
  })

const failureAsError = (name: string, failure: CallFailure): Tool.ToolExecutionError =>
  new Tool.ToolExecutionError({
    toolCallId: "",
    name,
    reason: failure.kind === "error" ? "handler_failed" : "unavailable",
    message: failure.kind === "unreachable"
      ? `${name} is unavailable: ${failure.detail}`
      : `${name} failed: ${failure.detail}`
  })

/** A server's tool as a toolkit tool, offered to the model as `modelName`. */
const toolOf = (
  connection: Connection,
  tool: McpTool,
  modelName: string,
  timeout: Duration.Duration
): Effect.Effect<Tool.Tool, Tool.ToolSchemaError> =>
  Tool.fromJsonSchema(modelName, {
    description: tool.description ?? tool.title ?? "",
    parameters: tool.inputSchema,
    // a tool that does not say it only reads may act on the world: not from words the user did not finally say
    waitForFinal: tool.annotations?.readOnlyHint !== true,
    handler: (args) =>
      connection.call(tool.name, args).pipe(
        Effect.mapError((failure) => failureAsError(modelName, failure)),
        Effect.timeoutFail({
          duration: timeout,
          onTimeout: () =>
            new Tool.ToolExecutionError({
              toolCallId: "",
              name: modelName,
              reason: "timeout",
              message: `${modelName} did not answer within ${Duration.format(timeout)}; the call was cancelled`
            })
        }),
        Effect.flatMap((result) => {
          const text = renderResult(result)
          return result.isError === true
            ? Effect.fail(
              new Tool.ToolExecutionError({
                toolCallId: "",
                name: modelName,
                reason: "handler_failed",
                message: text === "" ? `${modelName} failed` : text
              })
            )
            : Effect.succeed(text)
        })
      )
  })

/**
 * Connects to every server (at once), lists their tools and gives a
 * toolkit of them; closing the scope ends every session and every child
 * process. Fails with `McpServerError` when an option is wrong or a server
 * cannot be started or reached.
 *
 * Each tool's parameters are its JSON Schema, reshaped into what every
 * backend accepts (see `Tool.fromJsonSchema`), and its arguments are
 * checked against the schema before the call: an invalid call, an error
 * result (`isError`), a JSON-RPC error, a timeout or a server that went
 * away during the call all go back to the model as error results
 * (`ToolExecutionError` with `failOnToolError`). Results: text as it is,
 * `structuredContent` as JSON, images, audio and resources described.
 * Tools only callable as tasks are left out, and so is a tool whose schema
 * cannot be compiled (with a warning in the log). A tool waits for the final
 * turn in a speculative generation (`Tool.waitForFinal`) unless its
 * annotations say it only reads (`readOnlyHint: true`).
 *
 * The tools follow the servers: a `notifications/tools/list_changed` is
 * read before the call that saw it returns, so the loop offers the new list
 * at its next step. Interrupting a call (barge-in) or its timeout cancels it
 * on the server (`notifications/cancelled`). A server that goes away is
 * reconnected by the next call (stdio: the process is restarted), with
 * backoff while it keeps going away.
 *
 * @since 0.1.0
 */
export const make = (options: Options): Effect.Effect<Service, McpServerError, Scope.Scope> =>
  Effect.gen(function*() {
    const checked = yield* check(options)
    const lock = yield* Effect.makeSemaphore(1)
    const connections: Array<Connection | undefined> = checked.map(() => undefined)
    let current: { readonly kit: Toolkit.Toolkit; readonly counts: ReadonlyArray<number> } = {
      kit: { tools: new Map(), definitions: [] },
      counts: checked.map(() => 0)
    }
    let built = new Map<string, Tool.Tool | null>()

    /** The toolkit from every server's latest list; a tool already built for the same listing is reused. */
    const rebuild: Effect.Effect<void> = lock.withPermits(1)(Effect.gen(function*() {
      const listed = checked.map(({ server }, i) => ({
        server,
        tools: (connections[i]?.tools ?? []).filter((tool) => tool.execution?.taskSupport !== "required")
      }))
      const names = modelNames(listed.map(({ server, tools }) => ({
        server: server.name,
        prefix: server.prefix === true,
        tools: tools.map((tool) => tool.name)
      })))
      const next = new Map<string, Tool.Tool | null>()
      const tools = new Map<string, Tool.Tool>()
      const counts: Array<number> = []
      for (const [i, { server, tools: serverTools }] of listed.entries()) {
        const connection = connections[i]!
        let count = 0
        for (const tool of serverTools) {
          const modelName = names[i]!.get(tool.name)!
          if (tools.has(modelName)) continue
          const timeout = checked[i]!.toolTimeouts.get(tool.name) ?? checked[i]!.timeout
          const readOnly = tool.annotations?.readOnlyHint === true
          const key = JSON.stringify([
            i,
            tool.name,
            modelName,
            tool.description,
            tool.title,
            tool.inputSchema,
            readOnly
          ])
          let ready = built.get(key)
          if (ready === undefined) {
            const made = yield* Effect.either(toolOf(connection, tool, modelName, timeout))
            if (Either.isLeft(made)) {
              yield* Effect.logWarning(`MCP server ${server.name}: tool ${tool.name} left out: ${made.left.message}`)
            }
            ready = Either.getOrNull(made)
          }
          // null: left out (and said so) the first time this listing was seen
          next.set(key, ready)
          if (ready === null) continue
          tools.set(modelName, ready)
          count++
        }
        counts.push(count)
      }
      built = next
      const definitions: ReadonlyArray<ToolDefinition> = [...tools.values()].map((tool) => tool.definition)
      current = { kit: { tools, definitions }, counts }
    }))

    yield* Effect.forEach(checked, ({ server, target }, i) =>
      connect({
        name: server.name,
        target,
        clientInfo: options.clientInfo ?? defaults.clientInfo,
        connectTimeout: Duration.decode(options.connectTimeout ?? defaults.connectTimeout),
        initialDelay: Duration.decode(options.reconnect?.initialDelay ?? defaults.initialDelay),
        maxDelay: Duration.decode(options.reconnect?.maxDelay ?? defaults.maxDelay),
        onToolsChanged: Effect.suspend(() => rebuild)
      }).pipe(
        Effect.tap((connection) => Effect.sync(() => (connections[i] = connection))),
        Effect.mapError((detail) =>
          new McpServerError({
            server: server.name,
            message: `MCP server ${server.name} could not be ${isStdio(server) ? "started" : "reached"}: ${detail}`
          })
        )
      ), { concurrency: "unbounded", discard: true })
    yield* rebuild

    return {
      get tools() {
        return current.kit.tools
      },
      get definitions() {
        return current.kit.definitions
      },
      get servers() {
        return checked.map(({ server }, i): ServerStatus => ({
          name: server.name,
          transport: isStdio(server) ? "stdio" : "http",
          ...connections[i]!.status,
          tools: current.counts[i] ?? 0
        }))
      }
    }
  })

/**
 * The toolkit as a layer (`McpToolkit`): connected when the layer is built,
 * closed (sessions ended, processes stopped) when it is released.
 *
 * @since 0.1.0
 */
export const layer = (options: Options): Layer.Layer<McpToolkit, McpServerError> =>
  Layer.scoped(McpToolkit, make(options))
