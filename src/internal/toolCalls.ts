import { type ErrorContext, type LlmResponseError, quote, quoteLimits, responseError } from "../errors.js"
import { maxDepth, nestsDeeperThan } from "./json.js"
import { type JsonObject, ToolCall } from "../Message.js"
import { StreamEvent } from "../Stream.js"

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

/** Builds a `ToolCall` from raw wire parts, or a `LlmResponseError` when its arguments are invalid. @internal */
export const toToolCall = (
  context: ErrorContext,
  id: string,
  name: string,
  raw: string | object | null | undefined
): ToolCall | LlmResponseError => {
  const args = parseArguments(raw, (text) => quote(context, text, quoteLimits.text))
  return typeof args === "string"
    ? responseError(context, `tool call ${JSON.stringify(name)} (${id}): ${args}`)
    : new ToolCall({ id, name, arguments: args }, true)
}

interface Slot {
  id: string
  name: string
  readonly parts: Array<string>
}

/**
 * Assembles streamed tool calls: fragments are appended per slot, and the
 * calls are parsed strictly only once the reply is complete, so partial JSON
 * never leaves the decoder.
 *
 * @internal
 */
export class ToolCallBuffer {
  private readonly slots: Array<Slot | undefined> = []

  /** The number of slots opened so far. */
  get size(): number {
    return this.slots.length
  }

  /** Whether slot `index` was opened. */
  has(index: number): boolean {
    return this.slots[index] !== undefined
  }

  /** The slot whose call id is `id`, or -1. */
  indexOfId(id: string): number {
    return this.slots.findIndex((slot) => slot?.id === id)
  }

  /** Opens slot `index` and emits `ToolCallStart`. */
  start(index: number, id: string, name: string, out: Array<StreamEvent>): void {
    this.slots[index] = { id, name, parts: [] }
    out.push(StreamEvent.ToolCallStart({ index, id, name }))
  }

  /** Fills in a name that arrived after the slot was opened. */
  rename(index: number, name: string): void {
    const slot = this.slots[index]
    if (slot !== undefined && slot.name === "") slot.name = name
  }

  /** Appends an arguments fragment to slot `index` and emits `ToolCallDelta`. */
  append(index: number, fragment: string, out: Array<StreamEvent>): void {
    if (fragment.length === 0) return
    this.slots[index]?.parts.push(fragment)
    out.push(StreamEvent.ToolCallDelta({ index, argumentsDelta: fragment }))
  }

  /** Parses every call in slot order and emits a `ToolCall` event each; the first invalid one fails. */
  complete(context: ErrorContext, out: Array<StreamEvent>): Array<ToolCall> | LlmResponseError {
    const calls: Array<ToolCall> = []
    for (let index = 0; index < this.slots.length; index++) {
      const slot = this.slots[index]
      if (slot === undefined) continue
      const call = toToolCall(context, slot.id, slot.name, slot.parts.join(""))
      if (!(call instanceof ToolCall)) return call
      calls.push(call)
      out.push(StreamEvent.ToolCall({ index, toolCall: call }))
    }
    return calls
  }
}
