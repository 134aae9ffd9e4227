/**
 * `npm run chat` end to end: the chat runs as a child process (tsx, as
 * `npm run chat` runs it) with its input piped and kept open, as at a
 * terminal, so only `/exit`, the end of input or Ctrl-C at the prompt ends
 * it. Its backends are a fake provider started here on loopback, named in a
 * configuration file; Ctrl-C is a real SIGINT sent to the child.
 */
import { type ChildProcessWithoutNullStreams, spawn } from "node:child_process"
import { mkdtempSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath, pathToFileURL } from "node:url"
import { describe, expect, it } from "vitest"
import * as FakeProvider from "./support/FakeProvider.js"

const root = fileURLToPath(new URL("..", import.meta.url))
const chatScript = join(root, "cli/chat.ts")
const tsx = pathToFileURL(join(root, "node_modules/tsx/dist/loader.mjs")).href
/** No configuration file here, whatever the project's directory holds. */
const emptyDir = mkdtempSync(join(tmpdir(), "chat-test-"))

/** The environment without any provider key or server variable, plus `extra`. */
const environment = (extra: Record<string, string> = {}) => {
  const env: Record<string, string | undefined> = { ...process.env, NO_COLOR: "1", ...extra }
  for (
    const name of [
      "OPENAI_API_KEY",
      "ANTHROPIC_API_KEY",
      "OPENROUTER_API_KEY",
      "LLM_LOCAL_BASE_URL",
      "LLM_CONFIG",
      "LLM_BACKEND",
      "LLM_FALLBACK"
    ]
  ) delete env[name]
  return env
}

/** A running chat: its output so far, lines in, signals, and how it ended. */
class Chat {
  readonly child: ChildProcessWithoutNullStreams
  out = ""
  err = ""
  readonly exited: Promise<number | null>
  private waiters: Array<() => void> = []

  constructor(args: ReadonlyArray<string>, env: Record<string, string> = {}) {
    this.child = spawn(process.execPath, ["--import", tsx, chatScript, ...args], {
      cwd: emptyDir,
      env: environment(env)
    })
    const notify = () => {
      for (const waiter of this.waiters) waiter()
    }
    this.child.stdout.on("data", (data: Buffer) => {
      this.out += data.toString()
      notify()
    })
    this.child.stderr.on("data", (data: Buffer) => {
      this.err += data.toString()
      notify()
    })
    this.exited = new Promise((resolve) => this.child.on("exit", (code) => resolve(code)))
  }

  /** Resolves once the output after `from` matches; fails after `timeoutMs`, showing the output. */
  waitFor(pattern: string | RegExp, from = 0, timeoutMs = 60_000): Promise<string> {
    const found = () => {
      const text = this.out.slice(from)
      return typeof pattern === "string" ? text.includes(pattern) : pattern.test(text)
    }
    return new Promise((resolve, reject) => {
      if (found()) return resolve(this.out.slice(from))
      const timer = setTimeout(() => {
        reject(new Error(`timed out waiting for ${String(pattern)}; stdout:\n${this.out}\nstderr:\n${this.err}`))
      }, timeoutMs)
      const waiter = () => {
        if (!found()) return
        clearTimeout(timer)
        this.waiters = this.waiters.filter((w) => w !== waiter)
        resolve(this.out.slice(from))
      }
      this.waiters.push(waiter)
    })
  }

  /** Sends a line and returns where its answer starts in the output. */
  send(text: string): number {
    const at = this.out.length
    this.child.stdin.write(`${text}\n`)
    return at
  }

  /** Waits for the prompt after `from`: the chat is ready for a line. */
  prompt(from = 0) {
    return this.waitFor(/(^|\n)> $/, from)
  }

  kill() {
    if (this.child.exitCode === null) this.child.kill("SIGKILL")
  }
}

