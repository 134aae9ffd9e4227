/**
 * Where a whole call's CPU goes over a real socket: the bench server in its
 * own process, and in this one, CPU per sequential call of
 * - `raw`: undici's `request`, the body as text, `JSON.parse` (the raw client);
 * - `dispatch`: undici's `dispatch` with a handler gathering the body, as
 *   effect-llm's transport talks to undici, with no Effect;
 * - `transport`: effect-llm's default transport alone (an attempt's scope,
 *   the send, the whole body), run with `Effect.runPromise`;
 * - `lean`: the least provider on that transport (the body built and
 *   stringified, sent, read whole, UTF-8 decoded, parsed, its text taken):
 *   what any Effect client on it pays, with no deadline, retry, metrics,
 *   validation or typed reply;
 * - `complete`: `Llm.complete` on `Local.layer`.
 *
 *   npx tsx bench/completePath.ts [--calls N] [--rounds N] [ROW...]
 *
 * Rows interleave, round after round; each round warms up with as many calls
 * as it measures. The ratio between `lean` and `complete` is what the
 * library's own layers cost; between `raw` and `lean`, what Effect and the
 * transport cost.
 */
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as ManagedRuntime from "effect/ManagedRuntime"
import * as Scope from "effect/Scope"
import { spawn } from "node:child_process"
import * as path from "node:path"
import { type Dispatcher, getGlobalDispatcher, request } from "undici"
import { HttpTransport, Llm, Local, Message } from "../src/index.js"
import { textOf } from "./clients/raw.js"
import { model, prompt } from "./payloads.js"

const argv = process.argv.slice(2)
const option = (name: string): string | undefined => {
  const at = argv.indexOf(`--${name}`)
  return at < 0 ? undefined : argv[at + 1]
}
const calls = Number(option("calls") ?? 2000)
const rounds = Number(option("rounds") ?? 3)
const picked = argv.filter((arg, i) => !arg.startsWith("--") && !argv[i - 1]?.startsWith("--"))

const server = spawn(process.execPath, ["--import", "tsx", path.join(import.meta.dirname, "server.ts")], {
  stdio: ["pipe", "pipe", "inherit"]
})
const port = await new Promise<number>((resolve) =>
  server.stdout.once("data", (data: Buffer) => resolve((JSON.parse(String(data)) as { port: number }).port))
)
const base = `http://127.0.0.1:${port}/fast/v1`
const url = new URL(`${base}/chat/completions`)
const headers = { "content-type": "application/json", accept: "application/json" }
const wire = [{ role: "system", content: prompt.system }, { role: "user", content: prompt.user }]
const body = JSON.stringify({ model, messages: wire })
const messages = [Message.system(prompt.system), Message.user(prompt.user)]
const runtime = ManagedRuntime.make(Local.layer({ baseUrl: base, model }))
const transport = HttpTransport.undici()
const utf8 = new TextDecoder("utf-8", { fatal: true })

const gathered = () =>
  new Promise<string>((resolve, reject) => {
    const parts: Array<Buffer> = []
    const handler: Dispatcher.DispatchHandler = {
      onRequestStart: () => {},
      onResponseStart: () => {},
      onResponseData: (_controller, chunk) => void parts.push(chunk),
      onResponseEnd: () => resolve(textOf("chat", utf8.decode(Buffer.concat(parts)))),
      onResponseError: (_controller, error) => reject(error)
    }
    getGlobalDispatcher().dispatch({ origin: url.origin, path: url.pathname, method: "POST", headers, body }, handler)
  })

const rows: Record<string, () => Promise<unknown>> = {
  raw: async () => {
    const response = await request(url, { method: "POST", headers, body })
    return textOf("chat", await response.body.text())
  },
  dispatch: gathered,
  transport: () =>
    Effect.runPromise(Effect.flatMap(Scope.make(), (scope) =>
      Effect.flatMap(
        transport.send({ method: "POST", url: url.href, headers, body }, scope),
        (response) => response.bytes(1 << 25)
      ).pipe(Effect.ensuring(Scope.close(scope, Exit.void))))),
  lean: () =>
    Effect.runPromise(Effect.suspend(() => {
      const request = {
        method: "POST" as const,
        url: url.href,
        headers,
        body: JSON.stringify({ model, messages: messages.map(({ content, role }) => ({ role, content })) })
      }
      return Effect.flatMap(Scope.make(), (scope) =>
        Effect.flatMap(
          transport.send(request, scope),
          (response) => Effect.map(response.bytes(1 << 25), (bytes) => textOf("chat", utf8.decode(bytes)))
        ).pipe(Effect.ensuring(Scope.close(scope, Exit.void))))
    })),
  complete: () => runtime.runPromise(Effect.map(Llm.complete(messages), (result) => result.content))
}

const measured = Object.entries(rows).filter(([name]) => picked.length === 0 || picked.includes(name))
console.log(`chat, sequential calls over loopback, ${calls} calls a row a round, CPU µs per call (user + system)`)
const results = new Map<string, Array<number>>()
for (let round = 0; round < rounds; round++) {
  for (const [name, task] of measured) {
    for (let i = 0; i < calls; i++) await task()
    const start = process.cpuUsage()
    for (let i = 0; i < calls; i++) await task()
    const used = process.cpuUsage(start)
    results.set(name, [...(results.get(name) ?? []), (used.user + used.system) / calls])
  }
}
for (const [name, samples] of results) {
  const sorted = [...samples].sort((a, b) => a - b)
  console.log(
    `${name.padEnd(10)} ${sorted[sorted.length >> 1]!.toFixed(1).padStart(7)}  (${
      sorted.map((x) => x.toFixed(0)).join(", ")
    })`
  )
}
server.stdin.end()
await runtime.dispose()
