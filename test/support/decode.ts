/**
 * Drives a wire codec without HTTP: feeds bytes through the same EventReader
 * the provider layers use, in whatever chunking a test picks.
 */
import type { DecodedFinish, WireCodec } from "../../src/codecs/WireCodec.js"
import type { LlmError } from "../../src/errors.js"
import type { ErrorContext } from "../../src/internal/errorFactory.js"
import { EventReader } from "../../src/internal/eventReader.js"
import type { StreamEvent } from "../../src/Stream.js"

export const context: ErrorContext = { provider: "test", model: "test-model" }

export interface Decoded {
  readonly events: Array<StreamEvent>
  readonly finish: DecodedFinish
}

/** Splits `bytes` at the given sizes (cycled); a size of 0 means "all at once". */
export const chunk = (bytes: Uint8Array, sizes: ReadonlyArray<number>): Array<Uint8Array> => {
  if (sizes.length === 0 || sizes.every((size) => size <= 0)) return [bytes]
  const out: Array<Uint8Array> = []
  let offset = 0
  let i = 0
  while (offset < bytes.length) {
    const size = Math.max(1, sizes[i++ % sizes.length]!)
    out.push(bytes.subarray(offset, offset + size))
    offset += size
  }
  return out
}

/**
 * Decodes a whole SSE body; returns the events and how it finished, or the
 * failure. `early`: every read is fed as a stream's first read is (its text
 * parsed only until events come out, the rest held), the held rest taken
 * the same way, batch after batch, until the read is used up.
 */
export const decodeSse = (
  codec: WireCodec,
  body: string | Uint8Array,
  sizes: ReadonlyArray<number> = [],
  early = false
): Decoded | LlmError => {
  const bytes = typeof body === "string" ? new TextEncoder().encode(body) : body
  const reader = new EventReader(codec.streamDecoder(context), context)
  const events: Array<StreamEvent> = []
  for (const piece of chunk(bytes, sizes)) {
    for (const event of reader.feed(piece, early)) events.push(event)
    while (reader.holding && reader.failure === undefined && !reader.done) {
      for (const event of reader.rest(early)) events.push(event)
    }
    if (reader.failure !== undefined) return reader.failure
    if (reader.done) break
  }
  const ended = reader.end()
  if ("_tag" in ended.finish) return ended.finish
  for (const event of ended.events) events.push(event)
  return { events, finish: ended.finish }
}

/** Joins the text, reasoning and tool calls of decoded events. */
export const summarize = (decoded: Decoded) => {
  let text = ""
  let reasoning = ""
  const toolCalls: Array<{ id: string; name: string; arguments: unknown }> = []
  for (const event of decoded.events) {
    if (event._tag === "TextDelta") text += event.text
    else if (event._tag === "ReasoningDelta") reasoning += event.text
    else if (event._tag === "ToolCall") {
      toolCalls.push({ id: event.toolCall.id, name: event.toolCall.name, arguments: event.toolCall.arguments })
    }
  }
  return { text, reasoning, toolCalls, ...decoded.finish }
}