/** How the fake provider answers: a slow story for "story", a timer tool call for "timer", else an echo naming the model. */
const responder: FakeProvider.Responder = (request) => {
  const body = request.body as { model: string; messages: ReadonlyArray<{ role: string; content: unknown }> }
  const last = body.messages[body.messages.length - 1]!
  if (last.role === "tool") {
    return { kind: "reply", text: "Your timer is set.", usage: { inputTokens: 30, outputTokens: 5 } }
  }
  const said = String(last.content)
  if (said.includes("story")) {
    return { kind: "reply", text: "Once upon a time ".repeat(40), chunkSize: 5, delayMs: 50 }
  }
  if (said.includes("timer")) {
    return { kind: "reply", toolCalls: [{ name: "set_timer", arguments: { minutes: 5 } }] }
  }
  return {
    kind: "reply",
    text: `Echo: ${said} (${body.model})`,
    chunkSize: 4,
    delayMs: 5,
    usage: { inputTokens: 1000, outputTokens: 100 }
  }
}

/** A fake provider answering with `responder`, and a configuration file naming it twice: `local` and `openai`. */
const backendsOnLoopback = async () => {
  const server = await FakeProvider.start()
  server.respond(responder)
  const file = join(mkdtempSync(join(tmpdir(), "chat-config-")), "chat.yaml")
  writeFileSync(
    file,
    [
      "llm:",
      "  backend: local",
      "  local:",
      `    base_url: ${server.url}`,
      "    model: small-local",
      "  openai:",
      `    base_url: ${server.url}/v1`,
      "    model: gpt-4o",
      "    api_key_env: CHAT_TEST_KEY",
      "  retry: { max_retries: 0 }"
    ].join("\n")
  )
  return { server, configFile: file }
}

