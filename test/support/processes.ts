/**
 * Other processes for the multi-process tests: a TypeScript script run by
 * Node through tsx, talking JSON lines (the test writes commands to its
 * stdin, the script writes results to its stdout), killed with the scope.
 * Scripts live in test/support/processes/ and read their commands with
 * `commands()` below.
 */
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import { type ChildProcess, spawn } from "node:child_process"
import { createInterface } from "node:readline"
import { fileURLToPath } from "node:url"

/** One child process. */
export interface Child {
  readonly process: ChildProcess
  /** Writes one command (a JSON line) to the child. */
  readonly send: (message: unknown) => void
  /** The next message the child writes (a JSON line), in order; rejects when it exits first. */
  readonly next: () => Promise<unknown>
  /** Sends a command and waits for the child's answer. */
  readonly ask: (message: unknown) => Promise<unknown>
  /** Everything it wrote to stderr so far. */
  readonly stderr: () => string
  /** Resolves with its exit code or signal once it has exited. */
  readonly exited: Promise<number | string>
}

const tsx = fileURLToPath(new URL("../../node_modules/tsx/dist/loader.mjs", import.meta.url))

/** Starts `script` (a path under test/support/processes/) with `env` added to this process's environment. */
export const child = (
  script: string,
  env: Record<string, string> = {}
): Effect.Effect<Child, never, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.sync(() => {
      const path = fileURLToPath(new URL(`./processes/${script}`, import.meta.url))
      const proc = spawn(process.execPath, ["--import", tsx, path], {
        env: { ...process.env, ...env },
        stdio: ["pipe", "pipe", "pipe"]
      })
      let errors = ""
      proc.stderr!.on("data", (data: Buffer) => (errors += data.toString()))
      const queue: Array<unknown> = []
      const waiting: Array<{ resolve: (value: unknown) => void; reject: (error: Error) => void }> = []
      const exited = new Promise<number | string>((resolve) =>
        proc.once("exit", (code, signal) => {
          for (const waiter of waiting.splice(0)) {
            waiter.reject(new Error(`${script} exited (${code ?? signal}) before answering: ${errors}`))
          }
          resolve(code ?? signal ?? "")
        })
      )
      createInterface({ input: proc.stdout! }).on("line", (line) => {
        let message: unknown
        try {
          message = JSON.parse(line)
        } catch {
          return // not a message: something the script printed
        }
        const waiter = waiting.shift()
        if (waiter !== undefined) waiter.resolve(message)
        else queue.push(message)
      })
      const next = () =>
        queue.length > 0
          ? Promise.resolve(queue.shift())
          : proc.exitCode !== null || proc.signalCode !== null
          ? Promise.reject(new Error(`${script} has exited: ${errors}`))
          : new Promise<unknown>((resolve, reject) => waiting.push({ resolve, reject }))
      const send = (message: unknown) => {
        proc.stdin!.write(JSON.stringify(message) + "\n")
      }
      return {
        process: proc,
        send,
        next,
        ask: (message: unknown) => {
          send(message)
          return next()
        },
        stderr: () => errors,
        exited
      } satisfies Child
    }),
    (made) =>
      Effect.promise(async () => {
        if (made.process.exitCode === null && made.process.signalCode === null) made.process.kill("SIGKILL")
        await made.exited
      })
  )

/** In a child script: each command the test sends, in order, as parsed JSON. */
export async function* commands(): AsyncGenerator<unknown> {
  for await (const line of createInterface({ input: process.stdin })) {
    if (line.trim() !== "") yield JSON.parse(line)
  }
}

/** In a child script: answers the test (one JSON line on stdout). */
export const reply = (message: unknown): void => {
  process.stdout.write(JSON.stringify(message) + "\n")
}
