import type { LlmResponseError } from "../errors.js"
import { type JsonObject, ToolCall } from "../Message.js"
import { type FinishReason, StreamEvent } from "../Reply.js"
import { type ErrorContext, quote, quoteLimits, responseError } from "./errorFactory.js"
import { maxDepth, nestsDeeperThan } from "./json.js"

/**
 * Parses a tool call's arguments strictly: a JSON object, or the empty string
 * for "no arguments". Anything else (a half object, an array, a number, an
 * object nested deeper than `maxDepth`) is an error message, quoting the
 * arguments through `excerpt` (which redacts, then cuts).
 *
 * @internal
 */
export const parseArguments = (
  raw: string | object | null | undefined,
  excerpt: (text: string) => string
): JsonObject | string => {
  if (raw === undefined || raw === null) return {}
  if (typeof raw === "object") {
    if (Array.isArray(raw)) return "the arguments are an array, not an object"
    return nestsDeeperThan(raw) ? tooDeep : raw as JsonObject
  }
  if (raw.trim() === "") return {}
  let value: unknown
  try {
    value = JSON.parse(raw)
  } catch {
    return `the arguments are not valid JSON: ${excerpt(raw)}`
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    return `the arguments are not a JSON object: ${excerpt(raw)}`
  }
  return nestsDeeperThan(value) ? tooDeep : value as JsonObject
}

const tooDeep = `the arguments are nested deeper than ${maxDepth} levels`

/** Tool-call indexes accepted from the wire run from 0 to this, exclusive: no reply needs more calls. @internal */
export const maxToolCalls = 1024

/** The error for a tool-call index that is not an integer from 0 to `maxToolCalls` - 1, or undefined. @internal */
export const badIndex = (context: ErrorContext, index: unknown): LlmResponseError | undefined =>
  typeof index === "number" && Number.isInteger(index) && index >= 0 && index < maxToolCalls
    ? undefined
    : responseError(context, `tool call index ${JSON.stringify(index)} is not an integer from 0 to ${maxToolCalls - 1}`)

/** The error for tool call `index` (id `id`), which has no function name. @internal */
export const unnamed = (context: ErrorContext, index: number, id: string): LlmResponseError =>
  responseError(context, `tool call ${index} (${id}) has no function name`)

/**
 * The id a call is given: its own when no earlier call of the reply has it,
 * else (or when it has none) `fallback`, or `<id>_<n>` with the least free
 * n ≥ 2, so each call and its result stay paired in the history sent back.
 * Records the id in `used`.
 *
 * @internal
 */
export const uniqueId = (used: Set<string>, id: string, fallback: string): string => {
  const base = id === "" ? fallback : id
  let candidate = base
  for (let n = 2; used.has(candidate); n++) candidate = `${base}_${n}`
  used.add(candidate)
  return candidate
}

/** The finish reason to report: `tool_calls` without any call is a plain `stop`. @internal */
export const withoutCalls = (reason: FinishReason, hasToolCalls: boolean): FinishReason =>
  reason === "tool_calls" && !hasToolCalls ? "stop" : reason

/**
 * Builds call `index` of a reply from raw wire parts, or a `LlmResponseError`
 * when it has no name or its arguments are invalid.
 *
 * @internal
 */
export const toToolCall = (
  context: ErrorContext,
  index: number,
  id: string,
  name: string,
  raw: string | object | null | undefined
): ToolCall | LlmResponseError => {
  if (name === "") return unnamed(context, index, id)
  const args = parseArguments(raw, (text) => quote(context, text, quoteLimits.text))
  return typeof args === "string"
    ? responseError(context, `tool call ${JSON.stringify(name)} (${id}): ${args}`)
    : new ToolCall({ id, name, arguments: args }, true)
}

interface Slot {
  /** The id as the wire gave it (fragments are matched by it); `id` is the unique one reported. */
  readonly wireId: string
  readonly id: string
  name: string
  readonly parts: Array<string>
}

/**
 * Assembles streamed tool calls: fragments are appended per slot, and the
 * calls are parsed strictly only once the reply is complete, so partial JSON
 * never leaves the decoder. Slots are keyed by index, so gaps cost nothing;
 * an index outside 0 to `maxToolCalls` - 1 is refused. Ids are made unique
 * (see `uniqueId`), missing ones become `<fallbackPrefix><index>`.
 *
 * @internal
 */
export class ToolCallBuffer {
  private readonly slots = new Map<number, Slot>()
  private readonly byWireId = new Map<string, number>()
  private readonly ids = new Set<string>()
  private next = 0

  constructor(private readonly context: ErrorContext, private readonly fallbackPrefix: string) {}

  /** One past the highest slot opened so far: where a call without an index goes. */
  get nextIndex(): number {
    return this.next
  }

  /** Whether slot `index` was opened. */
  has(index: number): boolean {
    return this.slots.has(index)
  }

  /** Whether slot `index` has a function name. */
  isNamed(index: number): boolean {
    return (this.slots.get(index)?.name ?? "") !== ""
  }

  /** The latest slot whose wire id is `id`, or -1. */
  indexOfId(id: string): number {
    return this.byWireId.get(id) ?? -1
  }

  /** Opens slot `index` and emits `ToolCallStart`; a bad index is an error. */
  start(index: number, wireId: string, name: string, out: Array<StreamEvent>): LlmResponseError | undefined {
    const bad = badIndex(this.context, index)
    if (bad !== undefined) return bad
    const id = uniqueId(this.ids, wireId, `${this.fallbackPrefix}${index}`)
    this.slots.set(index, { wireId, id, name, parts: [] })
    if (wireId !== "") this.byWireId.set(wireId, index)
    if (index >= this.next) this.next = index + 1
    out.push(StreamEvent.ToolCallStart({ index, id, name }))
    return undefined
  }

  /** Fills in a name that arrived after the slot was opened. */
  rename(index: number, name: string): void {
    const slot = this.slots.get(index)
    if (slot !== undefined && slot.name === "") slot.name = name
  }

  /** Appends an arguments fragment to slot `index` and emits `ToolCallDelta`. */
  append(index: number, fragment: string, out: Array<StreamEvent>): void {
    if (fragment.length === 0) return
    this.slots.get(index)?.parts.push(fragment)
    out.push(StreamEvent.ToolCallDelta({ index, argumentsDelta: fragment }))
  }

  /** Parses every call in index order and emits a `ToolCall` event each; the first invalid one (no name, bad arguments) fails. */
  complete(out: Array<StreamEvent>): Array<ToolCall> | LlmResponseError {
    const calls: Array<ToolCall> = []
    const indexes = [...this.slots.keys()].sort((a, b) => a - b)
    for (const index of indexes) {
      const slot = this.slots.get(index)!
      const call = toToolCall(this.context, index, slot.id, slot.name, slot.parts.join(""))
      if (!(call instanceof ToolCall)) return call
      calls.push(call)
      out.push(StreamEvent.ToolCall({ index, toolCall: call }))
    }
    return calls
  }
}
