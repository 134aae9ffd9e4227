/**
 * Recorded provider responses (test/fixtures, see its SOURCES.md) and the
 * bytes a provider would send for each, ready to replay through the fake
 * provider server.
 *
 * File kinds:
 * - `*.chunks.txt`: one SSE data payload per line, no framing (vercel/ai);
 * - `*.sse`: raw SSE bytes as the provider sent them;
 * - `*.json`: a non-streaming JSON body (`*.error.json`: an error body);
 * - `<fixture>.expected.json`: what the fixture parses to.
 */
import { readdirSync, readFileSync } from "node:fs"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import type { RawReply } from "./FakeProvider.js"

/** Absolute path of `test/fixtures` (no trailing slash). */
export const fixturesDir: string = fileURLToPath(new URL("../fixtures", import.meta.url))

/** The fixture folders: `anthropic` holds Anthropic Messages, the others Chat Completions. */
export type FixtureDir = "openai" | "openai-compatible" | "anthropic"

/** A tool call as read from a Chat Completions fixture. */
export interface DerivedToolCall {
  readonly index?: number
  readonly id: string
  readonly name: string
  /** The concatenated arguments string. */
  readonly arguments: string
  readonly arguments_parsed: unknown
}

/** A content block as read from an Anthropic fixture. */
export interface DerivedBlock {
  readonly type: string
  readonly text?: string
  readonly thinking?: string
  readonly signature_present?: boolean
  readonly id?: string
  readonly name?: string
  readonly input?: unknown
  readonly input_json_concatenated?: string
}

/** The `derived_from_fixture` section: our own reading of the raw fixture bytes. */
export interface DerivedFixture {
  readonly model?: string
  /** Chat: the response id. */
  readonly response_id?: string
  /** Anthropic: the message id. */
  readonly message_id?: string
  /** Chat: the concatenated content (null when there was none). */
  readonly text?: string | null
  /** Chat: the concatenated reasoning. */
  readonly reasoning?: string
  /** Chat: the delta/message field(s) reasoning came in. */
  readonly reasoning_field?: ReadonlyArray<string>
  readonly finish_reason?: string
  readonly tool_calls?: ReadonlyArray<DerivedToolCall>
  /** Chat: the final usage object. Anthropic non-streaming: the message usage. */
  readonly usage?: Readonly<Record<string, unknown>>
  /** Chat streams: number of `data:` events, `[DONE]` excluded. */
  readonly data_events?: number
  /** Chat streams: how many `data: [DONE]` the provider sent (the `.chunks.txt` files drop it). */
  readonly done_sentinel_count?: number
  /** Anthropic: the message's content blocks. */
  readonly content?: ReadonlyArray<DerivedBlock>
  readonly stop_reason?: string
  /** Anthropic streams: `message_start` usage updated by `message_delta`. */
  readonly usage_merged_message_start_then_message_delta?: Readonly<Record<string, unknown>>
  readonly event_type_counts?: Readonly<Record<string, number>>
  /** Anthropic error bodies (dotted keys as written). */
  readonly "error.type"?: string
  readonly "error.message"?: string
  readonly request_id?: string
  readonly [key: string]: unknown
}

/** A `<fixture>.expected.json` file. */
export interface ExpectedFixture {
  readonly fixture: string
  readonly derived_from_fixture: DerivedFixture
  readonly [key: string]: unknown
}

const isFixtureFile = (name: string): boolean =>
  !name.endsWith(".expected.json") && /\.(chunks\.txt|sse|json)$/.test(name)

/** The fixture files of one folder as paths relative to {@link fixturesDir} (e.g. `openai/openai-text.json`), sorted. */
export const listFixtures = (dir: FixtureDir): ReadonlyArray<string> =>
  readdirSync(join(fixturesDir, dir)).filter(isFixtureFile).sort().map((name) => `${dir}/${name}`)

/** Reads the `.expected.json` beside a fixture (`name` relative to {@link fixturesDir}, with or without the `.expected.json` suffix). */
export const loadExpected = (name: string): ExpectedFixture => {
  const file = name.endsWith(".expected.json") ? name : `${name}.expected.json`
  return JSON.parse(readFileSync(join(fixturesDir, file), "utf8")) as ExpectedFixture
}

/** Reads a fixture file verbatim as text (`relativePath` relative to {@link fixturesDir}). */
export const readFixture = (relativePath: string): string => readFileSync(join(fixturesDir, relativePath), "utf8")

/** The protocol a fixture folder holds. */
export const fixtureProtocol = (relativePath: string): "chat" | "messages" =>
  relativePath.split("/")[0] === "anthropic" ? "messages" : "chat"

