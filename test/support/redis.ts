/**
 * A real Redis server for the shared-state tests: `redis-server` (Debian's
 * package, installed by `.ci/run`) on a free loopback port, in a temporary
 * directory, persisting nothing; stopped with the scope. `stop` and `start`
 * take it down and bring it back on the same port, for the outage tests.
 */
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import { type ChildProcess, spawn } from "node:child_process"
import { mkdtempSync, rmSync } from "node:fs"
import { createServer } from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"

/** A running (or stopped) test Redis. */
export interface TestRedis {
  readonly url: string
  readonly port: number
  /** Stops the server (SIGKILL: no shutdown save) and waits for it to exit. */
  readonly stop: () => Promise<void>
  /** Starts it again on the same port, empty, and waits until it accepts connections. */
  readonly start: () => Promise<void>
}

/** A free loopback port, from the kernel. */
export const freePort = (): Promise<number> =>
  new Promise((resolve, reject) => {
    const server = createServer()
    server.once("error", reject)
    server.listen(0, "127.0.0.1", () => {
      const address = server.address()
      const port = typeof address === "object" && address !== null ? address.port : 0
      server.close(() => resolve(port))
    })
  })

const launch = (port: number, dir: string): Promise<ChildProcess> =>
  new Promise((resolve, reject) => {
    const child = spawn("redis-server", [
      "--port",
      String(port),
      "--bind",
      "127.0.0.1",
      "--dir",
      dir,
      "--save",
      "",
      "--appendonly",
      "no",
      "--protected-mode",
      "no"
    ], { stdio: ["ignore", "pipe", "pipe"] })
    let output = ""
    const onData = (data: Buffer) => {
      output += data.toString()
      if (output.includes("Ready to accept connections")) {
        child.stdout!.off("data", onData)
        child.stdout!.resume()
        resolve(child)
      }
    }
    child.stdout!.on("data", onData)
    child.stderr!.resume()
    child.once("error", reject)
    child.once("exit", (code) => reject(new Error(`redis-server exited (${code}): ${output}`)))
  })

const exited = (child: ChildProcess): Promise<void> =>
  new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve()
    child.once("exit", () => resolve())
    child.kill("SIGKILL")
  })

/** Starts a Redis server for the scope. */
export const testRedis: Effect.Effect<TestRedis, never, Scope.Scope> = Effect.acquireRelease(
  Effect.promise(async () => {
    const dir = mkdtempSync(join(tmpdir(), "effect-llm-redis-"))
    const port = await freePort()
    let child: ChildProcess | undefined = await launch(port, dir)
    const redis: TestRedis & { readonly dir: string } = {
      url: `redis://127.0.0.1:${port}`,
      port,
      dir,
      stop: async () => {
        if (child !== undefined) await exited(child)
        child = undefined
      },
      start: async () => {
        if (child === undefined) child = await launch(port, dir)
      }
    }
    return redis
  }),
  (redis) =>
    Effect.promise(async () => {
      await redis.stop()
      rmSync(redis.dir, { recursive: true, force: true })
    })
)
