/**
 * One MCP server's connection through the official SDK: connecting (a child
 * process over stdio, or Streamable HTTP), its tool list kept current, calls
 * that an interruption cancels (`notifications/cancelled`), and reconnecting
 * after the server went away, with backoff when it keeps going away.
 */
import type { Client } from "@modelcontextprotocol/sdk/client/index.js"
import type { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js"
import type {
  StreamableHTTPClientTransport,
  StreamableHTTPError
} from "@modelcontextprotocol/sdk/client/streamableHttp.js"
import type { McpError, Tool as ListedTool } from "@modelcontextprotocol/sdk/types.js"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import * as FiberId from "effect/FiberId"
import * as FiberSet from "effect/FiberSet"
import * as Redacted from "effect/Redacted"
import type * as Scope from "effect/Scope"
import type { JsonObject } from "../Message.js"
import type { ResultContent } from "./mcpContent.js"

/**
 * A tool as a server lists it.
 *
 * @internal
 */
export type McpTool = ListedTool

/**
 * How to reach a server: a command to run, or a URL.
 *
 * @internal
 */
export type Target =
  | {
    readonly kind: "stdio"
    readonly command: string
    readonly args: ReadonlyArray<string>
    readonly env: Readonly<Record<string, string | Redacted.Redacted<string>>>
    readonly cwd: string | undefined
    readonly stderr: "inherit" | "ignore"
  }
  | {
    readonly kind: "http"
    readonly url: URL
    readonly headers: Readonly<Record<string, string | Redacted.Redacted<string>>>
  }

/**
 * What a connection needs.
 *
 * @internal
 */
export interface ConnectionOptions {
  readonly name: string
  readonly target: Target
  readonly clientInfo: { readonly name: string; readonly version: string }
  readonly connectTimeout: Duration.Duration
  readonly initialDelay: Duration.Duration
  readonly maxDelay: Duration.Duration
  /** Runs after the tool list changed (a notification, a reconnection). */
  readonly onToolsChanged: Effect.Effect<void>
}

/**
 * A call's result: what the model reads, and whether the tool says it failed.
 *
 * @internal
 */
export interface CallResult extends ResultContent {
  readonly isError?: boolean | undefined
}

/**
 * Why a call has no result: the server could not be reached (`unreachable`),
 * went away during the call (`lost`), or answered with a JSON-RPC error
 * (`error`). `detail` says it for the model.
 *
 * @internal
 */
export interface CallFailure {
  readonly kind: "unreachable" | "lost" | "error"
  readonly detail: string
}

/**
 * A connection's state, for `McpToolkit`'s `servers`.
 *
 * @internal
 */
export interface ConnectionStatus {
  readonly connected: boolean
  readonly pid: number | undefined
  readonly restarts: number
  readonly inFlight: number
}

/**
 * A server's connection.
 *
 * @internal
 */
export interface Connection {
  readonly name: string
  /** The tools the server listed last. */
  readonly tools: ReadonlyArray<McpTool>
  readonly status: ConnectionStatus
  /** Calls a tool (connecting first if needed). Interrupting the call cancels it on the server. */
  readonly call: (tool: string, args: JsonObject) => Effect.Effect<CallResult, CallFailure>
}

interface Sdk {
  readonly Client: typeof Client
  readonly StdioClientTransport: typeof StdioClientTransport
  readonly StreamableHTTPClientTransport: typeof StreamableHTTPClientTransport
  readonly StreamableHTTPError: typeof StreamableHTTPError
  readonly McpError: typeof McpError
  readonly connectionClosed: number
}

let sdk: Promise<Sdk> | undefined

/** The SDK's modules, loaded when a toolkit first connects (not when the library is imported). */
const loadSdk = (): Promise<Sdk> =>
  sdk ??= Promise.all([
    import("@modelcontextprotocol/sdk/client/index.js"),
    import("@modelcontextprotocol/sdk/client/stdio.js"),
    import("@modelcontextprotocol/sdk/client/streamableHttp.js"),
    import("@modelcontextprotocol/sdk/types.js")
  ]).then(([client, stdio, http, types]) => ({
    Client: client.Client,
    StdioClientTransport: stdio.StdioClientTransport,
    StreamableHTTPClientTransport: http.StreamableHTTPClientTransport,
    StreamableHTTPError: http.StreamableHTTPError,
    McpError: types.McpError,
    connectionClosed: types.ErrorCode.ConnectionClosed
  }))

/** The longest a timer can wait: the SDK's own request timeout is set past any call's, which ours bounds. */
const noSdkTimeout = 2 ** 31 - 1

/** An error as a message says it, with the cause's code when there is one (`fetch failed (ECONNREFUSED)`). */
const describe = (error: unknown): string => {
  if (!(error instanceof Error)) return String(error)
  const cause = error.cause as { readonly code?: unknown; readonly message?: unknown } | undefined
  const code = typeof cause?.code === "string" ? cause.code : typeof cause?.message === "string" ? cause.message : ""
  return code === "" || error.message.includes(code) ? error.message : `${error.message} (${code})`
}

const reveal = (values: Readonly<Record<string, string | Redacted.Redacted<string>>>): Record<string, string> =>
  Object.fromEntries(
    Object.entries(values).map(([key, value]) => [key, Redacted.isRedacted(value) ? Redacted.value(value) : value])
  )

/**
 * How long to wait before reconnecting after `failures` connections in a row
 * were lost or could not be made: at once after the first, then
 * `initial`, doubling, at most `max`.
 *
 * @internal
 */
export const backoff = (failures: number, initial: Duration.Duration, max: Duration.Duration): Duration.Duration =>
  failures <= 1 ? Duration.zero : Duration.min(Duration.times(initial, 2 ** Math.min(failures - 2, 30)), max)

interface Link {
  readonly client: Client
  readonly transport: StdioClientTransport | StreamableHTTPClientTransport
}

/**
 * Connects to a server, lists its tools, and keeps both current until the
 * scope closes; then ends the session (HTTP) or the process (stdio).
 * Fails with why the first connection could not be made.
 *
 * @internal
 */
export const connect = (options: ConnectionOptions): Effect.Effect<Connection, string, Scope.Scope> =>
  Effect.gen(function*() {
    const { name, target } = options
    const loaded = yield* Effect.promise(loadSdk)
    const run = yield* FiberSet.makeRuntime<never>()
    const lock = yield* Effect.makeSemaphore(1)
    const state = {
      link: undefined as Link | undefined,
      tools: [] as ReadonlyArray<McpTool>,
      failures: 0,
      lastFailure: 0,
      restarts: 0,
      inFlight: 0,
      closed: false,
      refreshing: undefined as Deferred.Deferred<void> | undefined,
      stale: false
    }
    const log = (message: string) => run(Effect.logDebug(`MCP server ${name}: ${message}`))
    const connectMillis = Duration.toMillis(options.connectTimeout)

    const closeQuietly = (client: Client) => Effect.promise(() => client.close().catch(() => {}))

    const listTools = (client: Client) =>
      Effect.tryPromise({
        try: async (signal) => {
          const tools: Array<McpTool> = []
          let cursor: string | undefined
          // pages until the server gives no cursor (at most 100: a server that always gives one is not believed)
          for (let page = 0; page < 100; page++) {
            const listed = await client.listTools(cursor === undefined ? undefined : { cursor }, {
              signal,
              timeout: connectMillis
            })
            for (const tool of listed.tools) tools.push(tool)
            cursor = listed.nextCursor
            if (cursor === undefined) break
          }
          return tools as ReadonlyArray<McpTool>
        },
        catch: describe
      })

    /** The link is gone (the process exited, the connection closed): the next call reconnects. */
    const lost = (client: Client) => {
      if (state.link?.client !== client) return
      state.link = undefined
      if (state.closed) return
      state.failures++
      state.lastFailure = Date.now()
      log("the connection closed")
    }

    /** Lists the tools again after `notifications/tools/list_changed`; one listing at a time, once more if notified meanwhile. */
    const refresh = (client: Client) => {
      if (state.refreshing !== undefined) {
        state.stale = true
        return
      }
      const loop: Effect.Effect<void> = Effect.gen(function*() {
        do {
          state.stale = false
          const listed = yield* Effect.either(listTools(client))
          if (state.link?.client !== client) return
          if (Either.isLeft(listed)) {
            yield* Effect.logWarning(`MCP server ${name}: the tool list could not be read again: ${listed.left}`)
            return
          }
          state.tools = listed.right
          yield* options.onToolsChanged
        } while (state.stale)
      })
      const done = Deferred.unsafeMake<void>(FiberId.none)
      state.refreshing = done
      run(loop.pipe(Effect.ensuring(Effect.suspend(() => {
        if (state.refreshing === done) state.refreshing = undefined
        return Deferred.succeed(done, undefined)
      }))))
    }

    const makeTransport = () =>
      target.kind === "stdio"
        ? new loaded.StdioClientTransport({
          command: target.command,
          args: [...target.args],
          env: reveal(target.env),
          stderr: target.stderr,
          ...(target.cwd === undefined ? {} : { cwd: target.cwd })
        })
        : new loaded.StreamableHTTPClientTransport(target.url, { requestInit: { headers: reveal(target.headers) } })

    /** A new connection: the process started (stdio) or the session opened (HTTP), initialized, its tools listed. */
    const open: Effect.Effect<{ readonly link: Link; readonly tools: ReadonlyArray<McpTool> }, string> = Effect.gen(
      function*() {
        const transport = makeTransport()
        // a list change notified before this connection is the live one is read before it becomes so
        let notified = false
        const client: Client = new loaded.Client(options.clientInfo, {
          capabilities: {},
          listChanged: {
            tools: {
              autoRefresh: false,
              debounceMs: 0,
              onChanged: () => {
                if (state.link?.client === client) refresh(client)
                else notified = true
              }
            }
          }
        })
        client.onclose = () => lost(client)
        client.onerror = (error) => {
          log(error.message)
          // The SDK reports a Streamable HTTP stream cut mid-response here and leaves the request
          // waiting; closing the client fails it at once (ConnectionClosed) and the next call reconnects.
          if (target.kind === "http" && error.message.startsWith("SSE stream disconnected")) {
            void client.close().catch(() => {})
          }
        }
        const closeUnlessDone = <A, E>(effect: Effect.Effect<A, E>) =>
          Effect.onExit(effect, (exit) => (Exit.isSuccess(exit) ? Effect.void : closeQuietly(client)))
        yield* Effect.tryPromise({
          try: (signal) => client.connect(transport, { signal, timeout: connectMillis }),
          catch: describe
        }).pipe(closeUnlessDone)
        let tools = yield* listTools(client).pipe(closeUnlessDone)
        while (notified) {
          notified = false
          tools = yield* listTools(client).pipe(closeUnlessDone)
        }
        log(`connected${transport instanceof loaded.StdioClientTransport ? ` (pid ${transport.pid})` : ""}`)
        return { link: { client, transport }, tools }
      }
    ).pipe(
      Effect.timeoutFail({
        duration: options.connectTimeout,
        onTimeout: () => `no answer within ${Duration.format(options.connectTimeout)}`
      })
    )

    const verb = target.kind === "stdio" ? "started" : "reached"

    /** The live link, reconnecting first (after the backoff) when there is none. */
    const ensure: Effect.Effect<Link, CallFailure> = lock.withPermits(1)(Effect.suspend(() => {
      if (state.link !== undefined) return Effect.succeed(state.link)
      if (state.closed) {
        return Effect.fail<CallFailure>({ kind: "unreachable", detail: `the MCP server ${name} is closed` })
      }
      const wait = Duration.toMillis(backoff(state.failures, options.initialDelay, options.maxDelay))
      const remaining = Math.max(0, state.lastFailure + wait - Date.now())
      return Effect.sleep(Duration.millis(remaining)).pipe(
        Effect.zipRight(open),
        Effect.matchEffect({
          onFailure: (detail) => {
            state.failures++
            state.lastFailure = Date.now()
            return Effect.fail<CallFailure>({
              kind: "unreachable",
              detail: `the MCP server ${name} could not be ${verb}: ${detail}`
            })
          },
          onSuccess: ({ link, tools }) => {
            state.link = link
            state.restarts++
            state.tools = tools
            return Effect.as(options.onToolsChanged, link)
          }
        })
      )
    }))

    /** How a failed call's error is read: the tool's own failure, a request that never reached a server, or a lost connection. */
    const classify = (error: unknown): "tool" | "undelivered" | "lost" => {
      if (error instanceof loaded.McpError) return error.code === loaded.connectionClosed ? "lost" : "tool"
      if (error instanceof Error && error.name === "ZodError") return "tool"
      if (error instanceof loaded.StreamableHTTPError && error.code === 404) return "undelivered"
      if (error instanceof Error && error.message === "Not connected") return "undelivered"
      return "lost"
    }

    const lostDetail = target.kind === "stdio"
      ? `the MCP server ${name} exited during the call (it is restarted at the next call)`
      : `the connection to the MCP server ${name} closed during the call (it reconnects at the next call)`

    const attempt = (tool: string, args: JsonObject): Effect.Effect<CallResult, CallFailure> =>
      Effect.gen(function*() {
        for (let attempt = 0;; attempt++) {
          const link = yield* ensure
          const outcome = yield* Effect.either(Effect.tryPromise({
            try: (signal) =>
              link.client.callTool({ name: tool, arguments: args }, undefined, { signal, timeout: noSdkTimeout }),
            catch: (error) => error
          }))
          if (Either.isRight(outcome)) {
            state.failures = 0
            // a list change notified during the call is read before the model's next step
            const refreshing = state.refreshing
            if (refreshing !== undefined) yield* Deferred.await(refreshing)
            return outcome.right as CallResult
          }
          const kind = classify(outcome.left)
          if (kind === "tool") return yield* Effect.fail<CallFailure>({ kind: "error", detail: describe(outcome.left) })
          if (state.link === link) yield* closeQuietly(link.client)
          lost(link.client)
          // a session the server no longer knows (404) never ran the call: reconnect and send it once more
          if (kind === "undelivered" && attempt === 0) continue
          return yield* Effect.fail<CallFailure>({ kind: "lost", detail: lostDetail })
        }
      })

    const call = (tool: string, args: JsonObject): Effect.Effect<CallResult, CallFailure> =>
      Effect.suspend(() => {
        state.inFlight++
        return attempt(tool, args).pipe(Effect.ensuring(Effect.sync(() => state.inFlight--)))
      })

    const opened = yield* open
    state.link = opened.link
    state.tools = opened.tools

    yield* Effect.addFinalizer(() =>
      Effect.gen(function*() {
        state.closed = true
        const link = state.link
        state.link = undefined
        if (link === undefined) return
        if (link.transport instanceof loaded.StreamableHTTPClientTransport) {
          const transport = link.transport
          yield* Effect.tryPromise(() => transport.terminateSession()).pipe(Effect.timeout("2 seconds"), Effect.ignore)
        }
        yield* closeQuietly(link.client)
      })
    )

    return {
      name,
      get tools() {
        return state.tools
      },
      get status() {
        const transport = state.link?.transport
        return {
          connected: state.link !== undefined,
          pid: transport instanceof loaded.StdioClientTransport ? transport.pid ?? undefined : undefined,
          restarts: state.restarts,
          inFlight: state.inFlight
        }
      },
      call
    }
  })