/** How {@link fixtureScript} cuts the bytes into writes. */
export interface FixtureScriptOptions {
  /**
   * `"events"` (default): one write per SSE event (per JSON body for `.json`);
   * `"whole"`: one write; an array of sizes: writes of those many characters,
   * cycled (to mimic uneven network reads).
   */
  readonly split?: "events" | "whole" | ReadonlyArray<number>
  /** Milliseconds between writes (default 0). */
  readonly delayMs?: number
}

const resplit = (parts: ReadonlyArray<string>, split: FixtureScriptOptions["split"]): ReadonlyArray<string> => {
  if (split === undefined || split === "events") return parts
  const body = parts.join("")
  if (split === "whole" || split.length === 0 || split.every((size) => size <= 0)) return [body]
  const out: Array<string> = []
  for (let offset = 0, i = 0; offset < body.length; i++) {
    const size = Math.max(1, split[i % split.length]!)
    out.push(body.slice(offset, offset + size))
    offset += size
  }
  return out
}

/** Splits raw SSE bytes after each blank-line event separator, keeping every byte. */
const sseEvents = (raw: string): Array<string> => {
  const out: Array<string> = []
  const separator = /\r\n\r\n|\n\n|\r\r/g
  let start = 0
  for (let match = separator.exec(raw); match !== null; match = separator.exec(raw)) {
    out.push(raw.slice(start, match.index + match[0].length))
    start = match.index + match[0].length
  }
  if (start < raw.length) out.push(raw.slice(start))
  return out
}

/** How a stream file's text becomes SSE bytes. */
export interface StreamFraming {
  /** `lines`: one SSE data payload a line (vercel/ai `.chunks.txt`); `raw`: the text is SSE already. */
  readonly framing: "lines" | "raw"
  readonly protocol: "chat" | "messages"
  /** How many `data: [DONE]` events follow framed chat lines (default 0). */
  readonly done?: number
}

/**
 * A stream body as a raw script for the fake server. Framed lines become
 * `data: <line>\n\n` (chat) or `event: <type>\ndata: <line>\n\n` (messages),
 * then `done` `[DONE]` events (chat); raw text is sent verbatim.
 */
export const streamScript = (raw: string, framing: StreamFraming, options: FixtureScriptOptions = {}): RawReply => {
  const delay = options.delayMs === undefined ? {} : { delayMs: options.delayMs }
  const headers = { "content-type": "text/event-stream", "cache-control": "no-cache" }
  if (framing.framing === "raw") {
    return { kind: "raw", status: 200, headers, chunks: resplit(sseEvents(raw), options.split), ...delay }
  }
  const lines = raw.split("\n").filter((line) => line.trim() !== "")
  const events = framing.protocol === "messages"
    ? lines.map((line) => `event: ${(JSON.parse(line) as { readonly type: string }).type}\ndata: ${line}\n\n`)
    : lines.map((line) => `data: ${line}\n\n`)
  if (framing.protocol === "chat") { for (let i = 0; i < (framing.done ?? 0); i++) events.push("data: [DONE]\n\n") }
  return { kind: "raw", status: 200, headers, chunks: resplit(events, options.split), ...delay }
}

/**
 * The exact bytes a provider would have sent for a fixture, as a raw script
 * for the fake server. The protocol comes from the folder name.
 *
 * - chat `.chunks.txt` → `data: <line>\n\n` per line, then `data: [DONE]\n\n`
 *   only when the expected file's `done_sentinel_count` says there was one;
 * - anthropic `.chunks.txt` → `event: <type>\ndata: <line>\n\n` per line;
 * - `.sse` → the file verbatim;
 * - `.json` → the body with status 200 (`*.error.json`: 400, and the body's
 *   `request_id` as the `request-id` header).
 */
export const fixtureScript = (relativePath: string, options: FixtureScriptOptions = {}): RawReply => {
  const raw = readFixture(relativePath)
  const protocol = fixtureProtocol(relativePath)

  if (relativePath.endsWith(".json")) {
    const error = relativePath.endsWith(".error.json")
    const requestId = (JSON.parse(raw) as { readonly request_id?: unknown }).request_id
    const headers: Record<string, string> = { "content-type": "application/json" }
    if (error && typeof requestId === "string") {
      headers[protocol === "messages" ? "request-id" : "x-request-id"] = requestId
    }
    const delay = options.delayMs === undefined ? {} : { delayMs: options.delayMs }
    return { kind: "raw", status: error ? 400 : 200, headers, chunks: resplit([raw], options.split), ...delay }
  }
  if (relativePath.endsWith(".sse")) return streamScript(raw, { framing: "raw", protocol }, options)
  if (!relativePath.endsWith(".chunks.txt")) throw new Error(`not a fixture file: ${relativePath}`)
  const done = protocol === "chat" ? loadExpected(relativePath).derived_from_fixture.done_sentinel_count ?? 0 : 0
  return streamScript(raw, { framing: "lines", protocol, done }, options)
}
