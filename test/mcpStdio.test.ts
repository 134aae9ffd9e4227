/**
 * MCP over stdio against a test server built with the SDK's server classes
 * (test/support/mcpStdioServer.mjs): a process that exits mid-call fails the
 * call with a typed error and is restarted by the next call, with backoff
 * when it keeps crashing; cancellations reach it; its environment carries
 * secrets; closing the scope ends it.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import { mkdtempSync, readFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { backoff } from "../src/internal/mcpConnection.js"
import * as McpToolkit from "../src/McpToolkit.js"
import { eventually, isAlive, stdioTestServer } from "./support/mcp.js"

const logFile = () => join(mkdtempSync(join(tmpdir(), "mcp-stdio-")), "log")

const lines = (file: string): Array<string> => {
  try {
    return readFileSync(file, "utf8").split("\n").filter((line) => line !== "")
  } catch {
    return []
  }
}

const starts = (file: string) =>
  lines(file).filter((line) => line.startsWith("start ")).map((line) => {
    const [, pid, at] = line.split(" ")
    return { pid: Number(pid), at: Number(at) }
  })

const server = (log: string, overrides: Partial<McpToolkit.StdioServer> = {}): McpToolkit.StdioServer => ({
  name: "local",
  command: process.execPath,
  args: [stdioTestServer],
  env: { MCP_TEST_LOG: log },
  stderr: "ignore",
  ...overrides
})

describe("backoff", () => {
  it("is nothing after the first failure, then doubles from the initial delay up to the cap", () => {
    const delays = [0, 1, 2, 3, 4, 5, 6, 40].map((failures) =>
      Duration.toMillis(backoff(failures, Duration.millis(250), Duration.seconds(2)))
    )
    expect(delays).toEqual([0, 0, 250, 500, 1000, 2000, 2000, 2000])
  })
})

describe("McpToolkit over stdio", () => {
  it.live("a process that exits mid-call fails that call; the next call restarts it", () =>
    Effect.scoped(Effect.gen(function*() {
      const log = logFile()
      const toolkit = yield* McpToolkit.make({ servers: [server(log)] })
      const first = toolkit.servers[0]!.pid!
      const crashed = yield* Effect.flip(toolkit.tools.get("crash")!.run({}))
      expect(crashed).toMatchObject({
        reason: "unavailable",
        name: "crash",
        message: "crash failed: the MCP server local exited during the call (it is restarted at the next call)"
      })
      expect(toolkit.servers[0]!.connected).toBe(false)
      const pong = yield* toolkit.tools.get("ping")!.run({})
      const second = toolkit.servers[0]!.pid!
      expect(second).not.toBe(first)
      expect(pong).toBe(`pong ${second}`)
      // no annotations: it may act on the world, so a speculative generation waits for the final turn
      expect(toolkit.tools.get("ping")!.waitForFinal).toBe(true)
      expect(isAlive(first)).toBe(false)
      expect(toolkit.servers[0]).toMatchObject({ connected: true, restarts: 1 })
      expect(starts(log).map((s) => s.pid)).toEqual([first, second])
    })))

  it.live("a process that keeps crashing is restarted with growing delays, reset by a call that succeeds", () =>
    Effect.scoped(Effect.gen(function*() {
      const log = logFile()
      const toolkit = yield* McpToolkit.make({
        servers: [server(log)],
        reconnect: { initialDelay: "300 millis", maxDelay: "1200 millis" }
      })
      const crash = toolkit.tools.get("crash")!
      const crashedAt: Array<number> = []
      for (let i = 0; i < 4; i++) {
        yield* Effect.flip(crash.run({}))
        crashedAt.push(Date.now())
      }
      const restarted = starts(log).slice(1).map((s) => s.at)
      expect(restarted).toHaveLength(3)
      const delays = restarted.map((at, i) => at - crashedAt[i]!)
      // the first restart is at once, then after 300 ms, then 600 ms; spawning adds its own time to each
      expect(delays[1]).toBeGreaterThanOrEqual(290)
      expect(delays[2]).toBeGreaterThanOrEqual(590)
      expect(delays[1]! - delays[0]!).toBeGreaterThan(150)
      expect(delays[2]! - delays[1]!).toBeGreaterThan(150)
      // a call that succeeds resets the backoff: the next crash is followed by an immediate restart
      yield* toolkit.tools.get("ping")!.run({})
      yield* Effect.flip(crash.run({}))
      const before = Date.now()
      yield* toolkit.tools.get("ping")!.run({})
      const last = starts(log).at(-1)!.at
      // (not reset, the fifth restart would wait 1200 ms)
      expect(last - before).toBeLessThan(900)
    })))

  it.live("an interrupted call reaches the process as a cancellation", () =>
    Effect.scoped(Effect.gen(function*() {
      const log = logFile()
      const toolkit = yield* McpToolkit.make({ servers: [server(log)] })
      const outcome = yield* toolkit.tools.get("slow")!.run({ ms: 10_000 }).pipe(
        Effect.timeoutOption("300 millis")
      )
      expect(outcome._tag).toBe("None")
      yield* Effect.promise(() => eventually(() => lines(log).includes("cancelled slow")))
      expect(yield* toolkit.tools.get("ping")!.run({})).toMatch(/^pong /)
    })))

  it.live("passes its environment, secrets as Redacted, and ends the process when the scope closes", () =>
    Effect.gen(function*() {
      const log = logFile()
      const pid = yield* Effect.scoped(Effect.gen(function*() {
        const toolkit = yield* McpToolkit.make({
          servers: [server(log, { env: { MCP_TEST_LOG: log, TEST_TOKEN: Redacted.make("0123456789") } })]
        })
        expect(yield* toolkit.tools.get("secret")!.run({})).toBe("token length 10")
        return toolkit.servers[0]!.pid!
      }))
      expect(isAlive(pid)).toBe(false)
    }))

  it.live("a command that cannot start fails the layer with McpServerError", () =>
    Effect.gen(function*() {
      const error = yield* Effect.scoped(
        McpToolkit.make({ servers: [{ name: "missing", command: "/nonexistent/mcp-server", stderr: "ignore" }] })
      ).pipe(Effect.flip)
      expect(error._tag).toBe("McpServerError")
      expect(error.server).toBe("missing")
      expect(error.message).toContain("MCP server missing could not be started")
    }))
})