// each test has its own processes (and fake provider): they run side by side, waiting on their children
describe.concurrent("npm run chat", () => {
  it("--help describes the flags; a bad flag is refused in the command line's style", async () => {
    const help = new Chat(["--help"])
    const bad = new Chat(["--bogus"])
    const unknown = new Chat(["--config", "/nonexistent/chat.yaml"])
    try {
      expect(await help.exited).toBe(0)
      for (const flag of ["--config", "--backend", "--system", "--tools"]) expect(help.out).toContain(flag)
      expect(await bad.exited).not.toBe(0)
      expect(bad.err).toContain("Received unknown argument: '--bogus'")
      expect(await unknown.exited).not.toBe(0)
      expect(unknown.err + unknown.out).toContain("/nonexistent/chat.yaml")
    } finally {
      help.kill()
      bad.kill()
      unknown.kill()
    }
  }, 120_000)

  it(
    "streams replies, /usage, /backend, /reset, tools, and survives Ctrl-C during a reply; /exit ends it",
    async () => {
      const { configFile, server } = await backendsOnLoopback()
      const chat = new Chat(["--config", configFile, "--system", "Be brief.", "--tools"], { CHAT_TEST_KEY: "sk-chat" })
      try {
        await chat.prompt()
        expect(chat.out).toContain("effect-llm chat · local (local, small-local)")

        // a reply streams, then one line with the backend, the first token, the rate and the cost
        let at = chat.send("hello")
        const first = await chat.waitFor(/tok\/s · .*\n/, at)
        expect(first).toContain("Echo: hello (small-local)")
        expect(first).toMatch(/local · small-local · first token \d+ ms · [\d.]+ tok\/s · \$0\n/)
        const system = server.requests.at(-1)!.body as { messages: ReadonlyArray<{ role: string; content: string }> }
        expect(system.messages[0]).toEqual({ role: "system", content: "Be brief." })
        await chat.prompt(at)

        // another backend of the file: its model answers, priced
        at = chat.send("/backend openai")
        expect(await chat.waitFor("(backend openai: openai, gpt-4o)", at)).toBeTruthy()
        at = chat.send("and now?")
        const second = await chat.waitFor(/tok\/s · .*\n/, at)
        expect(second).toContain("Echo: and now? (gpt-4o)")
        // 1000 tokens in and 100 out at gpt-4o's prices: $0.0035
        expect(second).toMatch(/openai · gpt-4o · first token \d+ ms · [\d.]+ tok\/s · \$0\.003500\n/)
        // the conversation came along: the first turn is in the new backend's request
        const moved = server.requests.at(-1)!.body as { messages: ReadonlyArray<{ content: string }> }
        expect(moved.messages.map((message) => message.content)).toContain("hello")

        at = chat.send("/backend nope")
        expect(await chat.waitFor("unknown backend nope; configured: local, openai", at)).toBeTruthy()

        // the example tools run, and the call is shown
        at = chat.send("set a timer")
        const timer = await chat.waitFor(/Your timer is set\.\n.*tok\/s.*\n/, at)
        expect(timer).toContain("→ set_timer {\"minutes\":5}")

        at = chat.send("/usage")
        // hello (local: 10 in, 0 cost), and now? (1000, 100), the timer's two steps on gpt-4o
        expect(await chat.waitFor(/usage: 4 calls · \d[\d,]* in · \d[\d,]* out · \$[\d.]+\n/, at)).toBeTruthy()

        at = chat.send("/reset")
        await chat.waitFor("(conversation reset)", at)
        at = chat.send("after reset")
        await chat.waitFor("Echo: after reset", at)
        const reset = server.requests.at(-1)!.body as { messages: ReadonlyArray<{ content: string }> }
        expect(reset.messages.map((message) => message.content)).toEqual(["Be brief.", "after reset"])
        await chat.prompt(at)

        // Ctrl-C during a slow reply: the reply stops, its request is closed, the chat goes on
        const closedBefore = server.stats.closedByClient
        at = chat.send("tell me a story")
        await chat.waitFor("Once upon a time Once", at)
        // streamed: the text shows while the reply is still being sent
        expect(server.requests.at(-1)!.finished).toBe(false)
        chat.child.kill("SIGINT")
        await chat.waitFor("(interrupted)", at)
        await server.waitForClientClose(closedBefore + 1)
        expect(server.requests.at(-1)!.closedByClient).toBe(true)
        at = chat.send("still there?")
        expect(await chat.waitFor("Echo: still there? (gpt-4o)", at)).toBeTruthy()
        await chat.prompt(at)

        chat.send("/exit")
        expect(await chat.exited).toBe(0)
      } finally {
        chat.kill()
        await server.close()
      }
    },
    120_000
  )

  it(
    "without a configuration file or keys it talks to the fake provider and says so; the end of input ends it",
    async () => {
      const chat = new Chat([])
      try {
        await chat.prompt()
        expect(chat.out).toContain("talking to the fake provider")
        const at = chat.send("hi there")
        expect(await chat.waitFor("You said: \"hi there\"", at)).toBeTruthy()
        await chat.prompt(at)
        chat.child.stdin.end()
        expect(await chat.exited).toBe(0)
      } finally {
        chat.kill()
      }
    },
    120_000
  )

  it("--backend picks a backend; Ctrl-C at the prompt ends the chat cleanly", async () => {
    const { configFile, server } = await backendsOnLoopback()
    const chat = new Chat(["--config", configFile, "--backend", "openai"], { CHAT_TEST_KEY: "sk-chat" })
    const refused = new Chat(["--config", configFile, "--backend", "nope"], { CHAT_TEST_KEY: "sk-chat" })
    try {
      await chat.prompt()
      const at = chat.send("which?")
      expect(await chat.waitFor("Echo: which? (gpt-4o)", at)).toBeTruthy()
      await chat.prompt(at)
      chat.child.kill("SIGINT")
      expect(await chat.exited).toBe(0)
      expect(await refused.exited).toBe(1)
      expect(refused.err).toContain("unknown backend nope; configured: local, openai")
    } finally {
      chat.kill()
      refused.kill()
      await server.close()
    }
  }, 120_000)
})
